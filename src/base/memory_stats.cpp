#include "base/memory_stats.h"

#include <sys/resource.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace tokenscope {

namespace {

// The value of a "Key:   123 kB" line of /proc/self/status, in bytes; 0 if absent or unreadable.
uint64_t status_kib(const char* key) {
  FILE* f = std::fopen("/proc/self/status", "re");
  if (!f) return 0;
  const size_t n = std::strlen(key);
  char line[256];
  uint64_t bytes = 0;
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, key, n) != 0 || line[n] != ':') continue;
    unsigned long long kib = 0;
    if (std::sscanf(line + n + 1, "%llu", &kib) == 1) bytes = static_cast<uint64_t>(kib) * 1024;
    break;
  }
  std::fclose(f);
  return bytes;
}

}  // namespace

uint64_t current_rss_bytes() { return status_kib("VmRSS"); }

uint64_t peak_rss_bytes() { return status_kib("VmHWM"); }

bool reset_peak_rss() {
  const int fd = ::open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::write(fd, "5", 1) == 1;
  ::close(fd);
  return ok;
}

PageFaults page_faults_now() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return {ru.ru_minflt, ru.ru_majflt};
}

}  // namespace tokenscope
