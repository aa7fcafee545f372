#include "profile/load.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "base/error.h"

namespace tokenscope::profile {

namespace {

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

}  // namespace

LoadSample sample_load() {
  LoadSample s;
  s.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  if (std::ifstream f("/proc/stat"); f) {
    std::string line;
    while (std::getline(f, line)) {
      if (line.rfind("cpu ", 0) == 0) {
        std::istringstream ss(line.substr(4));
        double v[10] = {};
        for (double& x : v) ss >> x;
        // user nice system idle iowait irq softirq steal guest guest_nice (guest time is inside user)
        s.total_j = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
        s.idle_j = v[3] + v[4];
        s.steal_j = v[7];
        s.have_stat = true;
      } else if (line.rfind("cpu", 0) == 0) {
        ++s.stat_cpus;
      } else if (line.rfind("procs_running ", 0) == 0) {
        s.procs_running = std::atoi(line.c_str() + 14);
      }
    }
  }
  rusage ru{};
  if (getrusage(RUSAGE_SELF, &ru) == 0) {
    s.self_cpu_s = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                   1e-6 * static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
    s.invol_cs = ru.ru_nivcsw;
  }
  if (std::ifstream f("/proc/loadavg"); f) f >> s.loadavg1;
  for (int c = 0; c < std::max(1, s.stat_cpus); ++c) {
    std::ifstream f("/sys/devices/system/cpu/cpu" + std::to_string(c) + "/cpufreq/scaling_cur_freq");
    double khz = 0;
    if (!(f >> khz) || khz <= 0) break;
    s.freq_mhz.push_back(khz / 1000);
  }
  return s;
}

LoadReport compare_load(const LoadSample& a, const LoadSample& b, int threads) {
  LoadReport r;
  r.threads = std::max(1, threads);
  r.seconds = b.wall_s - a.wall_s;
  if (!a.have_stat || !b.have_stat || r.seconds <= 0) return r;
  r.measured = true;
  r.cpus = std::max(1, b.stat_cpus);
  const double total = b.total_j - a.total_j;
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK) > 0 ? sysconf(_SC_CLK_TCK) : 100);
  if (total > 0) {
    const double busy = total - (b.idle_j - a.idle_j) - (b.steal_j - a.steal_j);
    const double self = (b.self_cpu_s - a.self_cpu_s) * hz;
    // Jiffies per CPU over the interval: total / cpus. Ticks are coarse (10 ms at HZ 100), so a short
    // interval's figure carries about one tick per CPU of error.
    r.others_cpus = std::max(0.0, (busy - self) / (total / r.cpus));
    r.steal_share = (b.steal_j - a.steal_j) / total;
  }
  r.invol_cs_per_s = static_cast<double>(b.invol_cs - a.invol_cs) / r.seconds;
  r.runnable_others = std::max(0, b.procs_running - r.threads);
  r.loadavg1 = b.loadavg1;
  if (!a.freq_mhz.empty() && !b.freq_mhz.empty()) {
    r.freq_start_mhz = mean(a.freq_mhz);
    r.freq_end_mhz = mean(b.freq_mhz);
    r.freq_min_mhz = std::min(*std::min_element(a.freq_mhz.begin(), a.freq_mhz.end()),
                              *std::min_element(b.freq_mhz.begin(), b.freq_mhz.end()));
  }
  const double free_cpus = std::max(0, r.cpus - r.threads);
  if (r.others_cpus > free_cpus + 0.1 * r.threads)
    r.warnings.push_back(strfmt("other tasks used %.2f of the %d CPUs while this ran on %d thread%s (more than the "
                                "%.0f CPU%s it left free): they competed for its CPUs",
                                r.others_cpus, r.cpus, r.threads, r.threads == 1 ? "" : "s", free_cpus,
                                free_cpus == 1 ? "" : "s"));
  if (r.steal_share > 0.02)
    r.warnings.push_back(strfmt("the hypervisor stole %.1f%% of the CPUs' time (steal)", 100 * r.steal_share));
  if (r.invol_cs_per_s > 50.0 * r.threads)
    r.warnings.push_back(strfmt("this process was preempted %.0f times a second (involuntary context switches)",
                                r.invol_cs_per_s));
  if (r.freq_start_mhz > 0 && r.freq_end_mhz > 0 &&
      std::abs(r.freq_end_mhz - r.freq_start_mhz) > 0.1 * r.freq_start_mhz)
    r.warnings.push_back(strfmt("the CPU frequency moved from %.0f to %.0f MHz", r.freq_start_mhz, r.freq_end_mhz));
  r.disturbed = !r.warnings.empty();
  return r;
}

std::string LoadReport::line() const {
  if (!measured) return "load: not measured (no /proc/stat)";
  std::string s = strfmt("load over %.1f s: other tasks %.2f of %d CPUs, steal %.1f%%, %.0f preemptions/s, run queue "
                         "+%d beyond this run's %d thread%s, loadavg %.2f",
                         seconds, others_cpus, cpus, 100 * steal_share, invol_cs_per_s, runnable_others, threads,
                         threads == 1 ? "" : "s", loadavg1);
  if (freq_start_mhz > 0) s += strfmt(", %.0f -> %.0f MHz", freq_start_mhz, freq_end_mhz);
  return s;
}

}  // namespace tokenscope::profile
