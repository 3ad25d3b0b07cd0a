// device_skip.h - what the CUDA test programs share: whether this machine has
// a CUDA device (the device tests skip with the reason, which starts "no CUDA
// device", so ctest's SKIP_REGULAR_EXPRESSION reports them as skipped) and
// where the shared test models are.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "device.h"

namespace paca::cuda::test {

inline const std::string& no_device_reason() {
  static const std::string reason = [] {
    std::string why;
    return device_count(&why) > 0 ? std::string() : why;
  }();
  return reason;
}
inline bool have_device() { return no_device_reason().empty(); }

// The test models: ../shared/models, or $PACA_SHARED_DIR/models.
inline std::string models_dir() {
  const char* env = std::getenv("PACA_SHARED_DIR");
  return std::string(env != nullptr && *env != 0 ? env : PACA_SHARED_DIR) + "/models";
}

// The developer switch of the graphs-off run (scripts/gpu_check.sh runs the
// model tests again with PACA_CUDA_GRAPHS=0): the library reads no
// environment, so the tests put it into the options they load with.
inline bool graphs_wanted() {
  const char* v = std::getenv("PACA_CUDA_GRAPHS");
  if (v == nullptr) return true;
  const std::string s = v;
  return !(s == "0" || s == "off" || s == "false" || s == "no");
}

}  // namespace paca::cuda::test

#define SKIP_WITHOUT_DEVICE() \
  if (!::paca::cuda::test::have_device()) GTEST_SKIP() << ::paca::cuda::test::no_device_reason()
