// gguf.h - parser for GGUF v2/v3 files (little-endian). Parsing works on the
// bytes of a mapped file, bounds-checks every read, and keeps arrays as
// (type, count, offset) so a 128K-entry vocabulary costs nothing until used.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace paca {

enum class GgufType : uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7,
  string = 8, array = 9, u64 = 10, i64 = 11, f64 = 12,
};

struct GgufValue {
  GgufType type = GgufType::u8;
  uint64_t u = 0;        // unsigned integers and bool
  int64_t i = 0;         // signed integers
  double f = 0;          // floats
  std::string str;       // strings
  GgufType elem = GgufType::u8;  // arrays: element type
  uint64_t count = 0;            // arrays: element count
  uint64_t offset = 0;           // arrays: file offset of the first element
  // the whole record (key, type, value) as file offsets [begin, end), so a
  // writer can copy it verbatim
  uint64_t record_begin = 0, record_end = 0;
};

struct GgufTensorInfo {
  std::string name;
  uint32_t n_dims = 0;
  uint64_t ne[4] = {1, 1, 1, 1};  // ne[0] is the contiguous dimension
  uint32_t type = 0;              // ggml type id
  uint64_t offset = 0;            // relative to the data section
  uint64_t bytes = 0;             // computed size (0 when the type is unknown)
};

struct GgufFile {
  uint32_t version = 0;
  uint64_t alignment = 32;
  uint64_t data_start = 0;
  std::map<std::string, GgufValue> kv;
  std::vector<GgufTensorInfo> tensors;

  const GgufValue* find(const std::string& key) const;
  // Integer value of key (any integer type), or nullopt when absent.
  std::optional<int64_t> get_int(const std::string& key) const;
  std::optional<double> get_float(const std::string& key) const;
  std::optional<std::string> get_string(const std::string& key) const;
};

// Name of a ggml tensor type ("Q4_K"), "type N" when unknown.
std::string ggml_type_name(uint32_t type);

// Parses and validates header, key/values and tensor infos; checks that each
// tensor of a known type lies inside the file and that tensors do not
// overlap. Unknown tensor types are kept (bytes = 0) so the caller can name
// them in its error. Throws Error(format).
GgufFile parse_gguf(std::span<const uint8_t> file, const std::string& what);

}  // namespace paca
