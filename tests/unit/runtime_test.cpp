#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <numeric>
#include <string>
#include <vector>

#include <sched.h>

#include <chrono>
#include <thread>

#include "base/error.h"
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

// The CPUs this process may run on, in order (its affinity mask).
std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  EXPECT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

TEST(ThreadPool, AvailableCpusFollowsTheAffinityMask) {
  cpu_set_t original;
  ASSERT_EQ(sched_getaffinity(0, sizeof original, &original), 0);
  const std::vector<int> cpus = allowed_cpus();
  ASSERT_FALSE(cpus.empty());
  EXPECT_EQ(tokenscope::available_cpus(), static_cast<int>(cpus.size()));
  // Narrowed to one CPU (the last allowed one, so not always CPU 0), the count follows.
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpus.back(), &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
  EXPECT_EQ(tokenscope::available_cpus(), 1);
  ASSERT_EQ(sched_setaffinity(0, sizeof original, &original), 0);
  EXPECT_EQ(tokenscope::available_cpus(), static_cast<int>(cpus.size()));
}

// Stress: many tiny jobs in every barrier mode, with the pool oversubscribed (3 threads on 2 cores) and not.
// Each job checks that every thread's write from the previous job is visible (run() is a full barrier).
class BarrierModes : public ::testing::TestWithParam<tokenscope::BarrierMode> {};

TEST_P(BarrierModes, ManyTinyJobsAreFullBarriers) {
  for (int n : {2, 3}) {
    tokenscope::PoolOptions o;
    o.barrier = GetParam();
    o.spin_iterations = 64;  // hybrid: fall asleep often, so both paths are exercised
    ThreadPool pool(n, o);
    std::vector<int64_t> slots(static_cast<size_t>(n), 0);
    const int64_t jobs = GetParam() == tokenscope::BarrierMode::futex ? 3000 : 6000;
    for (int64_t k = 1; k <= jobs; ++k) {
      pool.run([&](int, int nth) {
        for (int j = 0; j < nth; ++j) ASSERT_EQ(slots[static_cast<size_t>(j)], k - 1);
      });
      pool.run([&](int ith, int) { slots[static_cast<size_t>(ith)] = k; });
      if (k % 1000 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // let sleepers sleep
    }
  }
}

TEST_P(BarrierModes, ParallelForSumsCorrectly) {
  tokenscope::PoolOptions o;
  o.barrier = GetParam();
  ThreadPool pool(2, o);
  for (int rep = 0; rep < 500; ++rep) {
    std::atomic<int64_t> sum{0};
    pool.parallel_for(1000 + rep, 7, [&](int64_t b, int64_t e, int) {
      int64_t s = 0;
      for (int64_t i = b; i < e; ++i) s += i;
      sum.fetch_add(s);
    });
    const int64_t n = 1000 + rep;
    ASSERT_EQ(sum.load(), n * (n - 1) / 2);
  }
}

TEST_P(BarrierModes, DynamicParallelForCoversEveryItemOnce) {
  tokenscope::PoolOptions o;
  o.barrier = GetParam();
  ThreadPool pool(3, o);
  for (int rep = 0; rep < 300; ++rep) {
    const int64_t n = 1 + rep * 7, chunk = 1 + rep % 13;
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    std::atomic<int> calls{0};
    pool.parallel_for_dynamic(n, chunk, [&](int64_t b, int64_t e, int ith) {
      ASSERT_LE(e - b, chunk);
      ASSERT_TRUE(ith >= 0 && ith < 3);
      calls.fetch_add(1);
      for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "n=" << n << " i=" << i;
    ASSERT_EQ(calls.load(), (n + chunk - 1) / chunk);
  }
}

TEST_P(BarrierModes, StealingParallelForCoversEveryItemOnceAndStealsFromSlowThreads) {
  tokenscope::PoolOptions o;
  o.barrier = GetParam();
  ThreadPool pool(3, o);
  for (int rep = 0; rep < 300; ++rep) {
    const int64_t n = 1 + rep * 7, chunk = 1 + rep % 5;
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    std::atomic<int64_t> by_thread0{0}, by_others{0};
    const int64_t share0 = std::min(n, (n + 2) / 3);  // thread 0's own range (when there are enough chunks)
    // On every other repetition thread 0 stalls in its first piece until the other threads have done more than
    // their own ranges, i.e. taken part of thread 0's (no timing involved: without stealing it waits out the
    // deadline and the expectation below fails).
    const bool stall0 = rep % 2 == 1 && n >= 3 * 4 * chunk;
    pool.parallel_for_stealing(n, chunk, [&](int64_t b, int64_t e, int ith) {
      ASSERT_LT(b, e);
      ASSERT_TRUE(ith >= 0 && ith < 3);
      for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
      if (ith != 0) {
        by_others.fetch_add(e - b);
        return;
      }
      if (stall0 && by_thread0.fetch_add(e - b) == 0) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (by_others.load() <= n - share0 && std::chrono::steady_clock::now() < deadline)
          std::this_thread::yield();
      } else if (!stall0) {
        by_thread0.fetch_add(e - b);
      }
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "n=" << n << " i=" << i;
    if (stall0) {
      EXPECT_LT(by_thread0.load(), share0) << "n=" << n;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, BarrierModes,
                         ::testing::Values(tokenscope::BarrierMode::spin, tokenscope::BarrierMode::futex,
                                           tokenscope::BarrierMode::hybrid),
                         [](const auto& info) { return std::string(tokenscope::barrier_mode_name(info.param)); });

TEST(ThreadPool, BarrierModeNames) {
  EXPECT_EQ(tokenscope::barrier_mode_from_name("futex"), tokenscope::BarrierMode::futex);
  EXPECT_FALSE(tokenscope::barrier_mode_from_name("mutex").has_value());
}

// A hex mask (as --cpu-mask takes it) selecting the given CPUs.
std::string hex_mask(const std::vector<int>& cpus) {
  std::string digits;
  for (int c : cpus) {
    const size_t d = static_cast<size_t>(c / 4);
    if (digits.size() <= d) digits.resize(d + 1, 0);
    digits[d] = static_cast<char>(digits[d] | (1 << (c % 4)));
  }
  std::string hex = "0x";
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) hex += "0123456789abcdef"[static_cast<int>(*it)];
  return hex;
}

TEST(ThreadPool, CpuSetParsing) {
  using tokenscope::parse_cpu_set;
  // Only CPUs this process may use parse: the cases pick them from its affinity mask, not assuming CPU 0.
  const std::vector<int> allowed = allowed_cpus();
  ASSERT_FALSE(allowed.empty());
  const int a = allowed.front();
  EXPECT_EQ(parse_cpu_set(hex_mask({a})), (std::vector<int>{a}));
  EXPECT_EQ(parse_cpu_set(hex_mask({a}).substr(2)), (std::vector<int>{a}));  // bare hex, as llama.cpp reads it
  EXPECT_EQ(parse_cpu_set(std::to_string(a) + "-" + std::to_string(a)), (std::vector<int>{a}));
  EXPECT_THROW(parse_cpu_set("0"), tokenscope::Error);  // empty mask
  EXPECT_THROW(parse_cpu_set("0xZZ"), tokenscope::Error);
  EXPECT_THROW(parse_cpu_set("0,x"), tokenscope::Error);
  // A mask naming the first CPU this process may not use (if there is one under CPU_SETSIZE).
  int missing = 0;
  while (missing < CPU_SETSIZE && std::find(allowed.begin(), allowed.end(), missing) != allowed.end()) ++missing;
  if (missing < CPU_SETSIZE) {
    EXPECT_THROW(parse_cpu_set(hex_mask({missing})), tokenscope::Error) << hex_mask({missing});
    EXPECT_THROW(parse_cpu_set(std::to_string(missing) + "-" + std::to_string(missing)), tokenscope::Error);
  }
  if (allowed.size() >= 2) {
    const int b = allowed[1];
    EXPECT_EQ(parse_cpu_set(hex_mask({a, b})), (std::vector<int>{a, b}));
    EXPECT_EQ(parse_cpu_set(std::to_string(b) + "," + std::to_string(a)), (std::vector<int>{b, a}));
    if (b == a + 1) {
      EXPECT_EQ(parse_cpu_set(std::to_string(a) + "-" + std::to_string(b)), (std::vector<int>{a, b}));
    }
  }
}

TEST(ThreadPool, PinnedThreadsRunOnTheirCpus) {
  cpu_set_t original;
  ASSERT_EQ(sched_getaffinity(0, sizeof original, &original), 0);
  tokenscope::PoolOptions o;
  const int cpu = allowed_cpus().back();  // an allowed CPU, not assumed to be CPU 0
  o.cpus = {cpu};
  ThreadPool pool(2, o);
  std::vector<int> where(2, -1);
  pool.run([&](int ith, int) { where[static_cast<size_t>(ith)] = sched_getcpu(); });
  EXPECT_EQ(where[0], cpu);
  EXPECT_EQ(where[1], cpu);
  sched_setaffinity(0, sizeof original, &original);  // the pool pinned the caller (this test's thread)
}
