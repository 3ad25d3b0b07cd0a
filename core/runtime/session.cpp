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
    next_logits_.resize(static_cast<size_t>(vocab));
    for (size_t done = 0; done < tokens.size();) {
      size_t n = std::min<size_t>(tokens.size() - done, static_cast<size_t>(kMaxStepTokens));
      model_.step(*scratch_, tokens.subspan(done, n), static_cast<int>(old_len + done), kv_.view(), &cancel_, next_logits_);
      done += n;
    }
  } catch (...) {
    kv_.resize_for(old_len);
    throw;
  }
  logits_.assign(next_logits_.begin(), next_logits_.end());  // same size: the buffer callers may view stays put
  tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
  has_logits_ = true;
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
      s.next_logits_.resize(static_cast<size_t>(vocab));
      seqs.push_back({s.scratch_.get(), it.tokens, static_cast<int>(len), s.kv_.view(), s.next_logits_});
    }
    model.step_batch(seqs);
  } catch (...) {
    for (size_t i = 0; i < grown; ++i) items[i].session->kv_.resize_for(items[i].session->tokens_.size());
    throw;
  }
  for (const BatchItem& it : items) {
    Session& s = *it.session;
    s.logits_.assign(s.next_logits_.begin(), s.next_logits_.end());
    s.tokens_.insert(s.tokens_.end(), it.tokens.begin(), it.tokens.end());
    s.has_logits_ = true;
  }
}

void Session::rewind(size_t n_tokens) {
  check(n_tokens <= tokens_.size(), Status::invalid_argument, "cannot rewind to {} tokens: the session holds {}",
        n_tokens, tokens_.size());
  tokens_.resize(n_tokens);
  kv_.resize_for(n_tokens);
  has_logits_ = false;
}

std::unique_ptr<Session> Session::fork(size_t n_tokens) const {
  check(n_tokens <= tokens_.size(), Status::invalid_argument, "cannot fork at {} tokens: the session holds {}", n_tokens,
        tokens_.size());
  auto child = std::make_unique<Session>(model_, kv_.pool(), n_ctx_);
  child->kv_.share_prefix(kv_, n_tokens);
  child->tokens_.assign(tokens_.begin(), tokens_.begin() + static_cast<std::ptrdiff_t>(n_tokens));
  if (n_tokens == tokens_.size() && has_logits_) {
    child->logits_ = logits_;
    child->has_logits_ = true;
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
  has_logits_ = !logits.empty();
  logits_ = std::move(logits);
}

}  // namespace paca
