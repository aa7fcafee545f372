// The profiler: steps ("past N, n_eval M", prefill or decode), per-op spans with the FLOPs and bytes each
// op moves, and per-step counter readings. Lower layers report into it through a pointer that is null
// when profiling is off (one predictable branch per op).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "profile/counters.h"

namespace tokenscope::profile {

// A step's kind: prefill (every sequence in it evaluates two tokens or more: prompts or prompt chunks), decode
// (one token each), mixed (both, as continuous batching with chunked prefill makes them).
enum class Stage : uint8_t { prefill, decode, mixed };
const char* stage_name(Stage s);

enum class OpKind : uint8_t { embedding, rmsnorm, matmul, rope, attention, activation, add, output, sampling, kCount };
const char* op_kind_name(OpKind k);

struct OpRecord {
  OpKind kind;
  int16_t layer;       // -1 outside the layers
  uint32_t step;       // index into steps()
  const char* name;    // static string, e.g. "attn_qkv"
  double t0_us, t1_us; // since the profiler started
  double flops, bytes;
  int64_t m, n, k;     // shapes: tokens x outputs x inputs for matmuls
  const char* format;  // weight format name ("Q4_1"), or ""
};

// One sequence's part of a step: its id, the tokens its cache held before, the tokens it evaluated.
struct SeqEval {
  int id = 0;
  int64_t past = 0, n_eval = 0;
};

struct StepRecord {
  uint32_t index;
  Stage stage;
  int64_t past, n_eval;          // the first sequence's past; the tokens of all sequences
  std::vector<SeqEval> seqs;     // every sequence in the step (the batch size is seqs.size())
  double t0_us, t1_us;
  std::vector<double> counters;  // deltas over the step, in counter_names() order (summed over threads)
  std::vector<std::vector<double>> thread_counters;  // [pool thread][counter] deltas over the step
  int tid = 0;                   // OS thread id of the thread that ran the step (pool thread 0)
};

// FLOPs and bytes of the ops, from shapes and formats.
struct Cost {
  double flops = 0, bytes = 0;
};
// y[T][N] = x[T][K] W^T with W stored at weight_row_bytes per row: weights read once, f32 input and output.
Cost matmul_cost(int64_t T, int64_t N, int64_t K, double weight_row_bytes);
// Causal attention of T queries at positions pos0.. over the KV cache.
// kv_elem_bytes: bytes per cached element (2 for f16, 34/32 for q8_0).
Cost attention_cost(int64_t T, int64_t pos0, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                    double kv_elem_bytes = 2.0);
Cost elementwise_cost(int64_t elements, double flops_per_element, int inputs, int outputs);

class Profiler {
 public:
  Profiler();
  ~Profiler();
  // Microseconds since the profiler started (inline: two of these per op span).
  double now_us() const {
    return static_cast<double>(std::chrono::steady_clock::now().time_since_epoch().count() - t0_ticks_) *
           (1e6 * std::chrono::steady_clock::period::num / std::chrono::steady_clock::period::den);
  }

  // When the profiler started, in std::chrono::steady_clock's (CLOCK_MONOTONIC's) nanoseconds.
  int64_t start_ns() const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::duration(t0_ticks_)).count();
  }

  // A step of one sequence, "past N, n_eval M".
  void begin_step(Stage stage, int64_t past, int64_t n_eval) { begin_step(stage, {SeqEval{0, past, n_eval}}); }
  // A step of a batch of sequences.
  void begin_step(Stage stage, const std::vector<SeqEval>& seqs);
  void end_step();
  void add_op(OpKind kind, int layer, const char* name, double t0_us, double t1_us, Cost cost, int64_t m = 0,
              int64_t n = 0, int64_t k = 0, const char* format = "");

  const std::vector<StepRecord>& steps() const { return steps_; }
  const std::vector<OpRecord>& ops() const { return ops_; }
  // Counters of the given threads (opened now); their names and whether hardware events could be had.
  // Extra named events (see pfm_events.h) are added from request_events(), resolved beforehand.
  void open_counters(const std::vector<int>& tids);
  void request_events(std::vector<CounterSpec> extra) { extra_events_ = std::move(extra); }
  const CounterGroup* counters() const { return counters_.get(); }
  // Per pool thread, the spans of work it did (each thread appends only to its own list while a job runs;
  // read them once the run is over). set_thread_count() sizes the lists before any job.
  void set_thread_count(int n);
  void add_thread_span(int ith, double t0_us, double t1_us) {
    if (ith >= 0 && static_cast<size_t>(ith) < thread_spans_.size()) thread_spans_[static_cast<size_t>(ith)].push_back({t0_us, t1_us});
  }
  struct Span {
    double t0_us, t1_us;
  };
  const std::vector<std::vector<Span>>& thread_spans() const { return thread_spans_; }
  // OS thread ids of the pool threads (index = pool thread), as given to open_counters().
  const std::vector<int>& thread_ids() const { return tids_; }

 private:
  std::chrono::steady_clock::rep t0_ticks_;
  std::vector<StepRecord> steps_;
  std::vector<OpRecord> ops_;
  std::unique_ptr<CounterGroup> counters_;
  std::vector<std::vector<double>> step_start_counts_;  // [thread][counter]
  std::vector<int> tids_;
  std::vector<std::vector<Span>> thread_spans_;
  std::vector<CounterSpec> extra_events_;
  bool in_step_ = false;
};

}  // namespace tokenscope::profile
