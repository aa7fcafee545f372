#include "engine/session.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
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
  const double t0 = now_ms();
  if (opts.model_path.empty()) fail("no model file given");
  if (!std::filesystem::exists(opts.model_path)) fail("%s: no such file", opts.model_path.c_str());
  if (opts.n_threads < 0) fail("-t must be >= 1 (got %d)", opts.n_threads);
  if (opts.n_ctx < 0) fail("-c must be >= 1 (got %lld)", static_cast<long long>(opts.n_ctx));
  std::unique_ptr<Session> s(new Session());
  s->model_ = Model::load(opts.model_path);
  s->tok_ = Tokenizer::from_gguf(s->model_->file());
  const ModelConfig& c = s->model_->config();
  if (s->tok_->n_vocab() > c.n_vocab)
    fail("%s: the tokenizer has %d tokens but token_embd.weight has only %lld rows", opts.model_path.c_str(),
         s->tok_->n_vocab(), static_cast<long long>(c.n_vocab));
  const int threads = opts.n_threads > 0 ? opts.n_threads : available_cpus();
  if (threads > 512) fail("-t %d is more threads than makes sense", threads);
  int64_t n_ctx = opts.n_ctx > 0 ? opts.n_ctx : std::min<int64_t>(4096, c.n_ctx_train);
  if (n_ctx > (int64_t{1} << 20)) fail("-c %lld is too large", static_cast<long long>(n_ctx));
  s->pool_ = std::make_unique<ThreadPool>(threads, opts.pool);
  if (opts.isa && !kernels::isa_available(*opts.isa))
    fail("ISA %s is not available on this machine", kernels::isa_name(*opts.isa));
  s->ctx_ = std::make_unique<ops::Context>(*s->pool_, opts.isa ? kernels::table(*opts.isa) : kernels::active());
  s->kv_ = std::make_unique<KVCache>(c, n_ctx, opts.kv_type);
  s->fwd_ = std::make_unique<Forward>(*s->model_);
  s->logits_.assign(static_cast<size_t>(c.n_vocab), 0.0f);
  s->load_ms_ = now_ms() - t0;
  if (opts.profiler) {
    s->prof_ = opts.profiler;
    s->fwd_->set_profiler(opts.profiler);
    // Counters per pool thread: learn each thread's id from inside the pool.
    std::vector<int> tids(static_cast<size_t>(s->pool_->size()));
    s->pool_->run([&](int ith, int) { tids[static_cast<size_t>(ith)] = static_cast<int>(::gettid()); });
    opts.profiler->open_counters(tids);
    // Each pool thread's share of every op, for the per-thread tracks of the trace.
    opts.profiler->set_thread_count(s->pool_->size());
    s->pool_->set_observer(opts.profiler);
  }
  return s;
}

std::vector<TokenId> Session::tokenize(const std::string& text, bool add_special, bool parse_special) const {
  return tok_->encode(text, add_special, parse_special);
}

void Session::reset() { history_.clear(); }

void Session::truncate(int64_t n) {
  if (n < static_cast<int64_t>(history_.size())) history_.resize(static_cast<size_t>(std::max<int64_t>(n, 0)));
}

void Session::eval(const std::vector<TokenId>& tokens, std::optional<profile::Stage> stage) {
  if (tokens.empty()) return;
  const int64_t n = static_cast<int64_t>(tokens.size()), past = n_past();
  const profile::Stage st = stage.value_or(n > 1 ? profile::Stage::prefill : profile::Stage::decode);
  profile::usdt_step_begin(static_cast<int>(st), past, n);
  if (prof_) prof_->begin_step(st, past, n);
  fwd_->eval(*ctx_, *kv_, tokens.data(), n, past, logits_.data());
  if (prof_) prof_->end_step();
  profile::usdt_step_end(static_cast<int>(st), past, n);
  history_.insert(history_.end(), tokens.begin(), tokens.end());
}

GenerationResult Session::generate(const std::vector<TokenId>& prompt, const GenerateOptions& opts,
                                   const TokenCallback& on_token) {
  GenerationResult r;
  if (prompt.empty() && history_.empty()) fail("the prompt is empty (no tokens to start from)");
  Sampler sampler(opts.sampling);
  const int64_t n_vocab = model_->config().n_vocab;

  double t = now_ms();
  profile::usdt_stage_begin(static_cast<int>(profile::Stage::prefill), n_past());
  eval(prompt, profile::Stage::prefill);
  profile::usdt_stage_end(static_cast<int>(profile::Stage::prefill), static_cast<int64_t>(prompt.size()));
  r.stats.prompt_tokens = static_cast<int64_t>(prompt.size());
  r.stats.prefill_ms = now_ms() - t;

  const int64_t limit = opts.n_predict < 0 ? kv_->n_ctx() - n_past() : opts.n_predict;
  profile::usdt_stage_begin(static_cast<int>(profile::Stage::decode), n_past());
  for (int64_t i = 0; i < limit; ++i) {
    if (i > 0) {
      if (n_past() >= kv_->n_ctx()) break;  // context full
      t = now_ms();
      eval({r.tokens.back()}, profile::Stage::decode);
      r.stats.decode_ms += now_ms() - t;
      ++r.stats.decode_steps;
    }
    t = now_ms();
    const double ts = prof_ ? prof_->now_us() : 0;
    const TokenId id = sampler.sample(logits_.data(), n_vocab, history_);
    if (prof_)
      prof_->add_op(profile::OpKind::sampling, -1, "sampling", ts, prof_->now_us(),
                    profile::elementwise_cost(n_vocab, 2, 1, 0));
    r.stats.sample_ms += now_ms() - t;
    if (!opts.ignore_eos && tok_->is_eog(id)) {
      r.stopped_by_eog = true;
      break;
    }
    r.tokens.push_back(id);
    ++r.stats.generated_tokens;
    const std::string piece = tok_->token_to_piece(id);
    r.text += piece;
    if (on_token && !on_token(id, piece)) break;
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
