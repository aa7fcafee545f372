// Running one configuration of a study: tokenscope itself as a child process, its stdout captured, its resource
// use (CPU time, faults, context switches, peak RSS) from wait4.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace tokenscope::studies {

struct ChildResult {
  bool ok = false;        // exited with status 0
  int exit_code = -1;     // or 128 + the signal that ended it
  std::string out;        // stdout
  std::string err;        // stderr (its last 8 KiB)
  double wall_ms = 0, user_ms = 0, sys_ms = 0;
  int64_t minor_faults = 0, major_faults = 0;
  int64_t voluntary_cs = 0, involuntary_cs = 0;
  int64_t max_rss_kb = 0;
};

using Env = std::vector<std::pair<std::string, std::string>>;

// Runs bin with args, env added to (or replacing in) this process's environment. A child still running after
// timeout_s is killed (the result says so in err). Throws Error if it cannot be started.
ChildResult run_child(const std::string& bin, const std::vector<std::string>& args, const Env& env, double timeout_s);

}  // namespace tokenscope::studies
