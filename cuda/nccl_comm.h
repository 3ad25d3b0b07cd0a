// nccl_comm.h - the loader of libnccl (opened with dlopen, never linked, so
// libpaca loads and runs where there is no NCCL or no GPU). The NCCL
// communicator itself (NcclComm in nccl_comm.cpp) is reached through the
// core's functions in parallel/device_comm.h, which nccl_comm.cpp defines.
#pragma once

#include <span>    // std::span
#include <string>  // std::string

namespace paca::cuda {

struct NcclApi;  // the resolved entry points (nccl_comm.cpp)

struct NcclLibrary {
  const NcclApi* api = nullptr;  // null: unavailable, see why
  std::string why;               // "NCCL unavailable: ..." when api is null
  int version = 0;               // ncclGetVersion, e.g. 22809 for 2.28.9
};

// Tries the library names in order and returns the first that opens and has
// every entry point paca uses (a library that lacks one is unavailable, its
// name and the missing symbol in why). Each call opens anew (tests); a
// library that opened is never closed.
NcclLibrary open_nccl(std::span<const char* const> names);

// The process's NCCL, opened on the first call: $PACA_NCCL_LIBRARY when set
// (a path or a name), else libnccl.so.2, then libnccl.so.
const NcclLibrary& nccl_library();

// "2.28.9" from ncclGetVersion's code.
std::string nccl_version_text(int code);

}  // namespace paca::cuda
