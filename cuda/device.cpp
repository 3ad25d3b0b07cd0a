// device.cpp - CUDA device discovery (see device.h).
#include "device.h"

#include <cuda_runtime_api.h>  // cudaGetDeviceCount, cudaGetErrorName, cudaGetErrorString

namespace paca::cuda {

int device_count(std::string* why) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    // Clear the runtime's last-error slot so this probe does not show up in
    // a later, unrelated cudaGetLastError().
    (void)cudaGetLastError();
    if (why) {
      *why = std::string("no CUDA device: ") + cudaGetErrorName(err) + ": " + cudaGetErrorString(err);
      // What the runtime says when libcuda.so cannot be found at all.
      if (err == cudaErrorInsufficientDriver)
        *why += " (no NVIDIA driver installed, or one older than this CUDA runtime)";
    }
    return 0;
  }
  if (n <= 0) {
    if (why) *why = "no CUDA device: the driver reports 0 devices";
    return 0;
  }
  return n;
}

}  // namespace paca::cuda
