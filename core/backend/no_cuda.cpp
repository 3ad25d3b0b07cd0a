// no_cuda.cpp - make_cuda_backend for a build without the CUDA backend
// (PACA_CUDA=OFF or no nvcc): every CUDA device is unavailable.
#include "backend/backend.h"
#include "util/error.h"

namespace paca {

std::unique_ptr<Backend> make_cuda_backend(int index, const BackendSettings&) {
  fail(Status::device, "device 'cuda:{}' is unavailable: this build of paca has no CUDA backend (built with PACA_CUDA=OFF "
       "or without nvcc)", index);
}

}  // namespace paca
