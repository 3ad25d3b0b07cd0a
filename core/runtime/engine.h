// engine.h - many requests on one model: a queue, a scheduler that runs
// continuous batching over the paged KV cache, and a shared prefix cache.
//
// Requests are submitted from any thread. Each step of the scheduler (its
// own thread, or the caller's with EngineOptions::own_thread = false):
//
//   1. ends cancelled requests and admits waiting ones (highest priority
//      first, then first come) while fewer than max_running run; a new
//      request takes the longest run of full KV blocks the prefix cache holds
//      for its prompt;
//   2. samples the next token of every request whose logits are ready
//      (Generator::next_deferred) and delivers it; a request that ends leaves;
//   3. fills one batch with those tokens and chunks of the prompts still to
//      prefill, up to max_step_tokens tokens, and runs it (Session::step_batch);
//   4. when the KV pool cannot hold the batch: evicts prefix-cache blocks no
//      request uses (least recently used first), then preempts the running
//      request of lowest priority that came last (its blocks are freed; it
//      goes back to the queue and recomputes its tokens when readmitted).
//
// A request's tokens do not depend on what else runs: Session::step_batch
// gives each sequence the bits a lone prefill would, and on the CPU backend a
// token's logits are the same bits in a prefill chunk of any size as decoded
// alone (backend/cpu/kernels.h), so chunking, prefix sharing and
// recomputation change nothing. (A GPU backend's GEMM and GEMV may round
// differently: there, tokens can differ in the last bits of the logits.)
//
// The prefix cache keys a full block by a hash chained over every token up to
// the block's end (and checks the tokens themselves, so a hash collision is a
// miss, not a wrong answer). Full blocks never change again (a sequence only
// writes at positions >= its length), so they are shared as they are.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "runtime/generator.h"
#include "runtime/session.h"
#include "sample/sampler.h"
#include "sample/stop.h"
#include "util/error.h"

namespace paca {

struct EngineOptions {
  size_t max_running = 64;       // requests in the running batch
  size_t max_step_tokens = 512;  // tokens in one forward pass (decodes and prefill chunks)
  size_t max_queued = 1024;      // waiting requests; submit beyond: Error(busy)
  int n_ctx = 0;                 // each request's context; <= 0: the model's
  bool prefix_cache = true;
  // Blocks the prefix cache keeps beyond those running requests use; 0: the
  // pool's size for a reserved pool, 4096 blocks for an unbounded one.
  size_t max_cached_blocks = 0;
  bool own_thread = true;        // false: the caller runs step()
};

// What a request's last event reports.
struct RequestStats {
  uint32_t n_prompt = 0;
  uint32_t n_cached = 0;     // prompt tokens whose K/V came from the prefix cache
  uint32_t n_generated = 0;
  uint32_t n_preempted = 0;
  double queue_ms = 0;        // submit -> first step
  double first_token_ms = 0;  // submit -> first token (0: none)
  double total_ms = 0;        // submit -> end
};

struct RequestEvent {
  uint64_t id = 0;
  int32_t token = -1;  // -1: an end event without a token
  std::string text;    // the text this token completes
  float logprob = 0;   // with GenerateOptions::logprobs
  StopReason reason = StopReason::none;
  Status status = Status::ok;  // not ok: the request failed or was cancelled (and ended)
  std::string error;
  bool last = false;   // the request's last event (then stats is filled)
  RequestStats stats;
};

struct EngineRequest {
  std::vector<int32_t> prompt;  // >= 1 token
  std::unique_ptr<Sampler> sampler;
  StopConditions stop;
  GenerateOptions options;
  int priority = 0;  // higher starts first, is preempted last
  // Called on the scheduler's thread, outside the engine's lock (it may
  // submit or cancel). Null: events queue up for poll().
  std::function<void(const RequestEvent&)> on_event;
};

struct EngineStats {
  size_t n_queued = 0, n_running = 0;
  uint64_t n_submitted = 0, n_finished = 0, n_steps = 0;
  uint64_t n_prefill_tokens = 0, n_generated_tokens = 0, n_cached_tokens = 0, n_preemptions = 0;
  uint64_t kv_blocks_used = 0, kv_blocks_cached = 0, kv_blocks_total = 0;
  uint32_t kv_block_tokens = 0;
};

class Engine {
 public:
  // model and pool (the model's KV pool) must outlive the engine. tok may be
  // null (no text, no stop strings).
  Engine(ModelRunner& model, BlockPool& pool, const Tokenizer* tok, EngineOptions opt);
  ~Engine();  // ends every request (cancelled) and joins the thread
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues r and returns its id (from 1). Throws Error(invalid_argument) for
  // an empty prompt or an id outside the vocabulary, Error(context_full) for
  // a prompt the context cannot hold, Error(busy) when max_queued wait.
  uint64_t submit(EngineRequest r);
  // Asks a request to end (status cancelled) at the next step; unknown or
  // finished ids are ignored.
  void cancel(uint64_t id);

  enum class Poll { event, timeout, unknown };
  // The next event of a request without on_event, waiting up to timeout_ms
  // (< 0: no limit). unknown: no such request (or its last event was taken,
  // or it has a callback).
  Poll poll(uint64_t id, int timeout_ms, RequestEvent& out);

  // One scheduling step (only without own_thread; Error(state) else).
  // Returns the number of requests running or waiting afterwards.
  size_t step();
  EngineStats stats() const;
  const EngineOptions& options() const { return opt_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Request;
  struct CacheEntry {
    uint8_t* block;
    uint64_t parent;              // the hash of the blocks before
    std::vector<int32_t> tokens;  // the block's tokens
    std::list<uint64_t>::iterator lru;
  };

  size_t run_step();
  void admit(Request& r);
  void sample_ready(std::vector<Request*>& ended);
  bool run_batch(std::vector<Request*>& ended);
  bool make_room(std::vector<Request*>& batch, std::vector<Request*>& ended);
  void preempt(Request& r);
  void cache_blocks(const Request& r);
  bool evict_one_unused();
  void finish(Request& r, RequestEvent last, Status status, const std::string& error);
  void deliver(Request& r, RequestEvent ev);
  void flush_events();
  void thread_main();
  size_t cache_limit() const;

  ModelRunner& model_;
  BlockPool& pool_;
  const Tokenizer* tok_;
  EngineOptions opt_;

  mutable std::mutex mutex_;  // guards queue_, requests_, counters, events, stopping_
  std::condition_variable work_cv_;   // the scheduler waits for work
  std::condition_variable event_cv_;  // pollers wait for events
  std::map<uint64_t, std::unique_ptr<Request>> requests_;  // every request not yet forgotten
  std::vector<Request*> queue_;    // waiting (unordered; admission picks)
  std::vector<Request*> running_;  // the scheduler's (touched under mutex_ for counts only)
  uint64_t next_id_ = 1, next_seq_ = 0;
  bool stopping_ = false;
  EngineStats counters_;

  // The scheduler's own (no lock: one step at a time, step_mutex_).
  std::mutex step_mutex_;
  std::unordered_map<uint64_t, CacheEntry> cache_;
  std::list<uint64_t> lru_;  // most recently used first
  std::vector<std::pair<Request*, RequestEvent>> outbox_;  // callback events of this step
  std::thread thread_;
};

}  // namespace paca
