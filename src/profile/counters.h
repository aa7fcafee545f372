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
  uint64_t config1 = 0, config2 = 0;  // extra encoding of some PMU events (from libpfm4)
};

// The built-in events: software first (always available), then the generic hardware events.
std::vector<CounterSpec> default_counter_specs();

class CounterGroup {
 public:
  // Opens every counter for every thread id; counters that cannot be opened are dropped.
  // extra: more events (e.g. named PMU events resolved through libpfm4); hardware ones are read like the built-in
  // hardware events, software ones join the software group.
  explicit CounterGroup(const std::vector<int>& tids, const std::vector<CounterSpec>& extra = {});
  ~CounterGroup();
  CounterGroup(const CounterGroup&) = delete;
  CounterGroup& operator=(const CounterGroup&) = delete;

  const std::vector<std::string>& names() const { return names_; }
  // Sum over threads of each counter's current value (scaled).
  std::vector<double> read() const;
  // Each thread's current values: [thread][counter], threads in the order given to the constructor.
  std::vector<std::vector<double>> read_per_thread() const;
  size_t threads() const { return n_threads_; }
  bool hardware_available() const { return hardware_available_; }
  const std::string& hardware_note() const { return hardware_note_; }  // why not, when not
  // Requested extra events that could not be opened, with the reason (one line each).
  const std::vector<std::string>& dropped() const { return dropped_; }

 private:
  std::vector<std::string> names_;
  std::vector<double> scales_;
  std::vector<std::vector<int>> fds_;  // [counter][thread]
  size_t n_threads_ = 0;
  size_t n_grouped_ = 0;  // the first n_grouped_ counters are one PERF_FORMAT_GROUP group per thread
  bool hardware_available_ = false;
  std::string hardware_note_;
  std::vector<std::string> dropped_;
};

}  // namespace tokenscope::profile
