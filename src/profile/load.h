// The machine's load while a measurement ran, so a profile or bench taken on a busy machine says so instead of
// passing off a disturbed figure as the machine's: CPU time other tasks used and time the hypervisor stole
// (/proc/stat), this process's involuntary context switches (getrusage), the run queue (/proc/stat
// procs_running, /proc/loadavg) and the CPU frequency where the kernel exposes it (cpufreq scaling_cur_freq).
// Two samples (start, end) per measurement: reading them costs ~50 us, nothing while the run goes on.
#pragma once

#include <string>
#include <vector>

namespace tokenscope::profile {

struct LoadSample {
  double wall_s = 0;                 // steady clock
  bool have_stat = false;            // /proc/stat was readable
  double total_j = 0, idle_j = 0, steal_j = 0;  // jiffies summed over CPUs (idle includes iowait)
  int stat_cpus = 0;                 // cpuN lines in /proc/stat
  double self_cpu_s = 0;             // this process's user + system time
  long invol_cs = 0;                 // this process's involuntary context switches
  int procs_running = 0;             // runnable tasks now (including this process's running threads)
  double loadavg1 = 0;               // /proc/loadavg, 1 minute
  std::vector<double> freq_mhz;      // per CPU, where cpufreq is readable (empty otherwise)
};
LoadSample sample_load();

struct LoadReport {
  bool measured = false;      // false: no /proc/stat (not Linux), nothing to say
  double seconds = 0;
  int cpus = 0, threads = 0;
  double others_cpus = 0;     // CPUs' worth of time other tasks ran during the measurement
  double steal_share = 0;     // share of the CPUs' time the hypervisor gave to other guests
  double invol_cs_per_s = 0;  // this process preempted, per second
  int runnable_others = 0;    // runnable tasks at the end beyond this run's threads
  double loadavg1 = 0;
  double freq_start_mhz = 0, freq_end_mhz = 0, freq_min_mhz = 0;  // mean at start and end, lowest seen; 0: unreadable
  bool disturbed = false;
  std::vector<std::string> warnings;  // each with its figure: "other tasks used 1.3 of 2 CPUs ..."
  // One line: "load: other tasks 0.02 CPUs, steal 0.0%, 3 preemptions/s, run queue +0" (+ "DISTURBED: ...").
  std::string line() const;
};

// Disturbed when, during the measurement: other tasks used more than the CPUs the run left free plus a tenth
// of its threads' (they competed for the run's CPUs); the hypervisor stole more than 2% of the time; the
// process was preempted more than 50 times a second per thread; or the CPU frequency fell or rose by more than
// 10% between start and end.
LoadReport compare_load(const LoadSample& start, const LoadSample& end, int threads);


// Samples at construction and at stop().
class LoadWatch {
 public:
  LoadWatch() : start_(sample_load()) {}
  LoadReport stop(int threads) const { return compare_load(start_, sample_load(), threads); }

 private:
  LoadSample start_;
};

}  // namespace tokenscope::profile
