#include "profile/counters.h"

#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/error.h"

namespace tokenscope::profile {

namespace {

// Software events of one thread form one group (read together with one read()); hardware events are opened
// one by one with their enabled/running times, so a value multiplexed by the kernel is scaled up.
int open_counter(const CounterSpec& s, int tid, int group_fd, uint64_t read_format) {
  const uint32_t type = s.type;
  perf_event_attr a;
  std::memset(&a, 0, sizeof a);
  a.size = sizeof a;
  a.type = type;
  a.config = s.config;
  a.config1 = s.config1;
  a.config2 = s.config2;
  a.disabled = 0;
  a.read_format = read_format;
  a.exclude_kernel = type == PERF_TYPE_SOFTWARE ? 0 : 1;
  a.exclude_hv = 1;
  return static_cast<int>(syscall(SYS_perf_event_open, &a, tid, -1, group_fd, 0));
}

constexpr uint64_t kGroupFormat = PERF_FORMAT_GROUP;
constexpr uint64_t kSingleFormat = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING;

}  // namespace

std::vector<CounterSpec> default_counter_specs() {
  const uint64_t dtlb_miss = PERF_COUNT_HW_CACHE_DTLB | (PERF_COUNT_HW_CACHE_OP_READ << 8) |
                             (PERF_COUNT_HW_CACHE_RESULT_MISS << 16);
  const uint64_t itlb_miss = PERF_COUNT_HW_CACHE_ITLB | (PERF_COUNT_HW_CACHE_OP_READ << 8) |
                             (PERF_COUNT_HW_CACHE_RESULT_MISS << 16);
  const uint64_t llc_miss = PERF_COUNT_HW_CACHE_LL | (PERF_COUNT_HW_CACHE_OP_READ << 8) |
                            (PERF_COUNT_HW_CACHE_RESULT_MISS << 16);
  return {
      {"task-clock-ms", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK, 1e-6, false},
      {"page-faults-minor", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS_MIN, 1, false},
      {"page-faults-major", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS_MAJ, 1, false},
      {"context-switches", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CONTEXT_SWITCHES, 1, false},
      {"cpu-migrations", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_MIGRATIONS, 1, false},
      {"cycles", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES, 1, true},
      {"instructions", PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS, 1, true},
      {"cache-references", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CACHE_REFERENCES, 1, true},
      {"cache-misses", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CACHE_MISSES, 1, true},
      {"llc-load-misses", PERF_TYPE_HW_CACHE, llc_miss, 1, true},
      {"dtlb-load-misses", PERF_TYPE_HW_CACHE, dtlb_miss, 1, true},
      {"itlb-load-misses", PERF_TYPE_HW_CACHE, itlb_miss, 1, true},
      {"stalled-cycles-backend", PERF_TYPE_HARDWARE, PERF_COUNT_HW_STALLED_CYCLES_BACKEND, 1, true},
  };
}

CounterGroup::CounterGroup(const std::vector<int>& tids, const std::vector<CounterSpec>& extra)
    : n_threads_(tids.size()) {
  std::string first_hw_error;
  std::vector<CounterSpec> all = default_counter_specs();
  const size_t n_builtin = all.size();
  all.insert(all.end(), extra.begin(), extra.end());
  auto is_extra = [&](const CounterSpec& s) { return static_cast<size_t>(&s - all.data()) >= n_builtin; };
  // Software group: the task clock leads; members that fail to open on any thread are dropped.
  std::vector<int> leaders(tids.size(), -1);
  for (const CounterSpec& s : all) {
    if (s.hardware) continue;
    std::vector<int> fds;
    bool ok = true;
    for (size_t t = 0; t < tids.size(); ++t) {
      const int fd = open_counter(s, tids[t], leaders[t], kGroupFormat);
      if (fd < 0) {
        ok = false;
        break;
      }
      fds.push_back(fd);
    }
    if (!ok) {
      const int err = errno;
      for (int fd : fds) close(fd);
      if (is_extra(s)) dropped_.push_back(s.name + ": " + std::strerror(err));
      if (names_.empty()) break;  // no leader: no software counters at all
      continue;
    }
    if (names_.empty()) leaders.assign(fds.begin(), fds.end());
    names_.push_back(s.name);
    scales_.push_back(s.scale);
    fds_.push_back(std::move(fds));
  }
  n_grouped_ = names_.size();
  for (const CounterSpec& s : all) {
    if (!s.hardware) continue;
    std::vector<int> fds;
    bool ok = true;
    for (int tid : tids) {
      const int fd = open_counter(s, tid, -1, kSingleFormat);
      if (fd < 0) {
        const std::string why = s.name + ": " + std::strerror(errno);
        if (is_extra(s)) dropped_.push_back(why);
        if (first_hw_error.empty() && !is_extra(s)) first_hw_error = why;
        ok = false;
        break;
      }
      fds.push_back(fd);
    }
    if (!ok) {
      for (int fd : fds) close(fd);
      continue;
    }
    if (!is_extra(s)) hardware_available_ = true;
    names_.push_back(s.name);
    scales_.push_back(s.scale);
    fds_.push_back(std::move(fds));
  }
  if (!hardware_available_)
    hardware_note_ = "hardware counters are not available on this machine (" +
                     (first_hw_error.empty() ? std::string("none opened") : first_hw_error) +
                     "); reporting software counters only";
}

CounterGroup::~CounterGroup() {
  for (auto& fds : fds_)
    for (int fd : fds) close(fd);
}

std::vector<std::vector<double>> CounterGroup::read_per_thread() const {
  std::vector<std::vector<double>> out(n_threads_, std::vector<double>(fds_.size(), 0.0));
  for (size_t t = 0; t < n_threads_; ++t) {
    if (n_grouped_ > 0) {
      // PERF_FORMAT_GROUP: { nr, values[nr] }, one read for the thread's whole software group.
      uint64_t buf[1 + 32] = {};
      const ssize_t want = static_cast<ssize_t>(sizeof(uint64_t) * (1 + n_grouped_));
      if (n_grouped_ <= 32 && ::read(fds_[0][t], buf, sizeof buf) >= want)
        for (size_t c = 0; c < n_grouped_ && c < buf[0]; ++c) out[t][c] = static_cast<double>(buf[1 + c]) * scales_[c];
    }
    for (size_t c = n_grouped_; c < fds_.size(); ++c) {
      uint64_t v[3] = {};  // value, time enabled, time running
      if (::read(fds_[c][t], v, sizeof v) != static_cast<ssize_t>(sizeof v)) continue;
      const double scale = v[2] > 0 && v[2] < v[1] ? static_cast<double>(v[1]) / static_cast<double>(v[2]) : 1.0;
      out[t][c] = static_cast<double>(v[0]) * scale * scales_[c];
    }
  }
  return out;
}

std::vector<double> CounterGroup::read() const {
  std::vector<double> out(fds_.size(), 0.0);
  for (const auto& th : read_per_thread())
    for (size_t c = 0; c < th.size(); ++c) out[c] += th[c];
  return out;
}

}  // namespace tokenscope::profile
