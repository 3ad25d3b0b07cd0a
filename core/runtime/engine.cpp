// engine.cpp - the scheduler, the prefix cache and the request queue (see
// engine.h).
#include "runtime/engine.h"

#include <algorithm>

namespace paca {

struct Engine::Request {
  uint64_t id = 0, seq = 0;  // seq: arrival order (kept through preemption)
  int priority = 0;
  std::unique_ptr<Sampler> sampler;
  StopConditions stop;
  GenerateOptions options;
  std::function<void(const RequestEvent&)> on_event;
  std::atomic<bool> cancelled{false};
  bool queued = true;  // in queue_ (else running or ended)
  bool ended = false;

  std::unique_ptr<Session> session;
  std::unique_ptr<Generator> gen;  // made once the prompt is prefilled
  std::vector<int32_t> replay;     // tokens the session must hold before it samples (prompt, or all after preemption)
  int32_t pending = -1;            // this step: the sampled token to append
  size_t chunk = 0;                // this step: prefill tokens from replay

  std::deque<RequestEvent> events;  // poll mode
  RequestStats stats;
  Clock::time_point t_submit;
  bool started = false;

  bool prefilling() const { return session != nullptr && session->length() < replay.size(); }
  bool better_than(const Request& o) const { return priority != o.priority ? priority > o.priority : seq < o.seq; }
};

namespace {

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

uint64_t mix(uint64_t h, uint64_t v) {  // splitmix64 of h ^ v
  uint64_t z = h ^ (v + 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t block_hash(uint64_t parent, std::span<const int32_t> tokens) {
  uint64_t h = mix(parent, tokens.size());
  for (int32_t t : tokens) h = mix(h, static_cast<uint32_t>(t));
  return h;
}

constexpr uint64_t kRootHash = 0x70616361;  // "paca"

}  // namespace

Engine::Engine(ModelRunner& model, BlockPool& pool, const Tokenizer* tok, EngineOptions opt)
    : model_(model), pool_(pool), tok_(tok), opt_(opt) {
  check(opt_.max_running >= 1 && opt_.max_running <= 65536, Status::invalid_argument,
        "max_running must be in 1..65536 (got {})", opt_.max_running);
  check(opt_.max_step_tokens >= 1 && opt_.max_step_tokens <= (size_t{1} << 20), Status::invalid_argument,
        "max_step_tokens must be in 1..1048576 (got {})", opt_.max_step_tokens);
  check(opt_.max_queued <= (size_t{1} << 24), Status::invalid_argument, "max_queued must be <= 16777216 (got {})",
        opt_.max_queued);
  if (opt_.n_ctx <= 0) opt_.n_ctx = model.config().max_context;
  check(opt_.n_ctx <= model.config().max_context, Status::invalid_argument,
        "n_ctx {} exceeds the model's context of {} tokens", opt_.n_ctx, model.config().max_context);
  counters_.kv_block_tokens = static_cast<uint32_t>(pool.layout().block_tokens);
  counters_.kv_blocks_total = pool.max_blocks();
  if (opt_.own_thread) thread_ = std::thread([this] { thread_main(); });
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> step_lock(step_mutex_);
  std::vector<Request*> open;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [id, r] : requests_)
      if (!r->ended) open.push_back(r.get());
  }
  for (Request* r : open) finish(*r, RequestEvent{}, Status::cancelled, "the engine was shut down");
  flush_events();
  for (auto& [h, e] : cache_) pool_.release(e.block);
  cache_.clear();
}

size_t Engine::cache_limit() const {
  if (opt_.max_cached_blocks > 0) return opt_.max_cached_blocks;
  return pool_.max_blocks() > 0 ? pool_.max_blocks() : 4096;
}

uint64_t Engine::submit(EngineRequest in) {
  check(!in.prompt.empty(), Status::invalid_argument, "a request needs at least one prompt token");
  check(in.sampler != nullptr, Status::invalid_argument, "a request needs a sampler");
  const int vocab = model_.config().n_vocab;
  for (size_t i = 0; i < in.prompt.size(); ++i)
    check(in.prompt[i] >= 0 && in.prompt[i] < vocab, Status::invalid_argument,
          "token id {} at index {} is outside the vocabulary [0, {})", in.prompt[i], i, vocab);
  check(in.prompt.size() <= static_cast<size_t>(opt_.n_ctx), Status::context_full,
        "a prompt of {} tokens does not fit the {}-token context", in.prompt.size(), opt_.n_ctx);
  if (!in.options.stop_strings.empty()) {
    check(tok_ != nullptr, Status::state, "stop strings need a model with a tokenizer");
    (void)StopStringMatcher(in.options.stop_strings);  // refuses an empty one
  }
  auto r = std::make_unique<Request>();
  r->priority = in.priority;
  r->sampler = std::move(in.sampler);
  r->stop = std::move(in.stop);
  r->options = std::move(in.options);
  r->on_event = std::move(in.on_event);
  r->stats.n_prompt = static_cast<uint32_t>(in.prompt.size());
  r->replay = std::move(in.prompt);
  r->t_submit = Clock::now();
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    check(!stopping_, Status::state, "the engine is shutting down");
    check(queue_.size() < opt_.max_queued, Status::busy, "{} requests are waiting (max_queued); try again later",
          queue_.size());
    id = r->id = next_id_++;
    r->seq = next_seq_++;
    queue_.push_back(r.get());
    requests_.emplace(id, std::move(r));
    ++counters_.n_submitted;
  }
  work_cv_.notify_all();
  return id;
}

void Engine::cancel(uint64_t id) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = requests_.find(id);
    if (it == requests_.end()) return;
    it->second->cancelled.store(true);
  }
  work_cv_.notify_all();
}

Engine::Poll Engine::poll(uint64_t id, int timeout_ms, RequestEvent& out) {
  std::unique_lock<std::mutex> lock(mutex_);
  auto it = requests_.find(id);
  if (it == requests_.end() || it->second->on_event) return Poll::unknown;
  Request* r = it->second.get();
  auto ready = [&] { return !r->events.empty(); };
  if (timeout_ms < 0) event_cv_.wait(lock, ready);
  else if (!event_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), ready)) return Poll::timeout;
  out = std::move(r->events.front());
  r->events.pop_front();
  if (out.last) requests_.erase(id);  // the scheduler is done with it (finish delivers last)
  return Poll::event;
}

size_t Engine::step() {
  check(!opt_.own_thread, Status::state, "this engine runs its own scheduler thread (own_thread)");
  return run_step();
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  EngineStats s = counters_;
  s.n_queued = queue_.size();
  s.n_running = running_.size();
  s.kv_blocks_used = pool_.blocks_in_use();
  return s;
}

void Engine::thread_main() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || !running_.empty(); });
      if (stopping_) return;
    }
    run_step();
  }
}

// ---- one step ----------------------------------------------------------------

size_t Engine::run_step() {
  std::lock_guard<std::mutex> step_lock(step_mutex_);
  std::vector<Request*> admitted, cancelled;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (Request* r : queue_)
      if (r->cancelled.load()) cancelled.push_back(r);
    for (Request* r : running_)
      if (r->cancelled.load()) cancelled.push_back(r);
  }
  for (Request* r : cancelled) finish(*r, RequestEvent{}, Status::cancelled, "the request was cancelled");
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // A reserved pool admits while the blocks free (or held by the cache
    // alone) cover a first chunk and one new block per running request; an
    // empty batch always admits one, so the engine cannot stall.
    size_t spare = SIZE_MAX;
    if (pool_.max_blocks() > 0) {
      size_t evictable = 0;
      for (const auto& [h, e] : cache_) evictable += pool_.ref_count(e.block) == 1;
      spare = pool_.max_blocks() - pool_.blocks_in_use() + evictable;
    }
    const size_t bt = static_cast<size_t>(pool_.layout().block_tokens);
    while (running_.size() < opt_.max_running && !queue_.empty()) {
      auto best = std::min_element(queue_.begin(), queue_.end(),
                                   [](const Request* a, const Request* b) { return a->better_than(*b); });
      Request* r = *best;
      const size_t first = std::min<size_t>(r->replay.size(), ModelRunner::kMaxStepTokens);
      const size_t need = (first + bt - 1) / bt + running_.size();
      if (!running_.empty() && spare != SIZE_MAX && need > spare) break;
      if (spare != SIZE_MAX) spare = need > spare ? 0 : spare - need;
      queue_.erase(best);
      r->queued = false;
      running_.push_back(r);
      admitted.push_back(r);
    }
  }
  for (Request* r : admitted) {
    try {
      admit(*r);
    } catch (const Error& e) {
      finish(*r, RequestEvent{}, e.status(), e.what());
    } catch (const std::exception& e) {
      finish(*r, RequestEvent{}, Status::internal, e.what());
    }
  }
  std::vector<Request*> ended;
  sample_ready(ended);
  if (run_batch(ended)) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++counters_.n_steps;
  }
  flush_events();
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.size() + running_.size();
}

void Engine::admit(Request& r) {
  if (!r.started) {
    r.started = true;
    r.stats.queue_ms = ms_since(r.t_submit);
  }
  if (r.session == nullptr) r.session = std::make_unique<Session>(model_, pool_, opt_.n_ctx);
  if (!opt_.prefix_cache) return;
  // the longest run of cached full blocks that starts the tokens to replay
  const size_t bt = static_cast<size_t>(pool_.layout().block_tokens);
  const std::span<const int32_t> tokens(r.replay);
  std::vector<uint8_t*> blocks;
  std::vector<uint64_t> keys;
  uint64_t h = kRootHash;
  for (size_t k = 0; (k + 1) * bt <= tokens.size(); ++k) {
    const auto part = tokens.subspan(k * bt, bt);
    const uint64_t hk = block_hash(h, part);
    auto it = cache_.find(hk);
    if (it == cache_.end() || it->second.parent != h || !std::equal(part.begin(), part.end(), it->second.tokens.begin()))
      break;
    blocks.push_back(it->second.block);
    keys.push_back(hk);
    h = hk;
  }
  // most recently used: the shortest prefixes, so that eviction takes the ends of chains first
  for (auto k = keys.rbegin(); k != keys.rend(); ++k) lru_.splice(lru_.begin(), lru_, cache_.at(*k).lru);
  // at least the last token runs, for its logits
  const size_t take = std::min(blocks.size() * bt, tokens.size() - 1);
  if (take == 0) return;
  KvBlocks kv(pool_);
  kv.share_blocks(std::span<uint8_t* const>(blocks.data(), (take + bt - 1) / bt));
  r.session->adopt(std::vector<int32_t>(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(take)), kv, {});
  if (r.gen == nullptr) r.stats.n_cached = static_cast<uint32_t>(take);  // the first admission's prompt
  std::lock_guard<std::mutex> lock(mutex_);
  counters_.n_cached_tokens += take;
}

// Step 2: every request whose logits are ready samples its next token.
void Engine::sample_ready(std::vector<Request*>& ended) {
  std::vector<Request*> ready;
  for (Request* r : running_)
    if (r->gen != nullptr && !r->prefilling()) ready.push_back(r);
  for (Request* r : ready) {
    RequestEvent ev;
    try {
      const Generator::Step s = r->gen->next_deferred();
      ev.token = s.token;
      ev.text.assign(s.text);
      if (r->options.logprobs) ev.logprob = r->gen->logprobs().logprob;
    } catch (const Error& e) {
      finish(*r, RequestEvent{}, e.status(), e.what());
      ended.push_back(r);
      continue;
    } catch (const std::exception& e) {
      finish(*r, RequestEvent{}, Status::internal, e.what());
      ended.push_back(r);
      continue;
    }
    ++r->stats.n_generated;
    if (r->stats.n_generated == 1) r->stats.first_token_ms = ms_since(r->t_submit);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++counters_.n_generated_tokens;
    }
    if (r->gen->done()) {
      ev.reason = r->gen->stop_reason();
      finish(*r, std::move(ev), Status::ok, "");
      ended.push_back(r);
      continue;
    }
    r->pending = ev.token;
    deliver(*r, std::move(ev));
  }
}

// Step 3 and 4: the batch, room for it in the pool, the forward pass.
bool Engine::run_batch(std::vector<Request*>& ended) {
  std::vector<Request*> order(running_);
  std::sort(order.begin(), order.end(), [](const Request* a, const Request* b) { return a->better_than(*b); });
  // decodes always run; prefill chunks fill what the budget leaves
  size_t decodes = 0;
  for (Request* r : order) {
    r->chunk = 0;
    decodes += r->pending >= 0;
  }
  size_t budget = opt_.max_step_tokens > decodes ? opt_.max_step_tokens - decodes : 0;
  std::vector<Request*> batch;
  for (Request* r : order) {
    if (r->pending >= 0) {
      batch.push_back(r);
    } else if (r->prefilling() && budget > 0) {
      r->chunk = std::min({r->replay.size() - r->session->length(), budget, size_t{ModelRunner::kMaxStepTokens}});
      budget -= r->chunk;
      batch.push_back(r);
    }
  }
  if (batch.empty()) return false;
  if (!make_room(batch, ended)) return false;
  if (batch.empty()) return false;
  std::vector<Session::BatchItem> items;
  items.reserve(batch.size());
  for (Request* r : batch) {
    if (r->pending >= 0)
      items.push_back({r->session.get(), std::span<const int32_t>(&r->pending, 1)});
    else
      items.push_back({r->session.get(), std::span<const int32_t>(r->replay).subspan(r->session->length(), r->chunk)});
  }
  try {
    Session::step_batch(items);
  } catch (const std::exception& e) {
    const Error* pe = dynamic_cast<const Error*>(&e);
    for (Request* r : batch) {
      r->pending = -1;
      finish(*r, RequestEvent{}, pe != nullptr ? pe->status() : Status::internal, e.what());
      ended.push_back(r);
    }
    return true;
  }
  uint64_t prefilled = 0;
  for (Request* r : batch) {
    if (r->pending >= 0) {
      r->pending = -1;
      continue;
    }
    prefilled += r->chunk;
    if (r->prefilling()) continue;
    cache_blocks(*r);
    if (r->gen == nullptr) {
      try {
        r->gen = std::make_unique<Generator>(*r->session, *r->sampler, r->stop, tok_, model_.config().bos_id,
                                             r->options);
      } catch (const Error& e) {
        finish(*r, RequestEvent{}, e.status(), e.what());
        ended.push_back(r);
      }
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  counters_.n_prefill_tokens += prefilled;
  return true;
}

// Makes the pool hold the batch's new blocks: evicts unused cached blocks,
// then preempts the worst running requests (taking them out of the batch). A
// request that cannot fit even alone fails. False: nothing left to run.
bool Engine::make_room(std::vector<Request*>& batch, std::vector<Request*>& ended) {
  if (pool_.max_blocks() == 0) return true;
  const size_t bt = static_cast<size_t>(pool_.layout().block_tokens);
  auto needed = [&] {
    size_t n = 0;
    for (const Request* r : batch) {
      const size_t len = r->session->length(), add = r->pending >= 0 ? 1 : r->chunk;
      const KvBlocks& kv = r->session->kv();
      n += (len + add + bt - 1) / bt - kv.n_blocks();
      const size_t b = len / bt;  // the block written first is copied when shared
      if (len % bt != 0 && b < kv.n_blocks() && pool_.ref_count(kv.blocks()[b]) > 1) ++n;
    }
    return n;
  };
  for (;;) {
    const size_t need = needed();
    if (need <= pool_.max_blocks() - pool_.blocks_in_use()) return true;
    if (evict_one_unused()) continue;
    // the victim: the worst running request that holds blocks
    Request* victim = nullptr;
    for (Request* r : running_)
      if (r->session != nullptr && r->session->kv().n_blocks() > 0 && (victim == nullptr || victim->better_than(*r)))
        victim = r;
    const bool alone = running_.size() == 1 || victim == nullptr;
    if (alone) {
      // nothing else to free: the batch's requests cannot fit at all
      for (Request* r : std::vector<Request*>(batch)) {
        r->pending = -1;
        finish(*r, RequestEvent{}, Status::out_of_memory,
               fmt::format("the KV cache is full: its {} blocks of {} tokens cannot hold this request",
                           pool_.max_blocks(), bt));
        ended.push_back(r);
      }
      batch.clear();
      return false;
    }
    batch.erase(std::remove(batch.begin(), batch.end(), victim), batch.end());
    preempt(*victim);
  }
}

void Engine::preempt(Request& r) {
  // the tokens to recompute: all the session holds, and the token sampled for this step
  std::vector<int32_t> tokens = r.session->tokens();
  if (r.pending >= 0) tokens.push_back(r.pending);
  r.pending = -1;
  r.chunk = 0;
  cache_blocks(r);  // what was computed may come back from the cache
  r.session->rewind(0);
  r.replay = std::move(tokens);
  ++r.stats.n_preempted;
  std::lock_guard<std::mutex> lock(mutex_);
  ++counters_.n_preemptions;
  running_.erase(std::remove(running_.begin(), running_.end(), &r), running_.end());
  r.queued = true;
  queue_.push_back(&r);
}

// Puts the session's full blocks into the prefix cache (the prompt's, and
// what was generated: a chat's next turn starts with them).
void Engine::cache_blocks(const Request& r) {
  if (!opt_.prefix_cache) return;
  const size_t bt = static_cast<size_t>(pool_.layout().block_tokens);
  const std::vector<int32_t>& tokens = r.session->tokens();
  const std::vector<uint8_t*>& blocks = r.session->kv().blocks();
  uint64_t h = kRootHash;
  std::vector<uint64_t> chain;
  for (size_t k = 0; (k + 1) * bt <= tokens.size() && k < blocks.size(); ++k) {
    const std::span<const int32_t> part(tokens.data() + k * bt, bt);
    const uint64_t hk = block_hash(h, part);
    auto it = cache_.find(hk);
    if (it == cache_.end()) {
      pool_.retain(blocks[k]);
      cache_.emplace(hk, CacheEntry{blocks[k], h, std::vector<int32_t>(part.begin(), part.end()),
                                    lru_.insert(lru_.begin(), hk)});
    } else if (it->second.parent != h || !std::equal(part.begin(), part.end(), it->second.tokens.begin())) {
      break;  // a hash collision: this chain stays out
    }
    chain.push_back(hk);
    h = hk;
  }
  // most recently used, the shortest prefixes first (eviction takes the ends of chains first)
  for (auto k = chain.rbegin(); k != chain.rend(); ++k) lru_.splice(lru_.begin(), lru_, cache_.at(*k).lru);
  const size_t limit = cache_limit();
  while (cache_.size() > limit) {
    const uint64_t hk = lru_.back();
    pool_.release(cache_.at(hk).block);
    cache_.erase(hk);
    lru_.pop_back();
  }
  std::lock_guard<std::mutex> lock(mutex_);
  counters_.kv_blocks_cached = cache_.size();
}

bool Engine::evict_one_unused() {
  bool freed = false;
  for (auto it = lru_.rbegin(); it != lru_.rend(); ++it) {
    auto e = cache_.find(*it);
    if (pool_.ref_count(e->second.block) != 1) continue;
    pool_.release(e->second.block);
    lru_.erase(e->second.lru);
    cache_.erase(e);
    freed = true;
    break;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  counters_.kv_blocks_cached = cache_.size();
  return freed;
}

// ---- ends and events ---------------------------------------------------------

void Engine::finish(Request& r, RequestEvent ev, Status status, const std::string& error) {
  if (r.ended) return;
  r.ended = true;
  if (r.session != nullptr) cache_blocks(r);  // a failed step left the session as it was
  r.gen.reset();  // before the session it reads
  r.session.reset();
  ev.status = status;
  ev.error = error;
  ev.last = true;
  r.stats.total_ms = ms_since(r.t_submit);
  if (!r.started) r.stats.queue_ms = r.stats.total_ms;
  ev.stats = r.stats;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (r.queued) queue_.erase(std::remove(queue_.begin(), queue_.end(), &r), queue_.end());
    else running_.erase(std::remove(running_.begin(), running_.end(), &r), running_.end());
    r.queued = false;
    ++counters_.n_finished;
  }
  deliver(r, std::move(ev));
}

void Engine::deliver(Request& r, RequestEvent ev) {
  ev.id = r.id;
  if (r.on_event) {
    outbox_.emplace_back(&r, std::move(ev));
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    r.events.push_back(std::move(ev));
  }
  event_cv_.notify_all();
}

void Engine::flush_events() {
  std::vector<std::pair<Request*, RequestEvent>> out;
  out.swap(outbox_);
  for (auto& [r, ev] : out) {
    try {
      r->on_event(ev);
    } catch (...) {
      // a throwing callback must not take the scheduler down; its request ends
      if (!ev.last) r->cancelled.store(true);
    }
    if (ev.last) {
      std::lock_guard<std::mutex> lock(mutex_);
      requests_.erase(r->id);
    }
  }
}

}  // namespace paca
