// safetensors.cpp - see safetensors.h.
#include "format/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "util/error.h"

namespace paca {

size_t safetensors_dtype_size(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "F8_E4M3" || d == "F8_E5M2" || d == "I8" || d == "U8" || d == "BOOL") return 1;
  return 0;
}

SafetensorsFile parse_safetensors(std::span<const uint8_t> file, const std::string& what) {
  constexpr uint64_t kMaxHeader = 100'000'000;
  check(file.size() >= 8, Status::format, "{}: file of {} bytes is too short for a safetensors header", what,
        file.size());
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | file[i];
  check(n <= kMaxHeader, Status::format, "{}: header length {} exceeds the 100 MB limit", what, n);
  check(n <= file.size() - 8, Status::format, "{}: header length {} runs past the end of the {}-byte file", what, n,
        file.size());
  SafetensorsFile out;
  out.data_start = 8 + n;
  const uint64_t buffer_len = file.size() - out.data_start;

  using nlohmann::json;
  std::set<std::string> seen;
  std::string duplicate;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1) {
      std::string key = parsed.get<std::string>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  const char* begin = reinterpret_cast<const char*>(file.data() + 8);
  json j = json::parse(begin, begin + n, cb, /*allow_exceptions=*/false);
  check(!j.is_discarded(), Status::format, "{}: header is not valid JSON", what);
  check(j.is_object(), Status::format, "{}: header must be a JSON object", what);
  check(duplicate.empty(), Status::format, "{}: tensor '{}' appears twice in the header", what, duplicate);

  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const json& e = it.value();
    SafetensorsEntry t;
    t.name = it.key();
    check(e.is_object(), Status::format, "{}: entry '{}' must be an object", what, t.name);
    auto dt = e.find("dtype");
    check(dt != e.end() && dt->is_string(), Status::format, "{}: tensor '{}' has no dtype string", what, t.name);
    t.dtype = dt->get<std::string>();
    size_t esize = safetensors_dtype_size(t.dtype);
    check(esize != 0, Status::format, "{}: tensor '{}' has unknown dtype '{}'", what, t.name, t.dtype);
    auto sh = e.find("shape");
    check(sh != e.end() && sh->is_array() && sh->size() <= 8, Status::format,
          "{}: tensor '{}' needs a shape array of at most 8 dims", what, t.name);
    uint64_t count = 1;
    bool overflow = false;
    for (const auto& d : *sh) {
      check(d.is_number_integer() && d.get<long long>() >= 0, Status::format,
            "{}: tensor '{}' has a negative or non-integer dimension", what, t.name);
      uint64_t v = d.get<uint64_t>();
      t.shape.push_back(static_cast<int64_t>(std::min<uint64_t>(v, INT64_MAX)));
      if (v != 0 && count > UINT64_MAX / v) overflow = true;
      count *= v;
    }
    check(!overflow && count <= UINT64_MAX / esize, Status::format, "{}: tensor '{}' has an absurd shape", what,
          t.name);
    auto off = e.find("data_offsets");
    check(off != e.end() && off->is_array() && off->size() == 2 && (*off)[0].is_number_unsigned() &&
              (*off)[1].is_number_unsigned(),
          Status::format, "{}: tensor '{}' needs data_offsets [begin, end]", what, t.name);
    t.begin = (*off)[0].get<uint64_t>();
    t.end = (*off)[1].get<uint64_t>();
    check(t.begin <= t.end && t.end <= buffer_len, Status::format,
          "{}: tensor '{}' offsets [{}, {}) lie outside the {}-byte data buffer", what, t.name, t.begin, t.end,
          buffer_len);
    check(t.end - t.begin == count * esize, Status::format,
          "{}: tensor '{}' spans {} bytes but its shape and dtype need {}", what, t.name, t.end - t.begin,
          count * esize);
    out.tensors.push_back(std::move(t));
  }
  std::vector<const SafetensorsEntry*> sorted;
  for (const auto& t : out.tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < sorted.size(); ++i)
    check(sorted[i]->begin >= sorted[i - 1]->end || sorted[i - 1]->begin == sorted[i - 1]->end, Status::format,
          "{}: tensors '{}' and '{}' overlap", what, sorted[i - 1]->name, sorted[i]->name);
  return out;
}

}  // namespace paca
