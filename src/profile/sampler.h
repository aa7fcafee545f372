// Statistical sampling of where threads spend their time: each thread's task clock (a software perf event, so it
// works without a hardware PMU, e.g. in VMs) interrupts it every period and records the instruction pointer, the
// thread and a CLOCK_MONOTONIC time stamp (the profiler's clock, so samples fall into its steps). Recording only:
// src/report/symbols.h turns the addresses into function names.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace tokenscope::profile {

struct IpSample {
  uint64_t ip = 0;
  uint64_t time_ns = 0;  // CLOCK_MONOTONIC (= std::chrono::steady_clock on Linux)
  int tid = 0;
};

class Sampler {
 public:
  // Opens a sampling event on each thread, disabled. Throws Error naming /proc/sys/kernel/perf_event_paranoid
  // when the kernel refuses.
  Sampler(const std::vector<int>& tids, double period_us);
  ~Sampler();
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

  void start();
  // Stops sampling and collects what is left in the buffers.
  void stop();
  // After stop(): every sample, and the samples the kernel dropped because a buffer was full.
  const std::vector<IpSample>& samples() const { return samples_; }
  int64_t lost() const { return lost_; }
  double period_us() const { return period_us_; }
  // Whether kernel addresses are sampled too (perf_event_paranoid allows it).
  bool kernel() const { return kernel_; }

 private:
  struct Ring {
    int fd = -1;
    void* base = nullptr;
    size_t bytes = 0;  // the data area
  };
  void drain(Ring& r);
  std::vector<Ring> rings_;
  std::vector<IpSample> samples_;
  int64_t lost_ = 0;
  double period_us_ = 0;
  bool kernel_ = false;
  std::mutex m_;
  std::atomic<bool> running_{false};
  std::thread reader_;
};

}  // namespace tokenscope::profile
