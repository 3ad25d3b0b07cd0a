// kernels.h - host entry points of the CUDA kernel families in cuda/kernels/.
// One family per .cu file; every launch_<op> enqueues its work on `stream`
// and returns at once (no host synchronisation). Each has a CPU twin in
// core/backend/cpu and a test in cuda/tests that compares the two.
//
// Conventions for every launch_<op>:
//   - all pointers are device pointers (or managed memory) owned by the caller;
//   - an empty problem (rows == 0) is a no-op that returns cudaSuccess;
//   - bad arguments return cudaErrorInvalidValue before anything is enqueued;
//   - otherwise the result is cudaGetLastError() after the launch, i.e. a
//     launch failure; errors while the kernel runs surface at the next
//     synchronising call on the stream, as usual in CUDA.
// Nothing here aborts or exits the process.
#pragma once

#include <cuda_runtime_api.h>  // cudaError_t, cudaStream_t

namespace paca::cuda {

// RMSNorm over the rows of x (rmsnorm.cu):
//   y[t, i] = x[t, i] / sqrt(mean_i(x[t, :]^2) + eps) * w[i]
//   x: (rows, cols) f32, row-major, contiguous
//   w: (cols) f32, or bf16 stored as uint16_t bits when w_is_bf16 != 0
//   y: (rows, cols) f32; may alias x (in place)
// Accumulates in f32. One thread block per row.
// Returns cudaErrorInvalidValue when rows < 0, cols <= 0 or a pointer is null.
cudaError_t launch_rmsnorm(const float* x, const void* w, int w_is_bf16, float eps, int rows, int cols, float* y,
                           cudaStream_t stream);

}  // namespace paca::cuda
