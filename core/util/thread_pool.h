// thread_pool.h - a fixed pool of worker threads for data-parallel loops.
// parallel_for splits [0, n) into one contiguous range per thread, so the
// element -> thread assignment (and every per-element result) does not depend
// on timing. The calling thread takes part as worker 0. An exception thrown
// by fn on any thread reaches the caller of parallel_for; the pool stays usable.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <thread>
#include <vector>

namespace paca {

class ThreadPool {
 public:
  // n_threads <= 0: std::thread::hardware_concurrency().
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end) on disjoint ranges covering [0, n). Blocks until all
  // are done. Ranges are multiples of `grain` except the last. Not reentrant:
  // one parallel_for at a time per pool (callers serialise).
  // If fn throws (std::bad_alloc, paca::Error, anything), the other ranges
  // still run to their end (or their own throw), then the exception of the
  // lowest-numbered thread that threw is rethrown here; any others are dropped.
  void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn);

 private:
  void worker(int index);
  // runs thread `index`'s range of the current job; stores what it throws
  void run_share(int index);
  void stop_workers();

  int n_threads_;
  std::vector<std::thread> threads_;
  // Hand-off: the caller bumps generation_ and wakes the workers; each worker
  // runs its share and decrements pending_; the last one wakes the caller.
  // Both sides spin briefly, then block in the kernel (C++20 atomic
  // wait/notify, a futex on Linux), so oversubscribed cores are given up
  // instead of being spun on.
  std::atomic<uint32_t> generation_{0};
  std::atomic<uint32_t> pending_{0};
  std::atomic<bool> stop_{false};
  // the job of the current generation
  const std::function<void(size_t, size_t)>* job_ = nullptr;
  size_t job_n_ = 0;
  size_t job_grain_ = 1;
  // what each thread's share of the current job threw (null: nothing); a
  // worker writes only its own slot, the caller reads them once pending_ is 0
  std::vector<std::exception_ptr> errors_;
};

}  // namespace paca
