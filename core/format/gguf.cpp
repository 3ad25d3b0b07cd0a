// gguf.cpp - see gguf.h.
#include "format/gguf.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "util/error.h"

namespace paca {

namespace {

struct TypeTraits {
  const char* name;
  uint64_t block;  // elements per block (0: unknown size)
  uint64_t bytes;  // bytes per block
};

TypeTraits ggml_traits(uint32_t t) {
  switch (t) {
    case 0: return {"F32", 1, 4};
    case 1: return {"F16", 1, 2};
    case 2: return {"Q4_0", 32, 18};
    case 3: return {"Q4_1", 32, 20};
    case 6: return {"Q5_0", 32, 22};
    case 7: return {"Q5_1", 32, 24};
    case 8: return {"Q8_0", 32, 34};
    case 9: return {"Q8_1", 32, 36};
    case 10: return {"Q2_K", 256, 84};
    case 11: return {"Q3_K", 256, 110};
    case 12: return {"Q4_K", 256, 144};
    case 13: return {"Q5_K", 256, 176};
    case 14: return {"Q6_K", 256, 210};
    case 15: return {"Q8_K", 256, 292};
    case 16: return {"IQ2_XXS", 0, 0};
    case 17: return {"IQ2_XS", 0, 0};
    case 18: return {"IQ3_XXS", 0, 0};
    case 19: return {"IQ1_S", 0, 0};
    case 20: return {"IQ4_NL", 0, 0};
    case 21: return {"IQ3_S", 0, 0};
    case 22: return {"IQ2_S", 0, 0};
    case 23: return {"IQ4_XS", 0, 0};
    case 24: return {"I8", 1, 1};
    case 25: return {"I16", 1, 2};
    case 26: return {"I32", 1, 4};
    case 27: return {"I64", 1, 8};
    case 28: return {"F64", 1, 8};
    case 29: return {"IQ1_M", 0, 0};
    case 30: return {"BF16", 1, 2};
    case 34: return {"TQ1_0", 0, 0};
    case 35: return {"TQ2_0", 0, 0};
    default: return {nullptr, 0, 0};
  }
}

class Reader {
 public:
  Reader(std::span<const uint8_t> b, const std::string& what) : b_(b), what_(what) {}
  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return b_.size() - pos_; }
  void need(uint64_t n, const char* item) const {
    check(n <= remaining(), Status::format, "{}: truncated while reading {} at offset {}", what_, item, pos_);
  }
  template <typename T>
  T get(const char* item) {
    need(sizeof(T), item);
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str(const char* item) {
    uint64_t n = get<uint64_t>(item);
    need(n, item);
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  void skip(uint64_t n, const char* item) {
    need(n, item);
    pos_ += n;
  }
  const std::string& what() const { return what_; }

 private:
  std::span<const uint8_t> b_;
  std::string what_;
  uint64_t pos_ = 0;
};

uint64_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::u8: case GgufType::i8: case GgufType::boolean: return 1;
    case GgufType::u16: case GgufType::i16: return 2;
    case GgufType::u32: case GgufType::i32: case GgufType::f32: return 4;
    case GgufType::u64: case GgufType::i64: case GgufType::f64: return 8;
    default: return 0;
  }
}

void read_scalar(Reader& r, GgufType t, GgufValue& v) {
  switch (t) {
    case GgufType::u8: v.u = r.get<uint8_t>("u8"); v.i = static_cast<int64_t>(v.u); break;
    case GgufType::i8: v.i = r.get<int8_t>("i8"); break;
    case GgufType::u16: v.u = r.get<uint16_t>("u16"); v.i = static_cast<int64_t>(v.u); break;
    case GgufType::i16: v.i = r.get<int16_t>("i16"); break;
    case GgufType::u32: v.u = r.get<uint32_t>("u32"); v.i = static_cast<int64_t>(v.u); break;
    case GgufType::i32: v.i = r.get<int32_t>("i32"); break;
    case GgufType::u64: v.u = r.get<uint64_t>("u64"); v.i = static_cast<int64_t>(std::min<uint64_t>(v.u, INT64_MAX)); break;
    case GgufType::i64: v.i = r.get<int64_t>("i64"); break;
    case GgufType::f32: v.f = r.get<float>("f32"); break;
    case GgufType::f64: v.f = r.get<double>("f64"); break;
    case GgufType::boolean: {
      uint8_t b = r.get<uint8_t>("bool");
      check(b <= 1, Status::format, "{}: bool value {} is neither 0 nor 1", r.what(), b);
      v.u = b; v.i = b;
      break;
    }
    default: break;
  }
}

// Skips (and validates) the elements of an array; nested arrays are allowed
// to depth 2.
void skip_array(Reader& r, GgufType elem, uint64_t count, int depth) {
  check(depth <= 2, Status::format, "{}: arrays nested too deeply", r.what());
  if (elem == GgufType::string) {
    check(count <= r.remaining() / 8, Status::format, "{}: string array of {} entries exceeds the file", r.what(),
          count);
    for (uint64_t k = 0; k < count; ++k) {
      uint64_t n = r.get<uint64_t>("array string length");
      r.skip(n, "array string");
    }
  } else if (elem == GgufType::array) {
    check(count <= r.remaining() / 12, Status::format, "{}: nested array count {} exceeds the file", r.what(), count);
    for (uint64_t k = 0; k < count; ++k) {
      auto t = static_cast<GgufType>(r.get<uint32_t>("array type"));
      uint64_t n = r.get<uint64_t>("array count");
      skip_array(r, t, n, depth + 1);
    }
  } else {
    uint64_t s = scalar_size(elem);
    check(s != 0, Status::format, "{}: unknown array element type {}", r.what(), static_cast<uint32_t>(elem));
    check(count <= r.remaining() / s, Status::format, "{}: array of {} elements exceeds the file", r.what(), count);
    r.skip(count * s, "array");
  }
}

}  // namespace

std::string ggml_type_name(uint32_t type) {
  TypeTraits t = ggml_traits(type);
  return t.name ? std::string(t.name) : "type " + std::to_string(type);
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv.find(key);
  return it == kv.end() ? nullptr : &it->second;
}

std::optional<int64_t> GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  switch (v->type) {
    case GgufType::u8: case GgufType::u16: case GgufType::u32: case GgufType::u64: case GgufType::i8:
    case GgufType::i16: case GgufType::i32: case GgufType::i64: case GgufType::boolean: return v->i;
    default: fail(Status::format, "GGUF key '{}' must be an integer", key);
  }
}

std::optional<double> GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type == GgufType::f32 || v->type == GgufType::f64) return v->f;
  if (scalar_size(v->type) != 0) return static_cast<double>(v->i);
  fail(Status::format, "GGUF key '{}' must be a number", key);
}

std::optional<std::string> GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  check(v->type == GgufType::string, Status::format, "GGUF key '{}' must be a string", key);
  return v->str;
}

GgufFile parse_gguf(std::span<const uint8_t> file, const std::string& what) {
  Reader r(file, what);
  GgufFile g;
  uint32_t magic = r.get<uint32_t>("magic");
  check(magic == 0x46554747u, Status::format, "{}: not a GGUF file (bad magic)", what);
  g.version = r.get<uint32_t>("version");
  if (g.version == 0x03000000u || g.version == 0x02000000u)
    fail(Status::unsupported, "{}: big-endian GGUF files are not supported", what);
  check(g.version == 2 || g.version == 3, Status::unsupported, "{}: GGUF version {} is not supported (need 2 or 3)",
        what, g.version);
  uint64_t n_tensors = r.get<uint64_t>("tensor count");
  uint64_t n_kv = r.get<uint64_t>("key/value count");
  // every key/value needs >= 8 + 4 + 1 bytes, every tensor info >= 8 + 4 + 8 + 4 + 8
  check(n_kv <= r.remaining() / 13, Status::format, "{}: key/value count {} is larger than the file allows", what, n_kv);
  check(n_tensors <= r.remaining() / 32, Status::format, "{}: tensor count {} is larger than the file allows", what,
        n_tensors);

  for (uint64_t k = 0; k < n_kv; ++k) {
    const uint64_t record_begin = r.pos();
    std::string key = r.str("key");
    check(!g.kv.count(key), Status::format, "{}: key '{}' appears twice", what, key);
    GgufValue v;
    uint32_t t = r.get<uint32_t>("value type");
    check(t <= 12, Status::format, "{}: key '{}' has unknown value type {}", what, key, t);
    v.type = static_cast<GgufType>(t);
    if (v.type == GgufType::string) {
      v.str = r.str("string value");
    } else if (v.type == GgufType::array) {
      uint32_t et = r.get<uint32_t>("array type");
      check(et <= 12, Status::format, "{}: key '{}' has unknown array element type {}", what, key, et);
      v.elem = static_cast<GgufType>(et);
      v.count = r.get<uint64_t>("array count");
      v.offset = r.pos();
      skip_array(r, v.elem, v.count, 1);
    } else {
      read_scalar(r, v.type, v);
    }
    v.record_begin = record_begin;
    v.record_end = r.pos();
    g.kv.emplace(std::move(key), std::move(v));
  }
  if (auto a = g.get_int("general.alignment")) {
    check(*a > 0 && *a <= (1 << 20) && (*a & (*a - 1)) == 0, Status::format,
          "{}: general.alignment {} is not a power of two", what, *a);
    g.alignment = static_cast<uint64_t>(*a);
  }

  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo ti;
    ti.name = r.str("tensor name");
    check(ti.name.size() < 256, Status::format, "{}: tensor name of {} bytes is too long", what, ti.name.size());
    ti.n_dims = r.get<uint32_t>("tensor dims");
    check(ti.n_dims >= 1 && ti.n_dims <= 4, Status::format, "{}: tensor '{}' has {} dims (need 1..4)", what, ti.name,
          ti.n_dims);
    uint64_t count = 1;
    for (uint32_t d = 0; d < ti.n_dims; ++d) {
      ti.ne[d] = r.get<uint64_t>("tensor shape");
      check(ti.ne[d] <= (1ull << 40) && (ti.ne[d] == 0 || count <= (1ull << 50) / ti.ne[d]), Status::format,
            "{}: tensor '{}' has an absurd shape", what, ti.name);
      count *= ti.ne[d];
    }
    ti.type = r.get<uint32_t>("tensor type");
    ti.offset = r.get<uint64_t>("tensor offset");
    TypeTraits tt = ggml_traits(ti.type);
    if (tt.block != 0) {
      check(ti.ne[0] % tt.block == 0, Status::format, "{}: tensor '{}' row of {} is not a multiple of the {} block {}",
            what, ti.name, ti.ne[0], tt.name, tt.block);
      ti.bytes = count / tt.block * tt.bytes;
    }
    g.tensors.push_back(std::move(ti));
  }
  std::set<std::string> names;
  for (const auto& t : g.tensors)
    check(names.insert(t.name).second, Status::format, "{}: tensor '{}' appears twice", what, t.name);

  uint64_t start = (r.pos() + g.alignment - 1) / g.alignment * g.alignment;
  if (g.tensors.empty() && start > file.size()) start = file.size();  // vocabulary-only files may end unpadded
  check(start <= file.size(), Status::format, "{}: data section starts past the end of the file", what);
  g.data_start = start;
  uint64_t data_len = file.size() - start;
  std::vector<const GgufTensorInfo*> sorted;
  for (const auto& t : g.tensors) {
    check(t.offset % g.alignment == 0, Status::format, "{}: tensor '{}' offset {} is not aligned to {}", what, t.name,
          t.offset, g.alignment);
    if (t.bytes == 0 && ggml_traits(t.type).block == 0) continue;  // unknown type: the loader names it
    check(t.offset <= data_len && t.bytes <= data_len - t.offset, Status::format,
          "{}: tensor '{}' [{}, +{}) lies outside the {}-byte data section", what, t.name, t.offset, t.bytes, data_len);
    sorted.push_back(&t);
  }
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < sorted.size(); ++i)
    check(sorted[i]->offset >= sorted[i - 1]->offset + sorted[i - 1]->bytes, Status::format,
          "{}: tensors '{}' and '{}' overlap", what, sorted[i - 1]->name, sorted[i]->name);
  return g;
}

}  // namespace paca
