// llama_model.cpp - the Llama forward pass (pre-norm, GQA attention with
// RoPE, SwiGLU FFN, final norm, LM head), written over Backend ops.
#include "model/llama_model.h"

#include <algorithm>

#include "model/fingerprint.h"
#include "util/error.h"

namespace paca {

Workspace::Workspace(Backend& backend, const ModelConfig& c) : backend_(backend), c_(c) {}

Workspace::~Workspace() { backend_.release(mem_); }

void Workspace::reserve(int tokens) {
  if (tokens <= capacity_) return;
  const size_t T = static_cast<size_t>(tokens);
  const size_t D = c_.dim, Q = c_.q_dim(), KV = c_.kv_dim(), F = c_.ffn_dim, V = c_.n_vocab;
  size_t floats = T * (3 * D + 2 * Q + 2 * KV + 2 * F) + V;
  void* mem = backend_.alloc(floats * sizeof(float));
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
  take(logits, 1, V);
  capacity_ = tokens;
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
  LlamaScratch(Backend& be, const ModelConfig& c) : ws(be, c) {}
  Workspace ws;
};
}  // namespace

std::unique_ptr<ModelRunner::Scratch> LlamaModel::new_scratch() {
  return std::make_unique<LlamaScratch>(*backend_, ckpt_->config);
}

void LlamaModel::step(Scratch& scratch, std::span<const int32_t> tokens, int pos0, const KvSeq& seq,
                      const std::atomic<bool>* cancel, std::span<float> logits) {
  check(!tokens.empty() && tokens.size() <= static_cast<size_t>(kMaxStepTokens) &&
            logits.size() == static_cast<size_t>(ckpt_->config.n_vocab),
        Status::internal, "LlamaModel::step: {} tokens, {} logits", tokens.size(), logits.size());
  Workspace& ws = static_cast<LlamaScratch&>(scratch).ws;
  ws.reserve(static_cast<int>(tokens.size()));
  forward(ws, tokens, pos0, seq, cancel);
  backend_->to_host(ws.logits.data, logits.data(), logits.size());
}

void LlamaModel::forward(Workspace& ws, std::span<const int32_t> tokens, int pos0, const KvSeq& seq,
                         const std::atomic<bool>* cancel) {
  const int T = static_cast<int>(tokens.size());
  embed_tokens(ws, tokens);
  run_layers(ws, T, pos0, seq, cancel);
  final_logits(ws, T);
}

void LlamaModel::embed_tokens(Workspace& ws, std::span<const int32_t> tokens) {
  check(embed_ != nullptr, Status::internal, "a pipeline stage without the embedding was asked to embed tokens");
  backend_->embed(*embed_, tokens, Act{ws.x.data, static_cast<int>(tokens.size()), ws.x.cols});
}

void LlamaModel::run_layers(Workspace& ws, int T, int pos0, const KvSeq& seq, const std::atomic<bool>* cancel) {
  const ModelConfig& c = ckpt_->config;
  Backend& be = *backend_;
  auto rows = [T](Act a) { return Act{a.data, T, a.cols}; };
  Act x = rows(ws.x), xn = rows(ws.xn), q = rows(ws.q), k = rows(ws.k), v = rows(ws.v), att = rows(ws.att),
      o = rows(ws.o), g = rows(ws.g), u = rows(ws.u);
  pos_.resize(T);
  for (int t = 0; t < T; ++t) pos_[t] = pos0 + t;
  const AttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim};

  for (int l = 0; l < c.n_layers; ++l) {
    if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) fail(Status::cancelled, "cancelled");
    const LayerWeights& w = layers_[l];
    // attention block
    be.rmsnorm(x, *w.attn_norm, c.norm_eps, xn);
    be.matmul(xn, *w.wq, q);
    be.matmul(xn, *w.wk, k);
    be.matmul(xn, *w.wv, v);
    be.rope(q, c.n_heads, c.head_dim, pos_, rope_freqs_, c.rope_layout);
    be.rope(k, c.n_kv_heads, c.head_dim, pos_, rope_freqs_, c.rope_layout);
    be.kv_write(seq, l, k, v, pos_);
    be.attention(q, seq, l, pos_, shape, att);
    be.matmul(att, *w.wo, o);
    if (comm_ != nullptr) comm_->all_reduce_sum(o.data, static_cast<size_t>(T) * c.dim);
    be.add(x, o);
    // feed-forward block
    be.rmsnorm(x, *w.ffn_norm, c.norm_eps, xn);
    be.matmul(xn, *w.w1, g);
    be.matmul(xn, *w.w3, u);
    be.swiglu(g, u, g);
    be.matmul(g, *w.w2, o);
    if (comm_ != nullptr) comm_->all_reduce_sum(o.data, static_cast<size_t>(T) * c.dim);
    be.add(x, o);
  }
}

void LlamaModel::final_logits(Workspace& ws, int T) {
  const ModelConfig& c = ckpt_->config;
  Backend& be = *backend_;
  check(norm_ != nullptr, Status::internal, "a pipeline stage without the LM head was asked for logits");
  const Act x = ws.x, xn = ws.xn;
  // only the last position's logits are needed
  Act last{x.row(T - 1), 1, c.dim};
  Act last_n{xn.data, 1, c.dim};
  be.rmsnorm(last, *norm_, c.norm_eps, last_n);
  if (ckpt_->lm_head_rows == 0) {
    be.matmul(last_n, *output_, ws.logits);
    return;
  }
  // tensor parallel: this rank's vocabulary rows (zero-padded), gathered in rank order
  const size_t head_rows = static_cast<size_t>(ckpt_->lm_head_rows);
  check(comm_ != nullptr, Status::internal, "a tensor-parallel shard runs without a communicator");
  shard_logits_.assign(head_rows, 0.0f);
  gathered_logits_.resize(head_rows * static_cast<size_t>(comm_->size()));
  if (output_->rows > 0) be.matmul(last_n, *output_, Act{shard_logits_.data(), 1, static_cast<int>(output_->rows)});
  comm_->all_gather(shard_logits_.data(), head_rows, gathered_logits_.data());
  std::copy(gathered_logits_.begin(), gathered_logits_.begin() + c.n_vocab, ws.logits.data);
}

}  // namespace paca
