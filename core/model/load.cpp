// load.cpp - see load.h.
#include "model/load.h"

#include <map>
#include <vector>
#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace paca {

namespace {

// Touches every page of every weight once, so the disk is read during the
// load (with progress) rather than during the first token.
void page_in(const Checkpoint& ck, const std::function<bool(float)>& progress) {
  uint64_t total = 0, done = 0;
  for (const auto& [n, t] : ck.tensors) total += t.bytes();
  volatile uint8_t sink = 0;
  uint64_t next_report = 0;
  for (const auto& [n, t] : ck.tensors) {
    size_t bytes = t.bytes();
    uint8_t acc = 0;
    for (size_t off = 0; off < bytes; off += 4096) acc ^= t.data[off];
    sink = sink ^ acc;
    done += bytes;
    if (progress && (done >= next_report || done == total)) {
      if (!progress(total ? static_cast<float>(static_cast<double>(done) / total) : 1.0f))
        fail(Status::cancelled, "model load cancelled by the progress callback");
      next_report = done + total / 100;
    }
  }
  (void)sink;
}

// Rejects a malformed device string before any file is opened; whether the
// device is there is asked when the backend is created.
void check_device(const LoadOptions& opt) {
  if (opt.device != "cpu" && parse_cuda_device(opt.device) < 0)
    fail(Status::invalid_argument, "unknown device '{}' (expected \"cpu\", \"cuda\" or \"cuda:N\")", opt.device);
}

std::unique_ptr<LlamaModel> load_on(std::unique_ptr<Checkpoint> ck, const LoadOptions& opt,
                                    std::unique_ptr<Backend> backend);

}  // namespace

std::unique_ptr<LlamaModel> load_model(const std::string& path, const LoadOptions& opt) {
  check_device(opt);
  // the device first: an unavailable one fails before any file is read
  std::unique_ptr<Backend> backend = make_backend(opt.device, opt.model.n_threads);
  if (opt.progress && !opt.progress(0.0f)) fail(Status::cancelled, "model load cancelled by the progress callback");
  return load_on(open_checkpoint(path, opt.tokenizer_path, opt.read_weights ? MappedFile::Mode::read : MappedFile::Mode::map),
                 opt, std::move(backend));
}

std::unique_ptr<LlamaModel> load_model(std::unique_ptr<Checkpoint> ck, const LoadOptions& opt) {
  check_device(opt);
  return load_on(std::move(ck), opt, make_backend(opt.device, opt.model.n_threads));
}

namespace {

std::unique_ptr<LlamaModel> load_on(std::unique_ptr<Checkpoint> ck, const LoadOptions& opt,
                                    std::unique_ptr<Backend> backend) {
  const std::string path = ck->path;
  if (!ck->tokenizer) logf(opt.model.log, LogLevel::info, "{}: no tokenizer: {}", path, ck->tokenizer_note);
  if (opt.quantize_fp8) quantize_fp8(*ck, opt.fp8);
  if (opt.fp8_mode == LoadOptions::Fp8Mode::w8a16) set_fp8_activations(*ck, ActQuant::none);
  if (opt.fp8_mode == LoadOptions::Fp8Mode::w8a8)
    for (auto& [n, t] : ck->tensors)
      if (t.dtype == DType::f8e4m3 && t.act == ActQuant::none) {
        t.act = ActQuant::dynamic_row;
        if (!(t.act_ub > 0)) t.act_ub = opt.fp8.act_ub;
      }
  const bool on_host = backend->weights_on_host();
  if (on_host) page_in(*ck, opt.progress);
  auto model = std::make_unique<LlamaModel>(std::move(ck), std::move(backend), opt.model);
  if (!on_host) {
    // a device backend copies every weight into its memory now, reporting progress
    std::vector<const TensorView*> views;
    for (const auto& [n, t] : model->checkpoint().tensors) views.push_back(&t);
    model->backend().upload_weights(views, opt.progress);
  }
  logf(opt.model.log, LogLevel::info, "loaded {} ({}, {} layers, dim {}, vocab {}) on {}", path,
       format_name(model->config().format), model->config().n_layers, model->config().dim, model->config().n_vocab,
       model->backend().name());
  return model;
}

}  // namespace

std::string describe_model_json(const LlamaModel& m) {
  using nlohmann::json;
  const ModelConfig& c = m.config();
  std::map<std::string, uint64_t> dtypes;
  for (const auto& [n, t] : m.checkpoint().tensors) dtypes[dtype_name(t.dtype)] += 1;
  uint64_t kv_per_token = static_cast<uint64_t>(m.kv_layout().block_bytes()) / m.kv_layout().block_tokens;
  json j;
  j["format"] = format_name(c.format);
  j["name"] = json(c.name);
  j["architecture"] = "llama";
  j["dim"] = c.dim;
  j["n_layers"] = c.n_layers;
  j["n_heads"] = c.n_heads;
  j["n_kv_heads"] = c.n_kv_heads;
  j["head_dim"] = c.head_dim;
  j["ffn_dim"] = c.ffn_dim;
  j["n_vocab"] = c.n_vocab;
  j["max_context"] = c.max_context;
  j["norm_eps"] = c.norm_eps;
  j["rope"] = {{"theta", c.rope_theta},
               {"scaling", c.rope_scaling == RopeScaling::llama3 ? "llama3" : "none"},
               {"factor", c.rope_factor},
               {"layout", c.rope_layout == RopeLayout::half ? "half" : "interleaved"}};
  j["tied_embeddings"] = c.tied_embeddings;
  j["bos_id"] = c.bos_id;
  j["eos_ids"] = c.eos_ids;
  j["tensor_dtypes"] = dtypes;
  {
    json fp8 = json::array();
    const char* act_names[] = {"w8a16", "w8a8-dynamic", "w8a8-static"};
    std::map<std::string, int> modes;
    for (const auto& [n, t] : m.checkpoint().tensors)
      if (t.dtype == DType::f8e4m3) {
        fp8.push_back(t.name);
        modes[act_names[static_cast<int>(t.act)]] += 1;
      }
    j["fp8"] = {{"quant_method", quant_method_name(c.quant.method)}, {"tensors", fp8}, {"modes", modes}};
  }
  j["n_params"] = m.n_params();
  j["weight_bytes"] = m.weight_bytes();
  j["kv_dtype"] = dtype_name(m.kv_layout().dtype);
  j["fingerprint"] = fmt::format("{:016x}", m.fingerprint());
  j["kv_bytes_per_token"] = kv_per_token;
  j["memory_full_context_bytes"] = m.weight_bytes() + kv_per_token * static_cast<uint64_t>(c.max_context);
  j["backend"] = const_cast<LlamaModel&>(m).backend().name();
  if (const auto& tok = m.checkpoint().tokenizer) {
    j["tokenizer"] = {{"source", json(tok->source())},
                      {"kind", tok->options().byte_level ? "byte-level BPE"
                               : tok->options().kind == TokenizerKind::spm ? "SentencePiece BPE"
                                                                           : "BPE with byte fallback"},
                      {"n_tokens", tok->n_tokens()},
                      {"add_bos", tok->options().add_bos}};
  } else {
    j["tokenizer"] = nullptr;
    j["tokenizer_note"] = json(m.checkpoint().tokenizer_note);
  }
  return j.dump();
}

}  // namespace paca
