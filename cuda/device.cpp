// device.cpp - CUDA device discovery (see device.h).
#include "device.h"

#include <cuda_runtime_api.h>  // cudaGetDeviceCount, cudaGetErrorName, cudaGetErrorString, events

#include <cstdio>  // std::snprintf

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

namespace paca::cuda {

namespace {
std::string cuda_text(cudaError_t e) { return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e); }
}  // namespace

double measure_copy_bandwidth_gbps(int device, size_t bytes, std::string* why) {
  std::string reason;
  if (device_count(&reason) <= device) {
    if (why) *why = reason.empty() ? "no such CUDA device" : reason;
    return 0;
  }
  void* a = nullptr;
  void* b = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  double best_ms = 0;
  cudaError_t e = cudaSetDevice(device);
  if (e == cudaSuccess) e = cudaMalloc(&a, bytes);
  if (e == cudaSuccess) e = cudaMalloc(&b, bytes);
  if (e == cudaSuccess) e = cudaMemset(a, 1, bytes);  // never time on untouched memory
  if (e == cudaSuccess) e = cudaEventCreate(&start);
  if (e == cudaSuccess) e = cudaEventCreate(&stop);
  if (e == cudaSuccess) e = cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);  // warm-up
  for (int i = 0; i < 5 && e == cudaSuccess; ++i) {
    e = cudaEventRecord(start);
    if (e == cudaSuccess) e = cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice);
    if (e == cudaSuccess) e = cudaEventRecord(stop);
    if (e == cudaSuccess) e = cudaEventSynchronize(stop);
    float ms = 0;
    if (e == cudaSuccess) e = cudaEventElapsedTime(&ms, start, stop);
    if (e == cudaSuccess && (best_ms == 0 || ms < best_ms)) best_ms = ms;
  }
  if (start) cudaEventDestroy(start);
  if (stop) cudaEventDestroy(stop);
  if (a) cudaFree(a);
  if (b) cudaFree(b);
  if (e != cudaSuccess || best_ms <= 0) {
    if (why) *why = e != cudaSuccess ? cuda_text(e) : "the copy took no time";
    (void)cudaGetLastError();
    return 0;
  }
  return 2.0 * static_cast<double>(bytes) / (best_ms * 1e-3) / 1e9;
}

std::string describe_device(int device) {
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, device) != cudaSuccess) {
    (void)cudaGetLastError();
    return "";
  }
  char rest[96];
  std::snprintf(rest, sizeof rest, " (sm_%d%d, %d SMs, %.1f GiB)", p.major, p.minor, p.multiProcessorCount,
                static_cast<double>(p.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
  return std::string(p.name) + rest;
}

}  // namespace paca::cuda
