// Two runs side by side, the way people use `perf diff`: two profiles (summary.json) per stage, op and layer
// (time per token, throughput, share of the roof, and the ratio), or two `bench` JSON outputs per test
// (tokens per second and the ratio). As a terminal table and as a self-contained HTML page with charts.
#pragma once

#include <string>
#include <vector>

namespace tokenscope::report {

struct CompareRow {
  std::string group;   // "headline", "stage", "op", "layer" (profiles) or "test" (bench)
  std::string stage;   // prefill / decode / mixed ("" for headline and bench rows)
  std::string name;    // "decode tok/s", op name ("ffn_down"), "layer 3", bench test ("tg128, 2 threads, ...")
  std::string unit;    // "ms/token", "tok/s", "ms"
  bool higher_is_better = false;
  bool in_a = false, in_b = false;
  double a = 0, b = 0;            // the compared figure
  double a_spread = 0, b_spread = 0;  // its standard deviation where known (bench)
  std::string a_roof, b_roof;     // "L3 bandwidth 81%" (profile stage and op rows)
  double ratio() const { return in_a && in_b && a > 0 ? b / a : 0; }  // B / A
};

struct Comparison {
  std::string kind;  // "profile" or "bench"
  std::string label_a, label_b;
  std::string machine_a, machine_b;  // one line each
  std::vector<CompareRow> rows;
  std::vector<std::string> notes;    // different machines or thread counts, disturbed runs
};

// a_text / b_text: the two summary.json or bench JSON (an array, or JSON lines) texts. Throws Error naming the
// label of an input that is neither, or when one is a profile and the other a bench.
Comparison compare_runs(const std::string& a_text, const std::string& b_text, const std::string& label_a,
                        const std::string& label_b);
std::string comparison_table(const Comparison& c);
// chartjs_source inlined as in html_report.h; the page marks <body data-charts-total/-drawn> the same way.
std::string comparison_html(const Comparison& c, const std::string& chartjs_source);

}  // namespace tokenscope::report
