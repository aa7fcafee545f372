#include <gtest/gtest.h>

#include <atomic>
#include <numeric>
#include <vector>

#include "runtime/thread_pool.h"

using tokenscope::ThreadPool;

TEST(ThreadPool, EveryThreadRunsOncePerJob) {
  for (int n : {1, 2, 3, 4}) {
    ThreadPool pool(n);
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    for (int job = 0; job < 200; ++job) {
      pool.run([&](int ith, int nth) {
        ASSERT_EQ(nth, n);
        hits[static_cast<size_t>(ith)].fetch_add(1);
      });
    }
    for (auto& h : hits) EXPECT_EQ(h.load(), 200);
  }
}

TEST(ThreadPool, ManyTinyJobsSeeEachOthersWrites) {
  // Job k reads what every thread wrote in job k-1: run() must be a full barrier.
  for (int n : {2, 3}) {  // 3 threads on a 2-core machine: oversubscribed, must still make progress
  ThreadPool pool(n);
  std::vector<int64_t> slots(static_cast<size_t>(n), 0);
  for (int64_t k = 1; k <= 10000; ++k) {
    pool.run([&](int ith, int nth) {
      for (int j = 0; j < nth; ++j) ASSERT_EQ(slots[static_cast<size_t>(j)], k - 1);
    });
    pool.run([&](int ith, int) { slots[static_cast<size_t>(ith)] = k; });
  }
  }
}

TEST(ThreadPool, ParallelForCoversRangeExactlyOnce) {
  ThreadPool pool(2);
  for (int64_t n : {0, 1, 2, 3, 7, 16, 17, 1000, 4097}) {
    for (int64_t grain : {1, 4, 64}) {
      std::vector<int> seen(static_cast<size_t>(n), 0);
      pool.parallel_for(n, grain, [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) seen[static_cast<size_t>(i)]++;
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[static_cast<size_t>(i)], 1) << "n=" << n << " i=" << i;
    }
  }
}

TEST(ThreadPool, SleepingWorkersWakeUp) {
  // Workers fall asleep on the futex after spinning; the next job must still reach them.
  ThreadPool pool(2);
  std::atomic<int> sum{0};
  for (int round = 0; round < 5; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    pool.run([&](int ith, int) { sum.fetch_add(ith + 1); });
  }
  EXPECT_EQ(sum.load(), 5 * (1 + 2));
}

TEST(ThreadPool, AvailableCpusIsPositive) { EXPECT_GE(tokenscope::available_cpus(), 1); }
