#include "report/hotspots.h"

#include <algorithm>
#include <map>

#include "base/error.h"
#include "report/symbols.h"

namespace tokenscope::report {

nlohmann::json hotspots_json(const profile::Sampler& s, const profile::Profiler& p, int top) {
  using nlohmann::json;
  struct Span {
    double t0, t1;
    const char* stage;
  };
  std::vector<Span> spans;
  for (const auto& st : p.steps()) spans.push_back({st.t0_us, st.t1_us, profile::stage_name(st.stage)});
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.t0 < b.t0; });
  const double start_ns = static_cast<double>(p.start_ns());
  Symbolizer sym;
  std::map<std::string, std::map<std::pair<std::string, std::string>, int64_t>> counts;  // stage -> (fn, module) -> n
  std::map<std::string, int64_t> totals;
  for (const profile::IpSample& x : s.samples()) {
    const double us = (static_cast<double>(x.time_ns) - start_ns) / 1000.0;
    auto it = std::upper_bound(spans.begin(), spans.end(), us, [](double t, const Span& sp) { return t < sp.t0; });
    const char* stage = "other";
    if (it != spans.begin() && us <= std::prev(it)->t1) stage = std::prev(it)->stage;
    const CodeLocation loc = sym.resolve(x.ip);
    ++counts[stage][{loc.function, loc.module}];
    ++totals[stage];
  }
  json stages = json::object();
  for (const auto& [stage, fns] : counts) {
    std::vector<std::pair<int64_t, std::pair<std::string, std::string>>> v;
    for (const auto& [k, n] : fns) v.push_back({n, k});
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    json list = json::array();
    const double total = static_cast<double>(totals[stage]);
    for (size_t i = 0; i < v.size() && static_cast<int>(i) < top; ++i)
      list.push_back({{"function", v[i].second.first}, {"module", v[i].second.second}, {"samples", v[i].first},
                      {"share", static_cast<double>(v[i].first) / total}});
    stages[stage] = {{"samples", totals[stage]}, {"functions", list}};
  }
  std::string note;
  if (s.lost() > 0) note = strfmt("%lld samples were lost (a buffer was full)", static_cast<long long>(s.lost()));
  if (!s.kernel()) note += std::string(note.empty() ? "" : "; ") + "kernel time is not sampled (perf_event_paranoid >= 2)";
  return {{"period_us", s.period_us()}, {"samples", s.samples().size()}, {"lost", s.lost()}, {"kernel", s.kernel()},
          {"note", note}, {"stages", stages}};
}

std::string hotspots_table(const nlohmann::json& h, int rows) {
  std::string out = strfmt("hot functions (task-clock samples every %.0f us):\n", h.value("period_us", 0.0));
  for (const char* stage : {"prefill", "decode", "mixed", "other"}) {
    if (!h["stages"].contains(stage)) continue;
    const auto& st = h["stages"][stage];
    out += strfmt("  %s: %lld samples\n", stage, static_cast<long long>(st.value("samples", 0)));
    int i = 0;
    for (const auto& f : st["functions"]) {
      if (i++ >= rows) break;
      std::string fn = f.value("function", "?");
      if (fn.size() > 72) fn = fn.substr(0, 69) + "...";
      out += strfmt("    %5.1f%%  %-72s %s\n", 100 * f.value("share", 0.0), fn.c_str(), f.value("module", "").c_str());
    }
  }
  if (!h.value("note", std::string()).empty()) out += "  note: " + h.value("note", std::string()) + "\n";
  return out;
}

}  // namespace tokenscope::report
