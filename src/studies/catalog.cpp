// The studies: each the configurations of a classic experiment, the figures read from its runs, and the rule
// that says whether this run reproduces the classic finding.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "base/error.h"
#include "base/file_load.h"
#include "gguf/gguf.h"
#include "kernels/kernels.h"
#include "studies/study.h"

namespace tokenscope::studies {

namespace {

using Args = std::vector<std::string>;

Args operator+(Args a, const Args& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Args model_args(const Options& o) { return o.model.empty() ? Args{} : Args{"-m", o.model}; }
Args thread_args(const Options& o) { return o.threads > 0 ? Args{"-t", std::to_string(o.threads)} : Args{}; }
int n_threads(const Options& o, const Machine& m) { return o.threads > 0 ? o.threads : std::max(1, m.cpus); }

// bench as one configuration: one repetition per run (the study's rounds repeat it), bench's own warm-up kept so
// each run measures a warm engine.
Args bench(const Options& o, int pp, int tg, const Args& extra = {}) {
  return Args{"bench", "-o", "json", "-r", "1", "-p", std::to_string(pp), "-n", std::to_string(tg)} + model_args(o) +
         extra;
}

// The bench record of the pp (n_gen == 0) or tg (n_prompt == 0) test.
const json* bench_record(const json& out, bool pp) {
  if (!out.is_array()) return nullptr;
  for (const json& r : out)
    if (r.is_object() && r.contains("n_prompt") && r.contains("n_gen") &&
        (pp ? r["n_gen"].get<int>() == 0 && r["n_prompt"].get<int>() > 0 : r["n_prompt"].get<int>() == 0))
      return &r;
  return nullptr;
}

double rate(const json& out, bool pp) {
  const json* r = bench_record(out, pp);
  return r ? r->value("avg_ts", 0.0) : 0.0;
}

const json* any_record(const json& out) { return out.is_array() && !out.empty() ? &out[0] : nullptr; }

// The read roof for a working set of `bytes`: the innermost level it fits, else DRAM.
std::pair<std::string, double> roof_for(const Machine& m, double bytes) {
  for (size_t i = 0; i < m.levels.size() && i < m.capacities.size(); ++i)
    if (m.capacities[i].second > 0 && bytes <= m.capacities[i].second * 0.9) return m.levels[i];
  return {"DRAM", m.dram_gbs};
}

// A bench run's figures: pp and tg tok/s and, from the model's size, bits per weight, the weight bytes decode
// streams per second and their share of the read roof of the level they fit. A study's table shows the ones among
// its metrics.
Sample bench_figures(const json& out, const Machine& m) {
  Sample x;
  x["pp_tok_s"] = rate(out, true);
  x["tg_tok_s"] = rate(out, false);
  const json* r = any_record(out);
  if (!r) return x;
  const double size = r->value("model_size", 0.0), params = r->value("model_n_params", 0.0);
  if (params > 0) x["bits_per_weight"] = 8 * size / params;
  x["decode_gbs"] = size * x["tg_tok_s"] / 1e9;
  const auto roof = roof_for(m, size);
  if (roof.second > 0) x["roof_share"] = 100 * x["decode_gbs"] / roof.second;
  return x;
}

// The 78-token prompt of the classic analysis (fixed random ids, 78 on any tokenizer), then decode, under profile.
Config profile_78(const Options& o, const std::string& name, const Args& extra) {
  Config c;
  c.name = name;
  c.args = Args{"profile", "--prompt-tokens", "78", "-n", o.quick ? "8" : "64", "--temp", "0"} + extra +
           Args{"-o", "{out}"} + model_args(o) + thread_args(o);
  c.json_file = "{out}/summary.json";
  return c;
}

std::optional<double> median(const ConfigResult& c, const std::string& key) {
  const auto s = c.stat(key);
  if (!s) return std::nullopt;
  return s->median;
}

const ConfigResult* by_name(const std::vector<ConfigResult>& r, const std::string& name) {
  for (const ConfigResult& c : r)
    if (c.config.name == name) return &c;
  return nullptr;
}

Verdict inconclusive(const std::string& why) { return {"inconclusive", why}; }

std::string pct(double v) { return strfmt("%+.0f%%", v * 100); }

// --- stages -------------------------------------------------------------------------------------------------

Study stages() {
  Study s;
  s.classic_shape = "qwen1.5-0.5b";
  s.name = "stages";
  s.title = "prefill vs decode, per stage";
  s.finding = "prefill (the prompt in one pass, GEMM) is compute-bound; decode (one token at a time over the KV cache, "
              "GEMV) is memory-bound";
  s.metrics = {{"prompt_tokens", "prompt", "tokens"},
               {"prefill_tok_s", "prefill", "tok/s"},
               {"decode_tok_s", "decode", "tok/s"},
               {"prefill_ai", "prefill intensity", "FLOP/byte"},
               {"decode_ai", "decode intensity", "FLOP/byte"},
               {"prefill_roof", "prefill roof share", "%"},
               {"decode_roof", "decode roof share", "%"}};
  s.charts = {"prefill_tok_s", "decode_tok_s", "decode_ai"};
  s.configs = [](const Options& o, const Machine&) {
    return std::vector<Config>{profile_78(o, "78-token prompt, then decode", {})};
  };
  s.extract = [](const json& out, const ChildResult&, const Config&, const Machine&, std::vector<std::string>& notes) {
    Sample x;
    const json& h = out.at("headline");
    x["prompt_tokens"] = h.value("prompt_tokens", 0.0);
    x["prefill_tok_s"] = h.value("prefill_tok_s", 0.0);
    x["decode_tok_s"] = h.value("decode_tok_s", 0.0);
    for (const json& st : out.at("stages")) {
      const std::string name = st.value("stage", "");
      if (name != "prefill" && name != "decode") continue;
      x[name + "_ai"] = st.value("ai", 0.0);
      x[name + "_roof"] = st.value("roof_share", 0.0) * 100;
    }
    return x;
  };
  s.judge = [](const std::vector<ConfigResult>& r, const Machine& m) -> Verdict {
    if (r.empty() || r[0].runs.empty()) return inconclusive("no run completed");
    std::map<std::string, json> st;
    for (const json& j : r[0].last.at("stages")) st[j.value("stage", "")] = j;
    if (!st.count("prefill") || !st.count("decode")) return inconclusive("the profile has no prefill or decode stage");
    auto ridge = [&](const json& j) {
      const std::string level = j.value("level", "DRAM");
      for (const auto& [name, gbs] : m.levels)
        if (name == level && gbs > 0) return m.peak_int8_gops / gbs;
      return m.dram_gbs > 0 ? m.peak_int8_gops / m.dram_gbs : 0.0;
    };
    const double pai = *median(r[0], "prefill_ai"), dai = *median(r[0], "decode_ai");
    const std::string pb = st["prefill"].value("bound", "?"), db = st["decode"].value("bound", "?");
    const std::string text = strfmt("prefill %.1f FLOP/byte vs ridge %.1f (%s): %s-bound; decode %.1f FLOP/byte vs "
                                    "ridge %.1f (%s): %s-bound",
                                    pai, ridge(st["prefill"]), st["prefill"].value("level", "?").c_str(), pb.c_str(), dai,
                                    ridge(st["decode"]), st["decode"].value("level", "?").c_str(), db.c_str());
    return {pb == "compute" && db == "memory" ? "reproduced" : "not reproduced", text};
  };
  s.extra_tables = [](const std::vector<ConfigResult>& r) {
    std::vector<ExtraTable> t;
    if (r.empty() || r[0].runs.empty()) return t;
    ExtraTable e{"per stage (last run)", {"stage", "ms", "main ops", "verdict", "counters"}, {}};
    for (const json& st : r[0].last.at("stages")) {
      std::string counters;
      if (st.contains("counters"))
        for (const auto& [k, v] : st["counters"].items())
          counters += (counters.empty() ? "" : ", ") + k + " " + strfmt("%.0f", v.get<double>());
      e.rows.push_back({st.value("stage", ""), strfmt("%.1f", st.value("ms", 0.0)), st.value("main_ops", ""),
                        st.value("verdict", ""), counters});
    }
    t.push_back(e);
    return t;
  };
  return s;
}

// --- hotspots -----------------------------------------------------------------------------------------------

bool is_matmul_kernel(const std::string& fn) {
  for (const char* k : {"gemm", "gemv", "matmul", "mul_mat", "vec_dot", "Packed"})
    if (fn.find(k) != std::string::npos) return true;
  return false;
}

Study hotspots() {
  Study s;
  s.classic_shape = "qwen1.5-0.5b";
  s.name = "hotspots";
  s.title = "the top functions by samples, prefill and decode";
  s.finding = "time is dominated by the quantized matmul kernels (int8 activations times quantized weights), in "
              "prefill and in decode";
  s.metrics = {{"prefill_samples", "prefill samples", ""},
               {"decode_samples", "decode samples", ""},
               {"prefill_matmul", "prefill in matmul kernels", "%"},
               {"decode_matmul", "decode in matmul kernels", "%"}};
  s.charts = {"prefill_matmul", "decode_matmul"};
  s.configs = [](const Options& o, const Machine&) {
    return std::vector<Config>{profile_78(o, "78-token prompt, then decode, sampled", {"--sample"})};
  };
  s.extract = [](const json& out, const ChildResult&, const Config&, const Machine&, std::vector<std::string>& notes) {
    Sample x;
    if (!out.contains("hotspots")) {
      notes.push_back("the profile has no samples");
      return x;
    }
    const json& hs = out["hotspots"];
    if (hs.contains("note") && !hs["note"].get<std::string>().empty()) notes.push_back(hs["note"].get<std::string>());
    for (const char* stage : {"prefill", "decode"}) {
      if (!hs.contains("stages") || !hs["stages"].contains(stage)) continue;
      const json& st = hs["stages"][stage];
      const double total = st.value("samples", 0.0);
      double mm = 0;
      for (const json& f : st["functions"])
        if (is_matmul_kernel(f.value("function", ""))) mm += f.value("samples", 0.0);
      x[std::string(stage) + "_samples"] = total;
      if (total > 0) x[std::string(stage) + "_matmul"] = 100 * mm / total;
    }
    return x;
  };
  // The functions over all rounds, per stage.
  auto totals = [](const ConfigResult& c, const std::string& stage) {
    std::map<std::string, std::pair<double, std::string>> fn;  // function -> samples, module
    double total = 0;
    for (const json& run : c.runs) {
      if (!run.contains("hotspots") || !run["hotspots"].contains("stages") || !run["hotspots"]["stages"].contains(stage))
        continue;
      const json& st = run["hotspots"]["stages"][stage];
      total += st.value("samples", 0.0);
      for (const json& f : st["functions"]) {
        auto& e = fn[f.value("function", "?")];
        e.first += f.value("samples", 0.0);
        e.second = f.value("module", "");
      }
    }
    std::vector<std::tuple<double, std::string, std::string>> v;
    for (const auto& [name, e] : fn) v.emplace_back(e.first, name, e.second);
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return std::get<0>(a) > std::get<0>(b); });
    return std::make_pair(v, total);
  };
  s.judge = [totals](const std::vector<ConfigResult>& r, const Machine&) -> Verdict {
    if (r.empty() || r[0].runs.empty()) return inconclusive("no run completed");
    std::string text;
    bool ok = true;
    for (const char* stage : {"prefill", "decode"}) {
      const auto [v, total] = totals(r[0], stage);
      if (v.empty() || total <= 0) return inconclusive(std::string("no samples in ") + stage);
      const auto& top = v.front();
      const bool mm = is_matmul_kernel(std::get<1>(top));
      ok = ok && mm;
      double mm_share = 0;
      for (const auto& f : v)
        if (is_matmul_kernel(std::get<1>(f))) mm_share += std::get<0>(f);
      text += strfmt("%s%s: top function %s (%.0f%% of %.0f samples), matmul kernels %.0f%%", text.empty() ? "" : "; ",
                     stage, std::get<1>(top).c_str(), 100 * std::get<0>(top) / total, total, 100 * mm_share / total);
    }
    return {ok ? "reproduced" : "not reproduced", text};
  };
  s.extra_tables = [totals](const std::vector<ConfigResult>& r) {
    std::vector<ExtraTable> t;
    if (r.empty()) return t;
    for (const char* stage : {"prefill", "decode"}) {
      const auto [v, total] = totals(r[0], stage);
      ExtraTable e{std::string("top 20 functions, ") + stage + " (all rounds)", {"#", "function", "module", "samples", "share"}, {}};
      for (size_t i = 0; i < v.size() && i < 20; ++i)
        e.rows.push_back({std::to_string(i + 1), std::get<1>(v[i]), std::get<2>(v[i]), strfmt("%.0f", std::get<0>(v[i])),
                          strfmt("%.1f%%", total > 0 ? 100 * std::get<0>(v[i]) / total : 0.0)});
      t.push_back(e);
    }
    return t;
  };
  return s;
}

// --- kv-cache -----------------------------------------------------------------------------------------------

Study kv_cache() {
  Study s;
  s.classic_shape = "qwen1.5-0.5b";
  s.name = "kv-cache";
  s.title = "decode with the KV cache vs recomputing the prefix, and decode at depth";
  s.finding = "with the KV cache a decode step costs nearly the same at every position (total time linear in the "
              "tokens); recomputing the prefix makes each step grow with the position (total time quadratic); at depth "
              "attention's share of a step rises";
  s.x_label = "position (tokens already in the context)";
  s.metrics = {{"ms_per_step", "ms per new token", "ms", false}};
  s.charts = {"ms_per_step"};
  s.configs = [](const Options& o, const Machine&) {
    std::vector<Config> c;
    const std::vector<int> cached = o.quick ? std::vector<int>{0, 128} : std::vector<int>{0, 256, 512, 1024, 2048, 4096};
    const std::vector<int> recompute = o.quick ? std::vector<int>{32, 64} : std::vector<int>{64, 128, 256, 512, 1024};
    const int tg = o.quick ? 4 : 16;
    for (int d : cached) {
      Config k;
      k.name = strfmt("with KV cache, depth %d", d);
      k.series = "with the KV cache";
      k.x = d;
      k.args = bench(o, 0, tg, Args{"-d", std::to_string(d)} + thread_args(o));
      c.push_back(k);
    }
    for (int n : recompute) {
      Config k;
      k.name = strfmt("recompute %d tokens", n);
      k.series = "recomputing the prefix";
      k.x = n;
      k.args = bench(o, n, 0, thread_args(o));
      c.push_back(k);
    }
    return c;
  };
  s.extract = [](const json& out, const ChildResult&, const Config& c, const Machine&, std::vector<std::string>&) {
    Sample x;
    const bool recompute = c.series != "with the KV cache";
    const double r = rate(out, recompute);
    // Recomputing: one step evaluates all c.x positions again; with the cache: one token.
    if (r > 0) x["ms_per_step"] = recompute ? 1000.0 * c.x / r : 1000.0 / r;
    return x;
  };
  s.judge = [](const std::vector<ConfigResult>& r, const Machine&) -> Verdict {
    std::vector<std::pair<double, double>> cached, recomp;
    for (const ConfigResult& c : r) {
      const auto v = median(c, "ms_per_step");
      if (!v) continue;
      (c.config.series == "with the KV cache" ? cached : recomp).emplace_back(c.config.x, *v);
    }
    if (cached.size() < 2 || recomp.size() < 2) return inconclusive("too few configurations ran");
    std::sort(cached.begin(), cached.end());
    std::sort(recomp.begin(), recomp.end());
    const double n_ratio = recomp.back().first / recomp.front().first;
    const double r_growth = recomp.back().second / recomp.front().second;
    const double c_growth = cached.back().second / cached.front().second;
    const double attn_share = 1 - cached.front().second / cached.back().second;
    const std::string text = strfmt(
        "recomputing: a step at %.0f tokens costs %.1fx one at %.0f (positions x%.0f: per step ~linear, total "
        "quadratic); with the cache: %.2f ms at depth %.0f vs %.2f ms at %.0f (x%.2f, attention and the longer cache "
        "~%.0f%% of a step at depth %.0f)",
        recomp.back().first, r_growth, recomp.front().first, n_ratio, cached.back().second, cached.back().first,
        cached.front().second, cached.front().first, c_growth, 100 * attn_share, cached.back().first);
    const bool ok = r_growth > 0.4 * n_ratio && c_growth < r_growth;
    return {ok ? "reproduced" : "not reproduced", text};
  };
  return s;
}

// --- formats ------------------------------------------------------------------------------------------------

Study formats() {
  Study s;
  s.name = "formats";
  s.title = "prefill and decode per weight format";
  s.finding = "decode is bound by the bytes it streams: fewer bits per weight decode faster at a similar bandwidth, "
              "while prefill depends on each format's compute cost";
  s.metrics = {{"bits_per_weight", "bits per weight", "bits", false},
               {"pp_tok_s", "prefill", "tok/s"},
               {"tg_tok_s", "decode", "tok/s"},
               {"decode_gbs", "decode weight bandwidth", "GB/s"},
               {"roof_share", "share of the read roof", "%"}};
  s.charts = {"pp_tok_s", "tg_tok_s", "decode_gbs"};
  s.configs = [](const Options& o, const Machine&) {
    std::vector<Config> c;
    const std::vector<std::string> types = o.quick ? std::vector<std::string>{"q8_0", "q4_0"}
                                                   : std::vector<std::string>{"f16", "bf16", "q8_0", "q4_0", "q4_1",
                                                                              "q4_k", "q5_k", "q6_k"};
    const std::string shape = o.shape.empty() ? "smollm2-135m" : o.shape;
    for (const std::string& t : types) {
      const std::string file = synth_model(o, shape, t);
      Config k;
      k.name = t;
      Options om = o;
      om.model = file;
      k.args = bench(om, o.quick ? 16 : 128, o.quick ? 8 : 32, thread_args(o));
      c.push_back(k);
    }
    return c;
  };
  s.extract = [](const json& out, const ChildResult&, const Config&, const Machine& m, std::vector<std::string>&) {
    return bench_figures(out, m);
  };
  s.judge = [](const std::vector<ConfigResult>& r, const Machine& m) -> Verdict {
    // Rank correlation of bits per weight with decode speed: bandwidth-bound decode makes it strongly negative.
    std::vector<std::pair<double, double>> v;
    std::string fastest, slowest;
    double best = 0, worst = 1e30;
    for (const ConfigResult& c : r) {
      const auto b = median(c, "bits_per_weight"), t = median(c, "tg_tok_s");
      if (!b || !t) continue;
      v.emplace_back(*b, *t);
      if (*t > best) best = *t, fastest = c.config.name;
      if (*t < worst) worst = *t, slowest = c.config.name;
    }
    if (v.size() < 2) return inconclusive("fewer than two formats ran");
    auto ranks = [](std::vector<double> x) {
      std::vector<size_t> idx(x.size());
      for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
      std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
      std::vector<double> rk(x.size());
      for (size_t i = 0; i < idx.size(); ++i) rk[idx[i]] = static_cast<double>(i);
      return rk;
    };
    std::vector<double> bits, tg;
    for (const auto& [b, t] : v) bits.push_back(b), tg.push_back(t);
    const auto rb = ranks(bits), rt = ranks(tg);
    const double n = static_cast<double>(v.size());
    double d2 = 0;
    for (size_t i = 0; i < rb.size(); ++i) d2 += (rb[i] - rt[i]) * (rb[i] - rt[i]);
    const double rho = 1 - 6 * d2 / (n * (n * n - 1));
    (void)m;
    std::string shape = "smollm2-135m";
    if (!r.empty()) {
      const auto& a = r[0].config.args;
      const auto it = std::find(a.begin(), a.end(), "-m");
      if (it != a.end() && it + 1 != a.end()) {
        const std::string f = std::filesystem::path(*(it + 1)).filename().string();
        shape = f.substr(0, f.find("-synth."));
      }
    }
    const std::string text = strfmt("%s shape, random weights: rank correlation of bits per weight with decode tok/s "
                                    "%.2f (-1: fewer bits always faster); fastest decode %s (%.1f tok/s), slowest %s "
                                    "(%.1f tok/s)",
                                    shape.c_str(), rho, fastest.c_str(), best, slowest.c_str(), worst);
    return {rho <= -0.5 ? "reproduced" : "not reproduced", text};
  };
  return s;
}

// --- hugepages ----------------------------------------------------------------------------------------------

Study hugepages() {
  Study s;
  s.classic_shape = "qwen1.5-0.5b";
  s.name = "hugepages";
  s.title = "4 KiB pages vs transparent huge pages vs hugetlbfs";
  s.finding = "huge pages cut page faults (and dTLB misses) sharply, with little change in wall time";
  s.caveat = "dTLB misses need hardware PMU counters: where the machine gives none (most VMs) only the page faults are "
             "measured; hugetlbfs needs reserved pages (/proc/sys/vm/nr_hugepages), else it falls back to THP, saying so";
  s.metrics = {{"minor_faults", "minor faults", "", false},
               {"load_ms", "load", "ms", false},
               {"pp_tok_s", "prefill", "tok/s"},
               {"tg_tok_s", "decode", "tok/s"}};
  s.charts = {"minor_faults", "tg_tok_s"};
  s.configs = [](const Options& o, const Machine&) {
    std::vector<Config> c;
    for (const char* h : {"off", "thp", "hugetlbfs"}) {
      Config k;
      k.name = h;
      k.args = bench(o, o.quick ? 16 : 64, o.quick ? 8 : 32, Args{"--hugepages", h} + thread_args(o));
      c.push_back(k);
    }
    return c;
  };
  s.extract = [](const json& out, const ChildResult& child, const Config&, const Machine& m, std::vector<std::string>&) {
    Sample x = bench_figures(out, m);
    x["minor_faults"] = static_cast<double>(child.minor_faults);
    if (const json* r = any_record(out); r && r->contains("model_load")) x["load_ms"] = (*r)["model_load"].value("ms", 0.0);
    return x;
  };
  s.judge = [](const std::vector<ConfigResult>& r, const Machine&) -> Verdict {
    const ConfigResult *off = by_name(r, "off"), *thp = by_name(r, "thp");
    if (!off || !thp || !median(*off, "minor_faults") || !median(*thp, "minor_faults"))
      return inconclusive("off or thp did not run");
    const double f0 = *median(*off, "minor_faults"), f1 = *median(*thp, "minor_faults");
    const double t0 = median(*off, "tg_tok_s").value_or(0), t1 = median(*thp, "tg_tok_s").value_or(0);
    const double cut = f0 > 0 ? 1 - f1 / f0 : 0;
    const std::string text = strfmt("THP: minor faults %.0f -> %.0f (%s), decode %.1f -> %.1f tok/s (%s)", f0, f1,
                                    pct(-cut).c_str(), t0, t1, pct(t0 > 0 ? t1 / t0 - 1 : 0).c_str());
    return {cut >= 0.3 ? "reproduced" : "not reproduced", text};
  };
  return s;
}

// --- load ---------------------------------------------------------------------------------------------------

Study load() {
  Study s;
  s.classic_shape = "qwen1.5-0.5b";
  s.name = "load";
  s.title = "loading the model: mmap vs read vs io_uring vs O_DIRECT, cold and warm page cache";
  s.finding = "from a cold page cache, batched io_uring reads load the model faster than mmap's page faults; from a "
              "warm cache mmap costs least";
  s.caveat = "with mmap the file is read lazily: 'reading the file' is only the mapping, and its reads happen as page "
             "faults while the weights are packed ('load')";
  s.metrics = {{"file_ms", "reading the file", "ms", false},
               {"load_ms", "load (read + pack)", "ms", false},
               {"ttft_ms", "to first token", "ms", false},
               {"major_faults", "major faults", "", false},
               {"minor_faults", "minor faults", "", false},
               {"rss_mib", "peak RSS", "MiB", false}};
  s.charts = {"load_ms", "ttft_ms"};
  s.configs = [](const Options& o, const Machine&) {
    std::vector<Config> c;
    const std::string model = o.model;
    for (const char* cache : {"cold", "warm"})
      for (const char* mode : {"mmap", "read", "uring", "direct"}) {
        if (o.quick && std::string(mode) == "read") continue;
        Config k;
        k.name = std::string(mode) + ", " + cache;
        k.series = cache;
        k.args = Args{"run", "-p", "Hello", "-n", "1", "--temp", "0", "--json", "--load", mode} + model_args(o) +
                 thread_args(o);
        if (std::string(cache) == "cold")
          k.before = [model] {
            std::string why;
            if (!evict_from_page_cache(model, &why)) return "could not drop the file from the page cache: " + why;
            const double share = page_cache_share(model);
            if (share > 0.5)
              return strfmt("the page cache kept %.0f%% of the file after POSIX_FADV_DONTNEED (the file system keeps "
                            "it, or another process maps it): not cold", share * 100);
            return std::string("cold: the file dropped from the page cache with posix_fadvise(DONTNEED), no root "
                               "needed");
          };
        else  // the previous run may have left it cold (O_DIRECT bypasses the cache): read it through the cache
          k.before = [model] {
            FileImage::load(model, {LoadMode::read});
            const double share = page_cache_share(model);
            return share < 0.9 ? strfmt("only %.0f%% of the file stayed in the page cache after reading it: not warm",
                                        share * 100)
                               : std::string();
          };
        c.push_back(k);
      }
    return c;
  };
  s.extract = [](const json& out, const ChildResult& child, const Config&, const Machine&, std::vector<std::string>&) {
    Sample x;
    if (out.contains("model_load")) {
      x["load_ms"] = out["model_load"].value("ms", 0.0);
      x["file_ms"] = out["model_load"].value("file_ms", 0.0);
    }
    x["ttft_ms"] = out.value("load_ms", 0.0) + (out.contains("prefill") ? out["prefill"].value("ms", 0.0) : 0.0);
    x["major_faults"] = static_cast<double>(child.major_faults);
    x["minor_faults"] = static_cast<double>(child.minor_faults);
    x["rss_mib"] = static_cast<double>(child.max_rss_kb) / 1024;
    return x;
  };
  s.judge = [](const std::vector<ConfigResult>& r, const Machine&) -> Verdict {
    const ConfigResult *m = by_name(r, "mmap, cold"), *u = by_name(r, "uring, cold"), *mw = by_name(r, "mmap, warm");
    if (!m || !u || !median(*m, "load_ms") || !median(*u, "load_ms")) return inconclusive("mmap or uring did not run cold");
    for (const std::string& n : m->notes)
      if (n.find("not cold") != std::string::npos || n.find("could not drop") != std::string::npos)
        return inconclusive("the page cache could not be dropped: " + n);
    const double lm = *median(*m, "load_ms"), lu = *median(*u, "load_ms");
    std::string text = strfmt("cold: mmap %.0f ms, io_uring %.0f ms (%.2fx)", lm, lu, lu > 0 ? lm / lu : 0.0);
    if (mw && median(*mw, "load_ms")) text += strfmt("; warm mmap %.0f ms", *median(*mw, "load_ms"));
    return {lu < lm ? "reproduced" : "not reproduced", text};
  };
  return s;
}

// --- sched --------------------------------------------------------------------------------------------------

Study sched() {
  Study s;
  s.classic_shape = "qwen1.5-0.5b";
  s.name = "sched";
  s.title = "CFS vs SCHED_FIFO vs SCHED_RR, pinned and unpinned, 1 to more threads than cores";
  s.finding = "a real-time policy (SCHED_FIFO) is slower than CFS for a multi-threaded pool";
  s.metrics = {{"pp_tok_s", "prefill", "tok/s"}, {"tg_tok_s", "decode", "tok/s"},
               {"involuntary_cs", "preemptions", "", false}};
  s.charts = {"tg_tok_s", "pp_tok_s"};
  s.configs = [](const Options& o, const Machine& m) {
    std::vector<Config> c;
    const int n = n_threads(o, m);
    const std::vector<std::string> policies = o.quick ? std::vector<std::string>{"other", "fifo"}
                                                       : std::vector<std::string>{"other", "fifo", "rr"};
    const std::vector<int> threads = o.quick ? std::vector<int>{n} : std::vector<int>{1, n, 2 * n};
    for (bool pinned : o.quick ? std::vector<bool>{false} : std::vector<bool>{false, true})
      for (int t : threads)
        for (const std::string& p : policies) {
          Config k;
          k.name = strfmt("%s, %d thread%s%s", p.c_str(), t, t == 1 ? "" : "s", pinned ? ", pinned" : "");
          Args extra{"--sched", p, "-t", std::to_string(t)};
          if (pinned) extra = extra + Args{"--cpu-mask", n == 1 ? "0" : strfmt("0-%d", n - 1)};
          k.args = bench(o, o.quick ? 16 : 64, o.quick ? 8 : 32, extra);
          c.push_back(k);
        }
    return c;
  };
  s.extract = [](const json& out, const ChildResult& child, const Config&, const Machine& m, std::vector<std::string>&) {
    Sample x = bench_figures(out, m);
    x["involuntary_cs"] = static_cast<double>(child.involuntary_cs);
    return x;
  };
  s.judge = [](const std::vector<ConfigResult>& r, const Machine&) -> Verdict {
    // The multi-threaded, unpinned rows: fifo against other with the same thread count.
    for (const ConfigResult& f : r) {
      if (f.config.name.rfind("fifo, ", 0) != 0 || f.config.name.find("pinned") != std::string::npos ||
          f.config.name.find(", 1 thread") != std::string::npos)
        continue;
      const ConfigResult* o = by_name(r, "other" + f.config.name.substr(4));
      if (!f.skipped.empty()) return inconclusive("SCHED_FIFO could not run here: " + f.skipped);
      if (!o || !median(*o, "tg_tok_s") || !median(f, "tg_tok_s")) continue;
      const double a = *median(*o, "tg_tok_s"), b = *median(f, "tg_tok_s");
      const double pa = median(*o, "pp_tok_s").value_or(0), pb = median(f, "pp_tok_s").value_or(0);
      return {b < a * 0.98 ? "reproduced" : "not reproduced",
              strfmt("%s: decode CFS %.1f vs FIFO %.1f tok/s (%s), prefill %.1f vs %.1f tok/s", f.config.name.substr(6).c_str(),
                     a, b, pct(a > 0 ? b / a - 1 : 0).c_str(), pa, pb)};
    }
    return inconclusive("no multi-threaded CFS/FIFO pair ran");
  };
  return s;
}

// --- barrier ------------------------------------------------------------------------------------------------

Study barrier() {
  Study s;
  s.classic_shape = "qwen1.5-0.5b";
  s.name = "barrier";
  s.title = "spin vs futex vs hybrid barrier vs OpenMP";
  s.finding = "a futex-based barrier trades the CPU time a spinning barrier burns for wake-up latency";
  s.metrics = {{"tg_tok_s", "decode", "tok/s"},
               {"cpu_ms_per_token", "CPU time per token", "ms", false},
               {"cs_per_token", "context switches per token", "", false},
               {"wake_us", "wake-up latency", "us", false}};
  s.charts = {"tg_tok_s", "cpu_ms_per_token", "wake_us"};
  s.configs = [](const Options& o, const Machine&) {
    std::vector<Config> c;
    const Args base = Args{"probe", "pool", "-n", o.quick ? "8" : "48"} + model_args(o) + thread_args(o);
    for (const char* b : {"spin", "futex", "hybrid"}) {
      Config k;
      k.name = b;
      k.args = base + Args{"--barrier", b};
      c.push_back(k);
    }
    for (const char* policy : {"active", "passive"}) {
      Config k;
      k.name = std::string("openmp, ") + policy;
      k.args = base + Args{"--pool", "openmp"};
      k.env = {{"OMP_WAIT_POLICY", policy}};
      c.push_back(k);
    }
    return c;
  };
  s.extract = [](const json& out, const ChildResult&, const Config&, const Machine&, std::vector<std::string>&) {
    Sample x;
    for (const char* k : {"tg_tok_s", "cpu_ms_per_token", "cs_per_token", "wake_us"})
      if (out.contains(k)) x[k] = out[k].get<double>();
    return x;
  };
  s.judge = [](const std::vector<ConfigResult>& r, const Machine&) -> Verdict {
    const ConfigResult *sp = by_name(r, "spin"), *fx = by_name(r, "futex");
    if (!sp || !fx || !median(*sp, "cpu_ms_per_token") || !median(*fx, "cpu_ms_per_token"))
      return inconclusive("spin or futex did not run");
    const double cs = *median(*sp, "cpu_ms_per_token"), cf = *median(*fx, "cpu_ms_per_token");
    const double ws = median(*sp, "wake_us").value_or(0), wf = median(*fx, "wake_us").value_or(0);
    const std::string text = strfmt("CPU per token: spin %.2f ms, futex %.2f ms; wake-up: spin %.1f us, futex %.1f us",
                                    cs, cf, ws, wf);
    return {cf < cs && wf > ws ? "reproduced" : "not reproduced", text};
  };
  return s;
}

// --- threads ------------------------------------------------------------------------------------------------

Study threads() {
  Study s;
  s.classic_shape = "qwen1.5-0.5b";
  s.name = "threads";
  s.title = "scaling from 1 thread to all cores, prefill and decode";
  s.finding = "prefill (compute-bound) scales with the cores; decode (memory-bound) flattens once the threads "
              "saturate the memory bandwidth";
  s.x_label = "threads";
  s.metrics = {{"pp_tok_s", "prefill", "tok/s"},
               {"tg_tok_s", "decode", "tok/s"},
               {"decode_gbs", "decode weight bandwidth", "GB/s"},
               {"roof_share", "share of the read roof", "%"}};
  s.charts = {"pp_tok_s", "tg_tok_s", "decode_gbs"};
  s.configs = [](const Options& o, const Machine& m) {
    std::vector<Config> c;
    const int n = n_threads(o, m);
    std::vector<int> ts;
    for (int t = 1; t < n; t *= 2) ts.push_back(t);
    ts.push_back(n);
    for (int t : ts) {
      Config k;
      k.name = strfmt("%d thread%s", t, t == 1 ? "" : "s");
      k.x = t;
      k.args = bench(o, o.quick ? 16 : 128, o.quick ? 8 : 32, Args{"-t", std::to_string(t)});
      c.push_back(k);
    }
    return c;
  };
  s.extract = [](const json& out, const ChildResult&, const Config&, const Machine& m, std::vector<std::string>&) {
    return bench_figures(out, m);
  };
  s.judge = [](const std::vector<ConfigResult>& r, const Machine& m) -> Verdict {
    if (r.size() < 2) return inconclusive("this machine has one CPU: nothing to scale");
    const ConfigResult &a = r.front(), &b = r.back();
    const auto p1 = median(a, "pp_tok_s"), pn = median(b, "pp_tok_s"), t1 = median(a, "tg_tok_s"), tn = median(b, "tg_tok_s");
    if (!p1 || !pn || !t1 || !tn || *p1 <= 0 || *t1 <= 0) return inconclusive("1 thread or all threads did not run");
    const double sp = *pn / *p1, st = *tn / *t1, gbs = median(b, "decode_gbs").value_or(0);
    const auto roof = roof_for(m, b.runs.empty() || !any_record(b.last) ? 0 : any_record(b.last)->value("model_size", 0.0));
    const std::string text =
        strfmt("%s vs 1: prefill x%.2f, decode x%.2f; decode at %.1f GB/s of weights, %s roof %.1f GB/s",
               b.config.name.c_str(), sp, st, gbs, roof.first.c_str(), roof.second);
    // Prefill must scale (at least 1.3x from 1 to all threads) and decode less than prefill.
    return {sp >= 1.3 && st < sp ? "reproduced" : "not reproduced", text};
  };
  return s;
}

// --- batch --------------------------------------------------------------------------------------------------

Study batch() {
  Study s;
  s.classic_shape = "qwen1.5-0.5b";
  s.name = "batch";
  s.title = "decode throughput and arithmetic intensity against the batch size";
  s.finding = "batching sequences streams the weights once for all of them: aggregate decode throughput grows almost "
              "linearly with the batch until it turns compute-bound, while prefill is compute-bound already";
  s.x_label = "sequences in the batch";
  s.metrics = {{"s_tg", "aggregate decode", "tok/s"},
               {"s_pp", "aggregate prefill", "tok/s"},
               {"decode_ai", "decode weight intensity", "FLOP/byte"}};
  s.charts = {"s_tg", "decode_ai"};
  s.configs = [](const Options& o, const Machine&) {
    std::vector<Config> c;
    for (int b : o.quick ? std::vector<int>{1, 4} : std::vector<int>{1, 2, 4, 8, 16}) {
      Config k;
      k.name = strfmt("B=%d", b);
      k.x = b;
      k.args = bench(o, o.quick ? 16 : 64, o.quick ? 8 : 32, Args{"--batch", std::to_string(b)} + thread_args(o));
      c.push_back(k);
    }
    return c;
  };
  s.extract = [](const json& out, const ChildResult&, const Config& c, const Machine&, std::vector<std::string>&) {
    Sample x;
    const json* r = any_record(out);
    if (!r) return x;
    x["s_tg"] = r->value("speed_tg", 0.0);
    x["s_pp"] = r->value("speed_pp", 0.0);
    const double size = r->value("model_size", 0.0), params = r->value("model_n_params", 0.0);
    if (size > 0) x["decode_ai"] = 2 * params * c.x / size;
    return x;
  };
  s.judge = [](const std::vector<ConfigResult>& r, const Machine& m) -> Verdict {
    if (r.size() < 2) return inconclusive("fewer than two batch sizes");
    const auto t1 = median(r.front(), "s_tg"), tn = median(r.back(), "s_tg"), ai = median(r.back(), "decode_ai");
    if (!t1 || !tn || *t1 <= 0) return inconclusive("B=1 or the largest batch did not run");
    const double ridge = m.dram_gbs > 0 ? m.peak_int8_gops / m.dram_gbs : 0;
    const double growth = *tn / *t1;
    const std::string text = strfmt("%s vs B=1: aggregate decode x%.2f (%.1f -> %.1f tok/s); weight intensity %.1f "
                                    "FLOP/byte vs the DRAM ridge %.1f",
                                    r.back().config.name.c_str(), growth, *t1, *tn, ai.value_or(0), ridge);
    return {growth >= 1.5 ? "reproduced" : "not reproduced", text};
  };
  return s;
}

}  // namespace

std::string synth_model(const Options& o, const std::string& shape, const std::string& type) {
  const std::string dir = o.work_dir + "/models";
  std::filesystem::create_directories(dir);
  const std::string file = dir + "/" + shape + "-synth." + type + ".gguf";
  if (std::filesystem::exists(file)) return file;
  std::fprintf(stderr, "study: writing %s (tokenscope synth, random weights; kept for later runs)\n", file.c_str());
  const ChildResult r = run_child(o.bin, {"synth", "--shape", shape, "--type", type, "-o", file + ".part"}, {}, 1800);
  if (!r.ok) fail("tokenscope synth --shape %s --type %s failed: %s", shape.c_str(), type.c_str(), r.err.c_str());
  std::filesystem::rename(file + ".part", file);
  return file;
}

namespace {

// --- ternary ------------------------------------------------------------------------------------------------

Study ternary() {
  Study s;
  s.name = "ternary";
  s.title = "ternary weights (BitNet b1.58): multiply-add vs lookup-table kernels, per format";
  s.finding = "with 1.58-bit weights decode is far less memory-bound, and lookup tables of precomputed activation sums "
              "(T-MAC) beat multiply-add on the unpacked weights for decode";
  s.caveat = "models are the BitNet-b1.58-2B shape with random ternary weights (tokenscope synth), unless -m names a "
             "ternary model, with Q4_0 and Q8_0 of the same shape for comparison; rows without an ISA run the best "
             "one, the others (I2_S only) each other SIMD ISA; --ternary-kernel auto picks per shape by a measurement "
             "at load";
  s.metrics = {{"bits_per_weight", "bits per weight", "bits", false},
               {"pp_tok_s", "prefill", "tok/s"},
               {"tg_tok_s", "decode", "tok/s"},
               {"decode_gbs", "decode weight bandwidth", "GB/s"},
               {"roof_share", "share of the read roof", "%"}};
  s.charts = {"tg_tok_s", "pp_tok_s"};
  s.configs = [](const Options& o, const Machine&) {
    std::vector<Config> c;
    std::vector<std::pair<std::string, std::string>> models;  // label, file
    if (o.model_given) {
      bool ternary_weights = false;
      for (const auto& t : gguf::File::open(o.model)->tensors())
        ternary_weights = ternary_weights || t.type == TensorType::TQ1_0 || t.type == TensorType::TQ2_0 ||
                          t.type == TensorType::I2_S || t.type == TensorType::IQ2_BN;
      if (!ternary_weights)
        fail("study ternary: %s has no ternary weights (TQ1_0, TQ2_0, I2_S, IQ2_BN): leave out -m for the "
             "synthesized BitNet-b1.58-2B shape", o.model.c_str());
      models.emplace_back(std::filesystem::path(o.model).filename().string(), o.model);
    } else {
      for (const char* t : o.quick ? std::vector<const char*>{"i2_s"}
                                   : std::vector<const char*>{"i2_s", "tq2_0", "tq1_0", "iq2_bn"})
        models.emplace_back(t, synth_model(o, "bitnet-b1.58-2b", t));
    }
    auto add = [&](const std::string& name, const std::string& series, const std::string& file, const Args& extra) {
      Config cf;
      cf.name = name;
      cf.series = series;
      Options om = o;
      om.model = file;
      cf.args = bench(om, o.quick ? 16 : 64, o.quick ? 4 : 16, extra + thread_args(o));
      c.push_back(cf);
    };
    for (const auto& [label, file] : models)
      for (const char* k : o.quick ? std::vector<const char*>{"mad", "lut"}
                                   : std::vector<const char*>{"mad", "lut", "auto"})
        add(label + ", " + k, k, file, Args{"--ternary-kernel", k});
    if (o.quick) return c;
    // The first format on every other SIMD ISA this CPU has (the rows above run the best one).
    const std::vector<kernels::Isa> isas = kernels::available_isas();
    for (kernels::Isa isa : isas) {
      if (isa == kernels::Isa::scalar || isa == isas.back()) continue;
      for (const char* k : {"mad", "lut"})
        add(models[0].first + " " + kernels::isa_name(isa) + ", " + k, k, models[0].second,
            Args{"--ternary-kernel", k, "--isa", kernels::isa_name(isa)});
    }
    // The block formats of the same shape, for the bytes per weight and the speed the ternary ones buy.
    if (!o.model_given)
      for (const char* t : {"q4_0", "q8_0"}) add(t, "block formats", synth_model(o, "bitnet-b1.58-2b", t), {});
    return c;
  };
  s.extract = [](const json& out, const ChildResult&, const Config&, const Machine& m, std::vector<std::string>&) {
    return bench_figures(out, m);
  };
  s.judge = [](const std::vector<ConfigResult>& r, const Machine&) -> Verdict {
    // Per format, LUT against MAD in decode.
    std::string text;
    int lut_wins = 0, pairs = 0;
    for (const ConfigResult& m : r) {
      if (m.config.series != "mad") continue;
      const std::string label = m.config.name.substr(0, m.config.name.rfind(", "));
      const ConfigResult* l = by_name(r, label + ", lut");
      if (!l || !median(m, "tg_tok_s") || !median(*l, "tg_tok_s")) continue;
      const double a = *median(m, "tg_tok_s"), b = *median(*l, "tg_tok_s");
      ++pairs;
      lut_wins += b > a;
      text += strfmt("%s%s: decode LUT %.1f vs MAD %.1f tok/s (%s)", text.empty() ? "" : "; ", label.c_str(), b, a,
                     pct(a > 0 ? b / a - 1 : 0).c_str());
    }
    if (pairs == 0) return inconclusive("no format ran with both kernels");
    return {lut_wins * 2 > pairs ? "reproduced" : "not reproduced", text};
  };
  return s;
}

Study planned(const std::string& name, const std::string& title, const std::string& how) {
  Study s;
  s.name = name;
  s.title = title;
  s.planned = how;
  return s;
}

}  // namespace

const std::vector<Study>& catalog() {
  static const std::vector<Study> c = {
      stages(), hotspots(), kv_cache(), formats(), hugepages(), load(), sched(), barrier(), threads(), batch(),
      ternary(),
      planned("chunked-prefill", "running streams' pace while a long prompt arrives, whole vs chunked prefill",
              "not a study yet: scripts/bench-serve.sh --chunked runs it against `tokenscope serve` (docs/serving.md)"),
  };
  return c;
}

const Study* find_study(const std::string& name) {
  for (const Study& s : catalog())
    if (s.name == name) return &s;
  return nullptr;
}

}  // namespace tokenscope::studies
