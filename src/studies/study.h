// `tokenscope study`: the classic CPU-inference experiments, each one command. A study is a list of
// configurations (tokenscope command lines, environment, a step before each run such as dropping the file from
// the page cache), a few metrics read from each run's JSON and its resource use, and the classic finding with the
// rule that decides whether this run reproduces it. The runner measures every configuration once to warm up,
// then for the given rounds runs them interleaved (ABC..., then ...CBA), and writes a terminal table (medians and
// min-max), NAME.json and a self-contained NAME.html (table, charts, the machine, the finding and the verdict).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "studies/child.h"

namespace tokenscope::studies {

using json = nlohmann::json;

struct Options {
  std::string bin;         // the tokenscope binary the configurations run
  std::string model;       // -m: the model file (resolved: never empty)
  bool model_given = false;  // -m was given (else model is the default model or a study's classic shape)
  std::string shape;       // formats: the synth shape (empty: smollm2-135m)
  std::string out_dir;     // where NAME.json and NAME.html go
  std::string work_dir;    // scratch: synthesized models, per-run output directories
  int rounds = 5;
  int threads = 0;         // -t for the configurations (0: all CPUs)
  bool quick = false;      // tiny prompts and sizes, for CI
  double timeout_s = 900;  // per run
};

// What the studies know of the machine (for the page's header and the verdicts' roofs).
struct Machine {
  std::string cpu, isa, kernel, thp;
  int cpus = 0;
  double dram_gbs = 0, peak_int8_gops = 0;
  std::vector<std::pair<std::string, double>> levels;  // cache level name -> read GB/s, innermost first
  std::vector<std::pair<std::string, double>> capacities;  // cache level name -> bytes
  json sysinfo;  // `tokenscope sysinfo --json` as it printed
};

struct Config {
  std::string name;                        // the table's row label
  std::string series;                      // line charts: which line it belongs to
  double x = 0;                            // line charts: its x value
  std::vector<std::string> args;           // tokenscope's arguments; "{out}" becomes a fresh directory per run
  Env env;
  std::string json_file;                   // read this file (with "{out}" replaced) instead of stdout as JSON
  std::function<std::string()> before;     // before each run (warm-up included); returns a note or ""
};

struct Metric {
  std::string key, label, unit;
  bool higher_is_better = true;
};

// One run's figures: metric key -> value (absent: not measured in that run).
using Sample = std::map<std::string, double>;

struct Stat {
  double median = 0, min = 0, max = 0;
  int n = 0;
};

struct ConfigResult {
  Config config;
  std::map<std::string, std::vector<double>> samples;
  std::vector<std::string> notes;  // fallbacks and remarks from the runs (deduplicated)
  std::string skipped;             // non-empty: could not run here, and why
  json last;                       // the last run's JSON (for details the table does not hold)
  std::vector<json> runs;          // every measured run's JSON
  std::optional<Stat> stat(const std::string& key) const;
};

struct Verdict {
  std::string status;  // "reproduced", "not reproduced" or "inconclusive"
  std::string text;    // the numbers that decide it
};

// A table beyond the configurations x metrics one (e.g. the top functions per stage).
struct ExtraTable {
  std::string title;
  std::vector<std::string> headers;
  std::vector<std::vector<std::string>> rows;
};

struct Study {
  std::string name, title;
  std::string finding;                 // the classic finding it tests
  std::string planned;                 // non-empty: not a runnable study yet; how to run the experiment today
  std::string caveat;                  // what this tool cannot measure here, said once under the finding
  // The model the classic experiment used, as a synth shape in Q4_0 (e.g. qwen1.5-0.5b): the default when no -m is
  // given (outside --quick, which uses the default model); empty: the default model.
  std::string classic_shape;
  std::vector<Metric> metrics;         // columns of the table
  std::vector<std::string> charts;     // metric keys plotted, one chart each
  std::string x_label;                 // non-empty: line charts over Config::x, one line per series
  std::function<std::vector<Config>(const Options&, const Machine&)> configs;
  // A run's figures from its JSON and resource use; may add notes.
  std::function<Sample(const json& out, const ChildResult& child, const Config& c, const Machine& m,
                       std::vector<std::string>& notes)>
      extract;
  std::function<Verdict(const std::vector<ConfigResult>& r, const Machine& m)> judge;
  std::function<std::vector<ExtraTable>(const std::vector<ConfigResult>& r)> extra_tables;  // optional
};

// Every study, in the order `study all` runs them.
const std::vector<Study>& catalog();
const Study* find_study(const std::string& name);

// The model file of `shape` in `type` with random weights (tokenscope synth), written once into o.work_dir/models.
std::string synth_model(const Options& o, const std::string& shape, const std::string& type);

// The machine as `sysinfo --json` (run through bin) and /proc, /sys describe it.
Machine describe_machine(const std::string& bin);

struct StudyResult {
  const Study* study = nullptr;
  Machine machine;
  Options options;
  std::vector<ConfigResult> configs;
  Verdict verdict;
  std::vector<ExtraTable> extra;
  std::string model_file;
  double seconds = 0;
};

// Runs a study: warm-up, rounds interleaved; progress on stderr.
StudyResult run_study(const Study& s, const Options& o, const Machine& m);

// The outputs.
std::string terminal_table(const StudyResult& r);
json result_json(const StudyResult& r);
std::string result_markdown(const StudyResult& r);  // the table, finding and verdict as Markdown
std::string result_html(const StudyResult& r, const std::string& chartjs_source);

// Median, min and max of v (v not empty).
Stat stat_of(std::vector<double> v);

}  // namespace tokenscope::studies
