// `tokenscope profile` (a run with stage markers, per-op spans, counters and the roofline) and `tokenscope sysinfo`.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "engine/sysinfo.h"
#include "profile/load.h"
#include "profile/profiler.h"
#include "report/report.h"

namespace tokenscope::app {

struct ProfileArgs {
  CommonArgs common;
  SamplerParams sampling;
  std::string prompt;
  int prompt_tokens = 0;  // --prompt-tokens N: N fixed random token ids instead of -p
  int64_t n_predict = 32;
  int parallel = 1;  // sequences generating together (each its own copy of the prompt)
  bool chat = false;
  std::string out_dir;   // default: default_profile_dir()
  int trace_steps = 64;  // decode steps kept in full in trace.json before sampling (0: all)
  bool refresh_sysinfo = false;
  std::vector<std::string> events;  // named PMU events (libpfm4)
  bool sample = false;              // --sample: the hot functions per stage (task-clock sampling)
  double sample_period_us = 100;
};
struct SysinfoArgs {
  int threads = 0;
  std::string isa;
  bool refresh = false;
  bool json = false;
};

struct ReportArgs {
  std::string dir;
  std::vector<std::string> compare;  // --compare A B: two profile directories (or summary.json) or bench JSON files
  std::string output;                // the comparison page (default: B/compare.html, or B.compare.html for bench)
};

CLI::App* add_report_command(CLI::App& app, ReportArgs& a);
int cmd_report(const ReportArgs& a);
CLI::App* add_profile_command(CLI::App& app, ProfileArgs& a);
CLI::App* add_sysinfo_command(CLI::App& app, SysinfoArgs& a);
int cmd_profile(const ProfileArgs& a);
int cmd_sysinfo(const SysinfoArgs& a);
// The roofline of the machine for a run with these flags (threads, ISA), measured once and cached.
MachineInfo machine_for(const CommonArgs& c, bool refresh = false);
// Writes a profiled run's summary.json, trace.json (Perfetto) and report.html to out_dir and prints its stage table.
// load: the machine's load while the run went on (recorded in the summary, warned about when disturbed).
void write_profile(const profile::Profiler& prof, const MachineInfo& m, const std::string& model_path,
                   const std::string& out_dir, const profile::LoadReport* load = nullptr,
                   const report::TraceOptions& trace = {}, const nlohmann::json* hotspots = nullptr);
// A new directory for a profile under the user's cache: $XDG_CACHE_HOME or ~/.cache, tokenscope/profiles/<UTC time>.
std::string default_profile_dir();

}  // namespace tokenscope::app
