// The batched engine: an Engine holds what is loaded once (model with packed weights, tokenizer, kernel table,
// thread pool, the KV pool of pages); a Sequence is one stream of tokens (its page table, history, sampler and
// stop conditions); a Batch is one step's work: (token, sequence, position, wants-logits) entries from any
// number of sequences, mixing prompt chunks and single decode tokens. Engine::eval runs the matmuls over all the
// step's tokens at once (every weight streamed once per step) and attention per sequence over its own pages.
//
// A sequence's result does not depend on the batch it is evaluated in: the kernels give a token's row the same
// bits whichever tokens share the call, and the attention kind (one-query decode for a single token, flash for
// two or more) depends only on how many tokens of that sequence the step holds.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/kv_pool.h"
#include "engine/sampler.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "runtime/thread_pool.h"
#include "tokenizer/tokenizer.h"

namespace tokenscope {

class Engine;

// One stream of tokens in the engine: the tokens its cache holds (positions 0 .. n_past() - 1) and the page
// table that holds them, plus what a generating loop keeps per stream (sampler, stop conditions, output).
// Made by Engine::new_sequence; its pages go back to the pool when it is destroyed or cleared, so it must not
// outlive its engine.
class Sequence {
 public:
  ~Sequence();
  Sequence(const Sequence&) = delete;
  Sequence& operator=(const Sequence&) = delete;

  int id() const { return id_; }
  int64_t n_past() const { return static_cast<int64_t>(tokens_.size()); }
  // The tokens whose keys and values the cache holds, in position order.
  const std::vector<TokenId>& tokens() const { return tokens_; }
  const std::vector<int32_t>& pages() const { return pages_; }
  // Positions that came from the prefix cache instead of being evaluated (Engine::reuse_prefix).
  int64_t reused() const { return reused_; }

  // Generation state for loops that drive many sequences (Scheduler); Session keeps its own.
  std::optional<Sampler> sampler;
  int64_t n_predict = -1;   // tokens to generate; < 0: until end of generation or the context is full
  bool ignore_eos = false;  // keep generating past end-of-generation tokens

 private:
  friend class Engine;
  Sequence(Engine& e, int id) : engine_(e), id_(id) {}
  Engine& engine_;
  int id_;
  std::vector<TokenId> tokens_;
  std::vector<int32_t> pages_;
  std::vector<uint64_t> page_hashes_;  // prefix-cache hash of each full page (KVPool::page_hash chain)
  int64_t reused_ = 0;
  // The first position evaluated alone (one token of this sequence in its step, through decode's one-query
  // attention). Only pages wholly before it are published: a prompt that later takes a page from the prefix
  // cache must find the bits its own prefill would have computed.
  int64_t first_single_ = INT64_MAX;
};

// One step's work. Each entry is a token of a sequence at a position; a sequence's entries must be consecutive in
// the batch and continue its cache (the first at its n_past(), then one position after another). Logits are
// computed only for the entries that want them.
class Batch {
 public:
  void add(Sequence& seq, TokenId token, int64_t pos, bool logits);
  // Appends tokens at seq's next positions (after its cache and whatever the batch already holds of it);
  // logits for the last one if logits_last.
  void add(Sequence& seq, const std::vector<TokenId>& tokens, bool logits_last);
  void clear();
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  // After Engine::eval: the logits (n_vocab floats) of entry i, or null if it did not want them.
  const float* logits(size_t i) const;

 private:
  friend class Engine;
  struct Entry {
    Sequence* seq;
    TokenId token;
    int64_t pos;
    bool logits;
  };
  std::vector<Entry> entries_;
  std::vector<int64_t> logit_index_;  // per entry: its row in logits_, or -1
  std::vector<float> logits_;
  int64_t n_vocab_ = 0;
};

struct EngineOptions {
  std::string model_path;
  int n_threads = 0;                // 0: all available CPUs
  int64_t kv_tokens = 0;            // KV pool capacity in tokens, shared by all sequences; 0: min(4096, n_ctx_train)
  std::optional<kernels::Isa> isa;  // unset: the process-wide active ISA (kernels::active())
  PoolOptions pool;                 // barrier mode, CPU pinning
  TensorType kv_type = TensorType::F16;  // KV cache: F16 or Q8_0
  bool prefix_cache = true;         // publish full pages and reuse them for equal prompt prefixes
  profile::Profiler* profiler = nullptr;  // records steps, ops and counters when set (must outlive the engine)
  LoadOptions load;                 // how the model file is read (mmap, read, uring, direct), prefault, mlock
  HugePages huge_pages = HugePages::thp;  // pages of the weights' copies and the KV cache (process-wide)
};

// What opening the engine cost: the file's load, then the whole open (packing the weights, the KV cache).
struct LoadReport {
  LoadStats file;             // reading the file: mode used, ms, faults, bytes, fallback note
  double ms = 0;              // the whole open
  int64_t minor_faults = 0, major_faults = 0;  // the whole open
  uint64_t rss_bytes = 0;     // resident after the open
  HugePages huge_pages = HugePages::thp;
  std::string notes;          // fallbacks (O_DIRECT refused, hugetlbfs pages short), one per line
};

// Statistics of the engine's steps so far.
struct EngineStats {
  int64_t steps = 0, tokens = 0;
};

class Engine {
 public:
  // Loads the model (and its tokenizer) from opts.model_path.
  static std::unique_ptr<Engine> open(const EngineOptions& opts);
  // Loads opts.model_path as opts says (load mode, huge pages), for engines opened over it later; report, when
  // given, gets what the load cost.
  static std::shared_ptr<const Model> load_model(const EngineOptions& opts, LoadReport* report = nullptr);
  // An engine over a model already loaded (bench and profile build one per configuration without reloading);
  // loaded: that load's report, which load_report() then carries.
  static std::unique_ptr<Engine> open(std::shared_ptr<const Model> model, std::shared_ptr<const Tokenizer> tok,
                                      const EngineOptions& opts, const LoadReport* loaded = nullptr);
  ~Engine();

  const Model& model() const { return *model_; }
  std::shared_ptr<const Model> shared_model() const { return model_; }
  const Tokenizer& tokenizer() const { return *tok_; }
  std::shared_ptr<const Tokenizer> shared_tokenizer() const { return tok_; }
  int n_threads() const { return pool_->size(); }
  ThreadPool& pool() { return *pool_; }
  kernels::Isa isa() const { return ctx_->k().isa; }
  KVPool& kv() { return *kv_; }
  const KVPool& kv() const { return *kv_; }
  // The most tokens one sequence can hold: the pool's capacity (rounded up to pages).
  int64_t n_ctx() const { return n_ctx_; }
  double load_ms() const { return load_ms_; }
  // The load's costs; for an engine over an already loaded model, ms and rss are its own open's.
  const LoadReport& load_report() const { return load_report_; }
  int64_t n_vocab() const { return model_->config().n_vocab; }
  profile::Profiler* profiler() const { return prof_; }
  const EngineStats& stats() const { return stats_; }

  std::unique_ptr<Sequence> new_sequence();

  // Evaluates the batch: the new tokens' keys and values go into their sequences' pages (allocated as needed,
  // shared pages copied before they are written), then the logits of the entries that want them into the batch.
  // Throws Error, before anything changes, for bad entries (a token outside the vocabulary, a position that
  // does not continue its sequence) or when the pool has too few free pages (the message says how many).
  // The profiler records the step as prefill (every sequence evaluates two tokens or more), decode (one token
  // each) or mixed, with each sequence's past and count.
  void eval(Batch& batch);
  // Free pages the batch would need (new pages plus copies of shared ones) beyond those its sequences hold.
  // Entries at positions that do not continue their sequence are counted as eval would place them, not checked.
  int64_t pages_needed(const Batch& batch) const;
  // Pages a sequence holding n tokens has (n rounded up to pages).
  static int64_t pages_for(int64_t n_tokens) { return (n_tokens + ops::kAttnPad - 1) / ops::kAttnPad; }

  // Takes the longest run of full pages of `prompt` that the prefix cache holds into an empty sequence, leaving
  // at least two tokens of the prompt to evaluate (so the rest runs the same prefill attention it would run
  // without the cache). Returns the number of tokens taken (a multiple of the page size).
  // max_tokens caps what is taken (rounded down to pages).
  int64_t reuse_prefix(Sequence& seq, const std::vector<TokenId>& prompt, int64_t max_tokens = INT64_MAX);
  // What reuse_prefix would take, without taking it: tokens, and how many of their pages are free now (taking a
  // free page out of the prefix cache uses up a free page).
  struct PrefixProbe {
    int64_t tokens = 0, free_pages = 0;
  };
  PrefixProbe probe_prefix(const std::vector<TokenId>& prompt, int64_t max_tokens = INT64_MAX) const;
  // Makes `to` (empty) share all of `from`'s pages: both continue from the same cache.
  void fork(const Sequence& from, Sequence& to);
  // Keeps the first n tokens of the sequence (and their pages), drops the rest.
  void truncate(Sequence& seq, int64_t n);
  void clear(Sequence& seq) { truncate(seq, 0); }

 private:
  Engine() = default;
  void init(const EngineOptions& opts, double t0_ms, const LoadReport* loaded);
  friend class Sequence;
  void release_pages(Sequence& seq, size_t keep);
  void check_owner(const Sequence& seq, const char* what) const;
  std::shared_ptr<const Model> model_;
  std::shared_ptr<const Tokenizer> tok_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<ops::Context> ctx_;
  std::unique_ptr<KVPool> kv_;
  std::unique_ptr<Forward> fwd_;
  int64_t n_ctx_ = 0;
  double load_ms_ = 0;
  LoadReport load_report_;
  bool prefix_cache_ = true;
  int next_id_ = 0;
  profile::Profiler* prof_ = nullptr;
  EngineStats stats_;
  // Scratch of eval, kept between steps.
  std::vector<int32_t> tokens_, positions_;
};

}  // namespace tokenscope
