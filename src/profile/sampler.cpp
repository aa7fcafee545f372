#include "profile/sampler.h"

#include <linux/perf_event.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "base/error.h"
#include "base/huge_buffer.h"

namespace tokenscope::profile {

namespace {

constexpr size_t kRingPages = 256;  // data pages per thread (1 MiB with 4 KiB pages): ~32k samples

int open_sampling(int tid, uint64_t period_ns, bool kernel) {
  perf_event_attr a;
  std::memset(&a, 0, sizeof a);
  a.size = sizeof a;
  a.type = PERF_TYPE_SOFTWARE;
  a.config = PERF_COUNT_SW_TASK_CLOCK;
  a.sample_period = period_ns;
  a.sample_type = PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_TIME;
  a.disabled = 1;
  a.exclude_kernel = kernel ? 0 : 1;
  a.exclude_hv = 1;
  a.use_clockid = 1;
  a.clockid = CLOCK_MONOTONIC;
  a.watermark = 1;
  a.wakeup_watermark = static_cast<uint32_t>(kRingPages * page_bytes() / 2);
  return static_cast<int>(syscall(SYS_perf_event_open, &a, tid, -1, -1, PERF_FLAG_FD_CLOEXEC));
}

std::string paranoid() {
  std::ifstream f("/proc/sys/kernel/perf_event_paranoid");
  std::string s;
  f >> s;
  return s.empty() ? "unreadable" : s;
}

}  // namespace

Sampler::Sampler(const std::vector<int>& tids, double period_us) : period_us_(period_us) {
  if (period_us < 10) fail("sampling period %.1f us is too short (at least 10 us)", period_us);
  const uint64_t period_ns = static_cast<uint64_t>(period_us * 1000);
  kernel_ = true;
  for (int tid : tids) {
    int fd = open_sampling(tid, period_ns, kernel_);
    if (fd < 0 && kernel_ && (errno == EACCES || errno == EPERM)) {
      kernel_ = false;  // user space only, as perf_event_paranoid 2 allows
      fd = open_sampling(tid, period_ns, false);
    }
    if (fd < 0) {
      const int e = errno;
      for (Ring& r : rings_) {
        munmap(r.base, r.bytes + page_bytes());
        ::close(r.fd);
      }
      fail("cannot sample thread %d's task clock: %s (perf_event_paranoid is %s; 2 or lower allows a process to "
           "sample itself)", tid, std::strerror(e), paranoid().c_str());
    }
    Ring r;
    r.fd = fd;
    r.bytes = kRingPages * page_bytes();
    r.base = mmap(nullptr, r.bytes + page_bytes(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (r.base == MAP_FAILED) {
      const int e = errno;
      ::close(fd);
      for (Ring& o : rings_) {
        munmap(o.base, o.bytes + page_bytes());
        ::close(o.fd);
      }
      fail("cannot map the sampling buffer: %s (perf_event_mlock_kb may be too small)", std::strerror(e));
    }
    rings_.push_back(r);
  }
}

Sampler::~Sampler() {
  if (running_) stop();
  for (Ring& r : rings_) {
    munmap(r.base, r.bytes + page_bytes());
    ::close(r.fd);
  }
}

void Sampler::start() {
  for (Ring& r : rings_) ioctl(r.fd, PERF_EVENT_IOC_ENABLE, 0);
  running_ = true;
  // A reader empties the buffers as they fill (the kernel wakes it at half full), so long runs lose nothing.
  reader_ = std::thread([this] {
    std::vector<pollfd> fds;
    for (const Ring& r : rings_) fds.push_back({r.fd, POLLIN, 0});
    while (running_) {
      ::poll(fds.data(), fds.size(), 50);
      std::lock_guard<std::mutex> l(m_);
      for (Ring& r : rings_) drain(r);
    }
  });
}

void Sampler::stop() {
  if (!running_) return;
  for (Ring& r : rings_) ioctl(r.fd, PERF_EVENT_IOC_DISABLE, 0);
  running_ = false;
  reader_.join();
  std::lock_guard<std::mutex> l(m_);
  for (Ring& r : rings_) drain(r);
}

void Sampler::drain(Ring& r) {
  auto* meta = static_cast<perf_event_mmap_page*>(r.base);
  const uint8_t* data = static_cast<const uint8_t*>(r.base) + page_bytes();
  const uint64_t head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
  uint64_t tail = meta->data_tail;
  // Copies n bytes at ring offset `at`, across the wrap.
  auto copy = [&](uint64_t at, void* dst, size_t n) {
    const size_t off = static_cast<size_t>(at % r.bytes);
    const size_t first = std::min(n, r.bytes - off);
    std::memcpy(dst, data + off, first);
    if (first < n) std::memcpy(static_cast<uint8_t*>(dst) + first, data, n - first);
  };
  while (tail + sizeof(perf_event_header) <= head) {
    perf_event_header h;
    copy(tail, &h, sizeof h);
    if (h.size < sizeof h || tail + h.size > head) break;
    if (h.type == PERF_RECORD_SAMPLE && h.size >= sizeof h + 24) {
      struct {
        uint64_t ip;
        uint32_t pid, tid;
        uint64_t time;
      } s;
      copy(tail + sizeof h, &s, sizeof s);
      samples_.push_back({s.ip, s.time, static_cast<int>(s.tid)});
    } else if (h.type == PERF_RECORD_LOST && h.size >= sizeof h + 16) {
      uint64_t v[2];
      copy(tail + sizeof h, v, sizeof v);
      lost_ += static_cast<int64_t>(v[1]);
    }
    tail += h.size;
  }
  __atomic_store_n(&meta->data_tail, tail, __ATOMIC_RELEASE);
}

}  // namespace tokenscope::profile
