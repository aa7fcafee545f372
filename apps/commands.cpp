#include "apps/commands.h"

#include "apps/cli_util.h"

#include <cctype>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/file_load.h"
#include "base/huge_buffer.h"
#include "base/memory_stats.h"
#include "engine/session.h"
#include "gguf/gguf.h"
#include "gguf/inspect.h"
#include "kernels/kernels.h"
#include "runtime/thread_pool.h"

namespace tokenscope::app {

void add_common_flags(CLI::App& cmd, CommonArgs& a) {
  cmd.add_option("-m,--model", a.model, "GGUF model file (default: " + std::string(kDefaultModelFile) + ")");
  cmd.add_option("-t,--threads", a.threads,
                 "Threads (0 or default: all CPUs this process may use, " + std::to_string(available_cpus()) +
                     " here; more than that is allowed but slower)");
  cmd.add_option("-c,--ctx-size", a.ctx, "Context size in tokens (default: min(4096, the model's))");
  cmd.add_option("--isa", a.isa, "Force a kernel ISA: scalar, avx2, avx512, neon (default: best available)");
  cmd.add_option("--barrier", a.barrier, "How idle threads wait: spin, futex or hybrid (default: hybrid)");
  cmd.add_option("--cpu-mask", a.cpu_mask,
                 "Pin threads to CPUs: hex mask as in llama.cpp (3 or 0x3: CPUs 0 and 1; 0: no pinning) or a list "
                 "(0,2-3); default: no pinning");
  cmd.add_option("--kv-type", a.kv_type, "KV cache type: f16 or q8_0 (about half the bytes; default: f16)");
  cmd.add_option("--ternary-kernel", a.ternary_kernel,
                 "Ternary weights (TQ1_0, TQ2_0, I2_S, IQ2_BN): mad (multiply-add), lut (lookup tables) or auto "
                 "(mad for prompts; for decode whichever measures faster at load); default: mad");
  add_system_flags(cmd, a.sys);
}

void apply_ternary_kernel(const std::string& name) {
  if (name.empty()) return;
  const auto k = kernels::ternary_kernel_from_name(name);
  if (!k) usage_fail("--ternary-kernel %s: unknown kernel (use mad, lut or auto)", name.c_str());
  kernels::select_ternary_kernel(*k);
}

void add_system_flags(CLI::App& cmd, SystemArgs& a) {
  const std::string g = "Operating system";
  cmd.add_option("--load", a.load,
                 "How the model file is read: mmap (default), read (read() into memory), uring (batched io_uring "
                 "reads), direct (O_DIRECT, bypassing the page cache)")->group(g);
  cmd.add_flag("--mlock", a.mlock, "Lock the model (and everything else loaded) in memory")->group(g);
  cmd.add_flag("--prefault", a.prefault, "mmap: fault the whole file in at load instead of at first touch")->group(g);
  cmd.add_option("--hugepages", a.hugepages,
                 "Pages of the weights and the KV cache: off (4 KiB), thp (transparent huge pages, default), hugetlbfs "
                 "(reserved huge pages; falls back to thp, saying why)")->group(g);
  cmd.add_option("--sched", a.sched, "Scheduling policy of the threads: other (CFS), fifo or rr (real-time; need "
                 "CAP_SYS_NICE); default: as inherited")->group(g);
  cmd.add_option("--priority", a.priority, "Real-time priority with --sched fifo|rr (1-99; default 1)")->group(g);
  cmd.add_option("--nice", a.nice, "Nice value of the threads (-20..19)")->group(g);
  cmd.add_option("--pool", a.pool, "Thread pool: own (default; --barrier applies) or openmp (GCC's libgomp; it waits "
                 "as OMP_WAIT_POLICY says)")->group(g);
}

void apply_system_args(const SystemArgs& a, EngineOptions& o) {
  if (!a.load.empty()) {
    const auto m = load_mode_from_name(a.load);
    if (!m) usage_fail("--load %s: unknown mode (use mmap, read, uring or direct)", a.load.c_str());
    o.load.mode = *m;
  }
  o.load.mlock = a.mlock;
  o.load.prefault = a.prefault;
  if (a.prefault && o.load.mode != LoadMode::mmap)
    std::fprintf(stderr, "tokenscope: note: --prefault applies to --load mmap; with --load %s the file is read in "
                 "whole anyway\n", load_mode_name(o.load.mode));
  if (!a.hugepages.empty()) {
    const auto h = huge_pages_from_name(a.hugepages);
    if (!h) usage_fail("--hugepages %s: unknown mode (use off, thp or hugetlbfs)", a.hugepages.c_str());
    o.huge_pages = *h;
  }
  if (!a.sched.empty()) {
    const auto p = sched_policy_from_name(a.sched);
    if (!p || *p == SchedPolicy::inherit) usage_fail("--sched %s: unknown policy (use other, fifo or rr)", a.sched.c_str());
    o.pool.sched = *p;
  }
  if (a.priority != 0 && o.pool.sched != SchedPolicy::fifo && o.pool.sched != SchedPolicy::rr)
    usage_fail("--priority %d needs --sched fifo or rr (the other policy has only priority 0: use --nice)", a.priority);
  if (a.priority < 0 || a.priority > 99) usage_fail("--priority %d: out of range (1-99)", a.priority);
  o.pool.priority = a.priority;
  if (a.nice && (*a.nice < -20 || *a.nice > 19)) usage_fail("--nice %d: out of range (-20..19)", *a.nice);
  o.pool.nice = a.nice;
  if (!a.pool.empty()) {
    const auto b = pool_backend_from_name(a.pool);
    if (!b) usage_fail("--pool %s: unknown back end (use own or openmp)", a.pool.c_str());
    o.pool.backend = *b;
  }
}

nlohmann::json system_json(const SystemArgs& a) {
  nlohmann::json j;
  j["load"] = a.load.empty() ? "mmap" : a.load;
  j["mlock"] = a.mlock;
  j["prefault"] = a.prefault;
  j["hugepages"] = a.hugepages.empty() ? "thp" : a.hugepages;
  j["sched"] = a.sched.empty() ? "inherit" : a.sched;
  j["priority"] = a.priority;
  if (a.nice) j["nice"] = *a.nice;
  j["pool"] = a.pool.empty() ? "own" : a.pool;
  return j;
}

nlohmann::json load_report_json(const LoadReport& r) {
  nlohmann::json j;
  j["mode"] = load_mode_name(r.file.mode);
  j["file_ms"] = r.file.ms;
  j["ms"] = r.ms;
  j["file_minor_faults"] = r.file.minor_faults;
  j["file_major_faults"] = r.file.major_faults;
  j["minor_faults"] = r.minor_faults;
  j["major_faults"] = r.major_faults;
  j["rss_bytes"] = r.rss_bytes;
  j["huge_pages"] = huge_pages_name(r.huge_pages);
  j["notes"] = r.notes;
  return j;
}

void print_load_notes(const LoadReport& r) {
  size_t b = 0;
  while (b < r.notes.size()) {
    size_t e = r.notes.find('\n', b);
    if (e == std::string::npos) e = r.notes.size();
    if (e > b) std::fprintf(stderr, "tokenscope: note: %s\n", r.notes.substr(b, e - b).c_str());
    b = e + 1;
  }
}

TensorType parse_kv_type(const std::string& name) {
  const auto t = type_from_name(name);
  if (!t || (*t != TensorType::F16 && *t != TensorType::Q8_0))
    usage_fail("--kv-type %s: unsupported KV cache type (use f16 or q8_0)", name.c_str());
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
    if (!m) usage_fail("--barrier %s: unknown mode (use spin, futex or hybrid)", barrier.c_str());
    p.barrier = *m;
  }
  // llama.cpp reads --cpu-mask as hex and an all-zero mask as "no affinity": so does tokenscope, saying so, since
  // "0" also reads as the list "CPU 0" (written 0x1 as a mask).
  if ((!cpu_mask.empty() && cpu_mask.find_first_not_of("0") == std::string::npos) || cpu_mask == "0x0" ||
      cpu_mask == "0X0") {
    std::fprintf(stderr, "tokenscope: --cpu-mask %s is an empty hex mask: threads are not pinned (as in llama.cpp); "
                 "to pin to CPU 0 give 0x1\n", cpu_mask.c_str());
    return p;
  }
  if (!cpu_mask.empty()) {
    try {
      p.cpus = parse_cpu_set(cpu_mask);
    } catch (const Error& e) {
      usage_fail("--cpu-mask: %s", e.what());
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
  // A uint32 seed, or -1 for a random one as in llama.cpp (0xFFFFFFFF is the sampler's "random").
  cmd.add_option_function<int64_t>(
         "-s,--seed",
         [&s](int64_t v) {
           if (v < -1 || v > 0xFFFFFFFELL)
             throw CLI::ValidationError("-s", "seed " + std::to_string(v) + " is out of range (0..4294967294, or -1: random)");
           s.seed = v == -1 ? 0xFFFFFFFFu : static_cast<uint32_t>(v);
         },
         "RNG seed (-1 or default: random)")
      ->type_name("INT");
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
    if (!o.isa) usage_fail("--isa %s: unknown ISA (use scalar, avx2, avx512 or neon)", c.isa.c_str());
    if (!kernels::isa_available(*o.isa)) fail("--isa %s: not available on this machine", c.isa.c_str());
  }
  apply_ternary_kernel(c.ternary_kernel);
  if (c.threads < 0) usage_fail("-t must be >= 0 (got %d; 0: all CPUs)", c.threads);
  if (c.ctx < 0) usage_fail("-c must be >= 1 (got %lld)", static_cast<long long>(c.ctx));
  if (c.threads > 512) usage_fail("-t %d: at most 512 threads (this process may use %d CPUs)", c.threads, available_cpus());
  if (c.threads > available_cpus())
    std::fprintf(stderr, "tokenscope: warning: -t %d is more threads than the %d CPUs this process may use: they "
                 "will take turns and run slower (use -t %d or fewer)\n", c.threads, available_cpus(), available_cpus());
  o.model_path = resolve_model(c.model);
  o.n_threads = c.threads;
  o.kv_tokens = c.ctx;
  o.pool = pool_options(c.barrier, c.cpu_mask);
  apply_system_args(c.sys, o);
  if (!c.barrier.empty() && o.pool.backend == PoolBackend::openmp)
    std::fprintf(stderr, "tokenscope: note: --barrier applies to --pool own; OpenMP threads wait as OMP_WAIT_POLICY "
                 "says\n");
  if (!c.kv_type.empty()) o.kv_type = parse_kv_type(c.kv_type);
  o.profiler = profiler;
  o.load.progress = loading_line(o.model_path);
  return o;
}

std::unique_ptr<Session> open_session(const CommonArgs& c, profile::Profiler* profiler) {
  EngineOptions o = engine_options(c, profiler);
  o.prefix_cache = false;  // one sequence: nothing to share
  auto s = std::make_unique<Session>(Engine::open(o));
  print_load_notes(s->engine().load_report());
  const int64_t train = s->model().config().n_ctx_train;
  if (c.ctx > train)
    std::fprintf(stderr, "tokenscope: warning: -c %lld is beyond the model's training context (%lld tokens): output "
                 "past %lld tokens is unreliable\n", static_cast<long long>(c.ctx), static_cast<long long>(train),
                 static_cast<long long>(train));
  return s;
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

// The sampling flags' ranges: a value out of range is bad usage (exit status 2).
void validate_sampling(const SamplerParams& p) {
  try {
    validate(p);
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
}

void check_generation_args(int64_t n_predict) {
  if (n_predict < -1) usage_fail("-n must be >= -1 (got %lld)", static_cast<long long>(n_predict));
}

}  // namespace

std::string render_chat_prompt(const Model& m, const std::string& user, const std::string& system) {
  const ChatTemplate cs = chat_template_of(m.file());
  std::vector<ChatMessage> msgs;
  if (!system.empty()) msgs.push_back({"system", system});
  msgs.push_back({"user", user});
  return render_chat(cs.format, msgs, true, system.empty() ? cs.default_system : "");
}

int cmd_run(const CommonArgs& c, const RunArgs& args) {
  check_generation_args(args.n_predict);
  validate_sampling(args.sampling);
  if (!args.prompts_file.empty()) {
    if (!args.prompt.empty() || !args.prompt_file.empty())
      usage_fail("-p/-f and --prompts go alone: give the prompt on the command line or in the file");
    return cmd_run_batch(c, args);
  }
  if (!args.prompt.empty() && !args.prompt_file.empty()) usage_fail("-p and -f go alone: give one prompt");
  if (args.prompt.empty() && args.prompt_file.empty())
    usage_fail("no prompt: give -p TEXT, -f FILE (-f - reads standard input) or --prompts FILE for many");
  if (args.parallel != 0) usage_fail("--parallel goes with --prompts FILE");
  RunArgs a = args;
  if (!a.prompt_file.empty()) {
    a.prompt = read_prompt_file(a.prompt_file);
    if (a.prompt.empty()) fail("-f %s: the prompt is empty", a.prompt_file.c_str());
  }
  require_utf8(a.prompt, "the prompt");
  require_utf8(a.system, "--system");
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
  // Ctrl-C stops generation (the summary still prints); a second one exits.
  install_interrupt_handler(true);
  TokenCallback cb = [](TokenId, const std::string&) { return !interrupted(); };
  if (!a.json) {
    std::fwrite(a.prompt.data(), 1, a.chat ? 0 : a.prompt.size(), stdout);
    std::fflush(stdout);
    cb = [&](TokenId, const std::string& piece) {
      const std::string ready = out.push(piece);
      std::fwrite(ready.data(), 1, ready.size(), stdout);
      std::fflush(stdout);
      return !interrupted();
    };
  }
  GenerationResult r = s->generate(prompt, g, cb);
  const int rc = r.stop_reason == "callback" ? 130 : 0;  // 128 + SIGINT, as a shell reports an interrupted command
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
    j["stop_reason"] = stop_reason_name(r.stop_reason);
    j["load_ms"] = s->load_ms();
    j["model_load"] = load_report_json(s->engine().load_report());
    j["system"] = system_json(c.sys);
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
    return rc;
  }
  const std::string rest = out.flush();
  std::fwrite(rest.data(), 1, rest.size(), stdout);
  std::fflush(stdout);
  print_summary(*s, st);
  std::fprintf(stderr, "  %s\n", stop_message(r.stop_reason, st.generated_tokens, a.n_predict, s->n_ctx()).c_str());
  return rc;
}

int cmd_chat(const CommonArgs& c, const ChatArgs& a) {
  check_generation_args(a.n_predict);
  validate_sampling(a.sampling);
  auto s = open_session(c);
  const ChatTemplate cs = chat_template_of(s->model().file());
  std::vector<ChatMessage> msgs;
  if (!a.system.empty()) msgs.push_back({"system", a.system});
  std::fprintf(stderr, "tokenscope chat (%s template). /reset clears the conversation, /exit or Ctrl-D quits; "
               "Ctrl-C stops a reply, at the prompt it quits.\n", chat_format_name(cs.format));
  install_interrupt_handler(false);  // Ctrl-C at the prompt ends the read, and so the chat
  std::string line;
  for (;;) {
    clear_interrupt();
    std::fprintf(stdout, "\n> ");
    std::fflush(stdout);
    if (!read_line_interruptible(line)) {
      std::fprintf(stdout, "\n");
      break;
    }
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      msgs.resize(a.system.empty() ? 0 : 1);
      s->reset();
      continue;
    }
    if (line.empty()) continue;
    if (auto at = invalid_utf8_offset(line)) {
      std::fprintf(stderr, "(not sent: the message is not valid UTF-8 at byte %zu, 0x%02X)\n", *at,
                   static_cast<unsigned>(static_cast<unsigned char>(line[*at])));
      continue;
    }
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
      return !interrupted();
    });
    const std::string rest = out.flush();
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    std::fprintf(stdout, "\n");
    std::fflush(stdout);
    // The model ending its reply is the normal end of a turn; anything else is said.
    if (r.stop_reason != "eog")
      std::fprintf(stderr, "(%s)\n",
                   stop_message(r.stop_reason, r.stats.generated_tokens, a.n_predict, s->n_ctx()).c_str());
    std::fprintf(stderr, "[prefill %lld tok %.1f tok/s | decode %lld tok %.1f tok/s]\n",
                 static_cast<long long>(r.stats.prompt_tokens), r.stats.prefill_tok_s(),
                 static_cast<long long>(r.stats.decode_steps), r.stats.decode_tok_s());
    msgs.push_back({"assistant", r.text});
  }
  return 0;
}

int cmd_tokenize(const CommonArgs& c, const TokenizeArgs& a) {
  require_utf8(a.text, "the text");
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
  if (!a.file.empty() && !a.model.empty() && a.file != a.model)
    usage_fail("inspect: two files given (%s and -m %s): give one", a.file.c_str(), a.model.c_str());
  const std::string path = a.file.empty() ? a.model : a.file;
  if (path.empty()) usage_fail("inspect: no file given: inspect FILE or inspect -m FILE");
  auto file = gguf::File::open(path);
  print_inspect(*file, stdout, a.all);
  return 0;
}

}  // namespace tokenscope::app
