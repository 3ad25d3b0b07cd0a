// log.h - logging through a sink that can be replaced globally or per model.
#pragma once

#include <fmt/format.h>

#include <string>

namespace paca {

enum class LogLevel : int { error = 0, warn = 1, info = 2, debug = 3 };

using LogFn = void (*)(void* user, int level, const char* message);

struct LogSink {
  LogFn fn = nullptr;  // nullptr: the global sink
  void* user = nullptr;
  int max_level = static_cast<int>(LogLevel::warn);
};

// Replaces the process-wide sink (fn == nullptr restores stderr).
void set_global_log_sink(LogFn fn, void* user, int max_level);

// Emits one line through sink (or the global sink when sink.fn is null).
void log_line(const LogSink& sink, LogLevel level, const std::string& message);

template <typename... Args>
void logf(const LogSink& sink, LogLevel level, fmt::format_string<Args...> f, Args&&... args) {
  log_line(sink, level, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace paca
