// log.cpp - default stderr sink and the replaceable global sink.
#include "util/log.h"

#include <cstdio>
#include <mutex>

namespace paca {
namespace {

std::mutex g_mutex;
LogFn g_fn = nullptr;
void* g_user = nullptr;
int g_max_level = static_cast<int>(LogLevel::warn);

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::error: return "error";
    case LogLevel::warn: return "warn";
    case LogLevel::info: return "info";
    case LogLevel::debug: return "debug";
  }
  return "?";
}

}  // namespace

void set_global_log_sink(LogFn fn, void* user, int max_level) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_fn = fn;
  g_user = user;
  g_max_level = max_level;
}

void log_line(const LogSink& sink, LogLevel level, const std::string& message) {
  int lv = static_cast<int>(level);
  if (sink.fn != nullptr) {
    if (lv <= sink.max_level) sink.fn(sink.user, lv, message.c_str());
    return;
  }
  std::lock_guard<std::mutex> lock(g_mutex);
  if (lv > g_max_level) return;
  if (g_fn != nullptr) {
    g_fn(g_user, lv, message.c_str());
  } else {
    std::fprintf(stderr, "paca %s: %s\n", level_name(level), message.c_str());
  }
}

}  // namespace paca
