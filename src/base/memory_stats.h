// The process's resident memory as the kernel reports it (/proc/self/status), for the load and run reports
// and the tests that bound them.
#pragma once

#include <cstdint>

namespace tokenscope {

// The number on a "Key:   123 kB" (or "Key: 123") line of a /proc file such as /proc/self/status or
// /proc/meminfo, as written (kB where the file says so); 0 if the key is absent or the file unreadable.
uint64_t proc_field(const char* path, const char* key);
// VmRSS: the bytes resident now (anonymous, file-mapped and shared memory). 0 if unreadable.
uint64_t current_rss_bytes();
// VmHWM: the most bytes resident at any time since the start, or since reset_peak_rss. 0 if unreadable.
uint64_t peak_rss_bytes();
// The process's page faults so far (getrusage): minor (no I/O) and major (read from the disk).
struct PageFaults {
  int64_t minor = 0, major = 0;
};
PageFaults page_faults_now();
// Sets the peak to the current resident size (writes 5 to /proc/self/clear_refs, Linux 4.0+), so that a
// later peak_rss_bytes covers only what follows. False where the kernel does not allow it.
bool reset_peak_rss();

}  // namespace tokenscope
