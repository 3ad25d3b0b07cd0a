// thread_pool.cpp - workers spin briefly for the next job, then block on a
// futex (std::atomic::wait); decode issues a few hundred short jobs per token,
// so the spin keeps the hand-off cheap while the machine is idle, and the
// blocking wait gives the core back when threads outnumber free cores (a
// spinning or yielding waiter there can starve the very thread it waits for).
#include "util/thread_pool.h"

#include <algorithm>

namespace paca {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#endif
}

// Pause iterations before blocking: a few tens of microseconds, longer than a
// typical gap between two ops of a decode step, far shorter than a time slice.
constexpr int kSpins = 2000;

// Waits until `a` no longer holds `old`: spins, then blocks.
void wait_while_equal(const std::atomic<uint32_t>& a, uint32_t old) {
  for (int i = 0; i < kSpins; ++i) {
    if (a.load(std::memory_order_acquire) != old) return;
    cpu_relax();
  }
  while (a.load(std::memory_order_acquire) == old) a.wait(old, std::memory_order_acquire);
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  n_threads_ = n_threads;
  errors_.resize(n_threads_);
  threads_.reserve(n_threads_ - 1);
  try {
    for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this, i] { worker(i); });
  } catch (...) {
    stop_workers();  // no destructor runs for a half-built pool
    throw;
  }
}

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::stop_workers() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::run_share(int index) {
  size_t n = job_n_;
  size_t grain = std::max<size_t>(1, job_grain_);
  size_t chunks = (n + grain - 1) / grain;
  size_t per = chunks / n_threads_;
  size_t extra = chunks % n_threads_;
  size_t first = index * per + std::min<size_t>(index, extra);
  size_t count = per + (static_cast<size_t>(index) < extra ? 1 : 0);
  size_t begin = std::min(n, first * grain);
  size_t end = std::min(n, (first + count) * grain);
  if (begin >= end) return;
  try {
    (*job_)(begin, end);
  } catch (...) {
    errors_[index] = std::current_exception();
  }
}

void ThreadPool::worker(int index) {
  uint32_t seen = 0;
  for (;;) {
    wait_while_equal(generation_, seen);
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load(std::memory_order_acquire)) return;
    run_share(index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
}

void ThreadPool::parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn) {
  if (n == 0) return;
  if (n_threads_ == 1 || n <= grain) {
    fn(0, n);
    return;
  }
  job_ = &fn;
  job_n_ = n;
  job_grain_ = grain;
  pending_.store(static_cast<uint32_t>(n_threads_ - 1), std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_acq_rel);  // publishes the job
  generation_.notify_all();
  run_share(0);
  for (;;) {
    const uint32_t left = pending_.load(std::memory_order_acquire);
    if (left == 0) break;
    wait_while_equal(pending_, left);
  }
  // every share has finished, so nothing of fn runs any more: hand on the
  // first failure and leave the slots empty for the next job
  std::exception_ptr first;
  for (std::exception_ptr& e : errors_) {
    if (e && !first) first = e;
    e = nullptr;
  }
  if (first) std::rethrow_exception(first);
}

}  // namespace paca
