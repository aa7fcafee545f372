#include "engine/profile_report.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "base/error.h"

namespace tokenscope {

namespace {

using profile::OpKind;

bool int8_kind(const std::string& kind) { return kind == "matmul" || kind == "output projection"; }

// Roofline placement: attainable = min(peak, AI * bandwidth). Left of the ridge point (AI < peak / BW) the
// memory system limits the op, right of it the arithmetic does.
void place(double flops, double bytes, double ms, double peak_gops, const MachineInfo& m, double* ai, double* gflops_s,
           double* gbs, std::string* bound, double* bw_util, double* compute_util) {
  const double s = ms * 1e-3;
  *ai = bytes > 0 ? flops / bytes : 0;
  *gflops_s = s > 0 ? flops / s / 1e9 : 0;
  *gbs = s > 0 ? bytes / s / 1e9 : 0;
  const double ridge = m.read_gbs > 0 ? peak_gops / m.read_gbs : 0;
  *bound = *ai < ridge ? "memory" : "compute";
  *bw_util = m.read_gbs > 0 ? *gbs / m.read_gbs : 0;
  *compute_util = peak_gops > 0 ? *gflops_s / peak_gops : 0;
}

std::string pct(double x) { return strfmt("%.0f%%", 100 * x); }

}  // namespace

ProfileSummary summarize(const profile::Profiler& p, const MachineInfo& m) {
  ProfileSummary out;
  out.machine = m;
  if (p.counters() && !p.counters()->hardware_available()) out.notes.push_back(p.counters()->hardware_note());
  const std::vector<std::string> cnames = p.counters() ? p.counters()->names() : std::vector<std::string>{};
  for (profile::Stage st : {profile::Stage::prefill, profile::Stage::decode}) {
    StageSummary s;
    s.stage = profile::stage_name(st);
    std::vector<double> counters(cnames.size(), 0.0);
    for (const auto& step : p.steps()) {
      if (step.stage != st) continue;
      ++s.steps;
      s.tokens += step.n_eval;
      s.ms += (step.t1_us - step.t0_us) * 1e-3;
      for (size_t i = 0; i < step.counters.size() && i < counters.size(); ++i) counters[i] += step.counters[i];
    }
    if (s.steps == 0) continue;
    for (size_t i = 0; i < cnames.size(); ++i) s.counters.push_back({cnames[i], counters[i]});
    s.tok_s = s.ms > 0 ? s.tokens / (s.ms * 1e-3) : 0;
    std::map<std::string, OpSummary> by_kind;
    for (const auto& op : p.ops()) {
      if (op.step >= p.steps().size() || p.steps()[op.step].stage != st) continue;
      if (op.kind == OpKind::sampling) continue;  // sampling happens between steps, reported apart
      OpSummary& o = by_kind[profile::op_kind_name(op.kind)];
      o.kind = profile::op_kind_name(op.kind);
      ++o.count;
      o.ms += (op.t1_us - op.t0_us) * 1e-3;
      o.flops += op.flops;
      o.bytes += op.bytes;
    }
    for (auto& [k, o] : by_kind) {
      o.share = s.ms > 0 ? o.ms / s.ms : 0;
      place(o.flops, o.bytes, o.ms, int8_kind(k) ? m.peak_int8_gops : m.peak_f32_gflops, m, &o.ai, &o.gflops_s, &o.gbs,
            &o.bound, &o.bw_util, &o.compute_util);
      s.flops += o.flops;
      s.bytes += o.bytes;
      s.ops.push_back(o);
    }
    std::sort(s.ops.begin(), s.ops.end(), [](const OpSummary& a, const OpSummary& b) { return a.ms > b.ms; });
    place(s.flops, s.bytes, s.ms, m.peak_int8_gops, m, &s.ai, &s.gflops_s, &s.gbs, &s.bound, &s.bw_util,
          &s.compute_util);
    for (size_t i = 0; i < s.ops.size() && i < 3; ++i)
      s.main_ops += (i ? ", " : "") + s.ops[i].kind + " " + pct(s.ops[i].share);
    const OpSummary* mm = nullptr;
    for (const auto& o : s.ops)
      if (o.kind == "matmul") mm = &o;
    s.observations = strfmt("%lld tokens in %d step%s, %.1f tok/s; %.1f GFLOP/s (%s of int8 peak), %.1f GB/s (%s of "
                            "read bandwidth); %.1f FLOP/byte vs ridge %.1f",
                            static_cast<long long>(s.tokens), s.steps, s.steps == 1 ? "" : "s", s.tok_s, s.gflops_s,
                            pct(s.compute_util).c_str(), s.gbs, pct(s.bw_util).c_str(), s.ai,
                            m.read_gbs > 0 ? m.peak_int8_gops / m.read_gbs : 0.0);
    if (mm) s.observations += strfmt("; matmul %.1f FLOP/byte, %s-bound", mm->ai, mm->bound.c_str());
    out.stages.push_back(std::move(s));
  }
  return out;
}

std::string summary_json(const ProfileSummary& s, const profile::Profiler& p, const std::string& model_path) {
  nlohmann::json j;
  j["model"] = model_path;
  j["machine"] = nlohmann::json::parse(machine_info_json(s.machine));
  j["notes"] = s.notes;
  j["stages"] = nlohmann::json::array();
  for (const StageSummary& st : s.stages) {
    nlohmann::json js = {{"stage", st.stage},       {"steps", st.steps},         {"tokens", st.tokens},
                         {"ms", st.ms},             {"tok_s", st.tok_s},         {"flops", st.flops},
                         {"bytes", st.bytes},       {"ai", st.ai},               {"gflops_s", st.gflops_s},
                         {"gbs", st.gbs},           {"bound", st.bound},         {"bw_util", st.bw_util},
                         {"compute_util", st.compute_util}, {"main_ops", st.main_ops}, {"observations", st.observations}};
    js["ops"] = nlohmann::json::array();
    for (const OpSummary& o : st.ops)
      js["ops"].push_back({{"kind", o.kind}, {"count", o.count}, {"ms", o.ms}, {"share", o.share}, {"flops", o.flops},
                           {"bytes", o.bytes}, {"gflops_s", o.gflops_s}, {"gbs", o.gbs}, {"ai", o.ai},
                           {"bound", o.bound}, {"bw_util", o.bw_util}, {"compute_util", o.compute_util}});
    js["counters"] = nlohmann::json::object();
    for (const auto& [k, v] : st.counters) js["counters"][k] = v;
    j["stages"].push_back(js);
  }
  j["steps"] = nlohmann::json::array();
  for (const auto& step : p.steps()) {
    nlohmann::json js = {{"index", step.index},
                         {"stage", profile::stage_name(step.stage)},
                         {"past", step.past},
                         {"n_eval", step.n_eval},
                         {"start_us", step.t0_us},
                         {"ms", (step.t1_us - step.t0_us) * 1e-3}};
    if (p.counters()) {
      js["counters"] = nlohmann::json::object();
      for (size_t i = 0; i < step.counters.size(); ++i) js["counters"][p.counters()->names()[i]] = step.counters[i];
    }
    j["steps"].push_back(js);
  }
  return j.dump(2);
}

std::string trace_json(const profile::Profiler& p) {
  nlohmann::json ev = nlohmann::json::array();
  ev.push_back({{"ph", "M"}, {"name", "process_name"}, {"pid", 1}, {"args", {{"name", "tokenscope"}}}});
  ev.push_back({{"ph", "M"}, {"name", "thread_name"}, {"pid", 1}, {"tid", 1}, {"args", {{"name", "steps"}}}});
  ev.push_back({{"ph", "M"}, {"name", "thread_name"}, {"pid", 1}, {"tid", 2}, {"args", {{"name", "ops"}}}});
  for (const auto& s : p.steps()) {
    ev.push_back({{"ph", "X"},
                  {"name", strfmt("%s: past %lld, n_eval %lld", profile::stage_name(s.stage),
                                  static_cast<long long>(s.past), static_cast<long long>(s.n_eval))},
                  {"cat", profile::stage_name(s.stage)},
                  {"pid", 1},
                  {"tid", 1},
                  {"ts", s.t0_us},
                  {"dur", s.t1_us - s.t0_us},
                  {"args", {{"past", s.past}, {"n_eval", s.n_eval}, {"stage", profile::stage_name(s.stage)}}}});
    if (p.counters())
      for (size_t i = 0; i < s.counters.size(); ++i)
        ev.push_back({{"ph", "C"},
                      {"name", p.counters()->names()[i]},
                      {"pid", 1},
                      {"ts", s.t0_us},
                      {"args", {{"value", s.counters[i]}}}});
  }
  for (const auto& o : p.ops())
    ev.push_back({{"ph", "X"},
                  {"name", o.name},
                  {"cat", profile::op_kind_name(o.kind)},
                  {"pid", 1},
                  {"tid", 2},
                  {"ts", o.t0_us},
                  {"dur", o.t1_us - o.t0_us},
                  {"args",
                   {{"layer", o.layer}, {"flops", o.flops}, {"bytes", o.bytes}, {"m", o.m}, {"n", o.n}, {"k", o.k},
                    {"format", o.format}, {"step", o.step}}}});
  nlohmann::json j = {{"traceEvents", ev}, {"displayTimeUnit", "ms"}};
  return j.dump();
}

void print_profile_table(const ProfileSummary& s, FILE* out) {
  std::fprintf(out, "machine: %s, %d threads, %s | read %.1f GB/s | int8 peak %.0f GOP/s | f32 peak %.0f GFLOP/s%s\n",
               s.machine.cpu.c_str(), s.machine.threads, s.machine.isa.c_str(), s.machine.read_gbs,
               s.machine.peak_int8_gops, s.machine.peak_f32_gflops, s.machine.from_cache ? " (cached)" : "");
  for (const std::string& n : s.notes) std::fprintf(out, "note: %s\n", n.c_str());
  for (const StageSummary& st : s.stages) {
    std::fprintf(out, "\n%s: %d steps, %lld tokens, %.1f ms, %.1f tok/s\n", st.stage.c_str(), st.steps,
                 static_cast<long long>(st.tokens), st.ms, st.tok_s);
    std::fprintf(out, "  %-18s %6s %9s %7s %9s %8s %8s %-8s %6s %6s\n", "op", "calls", "ms", "share", "GFLOP/s", "GB/s",
                 "FLOP/B", "bound", "bw%", "peak%");
    for (const OpSummary& o : st.ops)
      std::fprintf(out, "  %-18s %6d %9.2f %6.1f%% %9.1f %8.1f %8.2f %-8s %5.0f%% %5.0f%%\n", o.kind.c_str(), o.count,
                   o.ms, 100 * o.share, o.gflops_s, o.gbs, o.ai, o.bound.c_str(), 100 * o.bw_util, 100 * o.compute_util);
    if (!st.counters.empty()) {
      std::fprintf(out, "  counters:");
      for (const auto& [k, v] : st.counters) std::fprintf(out, " %s=%.0f", k.c_str(), v);
      std::fprintf(out, "\n");
    }
  }
  std::fprintf(out, "\n| stage | main operations | bottleneck | key observations |\n|---|---|---|---|\n");
  for (const StageSummary& st : s.stages)
    std::fprintf(out, "| %s | %s | %s-bound | %s |\n", st.stage.c_str(), st.main_ops.c_str(), st.bound.c_str(),
                 st.observations.c_str());
}

}  // namespace tokenscope
