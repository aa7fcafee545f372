#include "apps/cmd_study.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "apps/cli_util.h"
#include "base/error.h"
#include "engine/session.h"
#include "report/html_report.h"
#include "studies/study.h"

namespace tokenscope::app {

namespace {

std::string self_exe() {
  std::error_code ec;
  const auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) fail("cannot find this program's path (/proc/self/exe): %s", ec.message().c_str());
  return p.string();
}

}  // namespace

CLI::App* add_study_command(CLI::App& app, StudyArgs& a) {
  CLI::App* cmd = app.add_subcommand(
      "study", "Run a classic CPU-inference experiment: configurations interleaved over rounds, a table, NAME.json and "
               "NAME.html (and NAME.md), and whether this machine reproduces the classic finding (study --list names them)");
  cmd->add_option("name", a.name, "The study (see --list), or all");
  cmd->add_flag("--list", a.list, "List the studies and what each tests");
  cmd->add_option("-m,--model", a.model, "GGUF model file (default: the default model)");
  cmd->add_option("--shape", a.shape, "formats: the model shape synthesized in each format (default smollm2-135m; "
                  "qwen1.5-0.5b, llama-3.2-1b)");
  cmd->add_option("-r,--rounds", a.rounds, "Rounds: every configuration runs once per round, interleaved")
      ->capture_default_str();
  cmd->add_option("-t,--threads", a.threads, "Threads for the configurations (default: all CPUs)");
  cmd->add_option("-o,--output", a.out_dir, "Directory for NAME.json and NAME.html (default: a new one under "
                  "~/.cache/tokenscope/studies, printed at the end)");
  cmd->add_option("--work-dir", a.work_dir, "Scratch: synthesized models, per-run output (default: "
                  "~/.cache/tokenscope/study-work)");
  cmd->add_flag("--quick", a.quick, "Tiny prompts and sizes, fewer configurations: checks the study runs (CI)");
  return cmd;
}

int cmd_study(const StudyArgs& a) {
  using namespace studies;
  if (a.list || a.name.empty()) {
    std::printf("%-16s %s\n", "study", "what it measures / the classic finding it tests");
    for (const Study& s : catalog()) {
      std::printf("%-16s %s\n", s.name.c_str(), s.title.c_str());
      std::printf("%-16s   %s\n", "", s.planned.empty() ? ("finding: " + s.finding).c_str() : s.planned.c_str());
    }
    std::printf("\ntokenscope study NAME [-m MODEL] [--rounds 5] [-t N] [-o DIR] [--quick]; tokenscope study all\n");
    if (!a.list && a.name.empty()) usage_fail("study: name a study (above) or all");
    return 0;
  }
  if (a.rounds < 1 || a.rounds > 1000) usage_fail("--rounds must be 1..1000 (got %d)", a.rounds);
  if (a.threads < 0 || a.threads > 512) usage_fail("-t must be 0..512 (got %d)", a.threads);
  std::vector<const Study*> todo;
  if (a.name == "all") {
    for (const Study& s : catalog())
      if (s.planned.empty()) todo.push_back(&s);
  } else {
    const Study* s = find_study(a.name);
    if (!s) {
      std::string names;
      for (const Study& x : catalog()) names += (names.empty() ? "" : ", ") + x.name;
      usage_fail("study %s: no such study (there are: %s, or all)", a.name.c_str(), names.c_str());
    }
    if (!s->planned.empty()) fail("study %s: %s", s->name.c_str(), s->planned.c_str());
    todo.push_back(s);
  }
  Options o;
  o.bin = self_exe();
  o.model = a.model.empty() ? default_model_path() : std::filesystem::absolute(a.model).string();
  if (!a.model.empty() && !std::filesystem::exists(o.model)) fail("%s: no such file", o.model.c_str());
  o.shape = a.shape;
  o.model_given = !a.model.empty();
  o.rounds = a.rounds;
  o.threads = a.threads;
  o.quick = a.quick;
  o.work_dir = a.work_dir.empty() ? cache_dir() + "/study-work" : a.work_dir;
  const std::string out = a.out_dir.empty() ? new_dated_dir(cache_dir() + "/studies") : a.out_dir;
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec) fail("%s: cannot create the output directory: %s", out.c_str(), ec.message().c_str());
  o.out_dir = out;
  std::fprintf(stderr, "study: measuring (or reading the cached) machine roofline\n");
  const Machine m = describe_machine(o.bin);
  const std::string chartjs_path = report::find_chartjs();
  const std::string chartjs = chartjs_path.empty() ? "" : report::read_text_file(chartjs_path);
  if (chartjs.empty())
    std::fprintf(stderr, "study: note: Chart.js not found (Debian libjs-chart.js): the HTML pages get tables only\n");
  json index = json::array();
  for (const Study* s : todo) {
    Options so = o;
    if (a.model.empty() && !a.quick && !s->classic_shape.empty()) {
      so.model = synth_model(o, s->classic_shape, "q4_0");
      std::fprintf(stderr, "study %s: the classic experiment used %s Q4_0: its shape with random weights (-m to "
                   "choose another model)\n", s->name.c_str(), s->classic_shape.c_str());
    }
    if (!std::filesystem::exists(so.model))
      fail("study %s: the default model %s is not there: run scripts/fetch-models.sh (or pass -m FILE)",
           s->name.c_str(), so.model.c_str());
    const StudyResult r = run_study(*s, so, m);
    std::printf("%s\n", terminal_table(r).c_str());
    std::fflush(stdout);
    const json j = result_json(r);
    std::ofstream(out + "/" + s->name + ".json") << j.dump(2) << "\n";
    std::ofstream(out + "/" + s->name + ".html") << result_html(r, chartjs);
    std::ofstream(out + "/" + s->name + ".md") << result_markdown(r);
    index.push_back({{"study", s->name}, {"verdict", r.verdict.status}, {"text", r.verdict.text}});
  }
  if (todo.size() > 1) {
    std::printf("summary:\n");
    for (const json& i : index)
      std::printf("  %-12s %-15s %s\n", i["study"].get<std::string>().c_str(), i["verdict"].get<std::string>().c_str(),
                  i["text"].get<std::string>().c_str());
  }
  std::printf("written: %s/{%s}.json, .html and .md\n", out.c_str(),
              todo.size() == 1 ? todo[0]->name.c_str() : "NAME");
  return 0;
}

CLI::App* add_probe_command(CLI::App& app, ProbeArgs& a) {
  CLI::App* cmd = app.add_subcommand(
      "probe", "Measurements the studies run in a process of their own: `probe pool` prints, as JSON, decode tok/s, CPU "
               "time and context switches per token, and the pool's wake-up latency");
  cmd->add_option("what", a.what, "What to measure: pool")->required();
  add_common_flags(*cmd, a.common);
  cmd->add_option("-n,--n-gen", a.n_gen, "Tokens to decode")->capture_default_str();
  cmd->add_option("--wake-reps", a.wake_reps, "Wake-ups measured")->capture_default_str();
  return cmd;
}

namespace {

// This process's CPU time (user + system, all threads) and context switches so far.
struct Usage {
  double cpu_ms = 0;
  int64_t switches = 0;
};
Usage usage_now() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return {static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
              static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3,
          ru.ru_nvcsw + ru.ru_nivcsw};
}

}  // namespace

int cmd_probe(const ProbeArgs& a) {
  if (a.what != "pool") usage_fail("probe %s: unknown measurement (use pool)", a.what.c_str());
  if (a.n_gen < 1 || a.n_gen > 4096) usage_fail("-n must be 1..4096 (got %lld)", static_cast<long long>(a.n_gen));
  if (a.wake_reps < 1 || a.wake_reps > 100000) usage_fail("--wake-reps must be 1..100000 (got %d)", a.wake_reps);
  EngineOptions eo = engine_options(a.common);
  eo.prefix_cache = false;
  if (eo.kv_tokens == 0) eo.kv_tokens = 256 + a.n_gen;
  Session s(Engine::open(eo));
  print_load_notes(s.engine().load_report());
  // Decode: greedy, past end-of-generation, after a short prompt; CPU time and switches over the decode only.
  GenerateOptions g;
  g.n_predict = a.n_gen;
  g.ignore_eos = true;
  g.sampling.temperature = 0;
  const std::vector<TokenId> prompt = s.tokenize("Once upon a time");
  s.generate(prompt, {4, true, g.sampling});  // warm-up
  s.reset();
  // CPU time and switches from the first token (the prefill's end) to the last.
  Usage u0;
  bool first = true;
  const GenerationResult r = s.generate(prompt, g, [&](TokenId, const std::string&) {
    if (first) {
      u0 = usage_now();
      first = false;
    }
    return true;
  });
  const Usage u1 = usage_now();
  const double cpu_ms = u1.cpu_ms - u0.cpu_ms;
  const int64_t cs = u1.switches - u0.switches;
  const double n = static_cast<double>(std::max<int64_t>(1, r.stats.decode_steps));
  // Wake-up: an empty job after the pool has been idle 2 ms (a hybrid pool's workers are asleep by then), timed
  // from run() to every thread having started and finished it.
  std::vector<double> wake;
  ThreadPool& pool = s.engine().pool();
  for (int i = 0; i < a.wake_reps; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const auto t0 = std::chrono::steady_clock::now();
    pool.run([](int, int) {});
    wake.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(wake.begin(), wake.end());
  nlohmann::json j;
  j["tokens"] = r.tokens.size();
  j["tg_tok_s"] = r.stats.decode_tok_s();
  j["cpu_ms_per_token"] = cpu_ms / n;
  j["cs_per_token"] = static_cast<double>(cs) / n;
  j["wake_us"] = wake[wake.size() / 2];
  j["wake_us_p90"] = wake[wake.size() * 9 / 10];
  j["threads"] = s.n_threads();
  j["pool"] = pool_backend_name(pool.options().backend);
  j["barrier"] = barrier_mode_name(pool.options().barrier);
  j["system"] = system_json(a.common.sys);
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}

}  // namespace tokenscope::app
