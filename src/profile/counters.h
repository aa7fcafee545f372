// Counters per thread via perf_event_open: software events always (task clock, page faults, context
// switches, CPU migrations), hardware events (cycles, instructions, cache and TLB misses, backend stalls)
// where the machine exposes them. In a VM without a PMU the hardware ones are reported unavailable once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tokenscope::profile {

struct CounterSpec {
  std::string name;  // "task-clock-ms", "cycles", ...
  uint32_t type;     // perf_event_attr.type
  uint64_t config;
  double scale;      // raw value * scale (task clock: ns -> ms)
  bool hardware;
};

class CounterGroup {
 public:
  // Opens every counter for every thread id; counters that cannot be opened are dropped.
  explicit CounterGroup(const std::vector<int>& tids);
  ~CounterGroup();
  CounterGroup(const CounterGroup&) = delete;
  CounterGroup& operator=(const CounterGroup&) = delete;

  const std::vector<std::string>& names() const { return names_; }
  // Sum over threads of each counter's current value (scaled).
  std::vector<double> read() const;
  bool hardware_available() const { return hardware_available_; }
  const std::string& hardware_note() const { return hardware_note_; }  // why not, when not

 private:
  std::vector<std::string> names_;
  std::vector<double> scales_;
  std::vector<std::vector<int>> fds_;  // [counter][thread]
  bool hardware_available_ = false;
  std::string hardware_note_;
};

}  // namespace tokenscope::profile
