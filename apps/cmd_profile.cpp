#include "apps/cmd_profile.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "apps/cli_util.h"
#include "base/error.h"
#include "engine/scheduler.h"
#include "engine/sysinfo.h"
#include "report/compare.h"
#include "report/html_report.h"
#include "profile/pfm_events.h"
#include "profile/sampler.h"
#include "report/hotspots.h"
#include "report/report.h"
#include "runtime/thread_pool.h"

namespace tokenscope::app {

using report::ProfileSummary;

CLI::App* add_profile_command(CLI::App& app, ProfileArgs& a) {
  CLI::App* cmd = app.add_subcommand(
      "profile", "Run a prompt with the profiler on: per-stage and per-op time, FLOPs, bytes, counters, roofline");
  add_common_flags(*cmd, a.common);
  add_sampling_flags(*cmd, a.sampling);
  a.sampling.temperature = 0;  // deterministic by default; --temp overrides
  cmd->add_option("-p,--prompt", a.prompt, "Prompt text");
  cmd->add_option("--prompt-tokens", a.prompt_tokens, "Instead of -p: a prompt of N fixed random token ids (as bench "
                  "uses), the same length on any model and tokenizer");
  cmd->add_option("-n,--n-predict", a.n_predict, "Tokens to generate")->capture_default_str();
  cmd->add_flag("--chat", a.chat, "Wrap the prompt in the model's chat template");
  cmd->add_option("--parallel", a.parallel,
                  "Sequences at once, each reading its own copy of the prompt and generating -n tokens: the batched "
                  "decode steps (B = N) show the arithmetic intensity batching buys")
      ->capture_default_str();
  cmd->add_option("-o,--output", a.out_dir,
                  "Directory for summary.json, trace.json and report.html (default: a new one under "
                  "~/.cache/tokenscope/profiles, printed at the end)");
  cmd->add_option("--trace-steps", a.trace_steps,
                  "Decode steps whose op spans trace.json keeps in full; after them one step in k, so that a long run's "
                  "trace stays openable (0: keep every step)")
      ->capture_default_str();
  cmd->add_flag("--refresh-sysinfo", a.refresh_sysinfo, "Measure the machine's roofline again");
  cmd->add_option("-e,--event", a.events,
                  "Also count this named PMU event, per thread and stage (libpfm4 names, e.g. STALL_BACKEND_MEM, "
                  "perf::PAGE-FAULTS); repeatable");
  cmd->add_flag("--sample", a.sample, "Sample where the threads spend their time (task clock, no PMU needed): the top "
                "functions per stage, in the table, summary.json and the report");
  cmd->add_option("--sample-period", a.sample_period_us, "Sampling period in microseconds of each thread's CPU time")
      ->capture_default_str();
  return cmd;
}

CLI::App* add_sysinfo_command(CLI::App& app, SysinfoArgs& a) {
  CLI::App* cmd = app.add_subcommand(
      "sysinfo", "Measure (or show the cached) read bandwidth and int8 / f32 peak of this machine");
  cmd->add_option("-t,--threads", a.threads, "Threads (default: all CPUs)");
  cmd->add_option("--isa", a.isa, "Kernel ISA (default: best available)");
  cmd->add_flag("--refresh", a.refresh, "Measure again even if cached");
  cmd->add_flag("--json", a.json, "Print JSON");
  return cmd;
}

CLI::App* add_report_command(CLI::App& app, ReportArgs& a) {
  CLI::App* cmd = app.add_subcommand(
      "report", "Rebuild DIR/report.html from DIR/summary.json (written by profile), or compare two runs (--compare A B)");
  auto* dir = cmd->add_option("dir", a.dir, "Directory written by tokenscope profile");
  auto* cmp = cmd->add_option("--compare", a.compare,
                              "Two runs side by side, like perf diff: two profile directories (per stage, op and layer: "
                              "time per token, throughput, share of the roof, ratio) or two bench JSON outputs")
                  ->expected(2);
  cmd->add_option("-o,--output", a.output,
                  "Where --compare writes its page (default: B/compare.html, or B's name with .compare.html)");
  dir->excludes(cmp);
  return cmd;
}

namespace {
int cmd_compare(const ReportArgs& a) {
  auto load = [](const std::string& arg) {
    const bool is_dir = std::filesystem::is_directory(arg);
    const std::string path = is_dir ? arg + "/summary.json" : arg;
    if (!std::filesystem::exists(path))
      fail("%s: not found%s", path.c_str(), is_dir ? " (a directory written by tokenscope profile has one)" : "");
    const std::string text = report::read_text_file(path);
    if (text.empty()) fail("%s: cannot read, or empty", path.c_str());
    return text;
  };
  const std::string& A = a.compare[0];
  const std::string& B = a.compare[1];
  report::Comparison c;
  try {
    c = report::compare_runs(load(A), load(B), A, B);
  } catch (const Error& e) {
    fail("report --compare: %s", e.what());
  }
  std::printf("%s", report::comparison_table(c).c_str());
  std::string out = a.output;
  if (out.empty()) {
    if (std::filesystem::is_directory(B)) out = B + "/compare.html";
    else out = std::filesystem::path(B).replace_extension(".compare.html").string();
  }
  const std::string chartjs = report::find_chartjs();
  std::ofstream f(out);
  f << report::comparison_html(c, chartjs.empty() ? "" : report::read_text_file(chartjs));
  if (!f) fail("%s: cannot write", out.c_str());
  std::printf("\nwrote %s%s\n", out.c_str(), chartjs.empty() ? " (without charts: Chart.js not found)" : "");
  return 0;
}
}  // namespace

int cmd_report(const ReportArgs& a) {
  if (!a.compare.empty()) return cmd_compare(a);
  if (a.dir.empty()) fail("report: give a profile directory, or --compare A B");
  const std::string in = a.dir + "/summary.json";
  const std::string summary = report::read_text_file(in);
  if (summary.empty()) fail("%s: cannot read (run tokenscope profile -o %s first)", in.c_str(), a.dir.c_str());
  const std::string chartjs = report::find_chartjs();
  std::string html;
  try {
    html = report::html_report(summary, chartjs.empty() ? "" : report::read_text_file(chartjs));
  } catch (const Error& e) {
    fail("%s: %s", in.c_str(), e.what());
  }
  const std::string out = a.dir + "/report.html";
  std::ofstream f(out);
  f << html;
  if (!f) fail("%s: cannot write", out.c_str());
  std::printf("wrote %s%s\n", out.c_str(), chartjs.empty() ? " (without charts: Chart.js not found)" : "");
  return 0;
}

namespace {
kernels::Isa isa_or_best(const std::string& name) {
  if (name.empty()) return kernels::active_isa();
  auto i = kernels::isa_from_name(name);
  if (!i) fail("--isa %s: unknown ISA (use scalar, avx2, avx512 or neon)", name.c_str());
  if (!kernels::isa_available(*i)) fail("--isa %s: not available on this machine", name.c_str());
  return *i;
}
}  // namespace

int cmd_sysinfo(const SysinfoArgs& a) {
  if (a.threads < 0) fail("-t must be >= 1 (got %d)", a.threads);
  const int threads = a.threads > 0 ? a.threads : available_cpus();
  const kernels::Isa isa = isa_or_best(a.isa);
  const MachineInfo m = machine_info(threads, isa, a.refresh);
  if (a.json) {
    std::printf("%s\n", machine_info_json(m).c_str());
    return 0;
  }
  auto range = [](const profile::Spread& s, const char* unit) {
    return strfmt("%7.1f %s (%.1f-%.1f over %d runs)", s.median, unit, s.lo, s.hi, s.n);
  };
  std::printf("cpu:        %s\nthreads:    %d\nisa:        %s [%s]\n", m.cpu.c_str(), m.threads, m.isa.c_str(),
              kernels::table(isa).features);
  std::printf("read bandwidth: %.1f GB/s (DRAM, median)\nper level (median, range; the roof is the faster of decode's two "
              "read kernels):\n", m.read_gbs);
  for (const profile::MemoryLevel& l : m.levels)
    std::printf("  %-5s %-9s %s   gemv %.1f, stream %.1f GB/s, working set %s\n", l.name.c_str(),
                l.capacity > 0 ? report::human_bytes(l.capacity).c_str() : "", range(l.gbs, "GB/s").c_str(),
                l.gemv_gbs.median, l.stream_gbs.median, report::human_bytes(l.working_set).c_str());
  std::printf("int8 peak:  %s (fastest packed GEMM kernel, in cache)\nf32 peak:   %s (attention GEMM kernel, in cache)\n",
              range(m.int8_spread, "GOP/s").c_str(), range(m.f32_spread, "GFLOP/s").c_str());
  std::printf("ridge:      %.1f int8 ops per byte against DRAM", m.read_gbs > 0 ? m.peak_int8_gops / m.read_gbs : 0.0);
  if (m.levels.size() > 1)
    std::printf(", %.1f against %s", m.peak_int8_gops / std::max(1e-9, m.levels.front().gbs.median),
                m.levels.front().name.c_str());
  std::printf("\nload:       %s\n", m.load.c_str());
  for (size_t i = 0; i + 1 < m.levels.size(); ++i)
    if (m.levels[i].gbs.hi < m.levels[i + 1].gbs.median)
      std::printf("note:       the %s roof was measured below the %s roof: that measurement was disturbed\n",
                  m.levels[i].name.c_str(), m.levels[i + 1].name.c_str());
  if (m.disturbed)
    std::printf("WARNING:    measured while the machine was busy: these roofs are too low and too spread; they are "
                "measured again once the machine is quiet (or with --refresh)\n");
  std::printf("measured:   %s%s\n", m.measured_at.c_str(),
              m.from_cache ? (" (cached in " + sysinfo_cache_path() + "; --refresh measures again)").c_str() : "");
  return 0;
}

std::string default_profile_dir() { return new_dated_dir(cache_dir() + "/profiles"); }

void write_profile(const profile::Profiler& prof, const MachineInfo& m, const std::string& model_path,
                   const std::string& out_dir, const profile::LoadReport* load, const report::TraceOptions& trace,
                   const nlohmann::json* hotspots) {
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) fail("%s: cannot create the output directory: %s", out_dir.c_str(), ec.message().c_str());
  ProfileSummary sum = report::summarize(prof, m);
  if (load) sum.load = *load;
  sum.command = report::this_command_line();
  auto write = [&](const std::string& name, const std::string& content) {
    const std::string path = out_dir + "/" + name;
    std::ofstream f(path);
    f << content;
    if (!f) fail("%s: cannot write", path.c_str());
  };
  std::string summary = report::summary_json(sum, prof, model_path);
  if (hotspots) {
    nlohmann::json j = nlohmann::json::parse(summary);
    j["hotspots"] = *hotspots;
    summary = j.dump(2);
  }
  write("summary.json", summary);
  write("trace.json", report::trace_json(prof, trace));
  const std::string chartjs = report::find_chartjs();
  write("report.html", report::html_report(summary, chartjs.empty() ? "" : report::read_text_file(chartjs)));
  report::print_profile_table(sum, stdout);
  if (hotspots) std::printf("\n%s", report::hotspots_table(*hotspots).c_str());
  std::printf("\nprofile: %s\n  report.html   the report (open it in a browser)\n  trace.json    the trace (open it "
              "in https://ui.perfetto.dev)%s\n  summary.json  the figures (tokenscope report --compare DIR_A DIR_B "
              "compares two runs)\n",
              out_dir.c_str(), trace.full_steps > 0 && prof.steps().size() > static_cast<size_t>(trace.full_steps + trace.max_sampled)
                                   ? strfmt("; decode steps sampled after the first %d", trace.full_steps).c_str()
                                   : "");
  if (chartjs.empty())
    std::fprintf(stderr, "note: Chart.js not found (install libjs-chart.js or set TOKENSCOPE_CHARTJS): the report has "
                         "tables but no charts\n");
}

MachineInfo machine_for(const CommonArgs& c, bool refresh) {
  const int threads = c.threads > 0 ? c.threads : available_cpus();
  return machine_info(threads, isa_or_best(c.isa), refresh);
}

int cmd_profile(const ProfileArgs& a) {
  if (a.prompt.empty() == (a.prompt_tokens == 0))
    usage_fail("profile: give a prompt: -p TEXT or --prompt-tokens N (one of them)");
  if (a.prompt_tokens < 0 || a.prompt_tokens > 1 << 20)
    usage_fail("--prompt-tokens must be 1..1048576 (got %d)", a.prompt_tokens);
  if (a.n_predict < 1) fail("-n must be >= 1 (got %lld)", static_cast<long long>(a.n_predict));
  if (a.trace_steps < 0) fail("--trace-steps must be >= 0 (got %d)", a.trace_steps);
  validate(a.sampling);
  // The roofline first, so its measurement does not overlap the run.
  const MachineInfo m = machine_for(a.common, a.refresh_sysinfo);
  profile::Profiler prof;
  std::vector<profile::CounterSpec> extra;
  for (const std::string& e : a.events) extra.push_back(profile::resolve_named_event(e));
  prof.request_events(std::move(extra));
  if (a.parallel < 1 || a.parallel > 1024) fail("--parallel must be between 1 and 1024 (got %d)", a.parallel);
  EngineOptions eo = engine_options(a.common, &prof);
  // Every sequence computes its own prompt (no prefix cache): the profile shows the work N users would cause.
  eo.prefix_cache = false;
  LoadReport loaded;
  std::shared_ptr<const Model> model = Engine::load_model(eo, &loaded);
  std::shared_ptr<const Tokenizer> tok = Tokenizer::from_gguf(model->file());
  std::vector<TokenId> prompt;
  if (a.prompt_tokens > 0) {
    prompt = fixed_random_tokens(a.prompt_tokens, tok->n_vocab(), 2);
  } else {
    std::string text = a.prompt;
    if (a.chat) text = render_chat_prompt(*model, a.prompt, "");
    prompt = tok->encode(text, true, true);
  }
  // Without -c, the pool holds what the run needs: every sequence's prompt and generated tokens.
  if (eo.kv_tokens == 0)
    eo.kv_tokens = std::max<int64_t>(std::min<int64_t>(4096, model->config().n_ctx_train),
                                     a.parallel * (static_cast<int64_t>(prompt.size()) + a.n_predict + ops::kAttnPad));
  auto s = std::make_unique<Session>(Engine::open(model, tok, eo, &loaded));
  print_load_notes(s->engine().load_report());
  std::unique_ptr<profile::Sampler> sampler;
  if (a.sample) {
    if (a.sample_period_us < 10 || a.sample_period_us > 1e6)
      usage_fail("--sample-period must be 10..1000000 us (got %g)", a.sample_period_us);
    sampler = std::make_unique<profile::Sampler>(prof.thread_ids(), a.sample_period_us);
    sampler->start();
  }
  const profile::LoadWatch load_watch;  // the machine's load from here to the end of the run
  GenerationResult r;
  if (a.parallel == 1) {
    GenerateOptions g;
    g.n_predict = a.n_predict;
    g.sampling = a.sampling;
    g.ignore_eos = true;  // a profile wants the steps it asked for
    r = s->generate(prompt, g);
  } else {
    // All prompts in one prefill step (up to 512 tokens a step), then decode steps of N tokens.
    SchedulerOptions so;
    so.max_parallel = a.parallel;
    so.max_batch_tokens = std::max<int64_t>(512, static_cast<int64_t>(prompt.size()) * a.parallel);
    Scheduler sched(s->engine(), so);
    for (int i = 0; i < a.parallel; ++i) sched.submit(Request{prompt, a.n_predict, true, a.sampling});
    sched.run();
    r.tokens = sched.result(0).tokens;
    r.text = sched.result(0).text;
  }
  const profile::LoadReport load = load_watch.stop(m.threads);
  nlohmann::json hotspots;
  if (sampler) {
    sampler->stop();
    hotspots = report::hotspots_json(*sampler, prof);
  }
  std::printf("prompt: %zu tokens, generated: %zu tokens: %s\n\n", prompt.size(), r.tokens.size(), r.text.c_str());
  report::TraceOptions trace;
  trace.full_steps = a.trace_steps;
  write_profile(prof, m, s->model().file().path(), a.out_dir.empty() ? default_profile_dir() : a.out_dir, &load, trace,
                sampler ? &hotspots : nullptr);
  return 0;
}

}  // namespace tokenscope::app
