// checkpoint.cpp - format detection, the Hugging Face directory reader and
// the shape check shared by all formats. GGUF and llama2.c readers live in
// checkpoint_gguf.cpp and checkpoint_llama2c.cpp.
#include "model/checkpoint.h"

#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "model/safetensors.h"
#include "util/error.h"

namespace paca {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f16: return "F16";
    case DType::bf16: return "BF16";
    case DType::q8_0: return "Q8_0";
  }
  return "?";
}

const TensorView* Checkpoint::find(const std::string& name) const {
  auto it = tensors.find(name);
  return it == tensors.end() ? nullptr : &it->second;
}

std::string layer_tensor(int layer, const char* what) { return "L" + std::to_string(layer) + "." + what; }

namespace {

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_file(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string read_text(const std::string& path, size_t limit) {
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

void add_safetensors_file(Checkpoint& ck, const std::string& path, const std::set<std::string>* expect) {
  ck.files.push_back(std::make_unique<MappedFile>(path));
  const MappedFile& mf = *ck.files.back();
  SafetensorsFile st = parse_safetensors(mf.bytes(), path);
  for (const auto& e : st.tensors) {
    std::string canon = hf_canonical(e.name);
    if (canon.empty()) continue;
    if (expect != nullptr && !expect->count(e.name))
      fail(Status::format, "{}: tensor '{}' is not listed for this file in the index", path, e.name);
    TensorView v;
    v.name = e.name;
    if (e.dtype == "F32") v.dtype = DType::f32;
    else if (e.dtype == "F16") v.dtype = DType::f16;
    else if (e.dtype == "BF16") v.dtype = DType::bf16;
    else fail(Status::unsupported, "{}: tensor '{}' has dtype {}, which is not supported (F32, F16, BF16)", path, e.name, e.dtype);
    if (e.shape.size() == 1) {
      v.rows = 1;
      v.cols = e.shape[0];
    } else if (e.shape.size() == 2) {
      v.rows = e.shape[0];
      v.cols = e.shape[1];
    } else {
      fail(Status::format, "{}: tensor '{}' has {} dims (need 1 or 2)", path, e.name, e.shape.size());
    }
    v.data = mf.data() + st.data_start + e.begin;
    check(!ck.tensors.count(canon), Status::format, "{}: tensor '{}' appears in more than one file", path, e.name);
    ck.tensors.emplace(canon, v);
  }
}

void read_hf_directory(const std::string& dir, Checkpoint& ck) {
  std::string gen;
  if (is_file(dir + "/generation_config.json")) gen = read_text(dir + "/generation_config.json", 1 << 20);
  ck.config = parse_hf_config(read_text(dir + "/config.json", 1 << 24), gen);
  ck.config.format = ModelFormat::hf_safetensors;
  std::string base = dir;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  ck.config.name = base.substr(base.find_last_of('/') + 1);

  std::string index = dir + "/model.safetensors.index.json";
  if (is_file(index)) {
    auto j = nlohmann::json::parse(read_text(index, 1 << 26), nullptr, false);
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
    check(is_file(single), Status::io, "{}: neither model.safetensors nor model.safetensors.index.json found", dir);
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

void check_llama_tensors(const Checkpoint& ck) {
  const ModelConfig& c = ck.config;
  c.validate();
  auto want = [&](const std::string& name, int64_t rows, int64_t cols, bool matrix) {
    const TensorView* t = ck.find(name);
    check(t != nullptr, Status::format, "checkpoint is missing tensor {}", name);
    check(t->rows == rows && t->cols == cols, Status::format,
          "tensor {} ({}) has shape [{}, {}], expected [{}, {}]", name, t->name, t->rows, t->cols, rows, cols);
    if (!matrix)
      check(t->dtype != DType::q8_0, Status::unsupported, "tensor {} ({}): Q8_0 norms are not supported", name, t->name);
  };
  want("embed", c.n_vocab, c.dim, true);
  want("norm", 1, c.dim, false);
  if (!c.tied_embeddings) want("output", c.n_vocab, c.dim, true);
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

std::unique_ptr<Checkpoint> open_checkpoint(const std::string& path) {
  auto ck = std::make_unique<Checkpoint>();
  ck->path = path;
  if (is_dir(path)) {
    check(is_file(path + "/config.json"), Status::io, "'{}' is a directory without config.json", path);
    read_hf_directory(path, *ck);
  } else {
    check(is_file(path), Status::io, "model path '{}' does not exist or is not a file or directory", path);
    bool gguf = starts_with_gguf(path);
    ck->files.push_back(std::make_unique<MappedFile>(path));
    const MappedFile& mf = *ck->files.back();
    if (gguf) read_gguf_checkpoint(mf.bytes(), path, *ck);
    else read_llama2c_checkpoint(mf.bytes(), path, *ck);
    std::string base = path.substr(path.find_last_of('/') + 1);
    if (ck->config.name.empty()) ck->config.name = base;
  }
  check_llama_tensors(*ck);
  return ck;
}

}  // namespace paca
