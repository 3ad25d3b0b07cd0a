// thread_pool_test.cpp - every index is visited exactly once, for many sizes
// and thread counts, the pool survives many back-to-back jobs, and an
// exception thrown on any of its threads reaches the caller.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <new>
#include <thread>
#include <vector>

#include "util/error.h"
#include "util/thread_pool.h"

using namespace paca;

TEST(ThreadPool, CoversEveryIndexOnce) {
  for (int threads : {1, 2, 3, 7}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (size_t n : {0, 1, 2, 5, 64, 1000, 4097}) {
      for (size_t grain : {1, 3, 16, 5000}) {
        std::vector<std::atomic<int>> hits(n);
        pool.parallel_for(n, grain, [&](size_t b, size_t e) {
          EXPECT_LT(b, e);
          for (size_t i = b; i < e; ++i) hits[i]++;
        });
        for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << n << "/" << grain << " at " << i;
      }
    }
  }
}

TEST(ThreadPool, ManyShortJobs) {
  ThreadPool pool(4);
  std::atomic<long> sum{0};
  for (int j = 0; j < 5000; ++j)
    pool.parallel_for(8, 1, [&](size_t b, size_t e) { sum += static_cast<long>(e - b); });
  EXPECT_EQ(sum.load(), 5000L * 8);
}

// With 4 threads, n = 4 and grain 1, thread i runs exactly [i, i + 1), so the
// throwing ranges below are workers' (1..3) or the caller's (0).
TEST(ThreadPool, WorkerExceptionsReachTheCaller) {
  ThreadPool pool(4);
  std::vector<std::atomic<int>> done(4);
  auto reset = [&] {
    for (auto& d : done) d = 0;
  };

  // bad_alloc on worker 2 and paca::Error on worker 3: the lowest thread's wins
  reset();
  try {
    pool.parallel_for(4, 1, [&](size_t b, size_t) {
      if (b == 2) throw std::bad_alloc();
      if (b == 3) throw Error(Status::format, "bad tensor");
      done[b] = 1;
    });
    FAIL() << "no exception";
  } catch (const std::bad_alloc&) {
  }
  EXPECT_EQ(done[0].load() + done[1].load(), 2);

  // paca::Error alone, status and message intact
  reset();
  try {
    pool.parallel_for(4, 1, [&](size_t b, size_t) {
      if (b == 1) throw Error(Status::out_of_memory, "no room for 7 blocks");
      done[b] = 1;
    });
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::out_of_memory);
    EXPECT_STREQ(e.what(), "no room for 7 blocks");
  }
  EXPECT_EQ(done[0].load() + done[2].load() + done[3].load(), 3);

  // the caller's own range throws at once; parallel_for still waits for the
  // workers (they still use fn and its captures) before it rethrows
  reset();
  EXPECT_THROW(pool.parallel_for(4, 1,
                                 [&](size_t b, size_t) {
                                   if (b == 0) throw std::bad_alloc();
                                   std::this_thread::sleep_for(std::chrono::milliseconds(20));
                                   done[b] = 1;
                                 }),
               std::bad_alloc);
  EXPECT_EQ(done[1].load() + done[2].load() + done[3].load(), 3);

  // the pool is still whole: every index once, and no old error comes back
  for (int j = 0; j < 100; ++j) {
    std::vector<std::atomic<int>> hits(1000);
    pool.parallel_for(1000, 7, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) hits[i]++;
    });
    for (size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i].load(), 1) << "job " << j << " at " << i;
  }
}

TEST(ThreadPool, ExceptionOnTheSingleThreadPath) {
  ThreadPool pool(1);
  EXPECT_THROW(pool.parallel_for(10, 1, [](size_t, size_t) { throw Error(Status::internal, "x"); }), Error);
  int calls = 0;
  pool.parallel_for(10, 1, [&](size_t, size_t) { ++calls; });
  EXPECT_EQ(calls, 1);
}
