// load.cpp - see load.h.
#include "runtime/load.h"

#include <map>
#include <vector>
#include <nlohmann/json.hpp>

#include "parallel/sharded_model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace paca {

namespace {

// Touches every page of every weight once, so the disk is read during the
// load (with progress) rather than during the first token.
// A sharded model pages in only its local ranks' slices.
void page_in(std::span<const Checkpoint* const> cks, const std::function<bool(float)>& progress) {
  uint64_t total = 0, done = 0;
  for (const Checkpoint* ck : cks)
    for (const auto& [n, t] : ck->tensors) total += t.bytes();
  volatile uint8_t sink = 0;
  uint64_t next_report = 0;
  for (const Checkpoint* ck : cks) {
    for (const auto& [n, t] : ck->tensors) {
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
  }
  (void)sink;
}

// Rejects a malformed device string before any file is opened; whether the
// device is there is asked when the backend is created.
void check_device(const LoadOptions& opt) {
  if (opt.device != "cpu" && parse_cuda_device(opt.device) < 0)
    fail(Status::invalid_argument, "unknown device '{}' (expected \"cpu\", \"cuda\" or \"cuda:N\")", opt.device);
}

std::unique_ptr<Checkpoint> open_for(const std::string& path, const LoadOptions& opt) {
  check_device(opt);
  if (opt.progress && !opt.progress(0.0f)) fail(Status::cancelled, "model load cancelled by the progress callback");
  MappedFile::Mode mode = opt.weights;
  if (mode == MappedFile::Mode::automatic && opt.device != "cpu") mode = MappedFile::Mode::map;
  return open_checkpoint(path, opt.tokenizer_path, mode);
}

// FP8 quantization and activation modes, as asked.
void prepare(Checkpoint& ck, const LoadOptions& opt) {
  check_device(opt);
  if (!ck.tokenizer) logf(opt.model.log, LogLevel::info, "{}: no tokenizer: {}", ck.path, ck.tokenizer_note);
  if (opt.quantize_fp8) quantize_fp8(ck, opt.fp8);
  if (opt.fp8_mode == LoadOptions::Fp8Mode::w8a16) set_fp8_activations(ck, ActQuant::none);
  if (opt.fp8_mode == LoadOptions::Fp8Mode::w8a8)
    for (auto& [n, t] : ck.tensors)
      if (t.dtype == DType::f8e4m3 && t.act == ActQuant::none) {
        t.act = ActQuant::dynamic_row;
        if (!(t.act_ub > 0)) t.act_ub = opt.fp8.act_ub;
      }
}

void log_loaded(const ModelRunner& m, const LoadOptions& opt) {
  logf(opt.model.log, LogLevel::info, "loaded {} ({}, {} layers, dim {}, vocab {}) on {}", m.checkpoint().path,
       format_name(m.config().format), m.config().n_layers, m.config().dim, m.config().n_vocab, m.backend_name());
}

}  // namespace

namespace {

// A whole model on `backend`: host backends get their pages touched, device
// backends a copy of every weight (with progress).
std::unique_ptr<LlamaModel> load_on(std::unique_ptr<Checkpoint> ck, const LoadOptions& opt,
                                    std::unique_ptr<Backend> backend) {
  prepare(*ck, opt);
  const bool on_host = backend->weights_on_host();
  if (on_host) {
    const Checkpoint* whole = ck.get();
    page_in(std::span<const Checkpoint* const>(&whole, 1), opt.progress);
  }
  auto model = std::make_unique<LlamaModel>(std::move(ck), std::move(backend), opt.model);
  if (!on_host) {
    std::vector<const TensorView*> views;
    for (const auto& [n, t] : model->checkpoint().tensors) views.push_back(&t);
    model->backend().upload_weights(views, opt.progress);
  }
  log_loaded(*model, opt);
  return model;
}

}  // namespace

std::unique_ptr<LlamaModel> load_model(const std::string& path, const LoadOptions& opt) {
  check_device(opt);
  // the device first: an unavailable one fails before any file is read
  std::unique_ptr<Backend> backend = make_backend(opt.device, opt.model.n_threads, opt.backend);
  return load_on(open_for(path, opt), opt, std::move(backend));
}

std::unique_ptr<LlamaModel> load_model(std::unique_ptr<Checkpoint> ck, const LoadOptions& opt) {
  check_device(opt);
  return load_on(std::move(ck), opt, make_backend(opt.device, opt.model.n_threads, opt.backend));
}

std::unique_ptr<ModelRunner> load_runner(const std::string& path, const LoadOptions& opt) {
  check_parallel_options(opt.tensor_parallel, opt.pipeline_parallel, opt.world);
  if (opt.tensor_parallel * opt.pipeline_parallel == 1) return load_model(path, opt);
  return load_runner(open_for(path, opt), opt);
}

std::unique_ptr<ModelRunner> load_runner(std::unique_ptr<Checkpoint> ck, const LoadOptions& opt) {
  check_parallel_options(opt.tensor_parallel, opt.pipeline_parallel, opt.world);
  if (opt.tensor_parallel * opt.pipeline_parallel == 1) return load_model(std::move(ck), opt);
  prepare(*ck, opt);
  ShardOptions so;
  so.tp = opt.tensor_parallel;
  so.pp = opt.pipeline_parallel;
  so.n_threads = opt.model.n_threads;
  so.timeout = opt.world.timeout;
  so.device = opt.device;
  so.backend = opt.backend;  // every rank of this process on it (CUDA: see ShardedModel)
  so.progress = opt.progress;
  // the layout is checked against the model before any process connects
  tp_layout(ck->config, so.tp);
  pipeline_stages(ck->config.n_layers, so.pp);
  if (opt.world.size > 1) so.world = connect_world(opt.world);
  auto model = std::make_unique<ShardedModel>(std::move(ck), std::move(so), opt.model);
  std::vector<const Checkpoint*> shards;  // device ranks got theirs uploaded by ShardedModel
  for (int i = 0; i < model->n_local(); ++i)
    if (model->local(i).backend().weights_on_host()) shards.push_back(&model->local(i).checkpoint());
  if (!shards.empty()) page_in(shards, opt.progress);
  log_loaded(*model, opt);
  return model;
}

std::string describe_model_json(const ModelRunner& m) {
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
  j["load_mode"] = m.checkpoint().weights_read() ? "read" : "mmap";
  j["fingerprint"] = fmt::format("{:016x}", m.fingerprint());
  j["kv_bytes_per_token"] = kv_per_token;
  j["memory_full_context_bytes"] = m.weight_bytes() + kv_per_token * static_cast<uint64_t>(c.max_context);
  j["backend"] = m.backend_name();
  if (const auto* sm = dynamic_cast<const ShardedModel*>(&m)) {
    json shards = json::array();
    for (int i = 0; i < sm->n_local(); ++i) {
      const LlamaModel& local = sm->local(i);
      const ShardedModel::Placement& at = sm->placement(i);
      shards.push_back({{"rank", at.rank},
                        {"stage", at.stage},
                        {"tp_rank", at.tp_rank},
                        {"first_layer", at.layers.first},
                        {"n_layers", at.layers.count},
                        {"weight_bytes", local.weight_bytes()},
                        {"kv_bytes_per_token", local.kv_layout().block_bytes() / local.kv_layout().block_tokens}});
    }
    j["parallel"] = {{"tensor_parallel", sm->tp()}, {"pipeline_parallel", sm->pp()}, {"ranks", shards}};
  }
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
