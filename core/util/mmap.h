// mmap.h - read-only memory-mapped files. A model's weights are read straight
// from the mapping (never copied, never read twice).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace paca {

class MappedFile {
 public:
  // Maps the whole file read-only. Throws Error(io) when it cannot.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace paca
