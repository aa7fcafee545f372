#include "serve/metrics.h"

#include <cinttypes>
#include <cstdio>

namespace tokenscope::serve {

namespace {

std::string num(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.9g", v);
  return b;
}

void line(std::string& out, const std::string& name, const std::string& labels, double v) {
  out += name;
  if (!labels.empty()) out += "{" + labels + "}";
  out += " " + num(v) + "\n";
}

void head(std::string& out, const std::string& name, const char* type, const char* help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

std::vector<double> latency_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += v;
  ++count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  const std::string sep = labels.empty() ? "" : labels + ",";
  uint64_t cum = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cum += counts_[i];
    const std::string le = i < bounds_.size() ? num(bounds_[i]) : "+Inf";
    line(out, name + "_bucket", sep + "le=\"" + le + "\"", static_cast<double>(cum));
  }
  line(out, name + "_sum", labels, sum_);
  line(out, name + "_count", labels, static_cast<double>(count_));
}

Metrics::Metrics()
    : ttft_(latency_buckets()),
      tpot_({0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5}),
      e2e_(latency_buckets()),
      queue_(latency_buckets()),
      batch_({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048}) {}

void Metrics::request(int status) {
  std::lock_guard<std::mutex> l(m_);
  ++requests_[status];
}

void Metrics::generation(int64_t prompt_tokens, int64_t reused_tokens, int64_t generated_tokens, double ttft_s,
                         double tpot_s, double e2e_s, double queue_s, const std::string& finish_reason) {
  std::lock_guard<std::mutex> l(m_);
  prompt_tokens_ += static_cast<uint64_t>(prompt_tokens);
  reused_tokens_ += static_cast<uint64_t>(reused_tokens);
  generated_tokens_ += static_cast<uint64_t>(generated_tokens);
  ++finish_[finish_reason];
  if (generated_tokens > 0) ttft_.observe(ttft_s);
  if (generated_tokens > 1) tpot_.observe(tpot_s);
  e2e_.observe(e2e_s);
  queue_.observe(queue_s);
}

void Metrics::step(const std::string& stage, int64_t tokens, double seconds) {
  std::lock_guard<std::mutex> l(m_);
  auto it = step_s_.find(stage);
  if (it == step_s_.end())
    it = step_s_.emplace(stage, Histogram({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5})).first;
  it->second.observe(seconds);
  step_tokens_[stage] += static_cast<uint64_t>(tokens);
  batch_.observe(static_cast<double>(tokens));
}

void Metrics::set_gauges(const EngineGauges& g) {
  std::lock_guard<std::mutex> l(m_);
  g_ = g;
}

void Metrics::set_ready(bool ready) {
  std::lock_guard<std::mutex> l(m_);
  ready_ = ready;
}

std::string Metrics::render() const {
  std::lock_guard<std::mutex> l(m_);
  std::string o;
  const std::string p = "tokenscope_";
  head(o, p + "ready", "gauge", "1 once the model is loaded and requests are served");
  line(o, p + "ready", "", ready_ ? 1 : 0);
  head(o, p + "requests_total", "counter", "HTTP requests to the generation endpoints, by status code");
  for (const auto& [code, n] : requests_) line(o, p + "requests_total", "status=\"" + std::to_string(code) + "\"", static_cast<double>(n));
  head(o, p + "requests_finished_total", "counter", "Completed generations by finish reason");
  for (const auto& [why, n] : finish_) line(o, p + "requests_finished_total", "finish_reason=\"" + why + "\"", static_cast<double>(n));
  head(o, p + "prompt_tokens_total", "counter", "Prompt tokens of completed generations");
  line(o, p + "prompt_tokens_total", "", static_cast<double>(prompt_tokens_));
  head(o, p + "prompt_tokens_reused_total", "counter", "Prompt tokens taken from the prefix cache instead of evaluated");
  line(o, p + "prompt_tokens_reused_total", "", static_cast<double>(reused_tokens_));
  head(o, p + "generation_tokens_total", "counter", "Generated tokens of completed generations");
  line(o, p + "generation_tokens_total", "", static_cast<double>(generated_tokens_));
  head(o, p + "time_to_first_token_seconds", "histogram", "From the request's arrival to its first generated token");
  ttft_.render(o, p + "time_to_first_token_seconds", "");
  head(o, p + "time_per_output_token_seconds", "histogram", "Mean time between a request's generated tokens after the first");
  tpot_.render(o, p + "time_per_output_token_seconds", "");
  head(o, p + "e2e_request_latency_seconds", "histogram", "From the request's arrival to its last token");
  e2e_.render(o, p + "e2e_request_latency_seconds", "");
  head(o, p + "queue_wait_seconds", "histogram", "From the request's arrival to its first engine step");
  queue_.render(o, p + "queue_wait_seconds", "");
  head(o, p + "step_seconds", "histogram", "Engine step time by kind: prefill, decode or mixed (prompt chunks with decodes)");
  for (const auto& [stage, h] : step_s_) h.render(o, p + "step_seconds", "stage=\"" + stage + "\"");
  head(o, p + "step_tokens_total", "counter", "Tokens evaluated by engine steps, by kind");
  for (const auto& [stage, n] : step_tokens_) line(o, p + "step_tokens_total", "stage=\"" + stage + "\"", static_cast<double>(n));
  head(o, p + "batch_tokens", "histogram", "Tokens per engine step");
  batch_.render(o, p + "batch_tokens", "");
  head(o, p + "requests_running", "gauge", "Requests being evaluated");
  line(o, p + "requests_running", "", static_cast<double>(g_.running));
  head(o, p + "requests_waiting", "gauge", "Requests queued for a slot or for KV cache pages");
  line(o, p + "requests_waiting", "", static_cast<double>(g_.waiting));
  head(o, p + "batch_size", "gauge", "Sequences in the last engine step");
  line(o, p + "batch_size", "", static_cast<double>(g_.batch_sequences));
  head(o, p + "kv_blocks_used", "gauge", "KV cache pages held by sequences");
  line(o, p + "kv_blocks_used", "", static_cast<double>(g_.kv_pages_used));
  head(o, p + "kv_blocks_free", "gauge", "KV cache pages free (including those kept for the prefix cache)");
  line(o, p + "kv_blocks_free", "", static_cast<double>(g_.kv_pages_free));
  head(o, p + "kv_blocks_cached", "gauge", "KV cache pages published in the prefix cache");
  line(o, p + "kv_blocks_cached", "", static_cast<double>(g_.kv_pages_cached));
  head(o, p + "kv_block_tokens", "gauge", "Positions per KV cache page");
  line(o, p + "kv_block_tokens", "", static_cast<double>(g_.kv_page_tokens));
  head(o, p + "prefix_cache_queries_total", "counter", "Pages looked for in the prefix cache");
  line(o, p + "prefix_cache_queries_total", "", static_cast<double>(g_.prefix_lookups));
  head(o, p + "prefix_cache_hits_total", "counter", "Pages found in the prefix cache");
  line(o, p + "prefix_cache_hits_total", "", static_cast<double>(g_.prefix_hits));
  return o;
}

}  // namespace tokenscope::serve
