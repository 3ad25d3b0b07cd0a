// error.h - the core's error type. Every failure in core throws paca::Error
// carrying a Status (mirrors paca_status values) and a message; capi turns it
// into a paca_status + paca_last_error().
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace paca {

enum class Status : int {
  ok = 0,
  invalid_argument = 1,
  io = 2,
  format = 3,
  unsupported = 4,
  out_of_memory = 5,
  context_full = 6,
  cancelled = 7,
  device = 8,
  buffer_too_small = 9,
  state = 10,
  busy = 11,
  timeout = 12,
  internal = 99,
};

class Error : public std::runtime_error {
 public:
  Error(Status status, const std::string& message) : std::runtime_error(message), status_(status) {}
  Status status() const { return status_; }

 private:
  Status status_;
};

// fail(Status::format, "tensor {} has {} dims", name, n): throw an Error.
template <typename... Args>
[[noreturn]] void fail(Status status, fmt::format_string<Args...> f, Args&&... args) {
  throw Error(status, fmt::format(f, std::forward<Args>(args)...));
}

// check(cond, Status::format, "...", ...): throw unless cond holds.
template <typename... Args>
void check(bool cond, Status status, fmt::format_string<Args...> f, Args&&... args) {
  if (!cond) throw Error(status, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace paca
