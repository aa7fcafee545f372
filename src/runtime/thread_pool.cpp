#include "runtime/thread_pool.h"

#include <sched.h>

#include <algorithm>

#include "base/error.h"

namespace tokenscope {

namespace {
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}
constexpr int kSpinIterations = 1 << 14;
// Spinning threads yield the CPU now and then, so an oversubscribed pool (more threads than free
// cores) still makes progress instead of burning the time slice of the thread everyone waits for.
inline void spin_pause(int i) {
  if ((i & 255) == 255) std::this_thread::yield();
  else cpu_relax();
}
}  // namespace

int available_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads) {
  TS_CHECK(n_threads >= 1);
  threads_.reserve(static_cast<size_t>(n_threads - 1));
  for (int i = 1; i < n_threads; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::worker(int ith) {
  uint32_t seen = 0;
  for (;;) {
    uint32_t g = generation_.load(std::memory_order_acquire);
    for (int spin = 0; g == seen && spin < kSpinIterations; ++spin) {
      spin_pause(spin);
      g = generation_.load(std::memory_order_acquire);
    }
    while (g == seen) {
      // Dekker pairing with run(): either run() sees us sleeping and notifies, or wait() sees the new generation.
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      generation_.wait(seen, std::memory_order_seq_cst);
      sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load(std::memory_order_acquire)) return;
    (*job_)(ith, n_threads_);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
  if (n_threads_ == 1) {
    fn(0, 1);
    return;
  }
  job_ = &fn;
  pending_.store(n_threads_ - 1, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) generation_.notify_all();
  fn(0, n_threads_);
  for (int i = 0; pending_.load(std::memory_order_acquire) != 0; ++i) spin_pause(i);
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t max_chunks = (n + grain - 1) / grain;
  const int nth = static_cast<int>(std::min<int64_t>(n_threads_, max_chunks));
  if (nth <= 1) {
    fn(0, n, 0);
    return;
  }
  run([&](int ith, int) {
    if (ith >= nth) return;
    const int64_t per = (n + nth - 1) / nth;
    const int64_t b = per * ith;
    const int64_t e = std::min(n, b + per);
    if (b < e) fn(b, e, ith);
  });
}

}  // namespace tokenscope
