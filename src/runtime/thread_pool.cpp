#include "runtime/thread_pool.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>
#if defined(_OPENMP)
#include <omp.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "base/error.h"
#include "profile/profiler.h"

namespace tokenscope {

const char* barrier_mode_name(BarrierMode m) {
  switch (m) {
    case BarrierMode::spin: return "spin";
    case BarrierMode::futex: return "futex";
    case BarrierMode::hybrid: return "hybrid";
  }
  return "?";
}

std::optional<BarrierMode> barrier_mode_from_name(std::string_view name) {
  for (BarrierMode m : {BarrierMode::spin, BarrierMode::futex, BarrierMode::hybrid})
    if (name == barrier_mode_name(m)) return m;
  return std::nullopt;
}

const char* sched_policy_name(SchedPolicy p) {
  switch (p) {
    case SchedPolicy::inherit: return "inherit";
    case SchedPolicy::other: return "other";
    case SchedPolicy::fifo: return "fifo";
    case SchedPolicy::rr: return "rr";
  }
  return "?";
}

std::optional<SchedPolicy> sched_policy_from_name(std::string_view name) {
  for (SchedPolicy p : {SchedPolicy::inherit, SchedPolicy::other, SchedPolicy::fifo, SchedPolicy::rr})
    if (name == sched_policy_name(p)) return p;
  return std::nullopt;
}

const char* pool_backend_name(PoolBackend b) { return b == PoolBackend::own ? "own" : "openmp"; }

std::optional<PoolBackend> pool_backend_from_name(std::string_view name) {
  for (PoolBackend b : {PoolBackend::own, PoolBackend::openmp})
    if (name == pool_backend_name(b)) return b;
  return std::nullopt;
}

bool openmp_available() {
#if defined(_OPENMP)
  return true;
#else
  return false;
#endif
}

void apply_thread_sched(const PoolOptions& o) {
  if (o.sched != SchedPolicy::inherit) {
    const int policy = o.sched == SchedPolicy::fifo ? SCHED_FIFO : o.sched == SchedPolicy::rr ? SCHED_RR : SCHED_OTHER;
    const bool rt = policy != SCHED_OTHER;
    if (!rt && o.priority != 0) fail("--priority %d: the other (CFS) policy has only priority 0 (use --nice)", o.priority);
    sched_param sp{};
    sp.sched_priority = rt ? (o.priority > 0 ? o.priority : 1) : 0;
    if (rt && (sp.sched_priority < sched_get_priority_min(policy) || sp.sched_priority > sched_get_priority_max(policy)))
      fail("--priority %d: out of range for %s (%d..%d)", o.priority, sched_policy_name(o.sched),
           sched_get_priority_min(policy), sched_get_priority_max(policy));
    if (const int e = pthread_setschedparam(pthread_self(), policy, &sp); e != 0) {
      rlimit rl{};
      getrlimit(RLIMIT_RTPRIO, &rl);
      if (e == EPERM)
        fail("--sched %s: not permitted: a real-time policy needs CAP_SYS_NICE (root) or a real-time priority limit "
             "of at least %d (RLIMIT_RTPRIO is %lld: ulimit -r); in a container the cgroup may also have no real-time "
             "budget (cpu.rt_runtime_us)", sched_policy_name(o.sched), sp.sched_priority,
             static_cast<long long>(rl.rlim_cur == RLIM_INFINITY ? -1 : static_cast<long long>(rl.rlim_cur)));
      fail("--sched %s: pthread_setschedparam failed: %s", sched_policy_name(o.sched), std::strerror(e));
    }
  }
  if (o.nice) {
    if (*o.nice < -20 || *o.nice > 19) fail("--nice %d: out of range (-20..19)", *o.nice);
    if (setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), *o.nice) != 0) {
      const int e = errno;
      if (e == EPERM || e == EACCES)
        fail("--nice %d: not permitted: lowering the nice value below the current one needs CAP_SYS_NICE (root) or "
             "RLIMIT_NICE (ulimit -e)", *o.nice);
      fail("--nice %d: setpriority failed: %s", *o.nice, std::strerror(e));
    }
  }
}

std::vector<int> parse_cpu_set(const std::string& text) {
  std::vector<int> cpus;
  const bool list = text.find_first_of(",-") != std::string::npos && text.rfind("0x", 0) != 0;
  if (!list) {
    std::string hex = text.rfind("0x", 0) == 0 || text.rfind("0X", 0) == 0 ? text.substr(2) : text;
    if (hex.empty()) fail("CPU mask '%s' is empty", text.c_str());
    int bit = 0;
    for (auto it = hex.rbegin(); it != hex.rend(); ++it, bit += 4) {
      const char c = *it;
      int v;
      if (c >= '0' && c <= '9') v = c - '0';
      else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
      else fail("CPU mask '%s' is not a hex mask (like 0x3) or a list (like 0,2-3)", text.c_str());
      for (int b = 0; b < 4; ++b)
        if (v & (1 << b)) cpus.push_back(bit + b);
    }
    std::sort(cpus.begin(), cpus.end());
  } else {
    size_t pos = 0;
    while (pos <= text.size()) {
      const size_t comma = std::min(text.find(',', pos), text.size());
      const std::string part = text.substr(pos, comma - pos);
      const size_t dash = part.find('-');
      char* end = nullptr;
      const long a = std::strtol(part.c_str(), &end, 10);
      long b = a;
      bool ok = !part.empty() && end != part.c_str() && a >= 0;
      if (ok && dash != std::string::npos) {
        const char* rest = part.c_str() + dash + 1;
        b = std::strtol(rest, &end, 10);
        ok = end != rest && *end == 0 && b >= a;
      } else {
        ok = ok && *end == 0;
      }
      if (!ok || b >= CPU_SETSIZE) fail("CPU list '%s': bad item '%s'", text.c_str(), part.c_str());
      for (long c = a; c <= b; ++c) cpus.push_back(static_cast<int>(c));
      pos = comma + 1;
    }
  }
  if (cpus.empty()) fail("CPU set '%s' selects no CPU", text.c_str());
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) == 0)
    for (int c : cpus)
      if (c >= CPU_SETSIZE || !CPU_ISSET(c, &allowed))
        fail("CPU set '%s': CPU %d is not available to this process", text.c_str(), c);
  return cpus;
}

namespace {
void pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}
}  // namespace

int available_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool::ThreadPool(int n_threads, const PoolOptions& options) : n_threads_(n_threads), opts_(options) {
  TS_CHECK(n_threads >= 1);
  if (opts_.backend == PoolBackend::openmp && !openmp_available())
    fail("--pool openmp: this build has no OpenMP (GCC's -fopenmp and libgomp)");
  apply_thread_sched(opts_);  // throws before any thread starts when the policy is not allowed
  if (!opts_.cpus.empty()) pin_to(opts_.cpus[0]);
  ranges_ = std::make_unique<StealRange[]>(static_cast<size_t>(n_threads));
  if (opts_.backend == PoolBackend::openmp) return;  // libgomp's threads, set up at their first job
  threads_.reserve(static_cast<size_t>(n_threads - 1));
  for (int i = 1; i < n_threads; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::set_up_thread(int ith) const {
  if (!opts_.cpus.empty()) pin_to(opts_.cpus[static_cast<size_t>(ith) % opts_.cpus.size()]);
  try {
    apply_thread_sched(opts_);  // allowed: the caller's succeeded
  } catch (const Error&) {
  }
}

void ThreadPool::worker(int ith) {
  set_up_thread(ith);
  const int spins = opts_.barrier == BarrierMode::spin    ? INT32_MAX
                    : opts_.barrier == BarrierMode::futex ? 0
                                                          : opts_.spin_iterations;
  uint32_t seen = 0;
  for (;;) {
    uint32_t g = generation_.load(std::memory_order_acquire);
    for (int spin = 0; g == seen && spin < spins; ++spin) {
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
    run_job(ith);
    if (pending_.fetch_sub(1, std::memory_order_seq_cst) == 1 && caller_sleeping_.load(std::memory_order_seq_cst))
      pending_.notify_one();
  }
}

void ThreadPool::wait_for_workers() {
  const int spins = opts_.barrier == BarrierMode::spin    ? INT32_MAX
                    : opts_.barrier == BarrierMode::futex ? 0
                                                          : opts_.spin_iterations;
  int i = 0;
  for (; i < spins && pending_.load(std::memory_order_acquire) != 0; ++i) spin_pause(i);
  for (;;) {
    const int p = pending_.load(std::memory_order_seq_cst);
    if (p == 0) return;
    // Dekker pairing with the last worker: it sees caller_sleeping_ and notifies, or we see pending_ == 0.
    caller_sleeping_.store(1, std::memory_order_seq_cst);
    if (pending_.load(std::memory_order_seq_cst) != 0) pending_.wait(p, std::memory_order_seq_cst);
    caller_sleeping_.store(0, std::memory_order_seq_cst);
  }
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
  if (n_threads_ == 1) {
    fn(0, 1);
    return;
  }
  job_ = &fn;
  if (opts_.backend == PoolBackend::openmp) {
    run_openmp();
    return;
  }
  pending_.store(n_threads_ - 1, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) generation_.notify_all();
  run_job(0);
  wait_for_workers();
}

void ThreadPool::run_openmp() {
#if defined(_OPENMP)
#pragma omp parallel num_threads(n_threads_)
  {
    // libgomp keeps its threads from one region to the next: each is set up (pinned, its policy) once, for the
    // pool it last served.
    thread_local const ThreadPool* set_up_for = nullptr;
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    if (set_up_for != this && tid != 0) {
      set_up_for = this;
      set_up_thread(tid);
    }
    // The runtime may give fewer threads than asked (OMP_THREAD_LIMIT, OMP_DYNAMIC): every share still runs.
    for (int ith = tid; ith < n_threads_; ith += nt) run_job(ith);
  }
#endif
}

void ThreadPool::run_job(int ith) {
  if (!observer_) {
    (*job_)(ith, n_threads_);
    return;
  }
  const double t0 = observer_->now_us();
  (*job_)(ith, n_threads_);
  observer_->add_thread_span(ith, t0, observer_->now_us());
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

void ThreadPool::parallel_for_dynamic(int64_t n, int64_t chunk,
                                      const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  chunk = std::max<int64_t>(chunk, 1);
  if (n_threads_ == 1 || n <= chunk) {
    fn(0, n, 0);
    return;
  }
  next_chunk_.store(0, std::memory_order_relaxed);  // published to the workers by run()'s release
  run([&](int ith, int) {
    for (;;) {
      const int64_t b = next_chunk_.fetch_add(chunk, std::memory_order_relaxed);
      if (b >= n) return;
      fn(b, std::min(n, b + chunk), ith);
    }
  });
}

namespace {
constexpr uint64_t pack_range(uint64_t front, uint64_t back) { return front | back << 32; }
}  // namespace

void ThreadPool::parallel_for_stealing(int64_t n, int64_t chunk,
                                       const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  TS_CHECK(n < (int64_t{1} << 31));
  chunk = std::max<int64_t>(chunk, 1);
  const int nth = static_cast<int>(std::min<int64_t>(n_threads_, (n + chunk - 1) / chunk));
  if (nth <= 1) {
    fn(0, n, 0);
    return;
  }
  const int64_t per = (n + nth - 1) / nth;
  for (int i = 0; i < n_threads_; ++i) {
    const uint64_t b = static_cast<uint64_t>(std::min(n, per * i)), e = static_cast<uint64_t>(std::min(n, per * (i + 1)));
    ranges_[static_cast<size_t>(i)].v.store(i < nth ? pack_range(b, e) : pack_range(0, 0), std::memory_order_relaxed);
  }
  run([&](int ith, int) {
    // Own range, from the front.
    std::atomic<uint64_t>& own = ranges_[static_cast<size_t>(ith)].v;
    uint64_t v = own.load(std::memory_order_relaxed);
    for (;;) {
      const uint64_t f = v & 0xFFFFFFFFu, b = v >> 32;
      if (f >= b) break;
      const uint64_t take = std::max<uint64_t>(static_cast<uint64_t>(chunk), (b - f) / 4);
      const uint64_t nf = std::min(b, f + take);
      if (own.compare_exchange_weak(v, pack_range(nf, b), std::memory_order_relaxed)) {
        fn(static_cast<int64_t>(f), static_cast<int64_t>(nf), ith);
        v = own.load(std::memory_order_relaxed);
      }
    }
    // Then others' ranges, from the back.
    for (int k = 1; k < n_threads_; ++k) {
      std::atomic<uint64_t>& other = ranges_[static_cast<size_t>((ith + k) % n_threads_)].v;
      uint64_t w = other.load(std::memory_order_relaxed);
      for (;;) {
        const uint64_t f = w & 0xFFFFFFFFu, b = w >> 32;
        if (f >= b) break;
        const uint64_t nb = b - std::min<uint64_t>(b - f, static_cast<uint64_t>(chunk));
        if (other.compare_exchange_weak(w, pack_range(f, nb), std::memory_order_relaxed)) {
          fn(static_cast<int64_t>(nb), static_cast<int64_t>(b), ith);
          w = other.load(std::memory_order_relaxed);
        }
      }
    }
  });
}

}  // namespace tokenscope
