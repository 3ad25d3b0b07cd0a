// safetensors.h - parser for the safetensors container: an 8-byte header
// length, a JSON header, then a data buffer. Parsing works on bytes in memory
// (a mapped file), validates everything, and copies nothing but the header.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace paca {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;           // as written: "BF16", "F32", ...
  std::vector<int64_t> shape;  // PyTorch order
  uint64_t begin = 0;          // offsets relative to the data buffer
  uint64_t end = 0;
};

struct SafetensorsFile {
  uint64_t data_start = 0;  // file offset of the data buffer (8 + header length)
  std::vector<SafetensorsEntry> tensors;
};

// Bytes per element of a safetensors dtype string; 0 when unknown.
size_t safetensors_dtype_size(const std::string& dtype);

// Parses and validates: header length within the file and <= 100 MB, valid
// JSON object, no duplicate names, known dtype strings, shapes of
// non-negative sizes whose byte count equals end - begin, offsets inside the
// data buffer and not overlapping. Throws Error(format) naming the problem.
SafetensorsFile parse_safetensors(std::span<const uint8_t> file, const std::string& what);

}  // namespace paca
