// device.h - discovery of CUDA devices. Safe to call on a machine without a
// GPU or without an NVIDIA driver: the CUDA runtime is linked statically and
// finds the driver (libcuda.so) at run time, so failures come back as values.
#pragma once

#include <cstddef>  // size_t
#include <string>

namespace paca::cuda {

// Number of usable CUDA devices. Returns 0 when there is none, the driver is
// missing or too old, or the runtime fails to initialise; then, if why is not
// null, *why is set to a readable reason, e.g.
//   "no CUDA device: cudaErrorNoDevice: no CUDA-capable device is detected".
// *why is left untouched when the result is > 0. Never aborts.
int device_count(std::string* why);

}  // namespace paca::cuda

namespace paca::cuda {

// Device memory bandwidth by a device-to-device copy of `bytes` (best of 5
// copies, timed with events), counting bytes read plus bytes written, in
// GB/s. Returns 0 (and the reason in *why) when the device or the memory is
// unavailable. Synchronises the device; for benchmarks, not for the runtime.
double measure_copy_bandwidth_gbps(int device, size_t bytes, std::string* why);

// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)" or "" when unavailable.
std::string describe_device(int device);

}  // namespace paca::cuda
