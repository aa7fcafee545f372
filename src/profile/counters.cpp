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

int open_counter(uint32_t type, uint64_t config, int tid) {
  perf_event_attr a;
  std::memset(&a, 0, sizeof a);
  a.size = sizeof a;
  a.type = type;
  a.config = config;
  a.disabled = 0;
  a.exclude_kernel = type == PERF_TYPE_HARDWARE || type == PERF_TYPE_HW_CACHE ? 1 : 0;
  a.exclude_hv = 1;
  return static_cast<int>(syscall(SYS_perf_event_open, &a, tid, -1, -1, 0));
}

std::vector<CounterSpec> specs() {
  const uint64_t dtlb_miss = PERF_COUNT_HW_CACHE_DTLB | (PERF_COUNT_HW_CACHE_OP_READ << 8) |
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
      {"stalled-cycles-backend", PERF_TYPE_HARDWARE, PERF_COUNT_HW_STALLED_CYCLES_BACKEND, 1, true},
  };
}

}  // namespace

CounterGroup::CounterGroup(const std::vector<int>& tids) {
  std::string first_hw_error;
  for (const CounterSpec& s : specs()) {
    std::vector<int> fds;
    bool ok = true;
    for (int tid : tids) {
      const int fd = open_counter(s.type, s.config, tid);
      if (fd < 0) {
        if (s.hardware && first_hw_error.empty()) first_hw_error = s.name + ": " + std::strerror(errno);
        ok = false;
        break;
      }
      fds.push_back(fd);
    }
    if (!ok) {
      for (int fd : fds) close(fd);
      continue;
    }
    if (s.hardware) hardware_available_ = true;
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

std::vector<double> CounterGroup::read() const {
  std::vector<double> out(fds_.size(), 0.0);
  for (size_t c = 0; c < fds_.size(); ++c) {
    for (int fd : fds_[c]) {
      uint64_t v = 0;
      if (::read(fd, &v, sizeof v) == static_cast<ssize_t>(sizeof v)) out[c] += static_cast<double>(v) * scales_[c];
    }
  }
  return out;
}

}  // namespace tokenscope::profile
