// Turns a profiled run into per-stage figures placed on the machine's roofline, and writes them out:
// summary.json, a Chrome Trace Event file (opens in Perfetto), the terminal tables. html_report.h turns
// summary.json into the self-contained HTML report.
#pragma once

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "profile/load.h"
#include "profile/profiler.h"
#include "report/placement.h"

namespace tokenscope::report {

using profile::LoadReport;
using profile::Profiler;

struct OpSummary {
  std::string kind;                  // op kind ("matmul"), or for per-name rows the op's name ("ffn_down")
  std::string op_kind;               // the kind, also for per-name rows
  int count = 0;
  double ms = 0, share = 0;          // share of the stage's time
  double flops = 0, bytes = 0;
  double gflops_s = 0, gbs = 0, ai = 0;  // achieved GFLOP/s, GB/s, FLOPs per byte
  std::string bound;                 // "memory" or "compute" (from the roofline: AI vs peak / bandwidth)
  double bw_util = 0, compute_util = 0;  // fraction of measured read bandwidth / peak
  double roof_util = 0;              // fraction of the attainable throughput at this AI (placed level)
  double peak = 0;                   // the peak it is measured against (int8 for matmuls, f32 otherwise)
  // The cache-aware placement (roofline.h): the level whose roof applies, the roof and the share of it, and
  // the verdict ("bound by L3 bandwidth (...): 81% of the L3 roof"); over_note says why a share is above 100%.
  std::string level, sized_level, roof, verdict, over_note;
  double working_set = 0, level_gbs = 0, roof_share = 0;
};

struct StageSummary {
  std::string stage;
  int steps = 0;
  int64_t tokens = 0;
  double mean_batch = 0;             // sequences per step, on average
  double ms = 0, tok_s = 0, ms_per_step = 0;
  double ops_ms = 0;                 // time inside op spans (the rest: step overhead)
  double flops = 0, bytes = 0, ai = 0, gflops_s = 0, gbs = 0;
  std::string bound;
  double bw_util = 0, compute_util = 0, roof_util = 0;
  std::string level, sized_level, roof, verdict, over_note;  // the cache-aware placement, as for ops
  double working_set = 0, level_gbs = 0, roof_share = 0;
  std::vector<OpSummary> ops;        // per kind, by time, largest first
  std::vector<OpSummary> by_name;    // per op name (attn_qkv, ffn_down, output, ...), by time
  std::vector<std::pair<std::string, double>> counters;  // summed over the stage's steps and threads
  double threads_busy = 0;           // task clock / (wall time x threads), when the task clock is counted
  std::string main_ops, bottleneck, observations;
  // Per layer: its time and each op's (by name) in this stage, layers in order.
  struct Layer {
    int layer = 0;
    double ms = 0;
    std::vector<std::pair<std::string, double>> ops;  // op name, ms
  };
  std::vector<Layer> layers;
};

// The figures people quote first.
struct Headline {
  double ttft_ms = 0;           // first step's start to the end of sampling the first generated token
  double prefill_tok_s = 0, decode_tok_s = 0, decode_ms_per_token = 0;
  int64_t prompt_tokens = 0, generated_tokens = 0;
};

struct ProfileSummary {
  MachineInfo machine;
  std::vector<StageSummary> stages;  // prefill, decode, mixed (those that occurred)
  std::vector<std::string> notes;    // e.g. "hardware counters are not available ..."
  bool hardware_counters = false;
  LoadReport load;                   // the machine's load while the run went on (load.measured: recorded)
  Headline headline;
  std::string command;               // the command line that made the run (this process's, when written)
};

ProfileSummary summarize(const Profiler& p, const MachineInfo& m);
// This process's command line (/proc/self/cmdline), arguments quoted where a shell would need it.
std::string this_command_line();
// extra: more top-level fields (e.g. "model", "prompt_tokens", "threads").
std::string summary_json(const ProfileSummary& s, const Profiler& p, const std::string& model_path);
// Bounding a long run's trace: every prefill step and the first full_steps decode (or mixed) steps keep their op
// and thread spans; after them, one step in `every` does, chosen so that at most max_sampled more are kept.
// Step markers and counters stay for every step. full_steps 0: everything. The sampling is stated in the
// trace (metadata "trace_sampling" and an instant event where it starts).
struct TraceOptions {
  int full_steps = 64;
  int max_sampled = 192;
};
std::string trace_json(const Profiler& p, const TraceOptions& opt = {});
void print_profile_table(const ProfileSummary& s, FILE* out);
// "machine: AMD EPYC, 2 threads, avx512 | L1 64 KiB 310.2 GB/s | ... | int8 peak 470 GOP/s | ...".
std::string machine_line(const MachineInfo& m);
// The closing table alone (stage, main operations, bottleneck, key observations), as Markdown.
std::string stage_table_markdown(const ProfileSummary& s);

// The machine's load (profile/load.h) as JSON (summary.json's "load", bench records), and back: measured is
// false when absent.
std::string load_json(const LoadReport& r);
LoadReport load_from_json(const std::string& text);

}  // namespace tokenscope::report
