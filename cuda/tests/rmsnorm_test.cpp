// rmsnorm_test.cpp - launch_rmsnorm and launch_add_rmsnorm
// (cuda/kernels/rmsnorm.cu) against a CPU reference in f64, on random
// never-zero inputs of awkward shapes, for f32 and bf16 weights, outputs
// poisoned with NaN first. Tolerance: relative error 1e-5 per element; the
// fused kernel's updated x must equal the f32 sums exactly. The quantizing
// variant (launch_rmsnorm_quant) against launch_quantize_e4m3 on a small
// problem here; at scale in cuda_backend_test.cpp (CudaFusedNorm).
// Every test skips, with the reason, when there is no CUDA device.
#include <gtest/gtest.h>  // TEST_P, GTEST_SKIP

#include <cuda_runtime_api.h>  // cudaMalloc, cudaMemcpyAsync, streams

#include <algorithm>  // std::equal
#include <cmath>    // std::sqrt, std::fabs
#include <cstddef>  // size_t
#include <cstdint>  // uint16_t
#include <cstring>  // std::memcmp
#include <random>   // std::mt19937
#include <string>   // std::string
#include <tuple>    // std::tuple
#include <vector>   // std::vector

#include "device.h"           // paca::cuda::device_count
#include "kernels/kernels.h"  // paca::cuda::launch_rmsnorm
#include "util/half.h"        // paca::f32_to_bf16, paca::bf16_to_f32

namespace {

using paca::cuda::launch_add_rmsnorm;
using paca::cuda::launch_rmsnorm;

constexpr double kRelTol = 1e-5;

// ---- CPU reference --------------------------------------------------------

// y[t, i] = x[t, i] / sqrt(mean(x[t, :]^2) + eps) * w[i], all in f64.
//   x: (rows, cols), w: (cols), returns (rows, cols)
std::vector<double> rmsnorm_reference(const std::vector<float>& x, const std::vector<float>& w, float eps, int rows,
                                      int cols) {
  std::vector<double> y(x.size());
  for (int t = 0; t < rows; ++t) {
    const float* xr = x.data() + static_cast<size_t>(t) * cols;
    double ss = 0;
    for (int i = 0; i < cols; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const double inv = 1.0 / std::sqrt(ss / cols + static_cast<double>(eps));
    for (int i = 0; i < cols; ++i) y[static_cast<size_t>(t) * cols + i] = xr[i] * inv * w[i];
  }
  return y;
}

// Values with |v| in [lo, hi] and a random sign: never zero.
std::vector<float> random_nonzero(std::mt19937& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> mag(lo, hi);
  std::bernoulli_distribution neg(0.5);
  std::vector<float> v(n);
  for (float& e : v) e = neg(rng) ? -mag(rng) : mag(rng);
  return v;
}

// ---- device helpers -------------------------------------------------------

// Whether a device exists, asked once per process; the reason when not.
const std::string& no_device_reason() {
  static const std::string reason = [] {
    std::string why;
    return paca::cuda::device_count(&why) > 0 ? std::string() : why;
  }();
  return reason;
}

#define CUDA_ASSERT(expr)                                                                                        \
  do {                                                                                                           \
    const cudaError_t err_ = (expr);                                                                             \
    ASSERT_EQ(err_, cudaSuccess) << #expr << ": " << cudaGetErrorName(err_) << ": " << cudaGetErrorString(err_); \
  } while (0)

// A device allocation, freed on scope exit; status() is cudaMalloc's result.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) { status_ = cudaMalloc(&ptr_, bytes); }
  ~DeviceBuffer() {
    if (ptr_) (void)cudaFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  cudaError_t status() const { return status_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
  cudaError_t status_ = cudaSuccess;
};

class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The wording "no CUDA device" is matched by the ctest SKIP_REGULAR_EXPRESSION
    // in cuda/CMakeLists.txt, so keep it.
    if (!no_device_reason().empty()) GTEST_SKIP() << no_device_reason();
    CUDA_ASSERT(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  void TearDown() override {
    if (stream_) (void)cudaStreamDestroy(stream_);
  }
  cudaStream_t stream_ = nullptr;
};

// ---- the comparison -------------------------------------------------------

// Runs launch_rmsnorm on random inputs and compares with the reference.
// in_place: y aliases x on the device.
void check_rmsnorm(cudaStream_t stream, int rows, int cols, bool bf16, bool in_place, unsigned seed) {
  SCOPED_TRACE(testing::Message() << "rows=" << rows << " cols=" << cols << " w=" << (bf16 ? "bf16" : "f32")
                                  << (in_place ? " in place" : ""));
  const float eps = 1e-5f;
  const size_t n = static_cast<size_t>(rows) * cols;
  std::mt19937 rng(seed);
  const std::vector<float> x = random_nonzero(rng, n, 0.05f, 4.0f);
  std::vector<float> w = random_nonzero(rng, static_cast<size_t>(cols), 0.25f, 2.0f);
  std::vector<uint16_t> w_bits(static_cast<size_t>(cols));
  if (bf16)  // the reference sees exactly the weights the device sees
    for (size_t i = 0; i < w.size(); ++i) {
      w_bits[i] = paca::f32_to_bf16(w[i]);
      w[i] = paca::bf16_to_f32(w_bits[i]);
    }
  const std::vector<double> want = rmsnorm_reference(x, w, eps, rows, cols);

  DeviceBuffer dx(n * sizeof(float));
  DeviceBuffer dy(in_place ? 1 : n * sizeof(float));
  DeviceBuffer dw(static_cast<size_t>(cols) * (bf16 ? sizeof(uint16_t) : sizeof(float)));
  CUDA_ASSERT(dx.status());
  CUDA_ASSERT(dy.status());
  CUDA_ASSERT(dw.status());
  const void* w_host = bf16 ? static_cast<const void*>(w_bits.data()) : static_cast<const void*>(w.data());
  CUDA_ASSERT(cudaMemcpyAsync(dx.as<float>(), x.data(), n * sizeof(float), cudaMemcpyHostToDevice, stream));
  CUDA_ASSERT(cudaMemcpyAsync(dw.as<void>(), w_host, static_cast<size_t>(cols) * (bf16 ? 2 : 4), cudaMemcpyHostToDevice,
                              stream));
  float* y_dev = in_place ? dx.as<float>() : dy.as<float>();
  const std::vector<float> nan(n, std::nanf(""));  // every element must be written
  if (!in_place)
    CUDA_ASSERT(cudaMemcpyAsync(y_dev, nan.data(), n * sizeof(float), cudaMemcpyHostToDevice, stream));
  CUDA_ASSERT(launch_rmsnorm(dx.as<float>(), dw.as<void>(), bf16 ? 1 : 0, eps, rows, cols, y_dev, stream));
  std::vector<float> got(n);
  CUDA_ASSERT(cudaMemcpyAsync(got.data(), y_dev, n * sizeof(float), cudaMemcpyDeviceToHost, stream));
  CUDA_ASSERT(cudaStreamSynchronize(stream));

  size_t bad = 0;
  double worst = 0;
  for (size_t i = 0; i < n; ++i) {
    const double rel = std::fabs(static_cast<double>(got[i]) - want[i]) / std::fabs(want[i]);
    if (rel > worst) worst = rel;
    if (!(rel <= kRelTol) && ++bad <= 5)  // !(<=) also catches NaN
      ADD_FAILURE() << "y[" << i / cols << ", " << i % cols << "] = " << got[i] << ", want " << want[i] << " (rel "
                    << rel << ")";
  }
  EXPECT_EQ(bad, 0u) << "elements over rel " << kRelTol << "; worst rel " << worst;
}

// rows x cols x weight dtype
class RmsnormTest : public CudaTest, public ::testing::WithParamInterface<std::tuple<int, int, bool>> {};

TEST_P(RmsnormTest, MatchesCpuReference) {
  const auto [rows, cols, bf16] = GetParam();
  check_rmsnorm(stream_, rows, cols, bf16, /*in_place=*/false, static_cast<unsigned>(rows * 100003 + cols));
}

INSTANTIATE_TEST_SUITE_P(AwkwardShapes, RmsnormTest,
                         ::testing::Combine(::testing::Values(1, 3, 17),              // rows
                                            ::testing::Values(1, 7, 64, 1000, 4097),  // cols
                                            ::testing::Bool()),                       // bf16 weights
                         [](const ::testing::TestParamInfo<RmsnormTest::ParamType>& p) {
                           return "r" + std::to_string(std::get<0>(p.param)) + "_c" +
                                  std::to_string(std::get<1>(p.param)) + (std::get<2>(p.param) ? "_bf16" : "_f32");
                         });

// Runs launch_add_rmsnorm: x += r must give the f32 sums exactly, y the
// reference norm of the new x.
void check_add_rmsnorm(cudaStream_t stream, int rows, int cols, bool bf16, unsigned seed) {
  SCOPED_TRACE(testing::Message() << "add_rmsnorm rows=" << rows << " cols=" << cols << " w=" << (bf16 ? "bf16" : "f32"));
  const float eps = 1e-5f;
  const size_t n = static_cast<size_t>(rows) * cols;
  std::mt19937 rng(seed);
  const std::vector<float> x = random_nonzero(rng, n, 0.05f, 4.0f), r = random_nonzero(rng, n, 0.05f, 4.0f);
  std::vector<float> w = random_nonzero(rng, static_cast<size_t>(cols), 0.25f, 2.0f);
  std::vector<uint16_t> w_bits(static_cast<size_t>(cols));
  if (bf16)
    for (size_t i = 0; i < w.size(); ++i) {
      w_bits[i] = paca::f32_to_bf16(w[i]);
      w[i] = paca::bf16_to_f32(w_bits[i]);
    }
  std::vector<float> sum(n);
  for (size_t i = 0; i < n; ++i) sum[i] = x[i] + r[i];
  const std::vector<double> want = rmsnorm_reference(sum, w, eps, rows, cols);

  DeviceBuffer dx(n * sizeof(float)), dr(n * sizeof(float)), dy(n * sizeof(float));
  DeviceBuffer dw(static_cast<size_t>(cols) * (bf16 ? sizeof(uint16_t) : sizeof(float)));
  CUDA_ASSERT(dx.status());
  CUDA_ASSERT(dr.status());
  CUDA_ASSERT(dy.status());
  CUDA_ASSERT(dw.status());
  const void* w_host = bf16 ? static_cast<const void*>(w_bits.data()) : static_cast<const void*>(w.data());
  const std::vector<float> nan(n, std::nanf(""));
  CUDA_ASSERT(cudaMemcpyAsync(dx.as<float>(), x.data(), n * sizeof(float), cudaMemcpyHostToDevice, stream));
  CUDA_ASSERT(cudaMemcpyAsync(dr.as<float>(), r.data(), n * sizeof(float), cudaMemcpyHostToDevice, stream));
  CUDA_ASSERT(cudaMemcpyAsync(dy.as<float>(), nan.data(), n * sizeof(float), cudaMemcpyHostToDevice, stream));
  CUDA_ASSERT(cudaMemcpyAsync(dw.as<void>(), w_host, static_cast<size_t>(cols) * (bf16 ? 2 : 4), cudaMemcpyHostToDevice,
                              stream));
  CUDA_ASSERT(launch_add_rmsnorm(dx.as<float>(), dr.as<float>(), dw.as<void>(), bf16 ? 1 : 0, eps, rows, cols,
                                 dy.as<float>(), stream));
  std::vector<float> got(n), got_x(n);
  CUDA_ASSERT(cudaMemcpyAsync(got.data(), dy.as<float>(), n * sizeof(float), cudaMemcpyDeviceToHost, stream));
  CUDA_ASSERT(cudaMemcpyAsync(got_x.data(), dx.as<float>(), n * sizeof(float), cudaMemcpyDeviceToHost, stream));
  CUDA_ASSERT(cudaStreamSynchronize(stream));
  EXPECT_EQ(got_x, sum) << "x += r";
  size_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    const double rel = std::fabs(static_cast<double>(got[i]) - want[i]) / std::fabs(want[i]);
    if (!(rel <= kRelTol) && ++bad <= 5)
      ADD_FAILURE() << "y[" << i / cols << ", " << i % cols << "] = " << got[i] << ", want " << want[i];
  }
  EXPECT_EQ(bad, 0u);
}

TEST_P(RmsnormTest, FusedWithTheResidualAddMatchesCpuReference) {
  const auto [rows, cols, bf16] = GetParam();
  check_add_rmsnorm(stream_, rows, cols, bf16, static_cast<unsigned>(rows * 7919 + cols));
}

using RmsnormEdgeTest = CudaTest;

TEST_F(RmsnormEdgeTest, InPlace) {
  check_rmsnorm(stream_, 5, 4097, /*bf16=*/true, /*in_place=*/true, 7);
  if (HasFatalFailure()) return;
  check_rmsnorm(stream_, 5, 1000, /*bf16=*/false, /*in_place=*/true, 8);
}

TEST_F(RmsnormEdgeTest, BadArgumentsAndEmpty) {
  DeviceBuffer buf(8 * sizeof(float));
  CUDA_ASSERT(buf.status());
  float* f = buf.as<float>();
  EXPECT_EQ(launch_rmsnorm(f, f, 0, 1e-5f, 0, 8, f, stream_), cudaSuccess);  // rows == 0: no-op
  EXPECT_EQ(launch_rmsnorm(f, f, 0, 1e-5f, -1, 8, f, stream_), cudaErrorInvalidValue);
  EXPECT_EQ(launch_rmsnorm(f, f, 0, 1e-5f, 1, 0, f, stream_), cudaErrorInvalidValue);
  EXPECT_EQ(launch_rmsnorm(nullptr, f, 0, 1e-5f, 1, 8, f, stream_), cudaErrorInvalidValue);
  EXPECT_EQ(launch_rmsnorm(f, nullptr, 0, 1e-5f, 1, 8, f, stream_), cudaErrorInvalidValue);
  EXPECT_EQ(launch_rmsnorm(f, f, 0, 1e-5f, 1, 8, nullptr, stream_), cudaErrorInvalidValue);
  CUDA_ASSERT(cudaStreamSynchronize(stream_));
}

// The quantizing variant (launch_rmsnorm_quant) on a small problem, so that
// racecheck covers its second block reduction: y as launch_add_rmsnorm
// writes it (checked above), codes (rows [0, 2)), values (the rest) and
// scales as launch_quantize_e4m3 gives them from that y, bit for bit.
TEST_F(RmsnormEdgeTest, QuantizedVariantIsTheQuantizersBitForBit) {
  const int rows = 5, cols = 1000, code_rows = 2;
  const size_t n = static_cast<size_t>(rows) * cols;
  std::mt19937 rng(9);
  const std::vector<float> x = random_nonzero(rng, n, 0.05f, 4.0f), r = random_nonzero(rng, n, 0.05f, 4.0f);
  const std::vector<float> w = random_nonzero(rng, static_cast<size_t>(cols), 0.25f, 2.0f);
  DeviceBuffer dx(n * 4), dr(n * 4), dw(cols * 4), dy(n * 4), q8(n), qf(n * 4), sc(rows * 4), ref8(n), refs(rows * 4);
  for (const DeviceBuffer* b : {&dx, &dr, &dw, &dy, &q8, &qf, &sc, &ref8, &refs}) CUDA_ASSERT(b->status());
  CUDA_ASSERT(cudaMemcpyAsync(dx.as<float>(), x.data(), n * 4, cudaMemcpyHostToDevice, stream_));
  CUDA_ASSERT(cudaMemcpyAsync(dr.as<float>(), r.data(), n * 4, cudaMemcpyHostToDevice, stream_));
  CUDA_ASSERT(cudaMemcpyAsync(dw.as<float>(), w.data(), cols * 4, cudaMemcpyHostToDevice, stream_));
  CUDA_ASSERT(cudaMemsetAsync(q8.as<void>(), 0x7f, n, stream_));
  CUDA_ASSERT(cudaMemsetAsync(qf.as<void>(), 0xff, n * 4, stream_));
  CUDA_ASSERT(cudaMemsetAsync(sc.as<void>(), 0xff, rows * 4, stream_));
  const paca::cuda::E4m3Quant q{.dynamic = 1, .act_ub = 3.0f, .act_scale = 0.0f, .code_rows = code_rows,
                                .q8 = q8.as<uint8_t>(), .ldq8 = cols, .qf = qf.as<float>(), .ldqf = cols,
                                .scales = sc.as<float>()};
  CUDA_ASSERT(paca::cuda::launch_rmsnorm_quant(dx.as<float>(), dr.as<float>(), dw.as<void>(), 0, 1e-5f, rows, cols,
                                               dy.as<float>(), q, stream_));
  // the quantizer on the fused kernel's own y: codes into ref8, values into dr (r is read by now)
  CUDA_ASSERT(paca::cuda::launch_quantize_e4m3(dy.as<float>(), cols, rows, cols, rows, 1, 3.0f, 0.0f,
                                               ref8.as<uint8_t>(), cols, nullptr, 0, refs.as<float>(), stream_));
  CUDA_ASSERT(paca::cuda::launch_quantize_e4m3(dy.as<float>(), cols, rows, cols, rows, 1, 3.0f, 0.0f, nullptr, 0,
                                               dr.as<float>(), cols, refs.as<float>(), stream_));
  std::vector<uint8_t> got8(n), want8(n);
  std::vector<float> gotv(n), wantv(n), gots(rows), wants(rows);
  CUDA_ASSERT(cudaMemcpyAsync(got8.data(), q8.as<void>(), n, cudaMemcpyDeviceToHost, stream_));
  CUDA_ASSERT(cudaMemcpyAsync(want8.data(), ref8.as<void>(), n, cudaMemcpyDeviceToHost, stream_));
  CUDA_ASSERT(cudaMemcpyAsync(gotv.data(), qf.as<void>(), n * 4, cudaMemcpyDeviceToHost, stream_));
  CUDA_ASSERT(cudaMemcpyAsync(wantv.data(), dr.as<void>(), n * 4, cudaMemcpyDeviceToHost, stream_));
  CUDA_ASSERT(cudaMemcpyAsync(gots.data(), sc.as<void>(), rows * 4, cudaMemcpyDeviceToHost, stream_));
  CUDA_ASSERT(cudaMemcpyAsync(wants.data(), refs.as<void>(), rows * 4, cudaMemcpyDeviceToHost, stream_));
  CUDA_ASSERT(cudaStreamSynchronize(stream_));
  const size_t nc = static_cast<size_t>(code_rows) * cols;
  EXPECT_TRUE(std::equal(got8.begin(), got8.begin() + nc, want8.begin())) << "codes";
  EXPECT_EQ(0, std::memcmp(gotv.data(), wantv.data() + nc, (n - nc) * 4)) << "values";
  EXPECT_EQ(0, std::memcmp(gots.data(), wants.data(), rows * 4)) << "scales";
}

}  // namespace
