// test_util.cpp - see test_util.h.
#include "test_util.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>

namespace test {

std::string shared_dir() {
  const char* env = std::getenv("PACA_SHARED_DIR");
  std::string d = env != nullptr ? env : PACA_SHARED_DEFAULT;
  struct stat st {};
  if (::stat((d + "/models").c_str(), &st) != 0) return "";
  return d;
}

std::string temp_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/paca-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  char* d = ::mkdtemp(buf.data());
  if (d == nullptr) ADD_FAILURE() << "mkdtemp failed";
  return d ? d : "/tmp";
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
}

const char* test_cpu_isa() { return std::getenv("PACA_CPU_ISA"); }

paca_model* load_or_die(const std::string& path, int n_threads) {
  paca_model_params p;
  paca_model_params_init(&p, sizeof p);
  p.n_threads = n_threads;
  p.cpu_isa = test_cpu_isa();
  paca_model* m = nullptr;
  paca_status s = paca_model_load(path.c_str(), &p, &m);
  EXPECT_EQ(s, PACA_OK) << path << ": " << paca_last_error();
  return m;
}

double rel_l2(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}

std::string make_small_model(uint64_t seed) {
  std::string dir = temp_dir() + "/model";
  paca_test_model_params p;
  paca_test_model_params_init(&p, sizeof p);
  p.seed = seed;
  p.dim = 64;
  p.n_layers = 2;
  p.n_heads = 4;
  p.n_kv_heads = 2;
  p.ffn_dim = 160;
  p.n_vocab = 300;
  p.max_context = 64;
  EXPECT_EQ(paca_make_test_model(dir.c_str(), &p), PACA_OK) << paca_last_error();
  return dir;
}

}  // namespace test
