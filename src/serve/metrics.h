// Prometheus metrics of the server, in the text exposition format (version 0.0.4): counters, gauges and
// histograms with cumulative buckets. Thread-safe: HTTP threads and the engine thread record, /metrics renders.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace tokenscope::serve {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v);
  // Appends the _bucket (with le labels, +Inf last), _sum and _count lines; labels: extra labels ("" or
  // `stage="decode"`).
  void render(std::string& out, const std::string& name, const std::string& labels) const;
  uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative
  double sum_ = 0;
  uint64_t count_ = 0;
};

// What the engine thread reports after each step, shown as gauges.
struct EngineGauges {
  int64_t running = 0, waiting = 0;
  int64_t batch_tokens = 0, batch_sequences = 0;  // the last step
  int64_t kv_pages_used = 0, kv_pages_free = 0, kv_pages_cached = 0, kv_page_tokens = 0;
  int64_t prefix_lookups = 0, prefix_hits = 0;    // pages looked for and found in the prefix cache
};

class Metrics {
 public:
  Metrics();
  // A finished HTTP request on a generation endpoint, by status code.
  void request(int status);
  // A completed generation: its token counts and times in seconds (ttft: arrival to first token; tpot: mean
  // time between later tokens, if it produced two or more; queue: arrival to its first step).
  void generation(int64_t prompt_tokens, int64_t reused_tokens, int64_t generated_tokens, double ttft_s,
                  double tpot_s, double e2e_s, double queue_s, const std::string& finish_reason);
  // One engine step: its kind ("prefill", "decode", "mixed"), tokens and duration.
  void step(const std::string& stage, int64_t tokens, double seconds);
  void set_gauges(const EngineGauges& g);
  void set_ready(bool ready);
  std::string render() const;

 private:
  mutable std::mutex m_;
  std::map<int, uint64_t> requests_;  // by status
  std::map<std::string, uint64_t> finish_;
  uint64_t prompt_tokens_ = 0, reused_tokens_ = 0, generated_tokens_ = 0;
  Histogram ttft_, tpot_, e2e_, queue_;
  std::map<std::string, Histogram> step_s_;
  std::map<std::string, uint64_t> step_tokens_;
  Histogram batch_;
  EngineGauges g_;
  bool ready_ = false;
};

}  // namespace tokenscope::serve
