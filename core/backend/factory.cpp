// factory.cpp - the backend a device string names (see backend.h), and the
// Backend defaults that need more than the header. core never includes cuda/:
// make_cuda_backend is defined by cuda/cuda_backend.cpp when the CUDA backend
// is built, else by backend/no_cuda.cpp.
#include <charconv>

#include "backend/backend.h"
#include "util/error.h"

namespace paca {

void Backend::top_k(const float* logits, size_t n, size_t k, std::vector<Candidate>& out, uint64_t* mass) {
  std::vector<float> host(n);
  to_host(logits, host.data(), n);
  select_top_k(host, k, out);
  if (mass != nullptr) *mass = out.empty() ? 0 : logit_mass(host, out[0].logit);
}

int parse_cuda_device(const std::string& device) {
  if (device == "cuda") return 0;
  if (device.rfind("cuda:", 0) != 0 || device.size() == 5 || device.size() > 9) return -1;
  int index = -1;
  const char* first = device.data() + 5;
  const char* last = device.data() + device.size();
  auto [end, ec] = std::from_chars(first, last, index);
  if (ec != std::errc() || end != last || index < 0) return -1;
  return index;
}

std::unique_ptr<Backend> make_backend(const std::string& device, int n_threads, const BackendSettings& settings) {
  if (device == "cpu") return make_cpu_backend(n_threads, settings.cpu_isa);
  const int index = parse_cuda_device(device);
  if (index >= 0) return make_cuda_backend(index, settings);
  fail(Status::invalid_argument, "unknown device '{}' (expected \"cpu\", \"cuda\" or \"cuda:N\")", device);
}

}  // namespace paca
