// mmap.cpp - POSIX implementation of MappedFile.
#include "util/mmap.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "util/error.h"

namespace paca {

namespace {

// Reads size bytes of fd into anonymous memory (huge pages requested), made
// read-only afterwards; returns the mapping and its length.
const uint8_t* read_into_memory(int fd, const std::string& path, size_t size, size_t* mapped) {
  constexpr size_t kHuge = size_t{2} << 20;
  const size_t len = (size + kHuge - 1) / kHuge * kHuge;
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fail(Status::out_of_memory, "cannot allocate {} bytes to read '{}': {}", len, path, std::strerror(errno));
#if defined(MADV_HUGEPAGE)
  ::madvise(p, len, MADV_HUGEPAGE);  // advice only: without THP the read still works
#endif
  auto* dst = static_cast<uint8_t*>(p);
  size_t done = 0;
  while (done < size) {
    const ssize_t got = ::pread(fd, dst + done, std::min<size_t>(size - done, size_t{64} << 20), static_cast<off_t>(done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      const int e = got < 0 ? errno : 0;
      ::munmap(p, len);
      fail(Status::io, "cannot read '{}' at byte {} of {}: {}", path, done, size, e ? std::strerror(e) : "unexpected end of file");
    }
    done += static_cast<size_t>(got);
  }
  ::mprotect(p, len, PROT_READ);
  *mapped = len;
  return dst;
}

}  // namespace

// MemAvailable of /proc/meminfo in bytes; 0 when it cannot be read.
uint64_t available_memory() {
  int fd = ::open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[4096];
  const ssize_t got = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (got <= 0) return 0;
  buf[got] = '\0';
  const char* p = std::strstr(buf, "MemAvailable:");
  if (p == nullptr) return 0;
  unsigned long long kib = 0;
  if (std::sscanf(p, "MemAvailable: %llu kB", &kib) != 1) return 0;
  return static_cast<uint64_t>(kib) * 1024;
}


MappedFile::MappedFile(const std::string& path, Mode mode) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(Status::io, "cannot open '{}': {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail(Status::io, "cannot stat '{}': {}", path, std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(Status::io, "'{}' is not a regular file", path);
  }
  size_ = static_cast<size_t>(st.st_size);
  if (mode == Mode::automatic) mode = size_ <= available_memory() / 2 ? Mode::read : Mode::map;
  if (size_ > 0 && mode == Mode::read) {
    read_ = true;
    try {
      data_ = read_into_memory(fd, path, size_, &mapped_);
    } catch (...) {
      ::close(fd);
      throw;
    }
  } else if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      fail(Status::io, "cannot map '{}' ({} bytes): {}", path, size_, std::strerror(e));
    }
    data_ = static_cast<const uint8_t*>(p);
    mapped_ = size_;
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), mapped_);
}

}  // namespace paca
