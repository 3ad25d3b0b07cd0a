// session.cpp - see session.h.
#include "runtime/session.h"

#include <algorithm>

#include "util/error.h"

namespace paca {

Session::Session(ModelRunner& model, BlockPool& pool, int n_ctx)
    : model_(model), n_ctx_(n_ctx <= 0 ? model.config().max_context : n_ctx), kv_(pool) {
  check(n_ctx_ <= ConfigLimits::max_context, Status::invalid_argument, "context of {} tokens exceeds the limit {}",
        n_ctx_, ConfigLimits::max_context);
  scratch_ = model.new_scratch();
}

void Session::prefill(std::span<const int32_t> tokens) {
  cancel_.store(false);
  check(!tokens.empty(), Status::invalid_argument, "no tokens given");
  const int vocab = model_.config().n_vocab;
  for (size_t i = 0; i < tokens.size(); ++i)
    check(tokens[i] >= 0 && tokens[i] < vocab, Status::invalid_argument,
          "token id {} at index {} is outside the vocabulary [0, {})", tokens[i], i, vocab);
  const size_t old_len = tokens_.size();
  check(tokens.size() <= static_cast<size_t>(n_ctx_) - old_len, Status::context_full,
        "{} tokens do not fit: the session holds {} of its {}-token context", tokens.size(), old_len, n_ctx_);

  std::lock_guard<std::mutex> lock(model_.compute_mutex());
  try {
    kv_.make_writable(old_len);  // a block shared with a fork is copied before it is written
    kv_.resize_for(old_len + tokens.size());
    const bool keep = model_.keeps_logits();
    if (!keep) next_logits_.resize(static_cast<size_t>(vocab));
    for (size_t done = 0; done < tokens.size();) {
      size_t n = std::min<size_t>(tokens.size() - done, static_cast<size_t>(kMaxStepTokens));
      // only the last chunk's logits are wanted: the earlier ones skip the LM head
      ModelRunner::StepLogits out;
      if (done + n == tokens.size()) {
        out.keep = keep;
        if (!keep) out.host = next_logits_;
      }
      model_.step(*scratch_, tokens.subspan(done, n), static_cast<int>(old_len + done), kv_.view(), &cancel_, out);
      done += n;
    }
  } catch (...) {
    kv_.resize_for(old_len);
    throw;
  }
  after_step(model_.keeps_logits());
  tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
}

void Session::after_step(bool kept) {
  if (kept) {
    at_ = LogitsAt::kept;
    return;
  }
  logits_.assign(next_logits_.begin(), next_logits_.end());  // same size: the buffer callers may view stays put
  at_ = LogitsAt::host;
}

const std::vector<float>& Session::logits() const {
  if (at_ == LogitsAt::kept) {
    std::lock_guard<std::mutex> lock(model_.compute_mutex());
    logits_.resize(static_cast<size_t>(model_.config().n_vocab));
    model_.kept_logits(*scratch_, logits_);
    at_ = LogitsAt::kept_and_host;
  }
  return logits_;
}

void Session::top_k(size_t k, std::vector<Candidate>& out, uint64_t* mass) const {
  check(has_logits(), Status::state, "the session has no logits (prefill a prompt first)");
  if (at_ == LogitsAt::host) {
    select_top_k(logits_, k, out);
    if (mass != nullptr) *mass = out.empty() ? 0 : logit_mass(logits_, out[0].logit);
    return;
  }
  std::lock_guard<std::mutex> lock(model_.compute_mutex());
  model_.top_k(*scratch_, k, out, mass);
}

int32_t Session::sample(Sampler& sampler, Logprobs* out, size_t n_top) const {
  check(has_logits(), Status::state, "the session has no logits (prefill a prompt first)");
  const size_t k = sampler.best_needed(out != nullptr);
  // with the logits on the host, sample() takes the same shortcut itself
  if (k > 0 && at_ == LogitsAt::kept && sampler.n_vocab() == model_.config().n_vocab) {
    uint64_t mass = 0;
    top_k(k, best_, sampler.mass_needed() ? &mass : nullptr);
    const int32_t token = sampler.sample_best(best_, tokens_, mass);
    if (token >= 0) return token;  // else the truncated set goes on beyond the best: read them all
  }
  return sampler.sample(logits(), tokens_, out, n_top);
}

void Session::step_batch(std::span<const BatchItem> items) {
  if (items.empty()) return;
  ModelRunner& model = items.front().session->model_;
  const int vocab = model.config().n_vocab;
  for (size_t i = 0; i < items.size(); ++i) {
    const BatchItem& it = items[i];
    check(it.session != nullptr && &it.session->model_ == &model, Status::invalid_argument,
          "batch item {}: no session, or a session of another model", i);
    for (size_t j = 0; j < i; ++j)
      check(items[j].session != it.session, Status::invalid_argument, "batch items {} and {} are the same session", j, i);
    check(!it.tokens.empty() && it.tokens.size() <= static_cast<size_t>(kMaxStepTokens), Status::invalid_argument,
          "batch item {}: {} tokens (1 to {} per step)", i, it.tokens.size(), kMaxStepTokens);
    for (size_t t = 0; t < it.tokens.size(); ++t)
      check(it.tokens[t] >= 0 && it.tokens[t] < vocab, Status::invalid_argument,
            "batch item {}: token id {} at index {} is outside the vocabulary [0, {})", i, it.tokens[t], t, vocab);
    const size_t len = it.session->tokens_.size(), n_ctx = static_cast<size_t>(it.session->n_ctx_);
    check(it.tokens.size() <= n_ctx - len, Status::context_full,
          "batch item {}: {} tokens do not fit: the session holds {} of its {}-token context", i, it.tokens.size(), len,
          n_ctx);
  }
  std::lock_guard<std::mutex> lock(model.compute_mutex());
  const bool keep = model.keeps_logits();
  std::vector<ModelRunner::BatchSeq> seqs;
  seqs.reserve(items.size());
  size_t grown = 0;
  try {
    for (const BatchItem& it : items) {
      Session& s = *it.session;
      s.cancel_.store(false);
      const size_t len = s.tokens_.size();
      s.kv_.make_writable(len);  // a block shared with a fork is copied before it is written
      s.kv_.resize_for(len + it.tokens.size());
      ++grown;
      ModelRunner::StepLogits out;
      out.keep = keep;
      if (!keep) {
        s.next_logits_.resize(static_cast<size_t>(vocab));
        out.host = s.next_logits_;
      }
      seqs.push_back({s.scratch_.get(), it.tokens, static_cast<int>(len), s.kv_.view(), out});
    }
    model.step_batch(seqs);
  } catch (...) {
    for (size_t i = 0; i < grown; ++i) items[i].session->kv_.resize_for(items[i].session->tokens_.size());
    throw;
  }
  for (const BatchItem& it : items) {
    Session& s = *it.session;
    s.after_step(keep);
    s.tokens_.insert(s.tokens_.end(), it.tokens.begin(), it.tokens.end());
  }
}

void Session::rewind(size_t n_tokens) {
  check(n_tokens <= tokens_.size(), Status::invalid_argument, "cannot rewind to {} tokens: the session holds {}",
        n_tokens, tokens_.size());
  tokens_.resize(n_tokens);
  kv_.resize_for(n_tokens);
  at_ = LogitsAt::none;
}

std::unique_ptr<Session> Session::fork(size_t n_tokens) const {
  check(n_tokens <= tokens_.size(), Status::invalid_argument, "cannot fork at {} tokens: the session holds {}", n_tokens,
        tokens_.size());
  auto child = std::make_unique<Session>(model_, kv_.pool(), n_ctx_);
  child->kv_.share_prefix(kv_, n_tokens);
  child->tokens_.assign(tokens_.begin(), tokens_.begin() + static_cast<std::ptrdiff_t>(n_tokens));
  if (n_tokens == tokens_.size() && has_logits()) {
    child->logits_ = logits();
    child->at_ = LogitsAt::host;
  }
  return child;
}

void Session::adopt(std::vector<int32_t> tokens, KvBlocks& kv, std::vector<float> logits) {
  const size_t bt = static_cast<size_t>(kv.pool().layout().block_tokens);
  check(tokens.size() <= static_cast<size_t>(n_ctx_) && kv.n_blocks() == (tokens.size() + bt - 1) / bt &&
            (logits.empty() || logits.size() == static_cast<size_t>(model_.config().n_vocab)),
        Status::internal, "adopt: inconsistent session state");
  kv_.swap(kv);
  tokens_ = std::move(tokens);
  at_ = logits.empty() ? LogitsAt::none : LogitsAt::host;
  logits_ = std::move(logits);
}

}  // namespace paca
