// A Session is the single-sequence convenience over the batched engine: one Engine (model, tokenizer, pool,
// KV pool) and one Sequence, and the tokenize -> prefill -> decode loop the CLI's run and chat use.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/sampler.h"

namespace tokenscope {

struct SessionOptions {
  std::string model_path;
  int n_threads = 0;   // 0: all available CPUs
  int64_t n_ctx = 0;   // 0: min(4096, the model's training context)
  std::optional<kernels::Isa> isa;  // unset: the process-wide active ISA (kernels::active())
  PoolOptions pool;                 // barrier mode, CPU pinning
  TensorType kv_type = TensorType::F16;  // KV cache: F16 or Q8_0
  profile::Profiler* profiler = nullptr;  // records steps, ops and counters when set (must outlive the session)
};

// Timing of one generate() call, split by stage.
struct GenerationStats {
  int64_t prompt_tokens = 0;    // tokens evaluated by the prefill step
  double prefill_ms = 0;
  int64_t decode_steps = 0;     // single-token evaluations after the prefill
  double decode_ms = 0;
  int64_t generated_tokens = 0; // tokens sampled (prefill yields the first one)
  double sample_ms = 0;
  double prefill_tok_s() const { return prefill_ms > 0 ? prompt_tokens * 1000.0 / prefill_ms : 0; }
  double decode_tok_s() const { return decode_ms > 0 ? decode_steps * 1000.0 / decode_ms : 0; }
  double decode_ms_per_token() const { return decode_steps > 0 ? decode_ms / static_cast<double>(decode_steps) : 0; }
};

struct GenerateOptions {
  int64_t n_predict = 128;  // tokens to generate; < 0: until EOG or the context is full
  bool ignore_eos = false;  // keep generating past end-of-generation tokens
  SamplerParams sampling;
};

// Called for each generated token with its text piece; return false to stop.
using TokenCallback = std::function<bool(TokenId id, const std::string& piece)>;

struct GenerationResult {
  std::vector<TokenId> tokens;  // generated ids (without the prompt)
  std::string text;             // their text
  bool stopped_by_eog = false;
  // Why generation stopped, spelled as the scheduler's RequestResult does: "eog" (an end-of-generation token),
  // "length" (n_predict tokens), "context" (the context is full), "callback" (the token callback returned false).
  std::string stop_reason;
  GenerationStats stats;
};

class Session {
 public:
  static std::unique_ptr<Session> open(const SessionOptions& opts);
  // A session on an engine made elsewhere (e.g. one model shared by several engines); takes it over.
  explicit Session(std::unique_ptr<Engine> engine);

  Engine& engine() { return *engine_; }
  const Model& model() const { return engine_->model(); }
  const Tokenizer& tokenizer() const { return engine_->tokenizer(); }
  int n_threads() const { return engine_->n_threads(); }
  kernels::Isa isa() const { return engine_->isa(); }
  int64_t n_ctx() const { return engine_->n_ctx(); }
  TensorType kv_type() const { return engine_->kv().type(); }
  double load_ms() const { return engine_->load_ms(); }
  int64_t n_past() const { return seq_->n_past(); }
  const std::vector<TokenId>& history() const { return seq_->tokens(); }

  std::vector<TokenId> tokenize(const std::string& text, bool add_special = true, bool parse_special = true) const;

  // Drops the KV cache contents (the next eval starts at position 0).
  void reset();
  // Keeps the first n tokens of the history (and their cache) and drops the rest.
  void truncate(int64_t n);
  // Evaluates tokens at the current position in one step; logits() then holds the last token's logits.
  // Each call is one step for the profiler, "past N, n_eval M": prefill for two tokens or more, decode for one.
  void eval(const std::vector<TokenId>& tokens);
  const std::vector<float>& logits() const { return logits_; }
  // Evaluates tokens like eval() and returns every token's logits, [tokens.size()][n_vocab].
  std::vector<float> eval_all_logits(const std::vector<TokenId>& tokens);

  // Prefill the prompt (appended to what the cache already holds), then sample and decode.
  GenerationResult generate(const std::vector<TokenId>& prompt, const GenerateOptions& opts,
                            const TokenCallback& on_token = nullptr);

 private:
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Sequence> seq_;
  Batch batch_;
  std::vector<float> logits_;
};

// Buffers bytes until they form whole UTF-8 characters, so streamed pieces print cleanly.
class Utf8Stream {
 public:
  // Appends bytes and returns the longest prefix of complete characters accumulated so far.
  std::string push(const std::string& bytes);
  std::string flush();  // whatever is left (possibly an incomplete sequence)

 private:
  std::string pending_;
};

// Default model: the file name and where scripts/fetch-models.sh puts it.
std::string default_model_path();
constexpr const char* kDefaultModelFile = "SmolLM2-135M-Instruct.Q4_1.gguf";

}  // namespace tokenscope
