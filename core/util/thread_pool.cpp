// thread_pool.cpp - workers spin briefly for the next job, then sleep on a
// condition variable; decode issues a few hundred short jobs per token, so the
// spin keeps the hand-off cheap while an idle pool costs no CPU.
#include "util/thread_pool.h"

#include <algorithm>

namespace paca {

namespace {
inline void cpu_relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#endif
}
}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  n_threads_ = n_threads;
  for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  wake_.notify_all();
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
  if (begin < end) (*job_)(begin, end);
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    // spin a little, then yield a while, then sleep
    for (int spin = 0; spin < 4000 && generation_.load(std::memory_order_acquire) == seen; ++spin) {
      if (spin < 2000) cpu_relax();
      else std::this_thread::yield();
    }
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_) return;
    run_share(index);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn) {
  if (n == 0) return;
  if (n_threads_ == 1 || n <= grain) {
    fn(0, n);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &fn;
    job_n_ = n;
    job_grain_ = grain;
    pending_.store(n_threads_ - 1, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  wake_.notify_all();
  run_share(0);
  // when threads outnumber cores, the workers we wait for may need our core
  for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) {
    if (spin < 2000) cpu_relax();
    else std::this_thread::yield();
  }
}

}  // namespace paca
