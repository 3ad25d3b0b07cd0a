// quantize_gguf.cpp - GGUF block quantization: which type each tensor gets
// (the mixes), re-encoding in memory, and the GGUF writer behind
// `paca quantize`. See quantize.h.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <vector>

#include "backend/cpu/kernels.h"
#include "format/block_quant.h"
#include "model/quantize.h"
#include "util/error.h"
#include "util/half.h"
#include "util/thread_pool.h"

namespace paca {

namespace {

struct MixInfo {
  QuantMix mix;
  const char* name;
  DType base;
  bool more_bits;      // *_m: Q6_K for wv / w2 of the layers that matter most
  uint32_t file_type;  // llama.cpp's LLAMA_FTYPE_MOSTLY_* numbering, as GGUF files carry it
};

constexpr MixInfo kMixes[] = {
    {QuantMix::q4_0, "q4_0", DType::q4_0, false, 2},     {QuantMix::q4_1, "q4_1", DType::q4_1, false, 3},
    {QuantMix::q5_0, "q5_0", DType::q5_0, false, 8},     {QuantMix::q5_1, "q5_1", DType::q5_1, false, 9},
    {QuantMix::q8_0, "q8_0", DType::q8_0, false, 7},     {QuantMix::q4_k_s, "q4_k_s", DType::q4_k, false, 14},
    {QuantMix::q4_k_m, "q4_k_m", DType::q4_k, true, 15}, {QuantMix::q5_k_s, "q5_k_s", DType::q5_k, false, 16},
    {QuantMix::q5_k_m, "q5_k_m", DType::q5_k, true, 17}, {QuantMix::q6_k, "q6_k", DType::q6_k, false, 18},
};

const MixInfo& info(QuantMix m) {
  for (const MixInfo& i : kMixes)
    if (i.mix == m) return i;
  fail(Status::invalid_argument, "unknown quantization mix {}", static_cast<int>(m));
}

// Canonical "L<i>.<what>" -> (i, what); layer -1 for the others.
int layer_of(const std::string& name, std::string& what) {
  what = name;
  if (name.size() < 3 || name[0] != 'L') return -1;
  const size_t dot = name.find('.');
  if (dot == std::string::npos) return -1;
  what = name.substr(dot + 1);
  return std::atoi(name.c_str() + 1);
}

// One row of t (row r) as f32 (FP8 rows times their scale).
void row_f32(const TensorView& t, int64_t r, float* dst) {
  const size_t cols = static_cast<size_t>(t.cols);
  cpu::dequant_row(t.dtype, t.row(r), dst, cols);
  if (t.dtype == DType::f8e4m3 && t.scales != nullptr)
    for (size_t c = 0; c < cols; ++c) dst[c] *= t.scales[r];
}

// Re-encodes all rows of t as `to` into dst (rows x row_bytes(to, cols)).
void encode_rows(const TensorView& t, DType to, uint8_t* dst, ThreadPool& pool) {
  const size_t cols = static_cast<size_t>(t.cols);
  const size_t rb = row_bytes(to, cols);
  // The first row holding a weight the target cannot store: non-finite
  // anywhere, or past +-65504 where the target keeps f16 values or scales.
  const bool f16_range = to != DType::f32 && to != DType::bf16;
  std::mutex bad_mu;
  int64_t bad = t.rows;
  bool bad_range = false;
  pool.parallel_for(static_cast<size_t>(t.rows), 1, [&](size_t r0, size_t r1) {
    std::vector<float> row(cols);
    for (size_t r = r0; r < r1; ++r) {
      row_f32(t, static_cast<int64_t>(r), row.data());
      bool finite = true, in_range = true;
      for (float v : row) {
        finite = finite && std::isfinite(v);
        in_range = in_range && !(std::fabs(v) > 65504.0f);
      }
      if (!finite || (f16_range && !in_range)) {
        const std::lock_guard<std::mutex> lock(bad_mu);
        if (static_cast<int64_t>(r) < bad) {
          bad = static_cast<int64_t>(r);
          bad_range = finite;
        }
        return;
      }
      uint8_t* o = dst + r * rb;
      switch (to) {
        case DType::f32: std::memcpy(o, row.data(), cols * 4); break;
        case DType::f16:
          for (size_t c = 0; c < cols; ++c) {
            const uint16_t h = f32_to_f16(row[c]);
            std::memcpy(o + 2 * c, &h, 2);
          }
          break;
        case DType::bf16:
          for (size_t c = 0; c < cols; ++c) {
            const uint16_t h = f32_to_bf16(row[c]);
            std::memcpy(o + 2 * c, &h, 2);
          }
          break;
        case DType::f8e4m3: fail(Status::unsupported, "cannot encode {} as FP8 here", t.name);
        default: quantize_blocks(to, row.data(), o, cols); break;
      }
    }
  });
  check(bad == t.rows, Status::format, "tensor {} row {} holds {}", t.name, bad,
        bad_range ? fmt::format("a weight beyond +-65504, which {} cannot store (its f16 fields overflow)",
                                       dtype_name(to))
                         : std::string("a non-finite weight"));
}

}  // namespace

bool parse_quant_mix(const std::string& name, QuantMix& out) {
  std::string n = name;
  for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const MixInfo& i : kMixes)
    if (n == i.name) {
      out = i.mix;
      return true;
    }
  return false;
}

const char* quant_mix_name(QuantMix m) { return info(m).name; }

std::string quant_mix_names() {
  std::string s;
  for (const MixInfo& i : kMixes) s += std::string(s.empty() ? "" : ", ") + i.name;
  return s;
}

uint32_t quant_mix_file_type(QuantMix m) { return info(m).file_type; }

DType quant_mix_type(QuantMix m, const std::string& name, int64_t rows, int64_t cols, int n_layers, bool tied) {
  const MixInfo& mi = info(m);
  std::string what;
  const int layer = layer_of(name, what);
  if (rows <= 1 || what == "attn_norm" || what == "ffn_norm" || name == "norm") return DType::f32;  // norms
  DType t = mi.base;
  if (name == "output" || (name == "embed" && tied)) {
    t = m == QuantMix::q8_0 ? DType::q8_0 : DType::q6_k;
  } else if (mi.more_bits && layer >= 0 && (what == "wv" || what == "w2")) {
    const int n = std::max(n_layers, 1);
    const bool more = layer < n / 8 || layer >= 7 * n / 8 || (layer - n / 8) % 3 == 2;
    if (more) t = DType::q6_k;
  }
  if (block_shape(t).elems == 256 && cols % 256 != 0)
    t = t == DType::q4_k ? DType::q5_0 : t == DType::q5_k ? DType::q5_1 : DType::q8_0;
  if (cols % 32 != 0) t = DType::f16;
  return t;
}

void quantize_checkpoint(Checkpoint& ck, QuantMix m, int n_threads) {
  ThreadPool pool(n_threads);
  const bool tied = ck.find("output") == nullptr;
  for (auto& [name, t] : ck.tensors) {
    const DType to = quant_mix_type(m, name, t.rows, t.cols, ck.config.n_layers, tied);
    if (to == t.dtype || t.rows <= 1) continue;
    std::vector<uint8_t>& mem = ck.owned_u8.emplace_back(static_cast<size_t>(t.rows) * row_bytes(to, static_cast<size_t>(t.cols)));
    encode_rows(t, to, mem.data(), pool);
    t.dtype = to;
    t.data = mem.data();
    t.scales = nullptr;
    t.act = ActQuant::none;
  }
}

void dequantize_checkpoint(Checkpoint& ck) {
  ThreadPool pool(0);
  for (auto& [name, t] : ck.tensors) {
    if (t.dtype == DType::f32) continue;
    std::vector<uint8_t>& mem = ck.owned_u8.emplace_back(static_cast<size_t>(t.rows) * static_cast<size_t>(t.cols) * 4);
    encode_rows(t, DType::f32, mem.data(), pool);
    t.dtype = DType::f32;
    t.data = mem.data();
    t.scales = nullptr;
    t.act = ActQuant::none;
  }
}

namespace {

class Out {
 public:
  explicit Out(const std::string& path) : path_(path), f_(path, std::ios::binary | std::ios::trunc) {
    check(f_.good(), Status::io, "cannot create '{}'", path);
  }
  void bytes(const void* p, size_t n) {
    f_.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
    check(f_.good(), Status::io, "cannot write '{}' (disk full?)", path_);
    pos_ += n;
  }
  template <typename T>
  void put(T v) {
    bytes(&v, sizeof v);
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    bytes(s.data(), s.size());
  }
  void pad(uint64_t align) {
    static const char zeros[64] = {};
    while (pos_ % align != 0) bytes(zeros, std::min<uint64_t>(64, align - pos_ % align));
  }
  void close() {
    f_.close();
    check(f_.good(), Status::io, "cannot write '{}'", path_);
  }

 private:
  std::string path_;
  std::ofstream f_;
  uint64_t pos_ = 0;
};

}  // namespace

QuantizeReport write_quantized_gguf(const std::string& in_path, const std::string& out_path, QuantMix m,
                                    int n_threads, const std::function<bool(float)>& progress) {
  std::unique_ptr<Checkpoint> ck = open_checkpoint(in_path);
  check(ck->gguf != nullptr && ck->files.size() == 1, Status::unsupported,
        "{}: paca quantize reads a GGUF file (its metadata and tokenizer are carried over)", in_path);
  const GgufFile& g = *ck->gguf;
  const uint8_t* file = ck->files[0]->data();
  const bool tied = ck->find("output") == nullptr;
  std::map<std::string, std::pair<std::string, const TensorView*>> by_name;  // GGUF name -> canonical, view
  for (const auto& [canon, v] : ck->tensors) by_name[v.name] = {canon, &v};

  struct Plan {
    const GgufTensorInfo* info;
    const TensorView* view;  // null: copied as it is
    DType to;
    uint64_t bytes, offset;
  };
  std::vector<Plan> plan;
  uint64_t offset = 0;
  QuantizeReport rep;
  for (const GgufTensorInfo& ti : g.tensors) {
    Plan p{&ti, nullptr, DType::f32, ti.bytes, 0};
    check(ti.bytes > 0 || ti.ne[0] * ti.ne[1] * ti.ne[2] * ti.ne[3] == 0, Status::unsupported,
          "{}: tensor '{}' has GGUF type {}, which paca cannot copy", in_path, ti.name, ggml_type_name(ti.type));
    auto it = by_name.find(ti.name);
    if (it != by_name.end()) {
      const TensorView& v = *it->second.second;
      const DType to = quant_mix_type(m, it->second.first, v.rows, v.cols, ck->config.n_layers, tied);
      if (to != v.dtype && v.rows > 1) {
        p.view = &v;
        p.to = to;
        p.bytes = static_cast<uint64_t>(v.rows) * row_bytes(to, static_cast<size_t>(v.cols));
      }
    }
    p.offset = offset;
    offset = (offset + p.bytes + g.alignment - 1) / g.alignment * g.alignment;
    plan.push_back(p);
  }

  const std::string tmp = out_path + ".tmp";
  try {
    Out o(tmp);
    std::vector<const GgufValue*> keep;
    for (const auto& [key, v] : g.kv)
      if (key != "general.file_type" && key != "general.quantization_version") keep.push_back(&v);
    o.put<uint32_t>(0x46554747u);  // "GGUF"
    o.put<uint32_t>(3);
    o.put<uint64_t>(plan.size());
    o.put<uint64_t>(keep.size() + 2);
    for (const GgufValue* v : keep) o.bytes(file + v->record_begin, v->record_end - v->record_begin);
    o.str("general.file_type");
    o.put<uint32_t>(static_cast<uint32_t>(GgufType::u32));
    o.put<uint32_t>(quant_mix_file_type(m));
    o.str("general.quantization_version");
    o.put<uint32_t>(static_cast<uint32_t>(GgufType::u32));
    o.put<uint32_t>(2);
    for (const Plan& p : plan) {
      o.str(p.info->name);
      o.put<uint32_t>(p.info->n_dims);
      for (uint32_t d = 0; d < p.info->n_dims; ++d) o.put<uint64_t>(p.info->ne[d]);
      o.put<uint32_t>(p.view != nullptr ? ggml_type_of(p.to) : p.info->type);
      o.put<uint64_t>(p.offset);
    }
    o.pad(g.alignment);
    ThreadPool pool(n_threads);
    std::vector<uint8_t> buf;
    uint64_t done = 0, total = 0;
    for (const Plan& p : plan) total += p.info->bytes;
    for (const Plan& p : plan) {
      const uint8_t* src = file + g.data_start + p.info->offset;
      if (p.view != nullptr) {
        buf.resize(p.bytes);
        encode_rows(*p.view, p.to, buf.data(), pool);
        src = buf.data();
        ++rep.converted;
      }
      o.bytes(src, p.bytes);
      o.pad(g.alignment);
      ++rep.tensors;
      rep.bytes_in += p.info->bytes;
      rep.bytes_out += p.bytes;
      DType shown;
      const std::string type = p.view != nullptr ? dtype_name(p.to)
                               : dtype_of_ggml(p.info->type, shown) ? dtype_name(shown)
                                                                    : ggml_type_name(p.info->type);
      ++rep.types[type];
      done += p.info->bytes;
      if (progress && !progress(static_cast<float>(done) / static_cast<float>(std::max<uint64_t>(total, 1))))
        fail(Status::cancelled, "quantizing {} was cancelled", in_path);
    }
    o.close();
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  check(std::rename(tmp.c_str(), out_path.c_str()) == 0, Status::io, "cannot rename '{}' to '{}'", tmp, out_path);
  return rep;
}

}  // namespace paca
