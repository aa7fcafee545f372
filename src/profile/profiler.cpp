#include "profile/profiler.h"

#include <algorithm>

#include <unistd.h>

#include <chrono>

#include "base/error.h"
#include "profile/usdt.h"

namespace tokenscope::profile {

const char* stage_name(Stage s) {
  switch (s) {
    case Stage::prefill: return "prefill";
    case Stage::decode: return "decode";
    case Stage::mixed: return "mixed";
  }
  return "?";
}

const char* op_kind_name(OpKind k) {
  switch (k) {
    case OpKind::embedding: return "embedding";
    case OpKind::rmsnorm: return "rmsnorm";
    case OpKind::matmul: return "matmul";
    case OpKind::rope: return "rope";
    case OpKind::attention: return "attention";
    case OpKind::activation: return "activation";
    case OpKind::add: return "add";
    case OpKind::output: return "output projection";
    case OpKind::sampling: return "sampling";
    case OpKind::kCount: break;
  }
  return "?";
}

Cost matmul_cost(int64_t T, int64_t N, int64_t K, double weight_row_bytes) {
  Cost c;
  c.flops = 2.0 * static_cast<double>(T) * static_cast<double>(N) * static_cast<double>(K);
  c.bytes = static_cast<double>(N) * weight_row_bytes + 4.0 * static_cast<double>(T) * static_cast<double>(K) +
            4.0 * static_cast<double>(T) * static_cast<double>(N);
  return c;
}

Cost attention_cost(int64_t T, int64_t pos0, int64_t n_head, int64_t n_head_kv, int64_t head_dim, double kv_elem_bytes) {
  // Keys seen in total: sum over queries of (pos0 + t + 1).
  const double keys = static_cast<double>(T) * static_cast<double>(pos0) + static_cast<double>(T) * (T + 1) / 2.0;
  Cost c;
  c.flops = 4.0 * static_cast<double>(n_head) * static_cast<double>(head_dim) * keys;  // QK^T and PV
  // The K and V cache (kv_elem_bytes per element) of every position the last query sees, read once; q in,
  // out written (f32).
  const double n_kv = static_cast<double>(pos0 + T);
  c.bytes = 2.0 * kv_elem_bytes * n_kv * static_cast<double>(n_head_kv * head_dim) +
            2.0 * 4.0 * static_cast<double>(T) * static_cast<double>(n_head * head_dim);
  return c;
}

Cost elementwise_cost(int64_t elements, double flops_per_element, int inputs, int outputs) {
  Cost c;
  c.flops = flops_per_element * static_cast<double>(elements);
  c.bytes = 4.0 * static_cast<double>(elements) * (inputs + outputs);
  return c;
}

Profiler::Profiler() : t0_ticks_(std::chrono::steady_clock::now().time_since_epoch().count()) {
  ops_.reserve(1 << 16);  // a 30-layer model records ~270 ops per step: no reallocation for the first ~240 steps
  steps_.reserve(1 << 10);
}

Profiler::~Profiler() = default;

void Profiler::open_counters(const std::vector<int>& tids) {
  tids_ = tids;
  counters_ = std::make_unique<CounterGroup>(tids, extra_events_);
}

void Profiler::set_thread_count(int n) {
  thread_spans_.assign(static_cast<size_t>(std::max(n, 0)), {});
  for (auto& v : thread_spans_) v.reserve(1 << 14);
}

void Profiler::begin_step(Stage stage, const std::vector<SeqEval>& seqs) {
  TS_CHECK(!in_step_ && !seqs.empty());
  in_step_ = true;
  StepRecord s;
  s.index = static_cast<uint32_t>(steps_.size());
  s.stage = stage;
  s.past = seqs[0].past;
  s.n_eval = 0;
  for (const SeqEval& q : seqs) s.n_eval += q.n_eval;
  s.seqs = seqs;
  s.tid = static_cast<int>(::gettid());
  if (counters_) step_start_counts_ = counters_->read_per_thread();
  s.t0_us = now_us();
  s.t1_us = s.t0_us;
  steps_.push_back(std::move(s));
}

void Profiler::end_step() {
  TS_CHECK(in_step_);
  in_step_ = false;
  StepRecord& s = steps_.back();
  s.t1_us = now_us();
  if (counters_) {
    const std::vector<std::vector<double>> now = counters_->read_per_thread();
    s.counters.assign(counters_->names().size(), 0.0);
    s.thread_counters.resize(now.size());
    for (size_t t = 0; t < now.size(); ++t) {
      s.thread_counters[t].resize(now[t].size());
      for (size_t i = 0; i < now[t].size(); ++i) {
        s.thread_counters[t][i] = now[t][i] - step_start_counts_[t][i];
        s.counters[i] += s.thread_counters[t][i];
      }
    }
  }
}

void Profiler::add_op(OpKind kind, int layer, const char* name, double t0_us, double t1_us, Cost cost, int64_t m,
                      int64_t n, int64_t k, const char* format) {
  ops_.push_back({kind, static_cast<int16_t>(layer), steps_.empty() ? 0u : steps_.back().index, name, t0_us, t1_us,
                  cost.flops, cost.bytes, m, n, k, format});
}

}  // namespace tokenscope::profile
