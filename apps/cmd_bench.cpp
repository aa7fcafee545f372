#include "apps/cmd_bench.h"

#include "apps/cli_util.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "apps/cli_util.h"
#include "apps/commands.h"
#include "base/error.h"
#include "base/memory_stats.h"
#include "engine/engine.h"
#include "engine/session.h"
#include "gguf/gguf.h"
#include "profile/load.h"
#include "profile/profiler.h"
#include "report/report.h"
#include "kernels/kernels.h"

namespace tokenscope::app {

CLI::App* add_bench_command(CLI::App& app, BenchArgs& a) {
  CLI::App* cmd = app.add_subcommand(
      "bench", "Throughput tests like llama-bench: pp (prompt processing) and tg (generation), repeated");
  cmd->add_option("-m,--model", a.models, "GGUF model file(s), comma-separated (default: the default model)")
      ->delimiter(',');
  cmd->add_option("-p,--n-prompt", a.n_prompt, "Prompt lengths for pp tests, comma-separated (0: none)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("-n,--n-gen", a.n_gen, "Tokens for tg tests, comma-separated (0: none)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("-d,--n-depth", a.depth, "KV-cache depth(s) the tests start at, comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("-t,--threads", a.threads, "Thread counts, comma-separated (default: all CPUs)")->delimiter(',');
  cmd->add_option("--batch", a.batch,
                  "Batched tests like llama-batched-bench: B sequences each read a prompt of -p tokens, then generate -n "
                  "tokens together (S_PP, S_TG, S: aggregate tokens/s); comma-separated B values")
      ->delimiter(',');
  cmd->add_option("--ubatch", a.ubatch, "Batched tests: most tokens per step while the prompts are read")
      ->capture_default_str();
  cmd->add_option("--isa", a.isas, "Kernel ISAs, comma-separated (default: best available)")->delimiter(',');
  cmd->add_option("--barrier", a.barriers, "Barrier modes: spin, futex, hybrid (comma-separated)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--kv-type", a.kv_types, "KV cache types: f16, q8_0 (comma-separated)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--cpu-mask", a.cpu_mask, "Pin threads to CPUs: hex mask (0x3) or list (0,2-3)");
  cmd->add_option("--ternary-kernel", a.ternary_kernel, "Ternary weights: mad, lut or auto (default: mad)");
  cmd->add_option("-r,--repetitions", a.reps, "Repetitions of each test")->capture_default_str();
  cmd->add_option("-o,--output", a.output, "Output format: md, json, jsonl or csv")->capture_default_str();
  cmd->add_flag("--no-warmup", a.no_warmup, "Skip the untimed warm-up run of each test");
  cmd->add_flag("--profile", a.profile, "Attach the profiler (spans, counters) during the tests, to measure its cost");
  add_system_flags(*cmd, a.sys);
  return cmd;
}

namespace {

double now_ns() {
  return static_cast<double>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

std::string cpu_model_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0 || line.rfind("Model name", 0) == 0) {
      const size_t c = line.find(':');
      if (c != std::string::npos) return line.substr(line.find_first_not_of(" \t", c + 1));
    }
  }
  return "unknown CPU";
}

std::string iso_time() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

struct Stats {
  double mean = 0, stddev = 0;
};
Stats stats(const std::vector<double>& v) {
  Stats s;
  if (v.empty()) return s;
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  if (v.size() > 1) {
    double q = 0;
    for (double x : v) q += (x - s.mean) * (x - s.mean);
    s.stddev = std::sqrt(q / static_cast<double>(v.size() - 1));
  }
  return s;
}

struct Test {
  int n_prompt = 0, n_gen = 0, depth = 0;
  std::string name() const {
    std::string s = n_prompt > 0 ? "pp" + std::to_string(n_prompt) : "tg" + std::to_string(n_gen);
    if (depth > 0) s += " @ d" + std::to_string(depth);
    return s;
  }
};

std::vector<TokenId> tokens_for(int n, int64_t n_vocab, uint32_t seed) { return fixed_random_tokens(n, n_vocab, seed); }

// One timed run of a test, in nanoseconds (the depth fill is not timed).
double run_once(Session& s, const Test& t) {
  const int64_t V = s.model().config().n_vocab;
  s.reset();
  if (t.depth > 0) s.eval(tokens_for(t.depth, V, 1));
  if (t.n_prompt > 0) {
    const auto prompt = tokens_for(t.n_prompt, V, 2);
    const double t0 = now_ns();
    s.eval(prompt);
    return now_ns() - t0;
  }
  const auto gen = tokens_for(t.n_gen, V, 3);
  const double t0 = now_ns();
  for (TokenId id : gen) s.eval({id});
  return now_ns() - t0;
}

// One timed run of a batched test (llama-batched-bench's): B sequences read pp random tokens each, in steps of at
// most ubatch tokens (whole sequences, or chunks of two tokens or more), then generate tg tokens together, one
// step per token (each sequence's next token: random ids, the work does not depend on them). Returns the
// nanoseconds of both phases.
std::pair<double, double> run_batched(Engine& e, int B, int pp, int tg, int ubatch, uint32_t seed) {
  const int64_t V = e.n_vocab();
  std::vector<std::unique_ptr<Sequence>> seqs;
  std::vector<std::vector<TokenId>> prompts;
  for (int j = 0; j < B; ++j) {
    seqs.push_back(e.new_sequence());
    prompts.push_back(tokens_for(pp, V, seed + static_cast<uint32_t>(j)));
  }
  Batch batch;
  const double t0 = now_ns();
  size_t j = 0;
  int64_t done = 0;  // tokens of sequence j already read
  while (j < seqs.size()) {
    batch.clear();
    int64_t budget = ubatch;
    while (j < seqs.size() && budget > 0) {
      const int64_t left = pp - done;
      int64_t take = std::min(left, budget);
      if (left - take == 1) --take;
      if (take < 2 && take != left) break;
      batch.add(*seqs[j], std::vector<TokenId>(prompts[j].begin() + done, prompts[j].begin() + done + take), take == left);
      budget -= take;
      done += take;
      if (done == pp) {
        ++j;
        done = 0;
      }
    }
    e.eval(batch);
  }
  const double t1 = now_ns();
  const auto gen = tokens_for(tg * B, V, seed + 1000);
  for (int i = 0; i < tg; ++i) {
    batch.clear();
    for (int k = 0; k < B; ++k) batch.add(*seqs[static_cast<size_t>(k)], gen[static_cast<size_t>(i * B + k)], pp + i, true);
    e.eval(batch);
  }
  const double t2 = now_ns();
  return {t1 - t0, t2 - t1};
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int cmd_bench(const BenchArgs& a) {
  if (a.reps < 1) usage_fail("-r must be >= 1 (got %d)", a.reps);
  if (a.output != "md" && a.output != "json" && a.output != "jsonl" && a.output != "csv")
    usage_fail("-o %s: unknown output format (use md, json, jsonl or csv)", a.output.c_str());
  for (int v : a.n_prompt)
    if (v < 0) usage_fail("-p must be >= 0 (got %d)", v);
  for (int v : a.n_gen)
    if (v < 0) usage_fail("-n must be >= 0 (got %d)", v);
  for (int v : a.depth)
    if (v < 0) usage_fail("-d must be >= 0 (got %d)", v);
  for (int v : a.threads)
    if (v < 1 || v > 512) usage_fail("-t must be between 1 and 512 (got %d)", v);
  for (int v : a.batch)
    if (v < 1) usage_fail("--batch must be >= 1 (got %d)", v);
  if (a.ubatch < 2) usage_fail("--ubatch must be >= 2 (got %d)", a.ubatch);
  const bool batched = !a.batch.empty();
  if (batched) {
    for (int d : a.depth)
      if (d != 0) usage_fail("-d is not supported with --batch (the sequences start empty)");
    for (int v : a.n_prompt)
      if (v < 1) usage_fail("--batch needs -p >= 1 (got %d)", v);
    for (int v : a.n_gen)
      if (v < 1) usage_fail("--batch needs -n >= 1 (got %d)", v);
  }
  std::vector<Test> tests;
  for (int d : a.depth) {
    for (int p : a.n_prompt)
      if (p > 0) tests.push_back({p, 0, d});
    for (int n : a.n_gen)
      if (n > 0) tests.push_back({0, n, d});
  }
  if (tests.empty()) usage_fail("nothing to run: every -p and -n is 0");
  int64_t need_ctx = 0;
  for (const Test& t : tests) need_ctx = std::max<int64_t>(need_ctx, t.depth + t.n_prompt + t.n_gen);
  // Batched: the pool holds every sequence of the largest test (each rounded up to whole pages).
  int64_t need_pool = 0;
  for (int B : a.batch)
    for (int p : a.n_prompt)
      for (int n : a.n_gen)
        need_pool = std::max<int64_t>(need_pool, B * ((p + n + ops::kAttnPad - 1) / ops::kAttnPad * ops::kAttnPad));
  if (batched) {
    need_ctx = 0;
    for (int p : a.n_prompt)
      for (int n : a.n_gen) need_ctx = std::max<int64_t>(need_ctx, p + n);
  }

  apply_ternary_kernel(a.ternary_kernel);
  std::vector<std::string> models = a.models;
  if (models.empty()) models.push_back(resolve_model(""));
  std::vector<int> threads = a.threads;
  if (threads.empty()) threads.push_back(available_cpus());
  std::vector<std::optional<kernels::Isa>> isas;
  for (const std::string& n : a.isas) {
    auto i = kernels::isa_from_name(n);
    if (!i) fail("--isa %s: unknown ISA (use scalar, avx2, avx512 or neon)", n.c_str());
    if (!kernels::isa_available(*i)) fail("--isa %s: not available on this machine", n.c_str());
    isas.push_back(i);
  }
  if (isas.empty()) isas.push_back(std::nullopt);
  if (a.barriers.empty()) fail("--barrier: no mode given");
  std::vector<TensorType> kv_types;
  for (const std::string& n : a.kv_types) kv_types.push_back(parse_kv_type(n));
  if (kv_types.empty()) fail("--kv-type: no type given");

  // Every cache type must fit every model: refuse before any test runs (and prints half a table).
  for (const std::string& model_arg : models) {
    const std::string path = resolve_model(model_arg);
    const ModelConfig cfg = read_model_config(*gguf::File::open(path));
    for (const TensorType t : kv_types) {
      try {
        check_kv_type(cfg, t);
      } catch (const Error& e) {
        fail("%s: --kv-type: %s", path.c_str(), e.what());
      }
    }
  }

  const std::string cpu = cpu_model_name();
  nlohmann::json records = nlohmann::json::array();
  const bool md = a.output == "md";
  if (md) {
    std::printf("cpu: %s | best isa: %s [%s]\n\n", cpu.c_str(), kernels::isa_name(kernels::active_isa()),
                kernels::active().features);
    if (batched) {
      std::printf("| %-34s | %-6s | %7s | %-4s | %6s | %6s | %4s | %6s | %8s | %10s | %8s | %17s | %8s | %10s |\n",
                  "model", "isa", "threads", "kv", "PP", "TG", "B", "N_KV", "T_PP s", "S_PP t/s", "T_TG s", "S_TG t/s",
                  "T s", "S t/s");
      std::printf("| %s | %s | %s: | %s | %s: | %s: | %s: | %s: | %s: | %s: | %s: | %s: | %s: | %s: |\n",
                  std::string(34, '-').c_str(), std::string(6, '-').c_str(), std::string(6, '-').c_str(),
                  std::string(4, '-').c_str(), std::string(5, '-').c_str(), std::string(5, '-').c_str(),
                  std::string(3, '-').c_str(), std::string(5, '-').c_str(), std::string(7, '-').c_str(),
                  std::string(9, '-').c_str(), std::string(7, '-').c_str(), std::string(16, '-').c_str(),
                  std::string(7, '-').c_str(), std::string(9, '-').c_str());
    } else {
      std::printf("| %-34s | %10s | %8s | %-6s | %7s | %-7s | %-4s | %14s | %20s |\n", "model", "size", "params", "isa",
                  "threads", "barrier", "kv", "test", "t/s");
      std::printf("| %s | %s: | %s: | %s | %s: | %s | %s | %s: | %s: |\n", std::string(34, '-').c_str(),
                  std::string(9, '-').c_str(), std::string(7, '-').c_str(), std::string(6, '-').c_str(),
                  std::string(6, '-').c_str(), std::string(7, '-').c_str(), std::string(4, '-').c_str(),
                  std::string(13, '-').c_str(), std::string(19, '-').c_str());
    }
  }
  bool csv_header = false;
  const int64_t per_config = batched ? static_cast<int64_t>(a.n_prompt.size() * a.n_gen.size() * a.batch.size())
                                     : static_cast<int64_t>(tests.size());
  Progress progress("bench", static_cast<int64_t>(models.size() * threads.size() * isas.size() * a.barriers.size() *
                                                  kv_types.size()) * per_config * a.reps);
  // The machine's load over each row's repetitions: into the record, and a warning when disturbed.
  std::vector<std::string> disturbed;
  auto note_load = [&](nlohmann::json& rec, const profile::LoadReport& load, const std::string& row) {
    rec["load"] = nlohmann::json::parse(report::load_json(load));
    if (load.disturbed) {
      std::string w = row + ": ";
      for (size_t i = 0; i < load.warnings.size(); ++i) w += (i ? "; " : "") + load.warnings[i];
      disturbed.push_back(w);
    }
  };
  for (const std::string& model_arg : models) {
    const std::string path = resolve_model(model_arg);
    {
      // Check the context the tests need against the model's before allocating a KV cache for it.
      auto f = gguf::File::open(path);
      const std::string arch = f->opt_string("general.architecture").value_or("");
      const int64_t train = f->opt_int(arch + ".context_length").value_or(0);
      if (train > 0 && need_ctx > train)
        fail("%s: the tests need %lld tokens of context (depth + prompt + generated), the model was trained for %lld",
             path.c_str(), static_cast<long long>(need_ctx), static_cast<long long>(train));
    }
    // The model is loaded (and its weights packed) once; each configuration gets its own engine over it.
    EngineOptions load_opts;
    load_opts.model_path = path;
    apply_system_args(a.sys, load_opts);
    load_opts.load.progress = loading_line(path);
    LoadReport model_load;
    std::shared_ptr<const Model> model = Engine::load_model(load_opts, &model_load);
    print_load_notes(model_load);
    std::shared_ptr<const Tokenizer> tokenizer = Tokenizer::from_gguf(model->file());
    int64_t n_params = 0;
    for (const auto& t : model->file().tensors()) n_params += t.n_elements;
    const uint64_t size = model->weight_bytes();
    const std::string fname = path.substr(path.find_last_of('/') + 1);
    for (int nt : threads) {
      for (const auto& isa : isas) {
        for (const std::string& barrier : a.barriers) {
          for (const TensorType kv_type : kv_types) {
            EngineOptions o;
            o.kv_type = kv_type;
            o.n_threads = nt;
            o.isa = isa;
            o.pool = pool_options(barrier, a.cpu_mask);
            apply_system_args(a.sys, o);
            o.kv_tokens = batched ? need_pool : need_ctx;
            // Every repetition evaluates the same prompts afresh: none may take another's pages.
            o.prefix_cache = false;
            profile::Profiler prof;
            if (a.profile) o.profiler = &prof;
            auto common = [&](nlohmann::json rec, const Engine& e) {
              rec["model_filename"] = path;
              if (kernels::ternary_kernel() != kernels::TernaryKernel::mad)
                rec["ternary_kernel"] = kernels::ternary_kernel_name(kernels::ternary_kernel());
              rec["model_type"] = model->config().arch + " " + fname;
              rec["model_size"] = size;
              rec["model_n_params"] = n_params;
              rec["cpu_info"] = cpu;
              rec["isa"] = kernels::isa_name(e.isa());
              rec["isa_features"] = kernels::table(e.isa()).features;
              rec["barrier"] = barrier;
              rec["type_k"] = kv_type_name(kv_type);
              rec["type_v"] = kv_type_name(kv_type);
              rec["profiler"] = a.profile;
              rec["cpu_mask"] = a.cpu_mask;
              rec["n_threads"] = e.n_threads();
              rec["test_time"] = iso_time();
              rec["peak_rss_bytes"] = peak_rss_bytes();
              rec["model_load"] = load_report_json(model_load);
              rec["system"] = system_json(a.sys);
              return rec;
            };
            if (batched) {
              auto e = Engine::open(model, tokenizer, o);
              for (int pp : a.n_prompt)
                for (int tg : a.n_gen)
                  for (int B : a.batch) {
                    if (!a.no_warmup) run_batched(*e, std::min(B, 2), std::min(pp, 8), 1, a.ubatch, 7);
                    std::vector<double> t_pp, t_tg, s_pp, s_tg, s_all;
                    const profile::LoadWatch load_watch;
                    for (int r = 0; r < a.reps; ++r) {
                      const auto [dp, dg] = run_batched(*e, B, pp, tg, a.ubatch, 100 + static_cast<uint32_t>(r));
                      progress.step();
                      t_pp.push_back(dp * 1e-9);
                      t_tg.push_back(dg * 1e-9);
                      s_pp.push_back(static_cast<double>(B) * pp / (dp * 1e-9));
                      s_tg.push_back(static_cast<double>(B) * tg / (dg * 1e-9));
                      s_all.push_back(static_cast<double>(B) * (pp + tg) / ((dp + dg) * 1e-9));
                    }
                    progress.hide();  // the row goes where the progress line was
                    const int64_t n_kv = static_cast<int64_t>(B) * (pp + tg);
                    const double tp = median(t_pp), tt = median(t_tg);
                    // llama-batched-bench's field names (medians over the repetitions), then our own.
                    nlohmann::json rec = {{"n_kv_max", e->kv().capacity_tokens()},
                                          {"n_batch", a.ubatch},
                                          {"n_ubatch", a.ubatch},
                                          {"flash_attn", 1},
                                          {"is_pp_shared", 0},
                                          {"n_gpu_layers", 0},
                                          {"n_threads_batch", e->n_threads()},
                                          {"pp", pp},
                                          {"tg", tg},
                                          {"pl", B},
                                          {"n_kv", n_kv},
                                          {"t_pp", tp},
                                          {"speed_pp", median(s_pp)},
                                          {"t_tg", tt},
                                          {"speed_tg", median(s_tg)},
                                          {"t", tp + tt},
                                          {"speed", median(s_all)},
                                          {"repetitions", a.reps},
                                          {"samples_speed_pp", s_pp},
                                          {"samples_speed_tg", s_tg},
                                          {"stddev_speed_tg", stats(s_tg).stddev}};
                    rec = common(std::move(rec), *e);
                    note_load(rec, load_watch.stop(e->n_threads()),
                              strfmt("pp %d, tg %d, B %d, %d threads", pp, tg, B, e->n_threads()));
                    if (md) {
                      std::printf("| %-34s | %-6s | %7d | %-4s | %6d | %6d | %4d | %6lld | %8.3f | %10.2f | %8.3f | "
                                  "%8.2f ± %6.2f | %8.3f | %10.2f |\n",
                                  fname.substr(0, 34).c_str(), kernels::isa_name(e->isa()), e->n_threads(),
                                  kv_type_name(kv_type).c_str(), pp, tg, B, static_cast<long long>(n_kv), tp,
                                  median(s_pp), tt, median(s_tg), stats(s_tg).stddev, tp + tt, median(s_all));
                      std::fflush(stdout);
                    } else if (a.output == "jsonl") {
                      std::printf("%s\n", rec.dump().c_str());
                      std::fflush(stdout);
                    } else if (a.output == "csv") {
                      if (!csv_header) {
                        std::printf("model_filename,isa,n_threads,type_k,pp,tg,pl,n_kv,t_pp,speed_pp,t_tg,speed_tg,t,speed\n");
                        csv_header = true;
                      }
                      std::printf("\"%s\",%s,%d,%s,%d,%d,%d,%lld,%.4f,%.2f,%.4f,%.2f,%.4f,%.2f\n", path.c_str(),
                                  kernels::isa_name(e->isa()), e->n_threads(), kv_type_name(kv_type).c_str(), pp, tg, B,
                                  static_cast<long long>(n_kv), tp, median(s_pp), tt, median(s_tg), tp + tt,
                                  median(s_all));
                    }
                    records.push_back(std::move(rec));
                  }
              continue;
            }
            Session sess(Engine::open(model, tokenizer, o));
            Session* s = &sess;
            for (const Test& t : tests) {
              if (!a.no_warmup) {
                Test w = t;
                if (w.n_gen > 0) w.n_gen = 1;
                run_once(*s, w);
              }
              std::vector<double> ns, ts;
              const profile::LoadWatch load_watch;
              for (int r = 0; r < a.reps; ++r) {
                const double dt = run_once(*s, t);
                progress.step();
                ns.push_back(dt);
                ts.push_back(1e9 * (t.n_prompt + t.n_gen) / dt);
              }
              progress.hide();  // the row goes where the progress line was
              const Stats sn = stats(ns), st = stats(ts);
              nlohmann::json rec = {
                  {"n_prompt", t.n_prompt},
                  {"n_gen", t.n_gen},
                  {"n_depth", t.depth},
                  {"avg_ns", static_cast<int64_t>(sn.mean)},
                  {"stddev_ns", static_cast<int64_t>(sn.stddev)},
                  {"avg_ts", st.mean},
                  {"stddev_ts", st.stddev},
                  {"samples_ns", ns},
                  {"samples_ts", ts},
              };
              rec = common(std::move(rec), s->engine());
              note_load(rec, load_watch.stop(s->n_threads()), t.name() + strfmt(", %d threads", s->n_threads()));
              if (md) {
                std::printf("| %-34s | %6.2f MiB | %6.2f M | %-6s | %7d | %-7s | %-4s | %14s | %11.2f ± %6.2f |\n",
                            fname.substr(0, 34).c_str(), static_cast<double>(size) / (1 << 20),
                            static_cast<double>(n_params) / 1e6, kernels::isa_name(s->isa()), s->n_threads(),
                            barrier.c_str(), kv_type_name(kv_type).c_str(), t.name().c_str(), st.mean, st.stddev);
                std::fflush(stdout);
              } else if (a.output == "jsonl") {
                std::printf("%s\n", rec.dump().c_str());
                std::fflush(stdout);
              } else if (a.output == "csv") {
                if (!csv_header) {
                  std::printf("model_filename,model_size,model_n_params,cpu_info,isa,barrier,type_k,type_v,n_threads,"
                              "n_prompt,n_gen,n_depth,test_time,avg_ns,stddev_ns,avg_ts,stddev_ts\n");
                  csv_header = true;
                }
                std::printf("\"%s\",%llu,%lld,\"%s\",%s,%s,%s,%s,%d,%d,%d,%d,%s,%lld,%lld,%.4f,%.4f\n", path.c_str(),
                            static_cast<unsigned long long>(size), static_cast<long long>(n_params), cpu.c_str(),
                            kernels::isa_name(s->isa()), barrier.c_str(), kv_type_name(kv_type).c_str(),
                            kv_type_name(kv_type).c_str(), s->n_threads(), t.n_prompt, t.n_gen, t.depth,
                            iso_time().c_str(), static_cast<long long>(sn.mean), static_cast<long long>(sn.stddev),
                            st.mean, st.stddev);
              }
              records.push_back(std::move(rec));
            }
          }
        }
      }
    }
  }
  if (md) std::printf("\npeak RSS: %.1f MiB\n", static_cast<double>(peak_rss_bytes()) / (1 << 20));
  // Disturbed rows, after the table (in JSON each record carries its "load").
  for (const std::string& w : disturbed) std::fprintf(stderr, "WARNING: disturbed measurement: %s\n", w.c_str());
  if (a.output == "json") std::printf("%s\n", records.dump(2).c_str());
  return 0;
}

}  // namespace tokenscope::app
