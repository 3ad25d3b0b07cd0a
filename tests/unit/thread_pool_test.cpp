// thread_pool_test.cpp - every index is visited exactly once, for many sizes
// and thread counts, and the pool survives many back-to-back jobs.
#include <gtest/gtest.h>

#include <atomic>
#include <vector>

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
