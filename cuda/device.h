// device.h - discovery of CUDA devices. Safe to call on a machine without a
// GPU or without an NVIDIA driver: the CUDA runtime is linked statically and
// finds the driver (libcuda.so) at run time, so failures come back as values.
#pragma once

#include <string>

namespace paca::cuda {

// Number of usable CUDA devices. Returns 0 when there is none, the driver is
// missing or too old, or the runtime fails to initialise; then, if why is not
// null, *why is set to a readable reason, e.g.
//   "no CUDA device: cudaErrorNoDevice: no CUDA-capable device is detected".
// *why is left untouched when the result is > 0. Never aborts.
int device_count(std::string* why);

}  // namespace paca::cuda
