// Persistent worker threads. The calling thread takes part as thread 0; run() returns when every
// thread has finished its share. How waiting threads wait is the barrier mode:
//   spin   - busy-wait (pause, and a yield every 256 polls so an oversubscribed pool still progresses):
//            lowest wake-up latency, burns the cores between jobs;
//   futex  - sleep in the kernel at once (std::atomic::wait): no spin waste, a wake-up per job;
//   hybrid - spin for a while, then sleep (the default): a decode step's many small jobs find
//            the workers still spinning, idle periods cost nothing.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace tokenscope {

// One polite step of a spin-wait (x86 pause, Arm yield).
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}
// Spinning threads yield the CPU now and then, so an oversubscribed pool (more threads than free
// cores) still makes progress instead of burning the time slice of the thread everyone waits for.
inline void spin_pause(int i) {
  if ((i & 255) == 255) std::this_thread::yield();
  else cpu_relax();
}
namespace profile { class Profiler; }

enum class BarrierMode { spin, futex, hybrid };
const char* barrier_mode_name(BarrierMode m);
std::optional<BarrierMode> barrier_mode_from_name(std::string_view name);

// The scheduling policy of the pool's threads (`--sched`): inherit leaves them as they are; other is CFS
// (SCHED_OTHER); fifo and rr are the real-time policies, which need CAP_SYS_NICE or an RLIMIT_RTPRIO.
enum class SchedPolicy { inherit, other, fifo, rr };
const char* sched_policy_name(SchedPolicy p);
std::optional<SchedPolicy> sched_policy_from_name(std::string_view name);

// Who runs the threads: the pool's own workers and barrier, or GCC's OpenMP runtime (libgomp: its threads
// and barrier, waiting as OMP_WAIT_POLICY / GOMP_SPINCOUNT say), behind the same interface.
enum class PoolBackend { own, openmp };
const char* pool_backend_name(PoolBackend b);
std::optional<PoolBackend> pool_backend_from_name(std::string_view name);
// Whether this build has the OpenMP back end.
bool openmp_available();

struct PoolOptions {
  BarrierMode barrier = BarrierMode::hybrid;  // the own back end's
  int spin_iterations = 1 << 14;  // hybrid: polls before sleeping
  // CPUs to pin the threads to (thread i -> cpus[i % size], the caller is thread 0); empty: no pinning.
  std::vector<int> cpus;
  SchedPolicy sched = SchedPolicy::inherit;
  int priority = 0;            // fifo / rr: 1..99 (0: 1); other: must be 0
  std::optional<int> nice;     // the threads' nice value (-20..19; below the current one needs CAP_SYS_NICE)
  PoolBackend backend = PoolBackend::own;
};

// Applies o's scheduling policy, priority and nice value to the calling thread; throws Error saying what is
// missing (e.g. the permission a real-time policy needs). Does nothing for inherit and no nice value.
void apply_thread_sched(const PoolOptions& o);

// Parses a CPU set: a hex mask ("0x3", "3") or a list with ranges ("0,2-3"). Throws Error naming the text.
std::vector<int> parse_cpu_set(const std::string& text);

class ThreadPool {
 public:
  // n_threads >= 1 (the caller counts as one).
  explicit ThreadPool(int n_threads, const PoolOptions& options = {});
  const PoolOptions& options() const { return opts_; }
  // Reports each thread's share of every job to the profiler (null: off). Call while no job runs.
  void set_observer(profile::Profiler* p) { observer_ = p; }
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Runs fn(ith, nth) on every thread (ith = 0 is the caller) and waits for all of them.
  // Not reentrant: fn must not call run() again.
  void run(const std::function<void(int ith, int nth)>& fn);

  // Splits [0, n) into contiguous chunks of at least `grain` items, one per thread, and runs
  // fn(begin, end, ith) on each non-empty chunk.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn);

  // Like parallel_for, but threads claim chunks of `chunk` items from a shared counter until none are
  // left: a thread that is slowed down (a busy sibling, the hypervisor) takes fewer chunks instead of
  // making everyone wait at the barrier. fn may run several times per thread.
  void parallel_for_dynamic(int64_t n, int64_t chunk, const std::function<void(int64_t, int64_t, int)>& fn);

  // Like parallel_for (each thread walks its own contiguous range front to back, so its reads stay one
  // sequential stream for the prefetchers), but a thread done with its range takes chunks of `chunk`
  // items from the back of a range still in progress. Owners claim shrinking pieces (a quarter of what
  // is left, at least `chunk`), so the claims cost a few atomics per range. n < 2^31.
  void parallel_for_stealing(int64_t n, int64_t chunk, const std::function<void(int64_t, int64_t, int)>& fn);

 private:
  void worker(int ith);

  void wait_for_workers();

  void run_job(int ith);
  void run_openmp();
  // A worker's (or an OpenMP thread's) pinning and scheduling policy, once when it starts serving this pool.
  void set_up_thread(int ith) const;

  int n_threads_;
  PoolOptions opts_;
  profile::Profiler* observer_ = nullptr;
  std::vector<std::thread> threads_;
  const std::function<void(int, int)>* job_ = nullptr;
  alignas(64) std::atomic<uint32_t> generation_{0};
  alignas(64) std::atomic<int> pending_{0};
  alignas(64) std::atomic<int64_t> next_chunk_{0};
  // parallel_for_stealing: per thread, its range's unclaimed part [front, back) as front | back << 32.
  struct alignas(64) StealRange {
    std::atomic<uint64_t> v{0};
  };
  std::unique_ptr<StealRange[]> ranges_;
  std::atomic<int> sleepers_{0};
  std::atomic<int> caller_sleeping_{0};
  std::atomic<bool> stop_{false};
};

// Number of CPUs this process may run on (sched_getaffinity), at least 1.
int available_cpus();

}  // namespace tokenscope
