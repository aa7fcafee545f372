#include "apps/commands.h"

#include <cctype>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/memory_stats.h"
#include "engine/session.h"
#include "gguf/gguf.h"
#include "gguf/inspect.h"
#include "kernels/kernels.h"

namespace tokenscope::app {

void add_common_flags(CLI::App& cmd, CommonArgs& a) {
  cmd.add_option("-m,--model", a.model, "GGUF model file (default: " + std::string(kDefaultModelFile) + ")");
  cmd.add_option("-t,--threads", a.threads, "Threads (default: all CPUs)");
  cmd.add_option("-c,--ctx-size", a.ctx, "Context size in tokens (default: min(4096, the model's))");
  cmd.add_option("--isa", a.isa, "Force a kernel ISA: scalar, avx2, avx512, neon (default: best available)");
  cmd.add_option("--barrier", a.barrier, "How idle threads wait: spin, futex or hybrid (default: hybrid)");
  cmd.add_option("--cpu-mask", a.cpu_mask, "Pin threads to CPUs: hex mask (0x3) or list (0,2-3); default: no pinning");
  cmd.add_option("--kv-type", a.kv_type, "KV cache type: f16 or q8_0 (about half the bytes; default: f16)");
}

TensorType parse_kv_type(const std::string& name) {
  const auto t = type_from_name(name);
  if (!t || (*t != TensorType::F16 && *t != TensorType::Q8_0))
    fail("--kv-type %s: unsupported KV cache type (use f16 or q8_0)", name.c_str());
  return *t;
}

std::string kv_type_name(TensorType t) {
  std::string s = type_name(t);
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

PoolOptions pool_options(const std::string& barrier, const std::string& cpu_mask) {
  PoolOptions p;
  if (!barrier.empty()) {
    auto m = barrier_mode_from_name(barrier);
    if (!m) fail("--barrier %s: unknown mode (use spin, futex or hybrid)", barrier.c_str());
    p.barrier = *m;
  }
  if (!cpu_mask.empty()) {
    try {
      p.cpus = parse_cpu_set(cpu_mask);
    } catch (const Error& e) {
      fail("--cpu-mask: %s", e.what());
    }
  }
  return p;
}

void add_sampling_flags(CLI::App& cmd, SamplerParams& s) {
  cmd.add_option("--temp", s.temperature, "Temperature (0: greedy)")->capture_default_str();
  cmd.add_option("--top-k", s.top_k, "Top-k (0: off)")->capture_default_str();
  cmd.add_option("--top-p", s.top_p, "Top-p (1: off)")->capture_default_str();
  cmd.add_option("--min-p", s.min_p, "Min-p (0: off)")->capture_default_str();
  cmd.add_option("--repeat-penalty", s.repeat_penalty, "Repetition penalty (1: off)")->capture_default_str();
  cmd.add_option("--repeat-last-n", s.repeat_last_n, "Tokens the repetition penalty looks back")->capture_default_str();
  cmd.add_option("-s,--seed", s.seed, "RNG seed (default: random)");
}

std::string resolve_model(const std::string& m) {
  if (!m.empty()) return m;
  const std::string p = default_model_path();
  std::fprintf(stderr, "tokenscope: no -m given, using the default model %s\n", p.c_str());
  if (!std::filesystem::exists(p))
    fail("the default model %s is not there: run scripts/fetch-models.sh (or pass -m FILE)", p.c_str());
  return p;
}

EngineOptions engine_options(const CommonArgs& c, profile::Profiler* profiler) {
  EngineOptions o;
  if (!c.isa.empty()) {
    o.isa = kernels::isa_from_name(c.isa);
    if (!o.isa) fail("--isa %s: unknown ISA (use scalar, avx2, avx512 or neon)", c.isa.c_str());
    if (!kernels::isa_available(*o.isa)) fail("--isa %s: not available on this machine", c.isa.c_str());
  }
  if (c.threads < 0) fail("-t must be >= 1 (got %d)", c.threads);
  if (c.ctx < 0) fail("-c must be >= 1 (got %lld)", static_cast<long long>(c.ctx));
  o.model_path = resolve_model(c.model);
  o.n_threads = c.threads;
  o.kv_tokens = c.ctx;
  o.pool = pool_options(c.barrier, c.cpu_mask);
  if (!c.kv_type.empty()) o.kv_type = parse_kv_type(c.kv_type);
  o.profiler = profiler;
  return o;
}

std::unique_ptr<Session> open_session(const CommonArgs& c, profile::Profiler* profiler) {
  EngineOptions o = engine_options(c, profiler);
  o.prefix_cache = false;  // one sequence: nothing to share
  return std::make_unique<Session>(Engine::open(o));
}

namespace {

void print_summary(const Session& s, const GenerationStats& st) {
  std::fprintf(stderr, "\n\n");
  std::fprintf(stderr, "tokenscope: model %s | %d threads | isa %s | ctx %lld | kv %s\n", s.model().file().path().c_str(),
               s.n_threads(), kernels::isa_name(s.isa()), static_cast<long long>(s.n_ctx()),
               kv_type_name(s.kv_type()).c_str());
  std::fprintf(stderr, "  %-8s %8s %12s %12s %10s\n", "stage", "tokens", "ms", "ms/token", "tok/s");
  std::fprintf(stderr, "  %-8s %8s %12.2f %12s %10s\n", "load", "-", s.load_ms(), "-", "-");
  std::fprintf(stderr, "  %-8s %8lld %12.2f %12.2f %10.2f\n", "prefill", static_cast<long long>(st.prompt_tokens),
               st.prefill_ms, st.prompt_tokens ? st.prefill_ms / static_cast<double>(st.prompt_tokens) : 0.0,
               st.prefill_tok_s());
  std::fprintf(stderr, "  %-8s %8lld %12.2f %12.2f %10.2f\n", "decode", static_cast<long long>(st.decode_steps),
               st.decode_ms, st.decode_ms_per_token(), st.decode_tok_s());
  std::fprintf(stderr, "  generated %lld tokens, sampling %.2f ms\n", static_cast<long long>(st.generated_tokens),
               st.sample_ms);
}

void check_generation_args(int64_t n_predict) {
  if (n_predict < -1) fail("-n must be >= -1 (got %lld)", static_cast<long long>(n_predict));
}

}  // namespace

std::string render_chat_prompt(const Model& m, const std::string& user, const std::string& system) {
  const ChatTemplate cs = chat_template_of(m.file());
  std::vector<ChatMessage> msgs;
  if (!system.empty()) msgs.push_back({"system", system});
  msgs.push_back({"user", user});
  return render_chat(cs.format, msgs, true, system.empty() ? cs.default_system : "");
}

int cmd_run(const CommonArgs& c, const RunArgs& a) {
  check_generation_args(a.n_predict);
  validate(a.sampling);
  if (!a.prompts_file.empty()) {
    if (!a.prompt.empty()) fail("-p and --prompts go alone: give the prompt on the command line or in the file");
    return cmd_run_batch(c, a);
  }
  if (a.prompt.empty()) fail("no prompt: give -p TEXT (or --prompts FILE for many)");
  if (a.parallel != 0) fail("--parallel goes with --prompts FILE");
  auto s = open_session(c);
  std::string text = a.prompt;
  if (a.chat) text = render_chat_prompt(s->model(), a.prompt, a.system);
  const std::vector<TokenId> prompt = s->tokenize(text, true, true);
  if (prompt.empty()) fail("the prompt is empty after tokenization");
  if (static_cast<int64_t>(prompt.size()) >= s->n_ctx())
    fail("the prompt has %zu tokens, which does not fit the context of %lld (raise -c)", prompt.size(),
         static_cast<long long>(s->n_ctx()));
  GenerateOptions g;
  g.n_predict = a.n_predict;
  g.ignore_eos = a.ignore_eos;
  g.sampling = a.sampling;
  Utf8Stream out;
  TokenCallback cb;
  if (!a.json) {
    std::fwrite(a.prompt.data(), 1, a.chat ? 0 : a.prompt.size(), stdout);
    std::fflush(stdout);
    cb = [&](TokenId, const std::string& piece) {
      const std::string ready = out.push(piece);
      std::fwrite(ready.data(), 1, ready.size(), stdout);
      std::fflush(stdout);
      return true;
    };
  }
  GenerationResult r = s->generate(prompt, g, cb);
  const GenerationStats& st = r.stats;
  if (a.json) {
    nlohmann::json j;
    j["model"] = s->model().file().path();
    j["threads"] = s->n_threads();
    j["isa"] = kernels::isa_name(s->isa());
    j["n_ctx"] = s->n_ctx();
    j["text"] = r.text;
    j["tokens"] = r.tokens;
    j["prompt_tokens"] = st.prompt_tokens;
    j["prompt_ids"] = prompt;
    j["stopped_by_eog"] = r.stopped_by_eog;
    j["load_ms"] = s->load_ms();
    j["prefill"] = {{"tokens", st.prompt_tokens}, {"ms", st.prefill_ms}, {"tok_s", st.prefill_tok_s()}};
    j["decode"] = {{"tokens", st.decode_steps},
                   {"ms", st.decode_ms},
                   {"ms_per_token", st.decode_ms_per_token()},
                   {"tok_s", st.decode_tok_s()}};
    j["generated_tokens"] = st.generated_tokens;
    j["sample_ms"] = st.sample_ms;
    j["peak_rss_bytes"] = peak_rss_bytes();
    std::string dumped = j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
    std::printf("%s\n", dumped.c_str());
    return 0;
  }
  const std::string rest = out.flush();
  std::fwrite(rest.data(), 1, rest.size(), stdout);
  std::fflush(stdout);
  print_summary(*s, st);
  return 0;
}

int cmd_chat(const CommonArgs& c, const ChatArgs& a) {
  check_generation_args(a.n_predict);
  validate(a.sampling);
  auto s = open_session(c);
  const ChatTemplate cs = chat_template_of(s->model().file());
  std::vector<ChatMessage> msgs;
  if (!a.system.empty()) msgs.push_back({"system", a.system});
  std::fprintf(stderr, "tokenscope chat (%s template). /reset clears the conversation, /exit or Ctrl-D quits.\n",
               chat_format_name(cs.format));
  std::string line;
  for (;;) {
    std::fprintf(stdout, "\n> ");
    std::fflush(stdout);
    if (!std::getline(std::cin, line)) break;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      msgs.resize(a.system.empty() ? 0 : 1);
      s->reset();
      continue;
    }
    if (line.empty()) continue;
    msgs.push_back({"user", line});
    const std::string text = render_chat(cs.format, msgs, true, a.system.empty() ? cs.default_system : "");
    std::vector<TokenId> all = s->tokenize(text, true, true);
    // Reuse the cached prefix the conversation shares with what was already evaluated.
    const auto& h = s->history();
    size_t common = 0;
    while (common < h.size() && common < all.size() && h[common] == all[common]) ++common;
    if (common == all.size()) --common;  // evaluate at least one token to get fresh logits
    s->truncate(static_cast<int64_t>(common));
    std::vector<TokenId> fresh(all.begin() + static_cast<std::ptrdiff_t>(common), all.end());
    if (s->n_past() + static_cast<int64_t>(fresh.size()) >= s->n_ctx()) {
      std::fprintf(stderr, "(context full: the conversation was reset)\n");
      msgs.erase(msgs.begin() + (a.system.empty() ? 0 : 1), msgs.end() - 1);
      s->reset();
      fresh = s->tokenize(render_chat(cs.format, msgs, true, a.system.empty() ? cs.default_system : ""), true, true);
      if (static_cast<int64_t>(fresh.size()) >= s->n_ctx()) fail("the message does not fit the context (raise -c)");
    }
    GenerateOptions g;
    g.n_predict = a.n_predict;
    g.sampling = a.sampling;
    Utf8Stream out;
    GenerationResult r = s->generate(fresh, g, [&](TokenId, const std::string& piece) {
      const std::string ready = out.push(piece);
      std::fwrite(ready.data(), 1, ready.size(), stdout);
      std::fflush(stdout);
      return true;
    });
    const std::string rest = out.flush();
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    std::fprintf(stdout, "\n");
    std::fflush(stdout);
    std::fprintf(stderr, "[prefill %lld tok %.1f tok/s | decode %lld tok %.1f tok/s]\n",
                 static_cast<long long>(r.stats.prompt_tokens), r.stats.prefill_tok_s(),
                 static_cast<long long>(r.stats.decode_steps), r.stats.decode_tok_s());
    msgs.push_back({"assistant", r.text});
  }
  return 0;
}

int cmd_tokenize(const CommonArgs& c, const TokenizeArgs& a) {
  auto file = gguf::File::open(resolve_model(c.model));
  auto tok = Tokenizer::from_gguf(*file);
  const std::vector<TokenId> ids = tok->encode(a.text, !a.no_add_special, !a.no_parse_special);
  nlohmann::json j = nlohmann::json::array();
  for (TokenId id : ids) {
    if (a.pieces) j.push_back({id, tok->token_to_piece(id, true)});
    else j.push_back(id);
  }
  std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  return 0;
}

int cmd_inspect(const InspectArgs& a) {
  auto file = gguf::File::open(a.file);
  print_inspect(*file, stdout, a.all);
  return 0;
}

}  // namespace tokenscope::app
