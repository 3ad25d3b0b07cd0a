// mmap.h - read-only files in memory. Mode::map reads a model's weights
// straight from a mapping of the file (never copied); Mode::read reads the
// file once into anonymous memory that asks for transparent huge pages, which
// the CPU streams faster (fewer TLB misses) at the cost of resident memory
// the page cache cannot share. Mode::automatic reads a file that takes at
// most half of the memory available now and maps a larger one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace paca {

// MemAvailable of /proc/meminfo in bytes; 0 when it cannot be read.
uint64_t available_memory();

class MappedFile {
 public:
  enum class Mode { map, read, automatic };
  // Maps (or reads) the whole file, read-only. Throws Error(io) when it cannot.
  explicit MappedFile(const std::string& path, Mode mode = Mode::map);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }
  bool was_read() const { return read_; }  // read into memory (else mapped)

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_ = 0;  // length of the mapping (read mode rounds up to huge pages)
  bool read_ = false;
};

}  // namespace paca
