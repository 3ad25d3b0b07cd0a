// cublaslt.h - the BF16 and FP8 GEMMs of the CUDA backend through cuBLASLt, opened
// with dlopen at run time (libpaca never links cuBLAS), so a machine without
// cuBLAS still loads libpaca and runs the CUDA backend on its own kernels.
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <cstddef>  // size_t
#include <cstdint>  // uint16_t
#include <map>      // std::map
#include <memory>   // std::unique_ptr
#include <string>   // std::string
#include <tuple>    // std::tuple

namespace paca::cuda {

struct LtApi;  // the resolved entry points (cublaslt.cpp)

class LtGemm {
 public:
  // Opens cuBLASLt and creates a handle; available() is false (and why()
  // says why) when the library or a symbol is missing or the handle fails.
  LtGemm();
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  bool available() const { return handle_ != nullptr; }
  const std::string& why() const { return why_; }

  // y[t, r] = sum_c x[t, c] * W[r, c], with W (rows, cols) bf16, x (tokens, cols)
  // bf16, y (tokens, ldy) f32; f32 accumulation. workspace: device memory of
  // workspace_bytes. Returns false (nothing enqueued; the reason in *err)
  // when cuBLASLt has no algorithm for the shape (remembered, so asking
  // again is cheap) or fails; the caller then computes it another way.
  bool matmul(const uint16_t* w, int rows, int cols, const uint16_t* x, int tokens, float* y, int ldy,
              void* workspace, size_t workspace_bytes, cudaStream_t stream, std::string* err);

  // The FP8 GEMM (Hopper/Ada): y[t, r] = sum_c e4m3(W[r, c]) * e4m3(x[t, c]),
  // f32 accumulation (cuBLASLt's default, not the "fast accumulation" mode),
  // f32 output, the "TN" layout FP8 requires. W (rows, cols) and x (tokens,
  // cols) are E4M3 codes; rows, cols and tokens must be multiples of 16
  // (false otherwise). With w_scale and x_scale (device f32 vectors of rows
  // and tokens elements) the product is scaled by w_scale[r] * x_scale[t] in
  // the GEMM (cuBLASLt's outer-vector scale mode); false when this cuBLASLt
  // or GPU has no such algorithm: the caller then runs it unscaled and
  // applies the scales itself (launch_scale_rows_tokens).
  bool matmul_f8(const uint8_t* w, int rows, int cols, const uint8_t* x, int tokens, float* y, int ldy,
                 const float* w_scale, const float* x_scale, void* workspace, size_t workspace_bytes,
                 cudaStream_t stream, std::string* err);

 private:
  struct Plan;
  enum Kind { kBf16 = 0, kF8 = 1, kF8OuterVec = 2 };
  Plan* plan_for(Kind kind, int rows, int cols, int tokens, int ldy, int align_y, size_t workspace_bytes,
                 std::string* err);
  // Enqueues the plan's GEMM (alpha 1, beta 0); false with *err on failure.
  bool run(Plan* p, const void* w, const void* x, float* y, void* workspace, size_t workspace_bytes,
           cudaStream_t stream, const char* what, std::string* err);

  const LtApi* api_ = nullptr;
  void* handle_ = nullptr;  // cublasLtHandle_t
  std::string why_;
  // per (kind, rows, cols, tokens, ldy, alignment of y); a null plan: no algorithm
  std::map<std::tuple<int, int, int, int, int, int>, std::unique_ptr<Plan>> plans_;
};

}  // namespace paca::cuda
