// chat_test_util.h - helpers of the chat, Jinja and tool-call tests: paths to
// the committed test data, ../shared, and running the reference renderer
// (tests/chat/render_reference.py, Python jinja2).
#pragma once

#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace chat_test {

inline std::string source_dir() { return PACA_SOURCE_DIR; }

inline bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

// ../shared, or $PACA_SHARED_DIR; "" when absent.
inline std::string shared_dir() {
  if (const char* e = std::getenv("PACA_SHARED_DIR"); e != nullptr && *e != 0) return exists(e) ? e : "";
  return exists(PACA_SHARED_DEFAULT) ? PACA_SHARED_DEFAULT : "";
}

inline std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

inline std::string temp_dir() {
  char tmpl[] = "/tmp/paca_chat_XXXXXX";
  const char* d = ::mkdtemp(tmpl);
  return d ? d : "/tmp";
}

inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

// Runs the reference renderer with `args`; returns its exit status (77: jinja2
// missing; -1: no python3). Its stderr goes to `log`.
inline int run_reference(const std::string& args, const std::string& log) {
  const std::string python = PACA_PYTHON3;
  if (python.empty() || python.find("NOTFOUND") != std::string::npos || !exists(python)) return -1;
  const std::string cmd = shell_quote(python) + " " + shell_quote(source_dir() + "/tests/chat/render_reference.py") +
                          " " + args + " 2>" + shell_quote(log);
  const int rc = std::system(cmd.c_str());
  if (rc == -1 || !WIFEXITED(rc)) return -1;
  return WEXITSTATUS(rc);
}

}  // namespace chat_test
