// Turns a profiled run into per-stage figures placed on the machine's roofline, and writes them out:
// summary.json, a Chrome Trace Event file (opens in Perfetto) and the terminal table.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "engine/sysinfo.h"
#include "profile/profiler.h"

namespace tokenscope {

struct OpSummary {
  std::string kind;
  int count = 0;
  double ms = 0, share = 0;          // share of the stage's time
  double flops = 0, bytes = 0;
  double gflops_s = 0, gbs = 0, ai = 0;  // achieved GFLOP/s, GB/s, FLOPs per byte
  std::string bound;                 // "memory" or "compute" (from the roofline: AI vs peak / bandwidth)
  double bw_util = 0, compute_util = 0;  // fraction of measured read bandwidth / peak
};

struct StageSummary {
  std::string stage;
  int steps = 0;
  int64_t tokens = 0;
  double ms = 0, tok_s = 0;
  double flops = 0, bytes = 0, ai = 0, gflops_s = 0, gbs = 0;
  std::string bound;
  double bw_util = 0, compute_util = 0;
  std::vector<OpSummary> ops;  // by time, largest first
  std::vector<std::pair<std::string, double>> counters;  // summed over the stage's steps
  std::string main_ops, observations;
};

struct ProfileSummary {
  MachineInfo machine;
  std::vector<StageSummary> stages;  // prefill, decode (those that occurred)
  std::vector<std::string> notes;    // e.g. "hardware counters are not available ..."
};

ProfileSummary summarize(const profile::Profiler& p, const MachineInfo& m);
std::string summary_json(const ProfileSummary& s, const profile::Profiler& p, const std::string& model_path);
std::string trace_json(const profile::Profiler& p);
void print_profile_table(const ProfileSummary& s, FILE* out);

}  // namespace tokenscope
