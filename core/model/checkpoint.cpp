// checkpoint.cpp - format detection, the Hugging Face directory reader and
// the shape check shared by all formats. GGUF and llama2.c readers live in
// checkpoint_gguf.cpp and checkpoint_llama2c.cpp.
#include "model/checkpoint.h"

#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "format/safetensors.h"
#include "util/error.h"
#include "util/file.h"
#include "util/half.h"

namespace paca {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f16: return "F16";
    case DType::bf16: return "BF16";
    case DType::q8_0: return "Q8_0";
    case DType::f8e4m3: return "F8_E4M3";
    case DType::q4_0: return "Q4_0";
    case DType::q4_1: return "Q4_1";
    case DType::q5_0: return "Q5_0";
    case DType::q5_1: return "Q5_1";
    case DType::q4_k: return "Q4_K";
    case DType::q5_k: return "Q5_K";
    case DType::q6_k: return "Q6_K";
  }
  return "?";
}

const TensorView* Checkpoint::find(const std::string& name) const {
  auto it = tensors.find(name);
  return it == tensors.end() ? nullptr : &it->second;
}

std::string layer_tensor(int layer, const char* what) { return "L" + std::to_string(layer) + "." + what; }

namespace {

// Reads n scale values of a small F32/BF16/F16 tensor.
void cpu_dequant_scales(const TensorView& s, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    switch (s.dtype) {
      case DType::f32: std::memcpy(&out[i], s.data + 4 * i, 4); break;
      case DType::bf16: std::memcpy(&h, s.data + 2 * i, 2); out[i] = bf16_to_f32(h); break;
      case DType::f16: std::memcpy(&h, s.data + 2 * i, 2); out[i] = f16_to_f32(h); break;
      default: fail(Status::format, "scale tensor {} has dtype {}; expected F32, BF16 or F16", s.name, dtype_name(s.dtype));
    }
  }
}

// HF tensor name -> canonical name ("" when the model does not use it).
std::string hf_canonical(const std::string& n) {
  if (n == "model.embed_tokens.weight") return "embed";
  if (n == "lm_head.weight") return "output";
  if (n == "model.norm.weight") return "norm";
  const std::string pre = "model.layers.";
  if (n.compare(0, pre.size(), pre) != 0) return "";
  size_t dot = n.find('.', pre.size());
  if (dot == std::string::npos || dot == pre.size() || dot - pre.size() > 5) return "";
  std::string idx = n.substr(pre.size(), dot - pre.size());
  for (char ch : idx)
    if (ch < '0' || ch > '9') return "";
  std::string rest = n.substr(dot + 1);
  static const std::map<std::string, std::string> m = {
      {"input_layernorm.weight", "attn_norm"},     {"self_attn.q_proj.weight", "wq"},
      {"self_attn.k_proj.weight", "wk"},           {"self_attn.v_proj.weight", "wv"},
      {"self_attn.o_proj.weight", "wo"},           {"post_attention_layernorm.weight", "ffn_norm"},
      {"mlp.gate_proj.weight", "w1"},              {"mlp.down_proj.weight", "w2"},
      {"mlp.up_proj.weight", "w3"}};
  auto it = m.find(rest);
  if (it == m.end()) return "";
  return "L" + std::to_string(std::stoi(idx)) + "." + it->second;
}

// "<x>.weight_scale" / "<x>.input_scale" -> ("<x>.weight", suffix); else (name, "").
std::pair<std::string, std::string> split_side_tensor(const std::string& n) {
  for (const char* sfx : {".weight_scale", ".input_scale"}) {
    size_t len = std::strlen(sfx);
    if (n.size() > len && n.compare(n.size() - len, len, sfx) == 0)
      return {n.substr(0, n.size() - len) + ".weight", sfx};
  }
  return {n, ""};
}

void add_safetensors_file(Checkpoint& ck, const std::string& path, const std::set<std::string>* expect) {
  ck.files.push_back(std::make_unique<MappedFile>(path, ck.file_mode));
  const MappedFile& mf = *ck.files.back();
  SafetensorsFile st = parse_safetensors(mf.bytes(), path);
  for (const auto& e : st.tensors) {
    auto [base, suffix] = split_side_tensor(e.name);
    std::string canon = hf_canonical(base);
    if (canon.empty()) continue;
    if (expect != nullptr && !expect->count(e.name))
      fail(Status::format, "{}: tensor '{}' is not listed for this file in the index", path, e.name);
    TensorView v;
    v.name = e.name;
    if (e.dtype == "F32") v.dtype = DType::f32;
    else if (e.dtype == "F16") v.dtype = DType::f16;
    else if (e.dtype == "BF16") v.dtype = DType::bf16;
    else if (e.dtype == "F8_E4M3" && suffix.empty()) v.dtype = DType::f8e4m3;
    else fail(Status::unsupported, "{}: tensor '{}' has dtype {}, which is not supported here (F32, F16, BF16{})", path,
              e.name, e.dtype, suffix.empty() ? ", F8_E4M3" : "");
    if (e.shape.empty() && !suffix.empty()) {  // a scalar scale
      v.rows = 1;
      v.cols = 1;
    } else if (e.shape.size() == 1) {
      v.rows = 1;
      v.cols = e.shape[0];
    } else if (e.shape.size() == 2) {
      v.rows = e.shape[0];
      v.cols = e.shape[1];
    } else {
      fail(Status::format, "{}: tensor '{}' has {} dims (need 1 or 2)", path, e.name, e.shape.size());
    }
    v.data = mf.data() + st.data_start + e.begin;
    auto& table = suffix.empty() ? ck.tensors : ck.aux;
    check(table.emplace(canon + suffix, v).second, Status::format, "{}: tensor '{}' appears more than once", path,
          e.name);
  }
}

void read_hf_directory(const std::string& dir, Checkpoint& ck) {
  std::string gen;
  if (is_regular_file(dir + "/generation_config.json")) gen = read_text_file(dir + "/generation_config.json", 1 << 20);
  ck.config = parse_hf_config(read_text_file(dir + "/config.json", 1 << 24), gen);
  ck.config.format = ModelFormat::hf_safetensors;
  std::string base = dir;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  ck.config.name = base.substr(base.find_last_of('/') + 1);

  std::string index = dir + "/model.safetensors.index.json";
  if (is_regular_file(index)) {
    auto j = nlohmann::json::parse(read_text_file(index, 1 << 26), nullptr, false);
    check(!j.is_discarded() && j.is_object(), Status::format, "{}: not a valid JSON object", index);
    auto wm = j.find("weight_map");
    check(wm != j.end() && wm->is_object(), Status::format, "{}: missing weight_map object", index);
    std::map<std::string, std::set<std::string>> per_file;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      check(it->is_string(), Status::format, "{}: weight_map entry '{}' must be a file name", index, it.key());
      std::string f = it->get<std::string>();
      check(!f.empty() && f.find('/') == std::string::npos && f != "." && f != "..", Status::format,
            "{}: weight_map names an invalid file '{}'", index, f);
      per_file[f].insert(it.key());
    }
    check(!per_file.empty(), Status::format, "{}: weight_map is empty", index);
    for (const auto& [f, names] : per_file) add_safetensors_file(ck, dir + "/" + f, &names);
  } else {
    std::string single = dir + "/model.safetensors";
    check(is_regular_file(single), Status::io, "{}: neither model.safetensors nor model.safetensors.index.json found", dir);
    add_safetensors_file(ck, single, nullptr);
  }
}

bool starts_with_gguf(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char m[4] = {};
  f.read(m, 4);
  return f.gcount() == 4 && m[0] == 'G' && m[1] == 'G' && m[2] == 'U' && m[3] == 'F';
}

}  // namespace

void resolve_fp8_scales(Checkpoint& ck) {
  const QuantConfig& q = ck.config.quant;
  for (auto& [name, t] : ck.tensors) {
    if (t.dtype != DType::f8e4m3 || t.scales != nullptr) continue;
    check(q.method != QuantMethod::none, Status::format,
          "tensor {} is F8_E4M3 but config.json has no quantization_config", t.name);
    auto it = ck.aux.find(name + ".weight_scale");
    check(it != ck.aux.end(), Status::format, "FP8 tensor {} has no weight_scale", t.name);
    const TensorView& s = it->second;
    const bool per_row = s.rows == t.rows && s.cols == 1;
    const bool per_tensor = s.rows * s.cols == 1;
    check(per_row || per_tensor, Status::format,
          "{} has shape [{}, {}]; expected [{}, 1] (per row) or one value (per tensor)", s.name, s.rows, s.cols, t.rows);
    std::vector<float> one(static_cast<size_t>(s.rows));
    cpu_dequant_scales(s, one.data(), one.size());
    for (float v : one)
      check(std::isfinite(v) && v >= 0, Status::format, "{} holds a negative or non-finite scale ({})", s.name, v);
    std::vector<float>& rows = ck.owned_f32.emplace_back(static_cast<size_t>(t.rows));
    for (int64_t r = 0; r < t.rows; ++r) rows[r] = per_row ? one[r] : one[0];
    t.scales = rows.data();
    t.act = q.act;
    t.act_ub = q.act_ub;
    if (q.act == ActQuant::static_tensor) {
      auto in = ck.aux.find(name + ".input_scale");
      check(in != ck.aux.end(), Status::format, "FP8 tensor {} has static activation scales but no input_scale", t.name);
      check(in->second.rows * in->second.cols == 1, Status::format, "{} must hold one value", in->second.name);
      float v = 0;
      cpu_dequant_scales(in->second, &v, 1);
      check(std::isfinite(v) && v > 0, Status::format, "{} = {} must be positive and finite", in->second.name, v);
      t.act_scale = v;
    }
  }
}

void check_llama_tensors(const Checkpoint& ck) {
  const ModelConfig& c = ck.config;
  c.validate();
  auto want = [&](const std::string& name, int64_t rows, int64_t cols, bool matrix) {
    const TensorView* t = ck.find(name);
    check(t != nullptr, Status::format, "checkpoint is missing tensor {}", name);
    check(t->rows == rows && t->cols == cols, Status::format,
          "tensor {} ({}) has shape [{}, {}], expected [{}, {}]", name, t->name, t->rows, t->cols, rows, cols);
    if (!matrix)
      check(t->dtype != DType::q8_0 && t->dtype != DType::f8e4m3 && !is_block_quant(t->dtype), Status::unsupported,
            "tensor {} ({}): {} norms are not supported", name, t->name, dtype_name(t->dtype));
    if (name == "embed")
      check(t->dtype != DType::f8e4m3, Status::unsupported, "tensor {} ({}): FP8 embeddings are not supported", name,
            t->name);
    if (t->dtype == DType::f8e4m3)
      check(t->scales != nullptr, Status::format, "FP8 tensor {} has no resolved scales", t->name);
  };
  if (ck.has_embedding) want("embed", c.n_vocab, c.dim, true);
  if (ck.has_head) {
    want("norm", 1, c.dim, false);
    if (ck.lm_head_rows > 0) {
      const TensorView* t = ck.find("output");
      check(t != nullptr && t->cols == c.dim && t->rows <= ck.lm_head_rows, Status::format,
            "tensor-parallel shard: LM-head slice missing or larger than {} rows", ck.lm_head_rows);
    } else if (!c.tied_embeddings) {
      want("output", c.n_vocab, c.dim, true);
    }
  }
  for (int l = 0; l < c.n_layers; ++l) {
    want(layer_tensor(l, "attn_norm"), 1, c.dim, false);
    want(layer_tensor(l, "ffn_norm"), 1, c.dim, false);
    want(layer_tensor(l, "wq"), c.q_dim(), c.dim, true);
    want(layer_tensor(l, "wk"), c.kv_dim(), c.dim, true);
    want(layer_tensor(l, "wv"), c.kv_dim(), c.dim, true);
    want(layer_tensor(l, "wo"), c.dim, c.q_dim(), true);
    want(layer_tensor(l, "w1"), c.ffn_dim, c.dim, true);
    want(layer_tensor(l, "w2"), c.dim, c.ffn_dim, true);
    want(layer_tensor(l, "w3"), c.ffn_dim, c.dim, true);
  }
  if (!ck.rope_divisors.empty())
    check(static_cast<int>(ck.rope_divisors.size()) == c.head_dim / 2, Status::format,
          "rope_freqs has {} entries, expected head_dim/2 = {}", ck.rope_divisors.size(), c.head_dim / 2);
}

std::unique_ptr<Checkpoint> open_checkpoint(const std::string& path, const std::string& tokenizer_path,
                                            MappedFile::Mode file_mode) {
  auto ck = std::make_unique<Checkpoint>();
  ck->path = path;
  ck->file_mode = file_mode;
  if (is_directory(path)) {
    check(is_regular_file(path + "/config.json"), Status::io, "'{}' is a directory without config.json", path);
    read_hf_directory(path, *ck);
  } else {
    check(is_regular_file(path), Status::io, "model path '{}' does not exist or is not a file or directory", path);
    bool gguf = starts_with_gguf(path);
    ck->files.push_back(std::make_unique<MappedFile>(path, file_mode));
    const MappedFile& mf = *ck->files.back();
    if (gguf) read_gguf_checkpoint(mf.bytes(), path, *ck);
    else read_llama2c_checkpoint(mf.bytes(), path, *ck);
    std::string base = path.substr(path.find_last_of('/') + 1);
    if (ck->config.name.empty()) ck->config.name = base;
  }
  resolve_fp8_scales(*ck);
  check_llama_tensors(*ck);
  attach_tokenizer(*ck, tokenizer_path);
  return ck;
}

}  // namespace paca
