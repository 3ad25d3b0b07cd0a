// cuda_backend.h - the CUDA backend (CudaBackend in cuda_backend.cpp) with the
// knobs tests turn, and its host-side planning, which is plain C++ and
// tested without a device. core reaches the backend only through
// paca::make_cuda_backend (backend/backend.h).
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <memory>  // std::unique_ptr

#include "backend/backend.h"  // paca::Backend

namespace paca::cuda {

struct CudaBackendOptions {
  int device = 0;
  bool use_cublaslt = true;   // false: every matmul through the GEMV kernel
  int gemv_max_tokens = 8;    // matmuls of at most this many tokens take the GEMV kernel
  int attention_splits = 0;   // 0: chosen by attention_splits_for; else forced (>= 1)
};

// Throws Error(device) when the device is unavailable ("no CUDA device: ..."
// leads the message when there is none) or index is out of range.
std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& opt);

// The stream every op of a CUDA backend is enqueued on, and its device: what
// NcclComm needs to run collectives in order with the backend's work. False
// (outputs untouched) for any other backend.
bool cuda_stream_of(Backend& backend, cudaStream_t* stream, int* device);

// ---- host-side planning -----------------------------------------------------

// Splits of each attention row's positions over blocks: 1 unless the (token,
// head) rows alone would fill fewer than 2 blocks per multiprocessor and the
// longest row has more than 256 positions; then enough splits of at least 128
// positions each to reach that, at most 32.
int attention_splits_for(int tokens, int n_heads, int max_positions, int sm_count);

enum class MatmulPath { gemv, cublaslt };
// GEMV for up to gemv_max_tokens tokens or when cuBLASLt is unavailable.
MatmulPath matmul_path(int tokens, int gemv_max_tokens, bool cublaslt_available);

// Bytes a weight of this shape takes on the device: bf16 for matrices
// (rows > 1), f32 for vectors (norm weights).
size_t device_weight_bytes(const TensorView& w);

}  // namespace paca::cuda
