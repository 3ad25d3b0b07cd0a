#include "util/file.h"

#include <sys/stat.h>

#include <fstream>

#include "util/error.h"

namespace paca {

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string dir_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::string read_text_file(const std::string& path, size_t limit) {
  std::ifstream f(path, std::ios::binary);
  check(f.good(), Status::io, "cannot open '{}'", path);
  std::string s;
  char buf[65536];
  while (f) {
    f.read(buf, sizeof buf);
    s.append(buf, static_cast<size_t>(f.gcount()));
    check(s.size() <= limit, Status::format, "'{}' is larger than {} bytes", path, limit);
  }
  return s;
}

}  // namespace paca
