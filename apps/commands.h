// The tokenscope subcommands. Each returns the process exit code and throws tokenscope::Error on bad input.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "engine/engine.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "runtime/thread_pool.h"

namespace tokenscope::app {

// The operating-system knobs (run, chat, bench, profile, serve): how the model is loaded, the pages it lives on,
// how the threads are scheduled and who runs them.
struct SystemArgs {
  std::string load;       // --load mmap|read|uring|direct (empty: mmap)
  bool mlock = false;     // --mlock
  bool prefault = false;  // --prefault
  std::string hugepages;  // --hugepages off|thp|hugetlbfs (empty: thp)
  std::string sched;      // --sched other|fifo|rr (empty: as inherited)
  int priority = 0;       // --priority N (fifo, rr)
  std::optional<int> nice;  // --nice N
  std::string pool;       // --pool own|openmp (empty: own)
};

struct CommonArgs {
  std::string model;     // empty: the default model
  int threads = 0;       // 0: all CPUs
  int64_t ctx = 0;       // 0: min(4096, training context)
  std::string isa;       // empty: best available
  std::string barrier;   // empty: hybrid
  std::string cpu_mask;  // empty: no pinning
  std::string kv_type;   // empty: f16
  std::string ternary_kernel;  // empty: mad
  SystemArgs sys;
};

// Parses --ternary-kernel (mad, lut, auto; empty: mad) and makes it the process's choice; a usage error otherwise.
void apply_ternary_kernel(const std::string& name);

struct RunArgs {
  std::string prompt;
  std::string prompt_file;   // -f: the prompt from a file, "-" for standard input
  std::string prompts_file;  // --prompts: many prompts through the batched engine
  int parallel = 0;          // --parallel: sequences at once with --prompts (0: 4)
  int64_t n_predict = 128;
  bool chat = false;
  std::string system;
  bool json = false;
  bool ignore_eos = false;
  SamplerParams sampling;
};

struct ChatArgs {
  int64_t n_predict = 512;
  std::string system;
  SamplerParams sampling;
};

struct TokenizeArgs {
  std::string text;
  bool no_add_special = false;
  bool no_parse_special = false;
  bool pieces = false;
};

struct InspectArgs {
  std::string file;   // the positional FILE
  std::string model;  // -m FILE, as every command that reads a model accepts
  bool all = false;
};

void add_common_flags(CLI::App& cmd, CommonArgs& a);
void add_system_flags(CLI::App& cmd, SystemArgs& a);
// Puts the knobs into o (load, huge pages, and the pool's policy, nice value and back end); throws UsageError
// naming a bad flag.
void apply_system_args(const SystemArgs& a, EngineOptions& o);
// The knobs a run used, for --json and bench records.
nlohmann::json system_json(const SystemArgs& a);
// What loading cost (mode, ms, faults, RSS, fallbacks), for --json and bench records.
nlohmann::json load_report_json(const LoadReport& r);
// Prints the load's fallbacks (O_DIRECT refused, hugetlbfs pages short), one "tokenscope: note:" line each.
void print_load_notes(const LoadReport& r);
void add_sampling_flags(CLI::App& cmd, SamplerParams& s);
// The model path to use: m itself, or the default model (saying so on stderr); throws Error if it is missing.
std::string resolve_model(const std::string& m);
// Engine options from the common flags (-m -t -c --isa --barrier --cpu-mask --kv-type), reporting to profiler if
// given; throws Error naming a bad flag.
EngineOptions engine_options(const CommonArgs& c, profile::Profiler* profiler = nullptr);
// A session for the common flags, reporting to profiler if given.
std::unique_ptr<Session> open_session(const CommonArgs& c, profile::Profiler* profiler = nullptr);
// The prompt as a user turn in the model's chat template (with its default system message if none given).
std::string render_chat_prompt(const Model& m, const std::string& user, const std::string& system);
// --kv-type into a cache type (f16 or q8_0); throws Error naming the flag.
TensorType parse_kv_type(const std::string& name);
// The cache type as the flag and llama-bench's type_k / type_v spell it: "f16", "q8_0".
std::string kv_type_name(TensorType t);
// --barrier / --cpu-mask into pool options; throws Error naming the flag.
PoolOptions pool_options(const std::string& barrier, const std::string& cpu_mask);

int cmd_run(const CommonArgs& c, const RunArgs& a);
// run --prompts FILE --parallel N: every prompt through the batched engine (apps/cmd_run_batch.cpp).
int cmd_run_batch(const CommonArgs& c, const RunArgs& a);
int cmd_chat(const CommonArgs& c, const ChatArgs& a);
int cmd_tokenize(const CommonArgs& c, const TokenizeArgs& a);
int cmd_inspect(const InspectArgs& a);

}  // namespace tokenscope::app
