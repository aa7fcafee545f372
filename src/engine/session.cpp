#include "engine/session.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "base/error.h"
#include "profile/usdt.h"

namespace tokenscope {

namespace {
double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}
}  // namespace

std::string default_model_path() {
  std::string dir;
  if (const char* d = std::getenv("TOKENSCOPE_MODELS"); d && *d) {
    dir = d;
  } else {
    const char* home = std::getenv("HOME");
    dir = std::string(home && *home ? home : "/root") + "/.cache/tokenscope/models";
  }
  return dir + "/" + kDefaultModelFile;
}

std::unique_ptr<Session> Session::open(const SessionOptions& opts) {
  EngineOptions e;
  e.model_path = opts.model_path;
  e.n_threads = opts.n_threads;
  e.kv_tokens = opts.n_ctx;
  e.isa = opts.isa;
  e.pool = opts.pool;
  e.kv_type = opts.kv_type;
  e.profiler = opts.profiler;
  // One sequence: nothing to share a prefix with, and a rolled-back history is recomputed as before.
  e.prefix_cache = false;
  return std::make_unique<Session>(Engine::open(e));
}

Session::Session(std::unique_ptr<Engine> engine) : engine_(std::move(engine)), seq_(engine_->new_sequence()) {
  logits_.assign(static_cast<size_t>(engine_->n_vocab()), 0.0f);
}

std::vector<TokenId> Session::tokenize(const std::string& text, bool add_special, bool parse_special) const {
  return tokenizer().encode(text, add_special, parse_special);
}

void Session::reset() { engine_->clear(*seq_); }

void Session::truncate(int64_t n) { engine_->truncate(*seq_, n); }

void Session::eval(const std::vector<TokenId>& tokens) {
  if (tokens.empty()) return;
  batch_.clear();
  batch_.add(*seq_, tokens, true);
  engine_->eval(batch_);
  std::memcpy(logits_.data(), batch_.logits(tokens.size() - 1), logits_.size() * sizeof(float));
}

std::vector<float> Session::eval_all_logits(const std::vector<TokenId>& tokens) {
  std::vector<float> all;
  if (tokens.empty()) return all;
  batch_.clear();
  for (size_t i = 0; i < tokens.size(); ++i) batch_.add(*seq_, tokens[i], seq_->n_past() + static_cast<int64_t>(i), true);
  engine_->eval(batch_);
  const size_t V = logits_.size();
  all.resize(tokens.size() * V);
  for (size_t i = 0; i < tokens.size(); ++i) std::memcpy(all.data() + i * V, batch_.logits(i), V * sizeof(float));
  std::memcpy(logits_.data(), all.data() + (tokens.size() - 1) * V, V * sizeof(float));
  return all;
}

GenerationResult Session::generate(const std::vector<TokenId>& prompt, const GenerateOptions& opts,
                                   const TokenCallback& on_token) {
  GenerationResult r;
  if (prompt.empty() && n_past() == 0) fail("the prompt is empty (no tokens to start from)");
  Sampler sampler(opts.sampling);
  const int64_t n_vocab = engine_->n_vocab();
  profile::Profiler* const prof_ = engine_->profiler();

  double t = now_ms();
  profile::usdt_stage_begin(static_cast<int>(profile::Stage::prefill), n_past());
  eval(prompt);
  profile::usdt_stage_end(static_cast<int>(profile::Stage::prefill), static_cast<int64_t>(prompt.size()));
  r.stats.prompt_tokens = static_cast<int64_t>(prompt.size());
  r.stats.prefill_ms = now_ms() - t;

  const int64_t limit = opts.n_predict < 0 ? n_ctx() - n_past() : opts.n_predict;
  profile::usdt_stage_begin(static_cast<int>(profile::Stage::decode), n_past());
  r.stop_reason = opts.n_predict < 0 ? "context" : "length";
  for (int64_t i = 0; i < limit; ++i) {
    if (i > 0) {
      if (n_past() >= n_ctx()) {
        r.stop_reason = "context";
        break;
      }
      t = now_ms();
      eval({r.tokens.back()});
      r.stats.decode_ms += now_ms() - t;
      ++r.stats.decode_steps;
    }
    t = now_ms();
    const double ts = prof_ ? prof_->now_us() : 0;
    const TokenId id = sampler.sample(logits_.data(), n_vocab, history());
    if (prof_)
      prof_->add_op(profile::OpKind::sampling, -1, "sampling", ts, prof_->now_us(),
                    profile::elementwise_cost(n_vocab, 2, 1, 0));
    r.stats.sample_ms += now_ms() - t;
    if (!opts.ignore_eos && tokenizer().is_eog(id)) {
      r.stopped_by_eog = true;
      r.stop_reason = "eog";
      break;
    }
    r.tokens.push_back(id);
    ++r.stats.generated_tokens;
    const std::string piece = tokenizer().token_to_piece(id);
    r.text += piece;
    if (on_token && !on_token(id, piece)) {
      r.stop_reason = "callback";
      break;
    }
  }
  profile::usdt_stage_end(static_cast<int>(profile::Stage::decode), r.stats.decode_steps);
  return r;
}

std::string Utf8Stream::push(const std::string& bytes) {
  pending_ += bytes;
  // Hold back a trailing lead byte whose continuation bytes have not arrived yet (look back at most
  // three bytes: the longest incomplete sequence). Anything else, valid or not, goes through.
  size_t cut = pending_.size();
  for (size_t back = 1; back <= 3 && back <= pending_.size(); ++back) {
    const size_t pos = pending_.size() - back;
    const unsigned char c = static_cast<unsigned char>(pending_[pos]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for its lead
    const size_t need = (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    if (back < need) cut = pos;
    break;
  }
  std::string out = pending_.substr(0, cut);
  pending_.erase(0, cut);
  return out;
}

std::string Utf8Stream::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace tokenscope
