// `tokenscope run --prompts FILE --parallel N`: many prompts through the batched engine (continuous batching,
// chunked prefill, shared prompt prefixes), each result printed in input order as soon as it and those before it
// are done.
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "base/error.h"
#include "base/memory_stats.h"
#include "engine/engine.h"
#include "engine/scheduler.h"

namespace tokenscope::app {

namespace {

struct PromptLine {
  std::string text;
  int64_t n_predict;
  int line;
};

// One prompt per line, or a JSON object per line with "prompt" (a string) and optionally "n_predict" (an integer
// >= -1). Blank lines are skipped.
std::vector<PromptLine> read_prompts(const std::string& path, int64_t default_n) {
  std::ifstream f(path);
  if (!f) fail("--prompts %s: cannot open the file", path.c_str());
  std::vector<PromptLine> out;
  std::string line;
  int no = 0;
  while (std::getline(f, line)) {
    ++no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (line[line.find_first_not_of(" \t")] != '{') {
      out.push_back({line, default_n, no});
      continue;
    }
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail("%s:%d: not valid JSON (%s)", path.c_str(), no, e.what());
    }
    if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string())
      fail("%s:%d: a JSON line needs \"prompt\" as a string", path.c_str(), no);
    int64_t n = default_n;
    if (j.contains("n_predict")) {
      if (!j["n_predict"].is_number_integer() || j["n_predict"].get<int64_t>() < -1)
        fail("%s:%d: \"n_predict\" must be an integer >= -1", path.c_str(), no);
      n = j["n_predict"].get<int64_t>();
    }
    out.push_back({j["prompt"].get<std::string>(), n, no});
  }
  if (out.empty()) fail("--prompts %s: no prompts in the file", path.c_str());
  return out;
}

}  // namespace

int cmd_run_batch(const CommonArgs& c, const RunArgs& a) {
  const int parallel = a.parallel == 0 ? 4 : a.parallel;
  if (parallel < 1 || parallel > 1024) fail("--parallel must be between 1 and 1024 (got %d)", a.parallel);
  const std::vector<PromptLine> lines = read_prompts(a.prompts_file, a.n_predict);
  EngineOptions o = engine_options(c);
  auto e = Engine::open(o);
  std::vector<Request> reqs;
  for (const PromptLine& l : lines) {
    Request r;
    const std::string text = a.chat ? render_chat_prompt(e->model(), l.text, a.system) : l.text;
    r.prompt = e->tokenizer().encode(text, true, true);
    if (r.prompt.empty()) fail("%s:%d: the prompt is empty after tokenization", a.prompts_file.c_str(), l.line);
    if (static_cast<int64_t>(r.prompt.size()) >= e->n_ctx())
      fail("%s:%d: the prompt has %zu tokens, which does not fit the context of %lld (raise -c)",
           a.prompts_file.c_str(), l.line, r.prompt.size(), static_cast<long long>(e->n_ctx()));
    r.n_predict = l.n_predict;
    r.ignore_eos = a.ignore_eos;
    r.sampling = a.sampling;
    // A random seed is drawn per request; a given seed makes each request's draws reproducible on their own.
    reqs.push_back(std::move(r));
  }
  SchedulerOptions so;
  so.max_parallel = parallel;
  Scheduler sched(*e, so);
  for (const Request& r : reqs) sched.submit(r);

  size_t printed = 0;
  int64_t generated = 0, prompt_tokens = 0, reused = 0;
  auto print_ready = [&] {
    while (printed < reqs.size() && sched.result(static_cast<int>(printed)).done) {
      const RequestResult& r = sched.result(static_cast<int>(printed));
      const Request& q = reqs[printed];
      generated += static_cast<int64_t>(r.tokens.size());
      prompt_tokens += r.prompt_tokens;
      reused += r.reused_tokens;
      if (a.json) {
        const double prefill_ms = r.t_first_ms - r.t_start_ms, decode_ms = r.t_end_ms - r.t_first_ms;
        const int64_t decode_tokens = std::max<int64_t>(0, static_cast<int64_t>(r.tokens.size()) - 1);
        nlohmann::json j;
        j["index"] = printed;
        j["model"] = e->model().file().path();
        j["threads"] = e->n_threads();
        j["isa"] = kernels::isa_name(e->isa());
        j["n_ctx"] = e->n_ctx();
        j["parallel"] = parallel;
        j["text"] = r.text;
        j["tokens"] = r.tokens;
        j["prompt_tokens"] = r.prompt_tokens;
        j["prompt_ids"] = q.prompt;
        j["reused_prompt_tokens"] = r.reused_tokens;
        j["stopped_by_eog"] = r.stop_reason == "eog";
        j["stop_reason"] = r.stop_reason;
        j["preemptions"] = r.preemptions;
        j["load_ms"] = e->load_ms();
        j["queue_ms"] = r.t_start_ms - r.t_submit_ms;
        j["time_to_first_token_ms"] = r.t_first_ms - r.t_submit_ms;
        j["prefill"] = {{"tokens", r.prompt_tokens - r.reused_tokens},
                        {"ms", prefill_ms},
                        {"tok_s", prefill_ms > 0 ? static_cast<double>(r.prompt_tokens - r.reused_tokens) * 1e3 / prefill_ms : 0}};
        j["decode"] = {{"tokens", decode_tokens},
                       {"ms", decode_ms},
                       {"ms_per_token", decode_tokens ? decode_ms / static_cast<double>(decode_tokens) : 0},
                       {"tok_s", decode_ms > 0 ? static_cast<double>(decode_tokens) * 1e3 / decode_ms : 0}};
        j["generated_tokens"] = r.tokens.size();
        j["peak_rss_bytes"] = peak_rss_bytes();
        std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      } else {
        std::printf("--- %zu (line %d, %s) ---\n%s%s\n", printed, lines[printed].line, r.stop_reason.c_str(),
                    a.chat ? "" : lines[printed].text.c_str(), r.text.c_str());
      }
      std::fflush(stdout);
      ++printed;
    }
  };
  const double t0 = sched.result(0).t_submit_ms;
  while (sched.step()) print_ready();
  print_ready();
  double t_end = 0;
  for (size_t i = 0; i < reqs.size(); ++i) t_end = std::max(t_end, sched.result(static_cast<int>(i)).t_end_ms);
  const double wall = t_end - t0;
  std::fprintf(stderr,
               "\ntokenscope: model %s | %d threads | isa %s | kv pool %lld tokens %s | %zu prompts, %d at once\n"
               "  %lld prompt tokens (%lld from the prefix cache), %lld generated, in %.2f s over %lld steps: "
               "%.1f generated tok/s, %.1f tok/s in all | peak RSS %.1f MiB\n",
               e->model().file().path().c_str(), e->n_threads(), kernels::isa_name(e->isa()),
               static_cast<long long>(e->kv().capacity_tokens()), kv_type_name(e->kv().type()).c_str(), reqs.size(),
               parallel, static_cast<long long>(prompt_tokens), static_cast<long long>(reused),
               static_cast<long long>(generated), wall * 1e-3, static_cast<long long>(e->stats().steps),
               wall > 0 ? static_cast<double>(generated) * 1e3 / wall : 0,
               wall > 0 ? static_cast<double>(prompt_tokens - reused + generated) * 1e3 / wall : 0,
               static_cast<double>(peak_rss_bytes()) / (1 << 20));
  return 0;
}

}  // namespace tokenscope::app
