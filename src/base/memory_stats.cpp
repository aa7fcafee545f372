#include "base/memory_stats.h"

#include <sys/resource.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace tokenscope {

uint64_t proc_field(const char* path, const char* key) {
  FILE* f = std::fopen(path, "re");
  if (!f) return 0;
  const size_t n = std::strlen(key);
  char line[256];
  uint64_t value = 0;
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, key, n) != 0 || line[n] != ':') continue;
    unsigned long long v = 0;
    if (std::sscanf(line + n + 1, "%llu", &v) == 1) value = static_cast<uint64_t>(v);
    break;
  }
  std::fclose(f);
  return value;
}

uint64_t current_rss_bytes() { return proc_field("/proc/self/status", "VmRSS") * 1024; }

uint64_t peak_rss_bytes() { return proc_field("/proc/self/status", "VmHWM") * 1024; }

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
