#include "report/report.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "engine/sysinfo.h"

namespace tokenscope::report {

using namespace tokenscope::profile;

namespace {

bool int8_kind(OpKind k) { return k == OpKind::matmul || k == OpKind::output; }

// Weights and the KV cache were last touched a whole step ago, so an op that reads them finds them where the
// step's working set lives; the other ops read activations the op before them just wrote (their own bytes).
bool reads_step_data(OpKind k) {
  return k == OpKind::matmul || k == OpKind::output || k == OpKind::attention || k == OpKind::embedding;
}

template <class T>
void apply(T& o, const Placement& pl) {
  const RooflinePoint& p = pl.point;
  o.ai = p.ai;
  o.gflops_s = p.gflops_s;
  o.gbs = p.gbs;
  o.bound = p.memory_bound ? "memory" : "compute";
  o.bw_util = p.bw_util;
  o.compute_util = p.compute_util;
  o.roof_util = p.roof_util;
  o.level = pl.level;
  o.sized_level = pl.sized_level;
  o.roof = pl.roof;
  o.verdict = pl.verdict;
  o.over_note = pl.over_note;
  o.working_set = pl.working_set;
  o.level_gbs = pl.level_gbs;
  o.roof_share = pl.share;
}

void place(OpSummary& o, OpKind kind, double stage_ws, const MachineInfo& m) {
  const bool i8 = int8_kind(kind);
  const double ws = reads_step_data(kind) ? stage_ws : (o.count > 0 ? o.bytes / o.count : o.bytes);
  apply(o, place_cache_aware(m, o.flops, o.bytes, o.ms, ws, i8 ? m.peak_int8_gops : m.peak_f32_gflops,
                             i8 ? "int8 peak" : "f32 peak"));
  o.peak = i8 ? m.peak_int8_gops : m.peak_f32_gflops;
}

std::string pct(double x) { return strfmt("%.0f%%", 100 * x); }

double counter(const StageSummary& s, const std::string& name, bool* found = nullptr) {
  for (const auto& [k, v] : s.counters)
    if (k == name) {
      if (found) *found = true;
      return v;
    }
  if (found) *found = false;
  return 0;
}

std::vector<OpSummary> aggregate(const Profiler& p, Stage st, const MachineInfo& m, double stage_ms, double stage_ws,
                                 bool by_name) {
  std::map<std::string, OpSummary> acc;
  std::map<std::string, OpKind> kinds;
  for (const auto& op : p.ops()) {
    if (op.step >= p.steps().size() || p.steps()[op.step].stage != st) continue;
    if (op.kind == OpKind::sampling) continue;  // sampling happens between steps, reported apart
    const std::string key = by_name ? op.name : op_kind_name(op.kind);
    OpSummary& o = acc[key];
    o.kind = key;
    o.op_kind = op_kind_name(op.kind);
    kinds[key] = op.kind;
    ++o.count;
    o.ms += (op.t1_us - op.t0_us) * 1e-3;
    o.flops += op.flops;
    o.bytes += op.bytes;
  }
  std::vector<OpSummary> out;
  for (auto& [k, o] : acc) {
    o.share = stage_ms > 0 ? o.ms / stage_ms : 0;
    place(o, kinds[k], stage_ws, m);
    out.push_back(o);
  }
  std::sort(out.begin(), out.end(), [](const OpSummary& a, const OpSummary& b) { return a.ms > b.ms; });
  return out;
}

std::string observations(const StageSummary& s, const MachineInfo& m, bool hardware) {
  const double bw = s.level_gbs > 0 ? s.level_gbs : m.read_gbs;
  const double ridge = bw > 0 ? m.peak_int8_gops / bw : 0;
  std::string o = strfmt("%lld tokens in %d step%s: %.1f tok/s, %.2f ms/step", static_cast<long long>(s.tokens),
                         s.steps, s.steps == 1 ? "" : "s", s.tok_s, s.ms_per_step);
  o += strfmt("; %.1f FLOP/byte vs the %s ridge %.1f", s.ai, s.level.empty() ? "DRAM" : s.level.c_str(), ridge);
  const OpSummary* mm = nullptr;
  for (const auto& op : s.ops)
    if (op.kind == "matmul") mm = &op;
  if (mm)
    o += strfmt("; matmul %.1f FLOP/byte: %.1f GOP/s (%s of int8 peak), %.1f GB/s (%s of the %s roof)", mm->ai,
                mm->gflops_s, pct(mm->compute_util).c_str(), mm->gbs, pct(mm->bw_util).c_str(), mm->level.c_str());
  for (const auto& op : s.ops)
    if (op.kind == "output projection" && op.share >= 0.05)
      o += strfmt("; output projection alone %s", pct(op.share).c_str());
  const double steps = std::max(1, s.steps);
  if (hardware) {
    bool c1 = false, c2 = false, c3 = false;
    const double cyc = counter(s, "cycles", &c1), ins = counter(s, "instructions", &c2);
    const double llc = counter(s, "llc-load-misses", &c3);
    if (c1 && c2 && cyc > 0) o += strfmt("; IPC %.2f", ins / cyc);
    if (c3) o += strfmt("; %.0f LLC misses/token", llc / std::max<double>(1, static_cast<double>(s.tokens)));
    bool c4 = false;
    const double stall = counter(s, "stalled-cycles-backend", &c4);
    if (c1 && c4 && cyc > 0) o += strfmt("; backend stalls %s of cycles", pct(stall / cyc).c_str());
  }
  if (s.threads_busy > 0) o += strfmt("; threads busy %s", pct(s.threads_busy).c_str());
  bool f = false;
  const double faults = counter(s, "page-faults-minor", &f);
  if (f) o += strfmt("; %.1f minor faults/step", faults / steps);
  const double cs = counter(s, "context-switches", &f);
  if (f) o += strfmt(", %.1f context switches/step", cs / steps);
  return o;
}

}  // namespace

// A step's sequences as [{"id", "past", "n_eval"}, ...].
nlohmann::json seqs_json(const StepRecord& step) {
  nlohmann::json a = nlohmann::json::array();
  for (const SeqEval& q : step.seqs) a.push_back({{"id", q.id}, {"past", q.past}, {"n_eval", q.n_eval}});
  return a;
}

// "prefill: past 0, n_eval 78" for one sequence; "decode: 16 sequences, n_eval 16" for a batch.
std::string step_name(const StepRecord& s) {
  if (s.seqs.size() <= 1)
    return strfmt("%s: past %lld, n_eval %lld", stage_name(s.stage), static_cast<long long>(s.past),
                  static_cast<long long>(s.n_eval));
  return strfmt("%s: %zu sequences, n_eval %lld", stage_name(s.stage), s.seqs.size(), static_cast<long long>(s.n_eval));
}

std::string this_command_line() {
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::string out, arg;
  auto flush = [&] {
    const bool plain = !arg.empty() && arg.find_first_not_of(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == std::string::npos;
    std::string q = "'";
    for (char c : arg) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    out += (out.empty() ? "" : " ") + (plain ? arg : q + "'");
    arg.clear();
  };
  for (char c : all) {
    if (c == 0) flush();
    else arg += c;
  }
  if (!arg.empty()) flush();
  return out;
}

ProfileSummary summarize(const Profiler& p, const MachineInfo& m) {
  ProfileSummary out;
  out.machine = m;
  // A faster level can deliver at least what a slower one does: a roof whose whole range lies below the next
  // level's median was disturbed (two levels the kernel reads at the same rate differ by noise only).
  for (size_t i = 0; i + 1 < m.levels.size(); ++i)
    if (m.levels[i].gbs.hi < m.levels[i + 1].gbs.median)
      out.notes.push_back(strfmt("the %s roof (%.1f GB/s) was measured below the %s roof (%.1f GB/s): that "
                                 "measurement was disturbed; `tokenscope sysinfo --refresh` on a quiet machine",
                                 m.levels[i].name.c_str(), m.levels[i].gbs.median, m.levels[i + 1].name.c_str(),
                                 m.levels[i + 1].gbs.median));
  if (m.disturbed)
    out.notes.push_back("the roofline was measured while the machine was busy (`tokenscope sysinfo` shows its load): "
                        "its roofs are low, so shares of them read high; it is measured again once the machine is quiet");
  out.hardware_counters = p.counters() && p.counters()->hardware_available();
  if (p.counters() && !p.counters()->hardware_available()) out.notes.push_back(p.counters()->hardware_note());
  if (p.counters())
    for (const std::string& d : p.counters()->dropped()) out.notes.push_back("event not counted: " + d);
  const std::vector<std::string> cnames = p.counters() ? p.counters()->names() : std::vector<std::string>{};
  const size_t n_threads = p.counters() ? p.counters()->threads() : 0;
  for (Stage st : {Stage::prefill, Stage::decode, Stage::mixed}) {
    StageSummary s;
    s.stage = stage_name(st);
    std::vector<double> counters(cnames.size(), 0.0);
    for (const auto& step : p.steps()) {
      if (step.stage != st) continue;
      ++s.steps;
      s.tokens += step.n_eval;
      s.mean_batch += static_cast<double>(std::max<size_t>(1, step.seqs.size()));
      s.ms += (step.t1_us - step.t0_us) * 1e-3;
      for (size_t i = 0; i < step.counters.size() && i < counters.size(); ++i) counters[i] += step.counters[i];
    }
    if (s.steps == 0) continue;
    s.mean_batch /= s.steps;
    for (size_t i = 0; i < cnames.size(); ++i) s.counters.push_back({cnames[i], counters[i]});
    bool have_clock = false;
    const double busy_ms = counter(s, "task-clock-ms", &have_clock);
    if (have_clock && n_threads > 0 && s.ms > 0) s.threads_busy = busy_ms / (s.ms * static_cast<double>(n_threads));
    s.tok_s = s.ms > 0 ? static_cast<double>(s.tokens) / (s.ms * 1e-3) : 0;
    s.ms_per_step = s.ms / s.steps;
    // Totals first (the stage's bytes per step are the working set the weight-reading ops are placed by).
    for (const OpSummary& o : aggregate(p, st, MachineInfo{}, s.ms, 0, false)) {
      s.flops += o.flops;
      s.bytes += o.bytes;
      s.ops_ms += o.ms;
    }
    const double ws = s.bytes / s.steps;
    s.ops = aggregate(p, st, m, s.ms, ws, false);
    s.by_name = aggregate(p, st, m, s.ms, ws, true);
    apply(s, place_cache_aware(m, s.flops, s.bytes, s.ms, ws, m.peak_int8_gops, "int8 peak"));
    for (size_t i = 0; i < s.ops.size() && i < 3; ++i)
      s.main_ops += (i ? ", " : "") + s.ops[i].kind + " " + pct(s.ops[i].share);
    s.bottleneck = s.verdict;
    s.observations = observations(s, m, out.hardware_counters);
    std::map<int, StageSummary::Layer> layers;
    std::map<int, std::map<std::string, double>> layer_ops;
    for (const auto& op : p.ops()) {
      if (op.layer < 0 || op.step >= p.steps().size() || p.steps()[op.step].stage != st) continue;
      const double ms = (op.t1_us - op.t0_us) * 1e-3;
      layers[op.layer].layer = op.layer;
      layers[op.layer].ms += ms;
      layer_ops[op.layer][op.name] += ms;
    }
    for (auto& [i, l] : layers) {
      for (const auto& [name, ms] : layer_ops[i]) l.ops.push_back({name, ms});
      s.layers.push_back(std::move(l));
    }
    out.stages.push_back(std::move(s));
  }
  // Headline: time to first token (from the first step to the end of the sampling that follows the last
  // prefill step, for one sequence), prefill and decode throughput.
  const StepRecord* last_prefill = nullptr;
  for (const auto& step : p.steps())
    if (step.stage == Stage::prefill) last_prefill = &step;
  if (last_prefill && !p.steps().empty()) {
    double end = last_prefill->t1_us;
    for (const auto& op : p.ops())
      if (op.kind == OpKind::sampling && op.step == last_prefill->index) end = std::max(end, op.t1_us);
    out.headline.ttft_ms = (end - p.steps().front().t0_us) * 1e-3;
  }
  for (const StageSummary& st : out.stages) {
    if (st.stage == "prefill") {
      out.headline.prefill_tok_s = st.tok_s;
      out.headline.prompt_tokens = st.tokens;
    } else if (st.stage == "decode") {
      out.headline.decode_tok_s = st.tok_s;
      out.headline.decode_ms_per_token = st.tokens > 0 ? st.ms / static_cast<double>(st.tokens) : 0;
      out.headline.generated_tokens = st.tokens;
    }
  }
  return out;
}

namespace {
nlohmann::json op_json(const OpSummary& o) {
  return {{"kind", o.kind},       {"op_kind", o.op_kind},   {"count", o.count},
          {"ms", o.ms},           {"share", o.share},       {"flops", o.flops},
          {"bytes", o.bytes},     {"gflops_s", o.gflops_s}, {"gbs", o.gbs},
          {"ai", o.ai},           {"bound", o.bound},       {"bw_util", o.bw_util},
          {"compute_util", o.compute_util}, {"roof_util", o.roof_util}, {"peak", o.peak},
          {"level", o.level},     {"sized_level", o.sized_level}, {"roof", o.roof},
          {"roof_share", o.roof_share}, {"working_set", o.working_set}, {"level_gbs", o.level_gbs},
          {"verdict", o.verdict}, {"over_note", o.over_note}};
}
}  // namespace

std::string summary_json(const ProfileSummary& s, const Profiler& p, const std::string& model_path) {
  nlohmann::json j;
  j["model"] = model_path;
  j["command"] = s.command;
  j["headline"] = {{"ttft_ms", s.headline.ttft_ms},
                   {"prefill_tok_s", s.headline.prefill_tok_s},
                   {"decode_tok_s", s.headline.decode_tok_s},
                   {"decode_ms_per_token", s.headline.decode_ms_per_token},
                   {"prompt_tokens", s.headline.prompt_tokens},
                   {"generated_tokens", s.headline.generated_tokens}};
  j["machine"] = nlohmann::json::parse(machine_info_json(s.machine));
  j["machine"]["from_cache"] = s.machine.from_cache;
  j["notes"] = s.notes;
  if (s.load.measured) j["load"] = nlohmann::json::parse(load_json(s.load));
  j["hardware_counters"] = s.hardware_counters;
  j["counter_names"] = p.counters() ? p.counters()->names() : std::vector<std::string>{};
  j["thread_ids"] = p.thread_ids();
  j["stages"] = nlohmann::json::array();
  for (const StageSummary& st : s.stages) {
    nlohmann::json js = {{"stage", st.stage},
                         {"steps", st.steps},
                         {"tokens", st.tokens},
                         {"mean_batch", st.mean_batch},
                         {"ms", st.ms},
                         {"ops_ms", st.ops_ms},
                         {"ms_per_step", st.ms_per_step},
                         {"tok_s", st.tok_s},
                         {"flops", st.flops},
                         {"bytes", st.bytes},
                         {"ai", st.ai},
                         {"gflops_s", st.gflops_s},
                         {"gbs", st.gbs},
                         {"bound", st.bound},
                         {"bw_util", st.bw_util},
                         {"compute_util", st.compute_util},
                         {"roof_util", st.roof_util},
                         {"level", st.level},
                         {"sized_level", st.sized_level},
                         {"roof", st.roof},
                         {"roof_share", st.roof_share},
                         {"working_set", st.working_set},
                         {"level_gbs", st.level_gbs},
                         {"verdict", st.verdict},
                         {"over_note", st.over_note},
                         {"threads_busy", st.threads_busy},
                         {"main_ops", st.main_ops},
                         {"bottleneck", st.bottleneck},
                         {"observations", st.observations}};
    js["ops"] = nlohmann::json::array();
    for (const OpSummary& o : st.ops) js["ops"].push_back(op_json(o));
    js["by_name"] = nlohmann::json::array();
    for (const OpSummary& o : st.by_name) js["by_name"].push_back(op_json(o));
    js["counters"] = nlohmann::json::object();
    for (const auto& [k, v] : st.counters) js["counters"][k] = v;
    js["layers"] = nlohmann::json::array();
    for (const auto& l : st.layers) {
      nlohmann::json ops = nlohmann::json::object();
      for (const auto& [name, ms] : l.ops) ops[name] = ms;
      js["layers"].push_back({{"layer", l.layer}, {"ms", l.ms}, {"ops", ops}});
    }
    j["stages"].push_back(js);
  }
  j["steps"] = nlohmann::json::array();
  for (const auto& step : p.steps()) {
    nlohmann::json js = {{"index", step.index},
                         {"stage", stage_name(step.stage)},
                         {"past", step.past},
                         {"n_eval", step.n_eval},
                         {"batch", step.seqs.size()},
                         {"seqs", seqs_json(step)},
                         {"start_us", step.t0_us},
                         {"ms", (step.t1_us - step.t0_us) * 1e-3}};
    if (p.counters()) {
      js["counters"] = nlohmann::json::object();
      for (size_t i = 0; i < step.counters.size(); ++i) js["counters"][p.counters()->names()[i]] = step.counters[i];
      js["thread_counters"] = step.thread_counters;
    }
    j["steps"].push_back(js);
  }
  return j.dump(1);
}

std::string trace_json(const Profiler& p, const TraceOptions& opt) {
  // Which steps keep their spans.
  const auto& steps = p.steps();
  std::vector<char> keep(steps.size(), 1);
  int every = 1;
  double sample_from_us = -1;
  if (opt.full_steps > 0) {
    int n_later = 0, seen = 0;
    for (const auto& s : steps)
      if (s.stage != Stage::prefill && ++seen > opt.full_steps) ++n_later;
    if (n_later > opt.max_sampled) {
      every = (n_later + std::max(1, opt.max_sampled) - 1) / std::max(1, opt.max_sampled);
      seen = 0;
      int later = 0;
      for (size_t i = 0; i < steps.size(); ++i) {
        if (steps[i].stage == Stage::prefill || ++seen <= opt.full_steps) continue;
        if (sample_from_us < 0) sample_from_us = steps[i].t0_us;
        keep[i] = (later++ % every) == 0;
      }
    }
  }
  auto kept_step = [&](uint32_t step) { return step >= keep.size() || keep[step]; };
  // The step a thread span belongs to: the last step that started before it.
  auto step_at = [&](double t_us) -> uint32_t {
    auto it = std::upper_bound(steps.begin(), steps.end(), t_us, [](double v, const StepRecord& s) { return v < s.t0_us; });
    return it == steps.begin() ? 0 : (it - 1)->index;
  };
  // Tracks: tid 0 holds the steps (stage markers), each pool thread its own tid (the OS thread id); op spans
  // are on the thread that ran the op (pool thread 0, which also splits the work); counters are per step.
  constexpr int kPid = 1, kStepsTid = 0;
  nlohmann::json ev = nlohmann::json::array();
  ev.push_back({{"ph", "M"}, {"name", "process_name"}, {"pid", kPid}, {"args", {{"name", "tokenscope"}}}});
  ev.push_back({{"ph", "M"}, {"name", "thread_name"}, {"pid", kPid}, {"tid", kStepsTid},
                {"args", {{"name", "steps (past N, n_eval M)"}}}});
  ev.push_back({{"ph", "M"}, {"name", "thread_sort_index"}, {"pid", kPid}, {"tid", kStepsTid}, {"args", {{"sort_index", -1}}}});
  const std::vector<int>& tids = p.thread_ids();
  for (size_t t = 0; t < tids.size(); ++t)
    ev.push_back({{"ph", "M"}, {"name", "thread_name"}, {"pid", kPid}, {"tid", tids[t]},
                  {"args", {{"name", strfmt("pool thread %zu%s", t, t == 0 ? " (caller): ops" : "")}}}});
  const std::vector<std::string> names = p.counters() ? p.counters()->names() : std::vector<std::string>{};
  int prev_stage = -1;
  for (const auto& s : p.steps()) {
    const char* sn = stage_name(s.stage);
    if (static_cast<int>(s.stage) != prev_stage) {
      ev.push_back({{"ph", "i"}, {"s", "g"}, {"name", strfmt("%s begins", sn)}, {"cat", sn}, {"pid", kPid},
                    {"tid", kStepsTid}, {"ts", s.t0_us}});
      prev_stage = static_cast<int>(s.stage);
    }
    nlohmann::json args = {{"past", s.past}, {"n_eval", s.n_eval}, {"stage", sn}, {"step", s.index},
                           {"batch", s.seqs.size()}, {"seqs", seqs_json(s)}};
    for (size_t i = 0; i < s.counters.size() && i < names.size(); ++i) args[names[i]] = s.counters[i];
    ev.push_back({{"ph", "X"},
                  {"name", step_name(s)},
                  {"cat", sn},
                  {"pid", kPid},
                  {"tid", kStepsTid},
                  {"ts", s.t0_us},
                  {"dur", s.t1_us - s.t0_us},
                  {"args", args}});
    // Counter tracks: each counter's value over the step (zeroed between steps), and each thread's busy share.
    for (size_t i = 0; i < s.counters.size() && i < names.size(); ++i) {
      ev.push_back({{"ph", "C"}, {"name", names[i]}, {"pid", kPid}, {"ts", s.t0_us}, {"args", {{"per step", s.counters[i]}}}});
      ev.push_back({{"ph", "C"}, {"name", names[i]}, {"pid", kPid}, {"ts", s.t1_us}, {"args", {{"per step", 0}}}});
    }
    const auto clock = std::find(names.begin(), names.end(), "task-clock-ms");
    if (clock != names.end() && s.t1_us > s.t0_us) {
      const size_t ci = static_cast<size_t>(clock - names.begin());
      nlohmann::json busy = nlohmann::json::object(), idle = nlohmann::json::object();
      for (size_t t = 0; t < s.thread_counters.size(); ++t) {
        busy[strfmt("thread %zu", t)] = 100.0 * s.thread_counters[t][ci] / ((s.t1_us - s.t0_us) * 1e-3);
        idle[strfmt("thread %zu", t)] = 0;
      }
      ev.push_back({{"ph", "C"}, {"name", "thread busy %"}, {"pid", kPid}, {"ts", s.t0_us}, {"args", busy}});
      ev.push_back({{"ph", "C"}, {"name", "thread busy %"}, {"pid", kPid}, {"ts", s.t1_us}, {"args", idle}});
    }
  }
  for (const auto& o : p.ops()) {
    if (!kept_step(o.step)) continue;
    const int tid = o.step < p.steps().size() ? p.steps()[o.step].tid : (tids.empty() ? 1 : tids[0]);
    ev.push_back({{"ph", "X"},
                  {"name", o.layer >= 0 ? strfmt("%s [%d]", o.name, o.layer) : std::string(o.name)},
                  {"cat", op_kind_name(o.kind)},
                  {"pid", kPid},
                  {"tid", tid},
                  {"ts", o.t0_us},
                  {"dur", o.t1_us - o.t0_us},
                  {"args",
                   {{"op", o.name}, {"kind", op_kind_name(o.kind)}, {"layer", o.layer}, {"flops", o.flops},
                    {"bytes", o.bytes}, {"m", o.m}, {"n", o.n}, {"k", o.k}, {"format", o.format}, {"step", o.step}}}});
  }
  // The other pool threads' work: each job span inside an op is named after that op (ops are recorded
  // in time order, so the enclosing op is the last one that started before the span).
  const auto& ops = p.ops();
  for (size_t t = 1; t < p.thread_spans().size() && t < tids.size(); ++t) {
    for (const auto& sp : p.thread_spans()[t]) {
      if (!kept_step(step_at(sp.t0_us))) continue;
      auto it = std::upper_bound(ops.begin(), ops.end(), sp.t0_us,
                                 [](double v, const OpRecord& o) { return v < o.t0_us; });
      const OpRecord* o = it == ops.begin() ? nullptr : &*(it - 1);
      if (o && sp.t0_us > o->t1_us) o = nullptr;  // between ops (e.g. a pool job outside the forward pass)
      nlohmann::json e = {{"ph", "X"},
                          {"name", o ? (o->layer >= 0 ? strfmt("%s [%d]", o->name, o->layer) : std::string(o->name))
                                     : std::string("pool job")},
                          {"cat", o ? op_kind_name(o->kind) : "pool"},
                          {"pid", kPid},
                          {"tid", tids[t]},
                          {"ts", sp.t0_us},
                          {"dur", sp.t1_us - sp.t0_us}};
      if (o) e["args"] = {{"op", o->name}, {"layer", o->layer}, {"pool_thread", t}};
      ev.push_back(std::move(e));
    }
  }
  nlohmann::json sampling = {{"full_steps", opt.full_steps}, {"every", every},
                             {"steps_with_spans", std::count(keep.begin(), keep.end(), 1)}, {"steps", steps.size()}};
  std::string what = every == 1 ? "every step has its op and thread spans"
                                 : strfmt("every prefill step and the first %d decode steps have their op and thread "
                                          "spans; after them one step in %d (step markers and counters: every step)",
                                          opt.full_steps, every);
  sampling["description"] = what;
  ev.push_back({{"ph", "M"}, {"name", "trace_sampling"}, {"pid", kPid}, {"args", sampling}});
  if (sample_from_us >= 0)
    ev.push_back({{"ph", "i"}, {"s", "g"}, {"name", strfmt("op spans sampled from here: one step in %d", every)},
                  {"pid", kPid}, {"tid", kStepsTid}, {"ts", sample_from_us}});
  nlohmann::json j = {{"traceEvents", ev}, {"displayTimeUnit", "ms"}, {"otherData", {{"trace_sampling", what}}}};
  return j.dump();
}

std::string stage_table_markdown(const ProfileSummary& s) {
  std::string out = "| stage | main operations | bottleneck | key observations |\n|---|---|---|---|\n";
  for (const StageSummary& st : s.stages)
    out += strfmt("| %s | %s | %s | %s |\n", st.stage.c_str(), st.main_ops.c_str(), st.bottleneck.c_str(),
                  st.observations.c_str());
  return out;
}

std::string machine_line(const MachineInfo& m) {
  std::string roofs;
  for (const MemoryLevel& l : m.levels)
    roofs += strfmt(" | %s%s%s %.1f GB/s", l.name.c_str(), l.capacity > 0 ? " " : "",
                    l.capacity > 0 ? human_bytes(l.capacity).c_str() : "", l.gbs.median);
  if (m.levels.empty()) roofs = strfmt(" | read %.1f GB/s", m.read_gbs);
  return strfmt("machine: %s, %d threads, %s%s | int8 peak %.0f GOP/s | f32 peak %.0f GFLOP/s%s", m.cpu.c_str(),
                m.threads, m.isa.c_str(), roofs.c_str(), m.peak_int8_gops, m.peak_f32_gflops,
                m.from_cache ? " (cached)" : "");
}

void print_profile_table(const ProfileSummary& s, FILE* out) {
  if (!s.command.empty()) std::fprintf(out, "command: %s\n", s.command.c_str());
  std::fprintf(out, "%s\n", machine_line(s.machine).c_str());
  const Headline& h = s.headline;
  if (h.ttft_ms > 0 || h.decode_tok_s > 0)
    std::fprintf(out, "headline: time to first token %.1f ms | prefill %.1f tok/s (%lld tokens) | decode %.1f tok/s, "
                      "%.2f ms/token (%lld tokens)\n",
                 h.ttft_ms, h.prefill_tok_s, static_cast<long long>(h.prompt_tokens), h.decode_tok_s,
                 h.decode_ms_per_token, static_cast<long long>(h.generated_tokens));
  if (s.load.measured) {
    std::fprintf(out, "%s\n", s.load.line().c_str());
    if (s.load.disturbed) {
      std::fprintf(out, "WARNING: disturbed measurement, the figures below are not this machine's best:\n");
      for (const std::string& w : s.load.warnings) std::fprintf(out, "  - %s\n", w.c_str());
    }
  }
  for (const std::string& n : s.notes) std::fprintf(out, "note: %s\n", n.c_str());
  for (const StageSummary& st : s.stages) {
    std::fprintf(out, "\n%s: %d steps, %lld tokens, %.1f ms, %.1f tok/s, %.1f FLOP/byte\n  %s\n", st.stage.c_str(),
                 st.steps, static_cast<long long>(st.tokens), st.ms, st.tok_s, st.ai, st.verdict.c_str());
    std::fprintf(out, "  %-18s %6s %9s %7s %9s %8s %8s %-15s %6s\n", "op", "calls", "ms", "share", "GFLOP/s", "GB/s",
                 "FLOP/B", "roof", "%roof");
    std::vector<std::string> over;
    for (const OpSummary& o : st.ops) {
      const bool mark = !o.over_note.empty();
      std::fprintf(out, "  %-18s %6d %9.2f %6.1f%% %9.1f %8.1f %8.2f %-15s %5.0f%%%s\n", o.kind.c_str(), o.count, o.ms,
                   100 * o.share, o.gflops_s, o.gbs, o.ai, o.roof.c_str(), 100 * o.roof_share, mark ? " *" : "");
      if (mark) over.push_back(o.kind + ": " + o.over_note);
    }
    for (const std::string& n : over) std::fprintf(out, "  * %s\n", n.c_str());
    if (!st.counters.empty()) {
      std::fprintf(out, "  counters:");
      for (const auto& [k, v] : st.counters) std::fprintf(out, " %s=%.0f", k.c_str(), v);
      std::fprintf(out, "\n");
    }
  }
  std::fprintf(out, "\n%s", stage_table_markdown(s).c_str());
}

std::string load_json(const LoadReport& r) {
  nlohmann::json j = {{"measured", r.measured},
                      {"seconds", r.seconds},
                      {"cpus", r.cpus},
                      {"threads", r.threads},
                      {"others_cpus", r.others_cpus},
                      {"steal_share", r.steal_share},
                      {"invol_cs_per_s", r.invol_cs_per_s},
                      {"runnable_others", r.runnable_others},
                      {"loadavg1", r.loadavg1},
                      {"freq_start_mhz", r.freq_start_mhz},
                      {"freq_end_mhz", r.freq_end_mhz},
                      {"freq_min_mhz", r.freq_min_mhz},
                      {"disturbed", r.disturbed},
                      {"warnings", r.warnings},
                      {"line", r.line()}};
  return j.dump();
}

LoadReport load_from_json(const std::string& text) {
  LoadReport r;
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return r;
  r.measured = j.value("measured", false);
  r.seconds = j.value("seconds", 0.0);
  r.cpus = j.value("cpus", 0);
  r.threads = j.value("threads", 0);
  r.others_cpus = j.value("others_cpus", 0.0);
  r.steal_share = j.value("steal_share", 0.0);
  r.invol_cs_per_s = j.value("invol_cs_per_s", 0.0);
  r.runnable_others = j.value("runnable_others", 0);
  r.loadavg1 = j.value("loadavg1", 0.0);
  r.freq_start_mhz = j.value("freq_start_mhz", 0.0);
  r.freq_end_mhz = j.value("freq_end_mhz", 0.0);
  r.freq_min_mhz = j.value("freq_min_mhz", 0.0);
  r.disturbed = j.value("disturbed", false);
  if (j.contains("warnings") && j["warnings"].is_array())
    for (const auto& w : j["warnings"])
      if (w.is_string()) r.warnings.push_back(w.get<std::string>());
  return r;
}

}  // namespace tokenscope::report
