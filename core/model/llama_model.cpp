// llama_model.cpp - the Llama forward pass (pre-norm, GQA attention with
// RoPE, SwiGLU FFN, final norm, LM head), written over Backend ops.
#include "model/llama_model.h"

#include <algorithm>
#include <array>

#include "model/fingerprint.h"
#include "util/error.h"

namespace paca {

uint64_t step_workspace_bytes(const ModelConfig& c, int tokens, int logit_rows) {
  const uint64_t T = static_cast<uint64_t>(tokens), L = static_cast<uint64_t>(logit_rows);
  const uint64_t D = static_cast<uint64_t>(c.dim), Q = static_cast<uint64_t>(c.q_dim()),
                 KV = static_cast<uint64_t>(c.kv_dim()), F = static_cast<uint64_t>(c.ffn_dim),
                 V = static_cast<uint64_t>(c.n_vocab);
  return (T * (3 * D + 2 * Q + 2 * KV + 2 * F) + L * V) * sizeof(float);  // the buffers reserve() takes
}

Workspace::Workspace(Backend& backend, const ModelConfig& c) : backend_(backend), c_(c) {}

Workspace::~Workspace() { backend_.release(mem_); }

void Workspace::reserve(int tokens, int logit_rows) {
  if (tokens <= capacity_ && logit_rows <= logit_rows_) return;
  tokens = std::max(tokens, capacity_);
  logit_rows = std::max(logit_rows, logit_rows_);
  const size_t T = static_cast<size_t>(tokens), L = static_cast<size_t>(logit_rows);
  const size_t D = c_.dim, Q = c_.q_dim(), KV = c_.kv_dim(), F = c_.ffn_dim, V = c_.n_vocab;
  void* mem = backend_.alloc(static_cast<size_t>(step_workspace_bytes(c_, tokens, logit_rows)));
  backend_.release(mem_);
  mem_ = mem;
  float* p = static_cast<float*>(mem);
  auto take = [&](Act& a, size_t rows, size_t cols) {
    a = Act{p, static_cast<int>(rows), static_cast<int>(cols)};
    p += rows * cols;
  };
  take(x, T, D);
  take(xn, T, D);
  take(o, T, D);
  take(q, T, Q);
  take(att, T, Q);
  take(k, T, KV);
  take(v, T, KV);
  take(g, T, F);
  take(u, T, F);
  take(logits, L, V);
  capacity_ = tokens;
  logit_rows_ = logit_rows;
}

LlamaModel::LlamaModel(std::unique_ptr<Checkpoint> ckpt, std::unique_ptr<Backend> backend, const ModelOptions& opt)
    : ckpt_(std::move(ckpt)), backend_(std::move(backend)), opt_(opt) {
  const ModelConfig& c = ckpt_->config;
  check_llama_tensors(*ckpt_);
  auto get = [&](const std::string& n) { return ckpt_->find(n); };
  embed_ = get("embed");
  norm_ = get("norm");
  output_ = c.tied_embeddings ? embed_ : get("output");
  for (int l = 0; l < c.n_layers; ++l)
    layers_.push_back({get(layer_tensor(l, "attn_norm")), get(layer_tensor(l, "wq")), get(layer_tensor(l, "wk")),
                       get(layer_tensor(l, "wv")), get(layer_tensor(l, "wo")), get(layer_tensor(l, "ffn_norm")),
                       get(layer_tensor(l, "w1")), get(layer_tensor(l, "w2")), get(layer_tensor(l, "w3"))});
  for (const auto& [name, t] : ckpt_->tensors) {
    n_params_ += static_cast<uint64_t>(t.rows) * static_cast<uint64_t>(t.cols);
    // a tensor-parallel LM-head slice of tied embeddings is a view into the embedding held here
    const bool aliases_embed = name == "output" && embed_ != nullptr && t.data >= embed_->data &&
                               t.data < embed_->data + embed_->bytes();
    if (!aliases_embed) weight_bytes_ += t.bytes();
  }
  if (ckpt_->rope_divisors.empty()) {
    rope_freqs_ = rope_frequencies(c);
  } else {
    ModelConfig plain = c;
    plain.rope_scaling = RopeScaling::none;
    rope_freqs_ = rope_frequencies(plain);
    for (size_t i = 0; i < rope_freqs_.size(); ++i) rope_freqs_[i] /= ckpt_->rope_divisors[i];
  }
  check(opt.kv_dtype == DType::f32 || opt.kv_dtype == DType::bf16, Status::invalid_argument,
        "KV cache dtype must be f32 or bf16");
  check(opt.kv_block_tokens > 0 && opt.kv_block_tokens <= 4096, Status::invalid_argument,
        "KV block size {} must be in 1..4096 tokens", opt.kv_block_tokens);
  kv_layout_ = KvLayout{c.n_layers, opt.kv_block_tokens, c.kv_dim(), opt.kv_dtype};
  fingerprint_ = model_fingerprint(*ckpt_);
}

namespace {
struct LlamaScratch final : ModelRunner::Scratch {
  LlamaScratch(Backend& be, const ModelConfig& c) : ws(be, c), backend(be) {}
  ~LlamaScratch() override {
    if (kept != nullptr) backend.release(kept);
  }
  // row `row` of `from` becomes the kept logits (memory taken on first use)
  void keep(const Act& from, int row) {
    const size_t bytes = static_cast<size_t>(from.cols) * sizeof(float);
    if (kept == nullptr) kept = static_cast<float*>(backend.alloc(bytes));
    backend.copy(kept, from.row(row), bytes);
  }
  Workspace ws;
  Backend& backend;
  float* kept = nullptr;  // [n_vocab] on the backend: the last kept logits
};

void check_step(const char* what, std::span<const int32_t> tokens, const ModelRunner::StepLogits& logits, int vocab) {
  check(!tokens.empty() && tokens.size() <= static_cast<size_t>(ModelRunner::kMaxStepTokens) &&
            (logits.host.empty() || logits.host.size() == static_cast<size_t>(vocab)),
        Status::internal, "{}: {} tokens, {} logits", what, tokens.size(), logits.host.size());
}
}  // namespace

std::unique_ptr<ModelRunner::Scratch> LlamaModel::new_scratch() {
  return std::make_unique<LlamaScratch>(*backend_, ckpt_->config);
}

void LlamaModel::step(Scratch& scratch, std::span<const int32_t> tokens, int pos0, const KvSeq& seq,
                      const std::atomic<bool>* cancel, StepLogits logits) {
  check_step("LlamaModel::step", tokens, logits, ckpt_->config.n_vocab);
  auto& s = static_cast<LlamaScratch&>(scratch);
  Workspace& ws = s.ws;
  ws.reserve(static_cast<int>(tokens.size()));
  const bool want = !logits.host.empty() || logits.keep;
  const SeqStep one{tokens, pos0, seq, want};
  forward_batch(ws, std::span<const SeqStep>(&one, 1), cancel);
  if (!logits.host.empty())
    backend_->to_host(ws.logits.data, logits.host.data(), logits.host.size());
  else if (logits.keep)
    s.keep(ws.logits, 0);
}

void LlamaModel::kept_logits(Scratch& scratch, std::span<float> out) {
  auto& s = static_cast<LlamaScratch&>(scratch);
  check(s.kept != nullptr && out.size() == static_cast<size_t>(ckpt_->config.n_vocab), Status::internal,
        "kept_logits: nothing kept, or {} floats asked for", out.size());
  backend_->to_host(s.kept, out.data(), out.size());
}

void LlamaModel::top_k(Scratch& scratch, size_t k, std::vector<Candidate>& out, uint64_t* mass) {
  auto& s = static_cast<LlamaScratch&>(scratch);
  check(s.kept != nullptr, Status::internal, "top_k: no logits kept");
  backend_->top_k(s.kept, static_cast<size_t>(ckpt_->config.n_vocab), k, out, mass);
}

void LlamaModel::step_batch(std::span<const BatchSeq> seqs) {
  if (seqs.empty()) return;
  std::vector<SeqStep> steps;
  steps.reserve(seqs.size());
  size_t total = 0;
  int rows = 0;
  for (const BatchSeq& s : seqs) {
    check_step("LlamaModel::step_batch", s.tokens, s.logits, ckpt_->config.n_vocab);
    const bool want = !s.logits.host.empty() || s.logits.keep;
    steps.push_back(SeqStep{s.tokens, s.pos0, s.kv, want});
    total += s.tokens.size();
    rows += want ? 1 : 0;
  }
  if (!batch_ws_) batch_ws_ = std::make_unique<Workspace>(*backend_, ckpt_->config);
  batch_ws_->reserve(static_cast<int>(total), std::max(rows, 1));
  forward_batch(*batch_ws_, steps, nullptr);
  int row = 0;
  for (const BatchSeq& s : seqs) {
    if (!s.logits.host.empty())
      backend_->to_host(batch_ws_->logits.row(row), s.logits.host.data(), s.logits.host.size());
    else if (s.logits.keep)
      static_cast<LlamaScratch&>(*s.scratch).keep(batch_ws_->logits, row);
    if (!s.logits.host.empty() || s.logits.keep) ++row;
  }
}

void LlamaModel::forward(Workspace& ws, std::span<const int32_t> tokens, int pos0, const KvSeq& seq,
                         const std::atomic<bool>* cancel) {
  const SeqStep one{tokens, pos0, seq, true};
  forward_batch(ws, std::span<const SeqStep>(&one, 1), cancel);
}

void LlamaModel::forward_batch(Workspace& ws, std::span<const SeqStep> seqs, const std::atomic<bool>* cancel) {
  tokens_.clear();
  step_kv_.clear();
  step_rows_.clear();
  for (const SeqStep& s : seqs) {
    tokens_.insert(tokens_.end(), s.tokens.begin(), s.tokens.end());
    step_kv_.push_back(s.kv);
    step_rows_.push_back(static_cast<int>(s.tokens.size()));
  }
  positions_of(seqs);
  // no bracket around tensor-parallel collectives: they read op outputs on the host
  const bool bracket = comm_ == nullptr;
  if (!bracket) {
    embed_tokens(ws, tokens_);
    layers(ws, seqs, cancel);
    final_logits(ws, seqs);
    return;
  }
  backend_->begin_step(StepInputs{tokens_, pos_, step_kv_, step_rows_});
  try {
    embed_tokens(ws, tokens_);
    layers(ws, seqs, cancel);
    final_logits(ws, seqs);
  } catch (...) {
    backend_->abort_step();
    throw;
  }
  backend_->end_step();
}

void LlamaModel::embed_tokens(Workspace& ws, std::span<const int32_t> tokens) {
  check(embed_ != nullptr, Status::internal, "a pipeline stage without the embedding was asked to embed tokens");
  check(static_cast<int>(tokens.size()) <= ws.capacity(), Status::internal, "embed: {} tokens exceed the workspace",
        tokens.size());
  backend_->embed(*embed_, tokens, Act{ws.x.data, static_cast<int>(tokens.size()), ws.x.cols});
}

void LlamaModel::run_layers(Workspace& ws, int T, int pos0, const KvSeq& seq, const std::atomic<bool>* cancel) {
  tokens_.assign(static_cast<size_t>(T), 0);  // only the count matters below
  const SeqStep one{std::span<const int32_t>(tokens_), pos0, seq, true};
  run_layers(ws, std::span<const SeqStep>(&one, 1), cancel);
}

void LlamaModel::positions_of(std::span<const SeqStep> seqs) {
  pos_.clear();
  for (const SeqStep& s : seqs) {
    check(!s.tokens.empty(), Status::internal, "run_layers: a sequence without tokens");
    for (size_t t = 0; t < s.tokens.size(); ++t) pos_.push_back(s.pos0 + static_cast<int>(t));
  }
}

void LlamaModel::run_layers(Workspace& ws, std::span<const SeqStep> seqs, const std::atomic<bool>* cancel) {
  positions_of(seqs);
  layers(ws, seqs, cancel);
}

void LlamaModel::layers(Workspace& ws, std::span<const SeqStep> seqs, const std::atomic<bool>* cancel) {
  const ModelConfig& c = ckpt_->config;
  const int T = static_cast<int>(pos_.size());
  check(T <= ws.capacity(), Status::internal, "run_layers: {} tokens exceed the workspace of {}", T, ws.capacity());
  Backend& be = *backend_;
  auto rows = [T](Act a) { return Act{a.data, T, a.cols}; };
  Act x = rows(ws.x), xn = rows(ws.xn), q = rows(ws.q), k = rows(ws.k), v = rows(ws.v), att = rows(ws.att),
      o = rows(ws.o), g = rows(ws.g), u = rows(ws.u);
  auto part = [](Act a, int r0, int n) { return Act{a.row(r0), n, a.cols}; };  // rows [r0, r0 + n)
  const AttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim};
  const std::span<const int32_t> pos(pos_);

  // Each residual add is fused with the norm that reads its result: the
  // FFN's norm, or the next layer's attention norm (the last layer's add
  // stands alone: the final norm reads only the rows that want logits).
  // Each norm names the matmuls that read its output next (rmsnorm_for), so
  // that a device may quantize their activations in the norm's pass.
  auto qkv = [](const LayerWeights& w) { return std::array<const TensorView*, 3>{w.wq, w.wk, w.wv}; };
  if (c.n_layers > 0) be.rmsnorm_for(x, *layers_[0].attn_norm, c.norm_eps, xn, qkv(layers_[0]));
  for (int l = 0; l < c.n_layers; ++l) {
    if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) fail(Status::cancelled, "cancelled");
    const LayerWeights& w = layers_[l];
    // attention block (xn = attn_norm(x))
    be.matmul(xn, *w.wq, q);
    be.matmul(xn, *w.wk, k);
    be.matmul(xn, *w.wv, v);
    int r0 = 0;
    for (const SeqStep& s : seqs) {  // RoPE + the cache write, and attention, per sequence
      const int n = static_cast<int>(s.tokens.size());
      const auto sp = pos.subspan(static_cast<size_t>(r0), static_cast<size_t>(n));
      be.rope_kv_write(part(q, r0, n), part(k, r0, n), part(v, r0, n), s.kv, l, sp, rope_freqs_, c.rope_layout,
                       shape);
      be.attention(part(q, r0, n), s.kv, l, sp, shape, part(att, r0, n));
      r0 += n;
    }
    be.matmul(att, *w.wo, o);
    if (comm_ != nullptr) comm_->all_reduce_sum(o.data, static_cast<size_t>(T) * c.dim);
    be.add_rmsnorm_for(x, o, *w.ffn_norm, c.norm_eps, xn, std::array<const TensorView*, 2>{w.w1, w.w3});
    // feed-forward block (xn = ffn_norm(x))
    be.matmul(xn, *w.w1, g);
    be.matmul(xn, *w.w3, u);
    be.swiglu(g, u, g);
    be.matmul(g, *w.w2, o);
    if (comm_ != nullptr) comm_->all_reduce_sum(o.data, static_cast<size_t>(T) * c.dim);
    if (l + 1 < c.n_layers)
      be.add_rmsnorm_for(x, o, *layers_[l + 1].attn_norm, c.norm_eps, xn, qkv(layers_[l + 1]));
    else
      be.add(x, o);
  }
}

void LlamaModel::final_logits(Workspace& ws, int T) {
  tokens_.assign(static_cast<size_t>(T), 0);
  const SeqStep one{std::span<const int32_t>(tokens_), 0, KvSeq{}, true};
  final_logits(ws, std::span<const SeqStep>(&one, 1));
}

void LlamaModel::final_logits(Workspace& ws, std::span<const SeqStep> seqs) {
  const ModelConfig& c = ckpt_->config;
  Backend& be = *backend_;
  check(norm_ != nullptr, Status::internal, "a pipeline stage without the LM head was asked for logits");
  // only the last position of each sequence that wants logits: gather those
  // rows (into o, free now), normalize them into xn, one LM-head matmul
  int r0 = 0, L = 0;
  for (const SeqStep& s : seqs) {
    r0 += static_cast<int>(s.tokens.size());
    if (s.logits) {
      check(L < ws.logit_capacity(), Status::internal, "final_logits: more sequences than logit rows");
      be.copy(ws.o.row(L++), ws.x.row(r0 - 1), static_cast<size_t>(c.dim) * sizeof(float));
    }
  }
  if (L == 0) return;
  const Act last{ws.o.data, L, c.dim}, last_n{ws.xn.data, L, c.dim};
  if (ckpt_->lm_head_rows == 0) {
    be.rmsnorm_for(last, *norm_, c.norm_eps, last_n, std::span<const TensorView* const>(&output_, 1));
    be.matmul(last_n, *output_, Act{ws.logits.data, L, ws.logits.cols});
    return;
  }
  be.rmsnorm(last, *norm_, c.norm_eps, last_n);  // the head reads it a row at a time
  // tensor parallel: this rank's vocabulary rows (zero-padded), gathered in
  // rank order; both buffers in the backend's memory (the communicator works
  // on the rank's own memory, device memory for a CUDA rank)
  const size_t head_rows = static_cast<size_t>(ckpt_->lm_head_rows);
  check(comm_ != nullptr, Status::internal, "a tensor-parallel shard runs without a communicator");
  if (shard_logits_ == nullptr) {
    // zero-filled by alloc; the matmul writes rows [0, output_->rows) only,
    // so the padding stays zero
    shard_logits_ = static_cast<float*>(be.alloc(head_rows * sizeof(float)));
    gathered_logits_ = static_cast<float*>(be.alloc(head_rows * static_cast<size_t>(comm_->size()) * sizeof(float)));
  }
  for (int i = 0; i < L; ++i) {
    if (output_->rows > 0)
      be.matmul(Act{last_n.row(i), 1, c.dim}, *output_, Act{shard_logits_, 1, static_cast<int>(output_->rows)});
    comm_->all_gather(shard_logits_, head_rows, gathered_logits_);
    be.copy(ws.logits.row(i), gathered_logits_, static_cast<size_t>(c.n_vocab) * sizeof(float));
  }
}

LlamaModel::~LlamaModel() {
  backend_->release(shard_logits_);
  backend_->release(gathered_logits_);
}

}  // namespace paca
