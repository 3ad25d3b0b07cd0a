// engine_test.cpp - the serving engine on a small random model: many
// requests give the tokens each would get alone (chunked prefill, mixed
// batches, prefix sharing and preemption change nothing), the prefix cache
// shares blocks, a full pool preempts and recomputes, a request too large for
// the pool fails alone, cancel, queue limits and priorities.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>

#include "runtime/engine.h"
#include "session_fixture.h"

namespace {

using paca_test::Fixture;
using paca_test::prompt_of;

struct Spec {
  std::vector<int32_t> prompt;
  float temperature = 1.0f;
  uint64_t seed = 1;
  uint64_t max_new = 20;
  int priority = 0;
};

paca::StopConditions stop_of(const Spec& s) {
  paca::StopConditions stop;
  stop.ignore_eos = true;  // random weights: fixed lengths
  stop.max_new_tokens = s.max_new;
  return stop;
}

paca::SamplerParams params_of(const Spec& s) {
  paca::SamplerParams p;
  p.temperature = s.temperature;
  p.seed = s.seed;
  p.top_k = 40;
  p.repeat_penalty = 1.1f;
  return p;
}

// The tokens a lone Generator gives for s on a fresh session.
std::vector<int32_t> alone(Fixture& f, const Spec& s) {
  auto session = f.session();
  session->prefill(s.prompt);
  paca::Sampler sampler(params_of(s), f.model->config().n_vocab);
  const paca::StopConditions stop = stop_of(s);
  paca::Generator g(*session, sampler, stop, nullptr, f.model->config().bos_id, {});
  std::vector<int32_t> out;
  while (!g.done()) out.push_back(g.next().token);
  return out;
}

paca::EngineRequest request_of(Fixture& f, const Spec& s) {
  paca::EngineRequest r;
  r.prompt = s.prompt;
  r.sampler = std::make_unique<paca::Sampler>(params_of(s), f.model->config().n_vocab);
  r.stop = stop_of(s);
  r.priority = s.priority;
  return r;
}

struct Result {
  std::vector<int32_t> tokens;
  paca::RequestEvent last;
};

// Polls id to its end (the engine runs its own thread, or `step` is run here).
Result drain(paca::Engine& e, uint64_t id) {
  Result r;
  for (;;) {
    paca::RequestEvent ev;
    if (!e.options().own_thread)
      while (e.poll(id, 0, ev) == paca::Engine::Poll::timeout) e.step();
    else
      EXPECT_EQ(e.poll(id, 60000, ev), paca::Engine::Poll::event);
    if (ev.token >= 0) r.tokens.push_back(ev.token);
    if (ev.last) {
      r.last = ev;
      return r;
    }
  }
}

std::vector<Spec> mixed_specs() {
  std::vector<Spec> specs;
  const size_t lens[] = {1, 5, 17, 40, 100, 150, 33, 64};
  for (size_t i = 0; i < 8; ++i) {
    Spec s;
    s.prompt = prompt_of(lens[i], static_cast<uint32_t>(100 + i));
    s.seed = 1000 + i;
    s.temperature = i % 3 == 0 ? 0.0f : 0.9f;
    s.max_new = 12 + 3 * i;
    specs.push_back(s);
  }
  // two that share a long prefix with the fifth
  Spec a = specs[4], b = specs[4];
  a.prompt.resize(90);
  a.prompt.push_back(7);
  a.seed = 77;
  b.seed = 78;
  specs.push_back(a);
  specs.push_back(b);
  return specs;
}

TEST(Engine, ManyRequestsGiveTheTokensOfLoneGenerators) {
  Fixture f;
  const auto specs = mixed_specs();
  std::vector<std::vector<int32_t>> want;
  for (const Spec& s : specs) want.push_back(alone(f, s));
  // a small step budget: prompts are cut into chunks that share steps with decodes
  for (size_t budget : {size_t{7}, size_t{48}, size_t{512}}) {
    paca::EngineOptions o;
    o.own_thread = false;
    o.max_step_tokens = budget;
    paca::Engine e(*f.model, *f.pool, nullptr, o);
    std::vector<uint64_t> ids;
    for (const Spec& s : specs) ids.push_back(e.submit(request_of(f, s)));
    for (size_t i = 0; i < specs.size(); ++i) {
      const Result r = drain(e, ids[i]);
      EXPECT_EQ(r.last.status, paca::Status::ok) << r.last.error;
      EXPECT_EQ(r.last.reason, paca::StopReason::max_tokens);
      EXPECT_EQ(r.tokens, want[i]) << "request " << i << ", budget " << budget;
      EXPECT_EQ(r.last.stats.n_generated, specs[i].max_new);
      EXPECT_EQ(r.last.stats.n_prompt, specs[i].prompt.size());
    }
    const paca::EngineStats st = e.stats();
    EXPECT_EQ(st.n_finished, specs.size());
    EXPECT_EQ(st.n_queued + st.n_running, 0u);
    EXPECT_GT(st.n_steps, 20u);
  }
}

TEST(Engine, CallbacksFromTheSchedulerThreadWithSubmitsFromManyThreads) {
  Fixture f;
  const auto specs = mixed_specs();
  std::vector<std::vector<int32_t>> want;
  for (const Spec& s : specs) want.push_back(alone(f, s));
  std::mutex mu;
  std::condition_variable cv;
  std::map<size_t, std::vector<int32_t>> got;
  std::map<size_t, paca::Status> status;
  {
    paca::EngineOptions o;
    o.max_step_tokens = 32;
    paca::Engine e(*f.model, *f.pool, nullptr, o);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < 4; ++t)
      threads.emplace_back([&, t] {
        for (size_t i = t; i < specs.size(); i += 4) {
          paca::EngineRequest r = request_of(f, specs[i]);
          r.on_event = [&, i](const paca::RequestEvent& ev) {
            std::lock_guard<std::mutex> lock(mu);
            if (ev.token >= 0) got[i].push_back(ev.token);
            if (ev.last) {
              status[i] = ev.status;
              cv.notify_all();
            }
          };
          e.submit(std::move(r));
        }
      });
    for (auto& th : threads) th.join();
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(120), [&] { return status.size() == specs.size(); }));
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    EXPECT_EQ(status[i], paca::Status::ok);
    EXPECT_EQ(got[i], want[i]) << "request " << i;
  }
}

TEST(Engine, PrefixCacheSharesFullBlocksAndChangesNoToken) {
  Fixture f;  // 16-token blocks
  paca::EngineOptions o;
  o.own_thread = false;
  paca::Engine e(*f.model, *f.pool, nullptr, o);
  Spec base;
  base.prompt = prompt_of(70, 5);
  Result first = drain(e, e.submit(request_of(f, base)));
  EXPECT_EQ(first.last.stats.n_cached, 0u);
  EXPECT_GT(e.stats().kv_blocks_cached, 4u);  // the prompt's 4 full blocks and generated ones

  Spec other = base;  // 64 shared tokens, then its own
  other.prompt.resize(64);
  for (int32_t t : prompt_of(10, 6)) other.prompt.push_back(t);
  other.seed = 9;
  Result r = drain(e, e.submit(request_of(f, other)));
  EXPECT_EQ(r.last.stats.n_cached, 64u);
  EXPECT_EQ(r.tokens, alone(f, other));

  // the same prompt again: all but its last token come from the cache
  Spec same = base;
  same.prompt.resize(64);  // exactly 4 blocks: the 4th is shared, then copied before it is written
  Result a = drain(e, e.submit(request_of(f, same)));
  Result b = drain(e, e.submit(request_of(f, same)));
  EXPECT_EQ(a.last.stats.n_cached, 63u);  // base's 4 blocks
  EXPECT_EQ(b.last.stats.n_cached, 63u);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(b.tokens, alone(f, same));
  EXPECT_EQ(e.stats().n_cached_tokens, 64u + 63u + 63u);


  // a different first token shares nothing
  Spec miss = base;
  miss.prompt[0] = (miss.prompt[0] + 1) % 300;
  EXPECT_EQ(drain(e, e.submit(request_of(f, miss))).last.stats.n_cached, 0u);
}

TEST(Engine, AFullPoolPreemptsAndRecomputesTheSameTokens) {
  Fixture f;
  // 12 blocks of 16 tokens; four requests of 40 + 40 tokens need 20
  paca::BlockPool pool(f.model->backend(), f.model->kv_layout(), 12);
  std::vector<Spec> specs;
  for (uint32_t i = 0; i < 4; ++i) {
    Spec s;
    s.prompt = prompt_of(40, 200 + i);
    s.seed = 300 + i;
    s.max_new = 40;
    s.priority = i == 3 ? 1 : 0;
    specs.push_back(s);
  }
  for (bool cache : {false, true}) {
    paca::EngineOptions o;
    o.own_thread = false;
    o.prefix_cache = cache;
    paca::Engine e(*f.model, pool, nullptr, o);
    std::vector<uint64_t> ids;
    for (const Spec& s : specs) ids.push_back(e.submit(request_of(f, s)));
    uint32_t preempted = 0;
    for (size_t i = 0; i < specs.size(); ++i) {
      const Result r = drain(e, ids[i]);
      EXPECT_EQ(r.last.status, paca::Status::ok) << r.last.error;
      EXPECT_EQ(r.tokens, alone(f, specs[i])) << "request " << i << (cache ? " with" : " without") << " the cache";
      preempted += r.last.stats.n_preempted;
      if (i == 3) {
        EXPECT_EQ(r.last.stats.n_preempted, 0u) << "the high-priority request was preempted";
      }
    }
    EXPECT_GT(preempted, 0u);
    EXPECT_EQ(e.stats().n_preemptions, preempted);
    EXPECT_LE(pool.blocks_in_use(), 12u);
  }
  EXPECT_EQ(pool.blocks_in_use(), 0u);  // the engines gave every block back
}

TEST(Engine, ARequestThePoolCannotHoldFailsAlone) {
  Fixture f;
  paca::BlockPool pool(f.model->backend(), f.model->kv_layout(), 4);  // 64 positions
  paca::EngineOptions o;
  o.own_thread = false;
  paca::Engine e(*f.model, pool, nullptr, o);
  Spec big, small;
  big.prompt = prompt_of(100, 1);
  small.prompt = prompt_of(10, 2);
  small.max_new = 5;
  const uint64_t b = e.submit(request_of(f, big)), s = e.submit(request_of(f, small));
  const Result rb = drain(e, b);
  EXPECT_EQ(rb.last.status, paca::Status::out_of_memory);
  EXPECT_NE(rb.last.error.find("KV cache is full"), std::string::npos) << rb.last.error;
  const Result rs = drain(e, s);
  EXPECT_EQ(rs.last.status, paca::Status::ok) << rs.last.error;
  EXPECT_EQ(rs.tokens, alone(f, small));
}

TEST(Engine, CancelEndsRunningAndWaitingRequests) {
  Fixture f;
  paca::EngineOptions o;
  o.own_thread = false;
  o.max_running = 1;
  paca::Engine e(*f.model, *f.pool, nullptr, o);
  Spec endless;
  endless.prompt = prompt_of(8, 3);
  endless.max_new = 0;  // only the context ends it
  const uint64_t running = e.submit(request_of(f, endless));
  const uint64_t waiting = e.submit(request_of(f, endless));
  for (int i = 0; i < 4; ++i) e.step();
  paca::RequestEvent ev;
  ASSERT_EQ(e.poll(running, 0, ev), paca::Engine::Poll::event);    // it runs
  EXPECT_EQ(e.poll(waiting, 0, ev), paca::Engine::Poll::timeout);  // max_running 1: it waits
  e.cancel(waiting);
  e.cancel(running);
  for (uint64_t id : {running, waiting}) {
    Result r = drain(e, id);
    EXPECT_EQ(r.last.status, paca::Status::cancelled);
    EXPECT_LT(r.last.stats.n_generated, 5u);
  }
  EXPECT_EQ(e.poll(running, 0, ev), paca::Engine::Poll::unknown);  // forgotten after its last event
  e.cancel(12345);                                                 // unknown ids are ignored
}

TEST(Engine, TheQueueLimitRefusesWithBusyAndBadRequestsAreRefused) {
  Fixture f;
  paca::EngineOptions o;
  o.own_thread = false;
  o.max_queued = 2;
  paca::Engine e(*f.model, *f.pool, nullptr, o);
  Spec s;
  s.prompt = prompt_of(4, 1);
  e.submit(request_of(f, s));
  e.submit(request_of(f, s));
  try {
    e.submit(request_of(f, s));
    ADD_FAILURE() << "a third request was queued";
  } catch (const paca::Error& err) {
    EXPECT_EQ(err.status(), paca::Status::busy);
  }
  e.step();  // admits both: room again
  EXPECT_NO_THROW(e.submit(request_of(f, s)));

  Spec bad = s;
  bad.prompt[1] = 300;
  EXPECT_THROW(e.submit(request_of(f, bad)), paca::Error);
  Spec empty;
  EXPECT_THROW(e.submit(request_of(f, empty)), paca::Error);
  Spec huge;
  huge.prompt = prompt_of(257, 1);  // the context is 256
  try {
    e.submit(request_of(f, huge));
    ADD_FAILURE() << "a prompt longer than the context was queued";
  } catch (const paca::Error& err) {
    EXPECT_EQ(err.status(), paca::Status::context_full);
  }
  paca::EngineRequest stops = request_of(f, s);
  stops.options.stop_strings = {"x"};  // no tokenizer
  EXPECT_THROW(e.submit(std::move(stops)), paca::Error);
}

TEST(Engine, HigherPriorityStartsFirst) {
  Fixture f;
  paca::EngineOptions o;
  o.own_thread = false;
  o.max_running = 1;
  paca::Engine e(*f.model, *f.pool, nullptr, o);
  Spec low, high;
  low.prompt = prompt_of(6, 1);
  high.prompt = prompt_of(6, 2);
  high.priority = 5;
  low.max_new = high.max_new = 3;
  const uint64_t l = e.submit(request_of(f, low)), h = e.submit(request_of(f, high));
  Result rh = drain(e, h);  // steps until the high one ends
  paca::RequestEvent ev;
  EXPECT_EQ(e.poll(l, 0, ev), paca::Engine::Poll::timeout) << "the low-priority request ran first";
  EXPECT_EQ(rh.tokens.size(), 3u);
  EXPECT_EQ(drain(e, l).tokens, alone(f, low));
}

}  // namespace
