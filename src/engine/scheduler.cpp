#include "engine/scheduler.h"

#include <algorithm>
#include <chrono>

#include "base/error.h"

namespace tokenscope {

Scheduler::Scheduler(Engine& engine, const SchedulerOptions& opts, TokenFn on_token, DoneFn on_done)
    : engine_(engine), opts_(opts), on_token_(std::move(on_token)), on_done_(std::move(on_done)), t0_ms_(0) {
  if (opts_.max_parallel < 1) fail("--parallel must be >= 1 (got %d)", opts_.max_parallel);
  if (opts_.max_batch_tokens < 2)
    fail("the batch must hold at least 2 tokens (got %lld)", static_cast<long long>(opts_.max_batch_tokens));
  if (opts_.prefill_chunk < 0 || opts_.prefill_chunk == 1)
    fail("the prefill chunk must be 0 (off) or at least 2 tokens (got %lld)",
         static_cast<long long>(opts_.prefill_chunk));
  t0_ms_ = now_ms();
}

Scheduler::~Scheduler() = default;

double Scheduler::now_ms() const {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count() - t0_ms_;
}

int Scheduler::submit(Request r) {
  const int id = next_id_;
  if (r.prompt.empty()) fail("request %d: the prompt is empty", id);
  if (static_cast<int64_t>(r.prompt.size()) >= engine_.n_ctx())
    fail("request %d: the prompt has %zu tokens, which does not fit the context of %lld (raise -c)", id,
         r.prompt.size(), static_cast<long long>(engine_.n_ctx()));
  const int64_t n_vocab = engine_.n_vocab();
  for (size_t i = 0; i < r.prompt.size(); ++i)
    if (r.prompt[i] < 0 || r.prompt[i] >= n_vocab)
      fail("request %d: prompt token %zu is id %d, outside the vocabulary (0..%lld)", id, i, r.prompt[i],
           static_cast<long long>(n_vocab - 1));
  validate(r.sampling);
  ++next_id_;
  Slot& s = slots_[id];
  s.res.prompt_tokens = static_cast<int64_t>(r.prompt.size());
  s.res.t_submit_ms = now_ms();
  s.req = std::move(r);
  waiting_.push_back(id);
  return id;
}

void Scheduler::cancel(int request, const char* reason) {
  const auto it = slots_.find(request);
  if (it == slots_.end() || it->second.res.done) return;
  it->second.cancel = reason;
  const auto w = std::find(waiting_.begin(), waiting_.end(), request);
  if (w != waiting_.end()) {
    waiting_.erase(w);
    done(it->second, request, reason);
  }
}

std::vector<int> Scheduler::running_requests() const {
  std::vector<int> ids;
  for (const Active& a : running_) ids.push_back(a.request);
  return ids;
}

void Scheduler::release(int request) {
  const auto it = slots_.find(request);
  if (it != slots_.end() && it->second.res.done) slots_.erase(it);
}

void Scheduler::done(Slot& s, int request, const char* reason) {
  s.res.stop_reason = reason;
  s.res.t_end_ms = now_ms();
  if (s.res.t_start_ms == 0) s.res.t_start_ms = s.res.t_end_ms;
  s.res.done = true;
  s.sampler.reset();
  if (on_done_) on_done_(request);
}

void Scheduler::admit() {
  while (static_cast<int>(running_.size()) < opts_.max_parallel && !waiting_.empty()) {
    const int id = waiting_.front();
    Slot& sl = slot(id);
    const Request& r = sl.req;
    if (r.n_predict == 0) {  // nothing to generate: done without evaluating anything
      waiting_.erase(waiting_.begin());
      sl.res.t_first_ms = now_ms();
      done(sl, id, "length");
      continue;
    }
    // A preempted request resumes from its prompt and what it generated so far, except the last token, which is
    // evaluated next as before.
    const std::vector<TokenId>& gen = sl.res.tokens;
    std::vector<TokenId> known = r.prompt;
    if (!gen.empty()) known.insert(known.end(), gen.begin(), gen.end() - 1);
    const int64_t P = static_cast<int64_t>(r.prompt.size());
    // The prompt's rest must not be a single token: it would run decode's attention instead of prefill's.
    Engine::PrefixProbe cached = engine_.probe_prefix(known);
    if (P - cached.tokens == 1) cached = engine_.probe_prefix(known, P - 2);
    // Admission by free pages: the request's known tokens plus the next one must fit beside what the running
    // sequences still have to store of theirs and a page of growth for each; otherwise it waits (in order) for
    // others to finish. Alone it always starts, and fails with a clear message only if it cannot fit the pool.
    const int64_t need = Engine::pages_for(static_cast<int64_t>(known.size()) + 1) - cached.tokens / ops::kAttnPad +
                         cached.free_pages;
    if (!running_.empty() && need + committed_pages() > engine_.kv().free_pages()) break;
    waiting_.erase(waiting_.begin());
    Active a;
    a.request = id;
    a.seq = engine_.new_sequence();
    const int64_t reused = engine_.reuse_prefix(*a.seq, known, cached.tokens);
    TS_CHECK(reused == cached.tokens);
    a.seq->n_predict = r.n_predict;
    a.seq->ignore_eos = r.ignore_eos;
    a.seq->sampler = std::move(sl.sampler);
    if (reused < P) a.pending.assign(r.prompt.begin() + reused, r.prompt.end());
    if (!gen.empty()) {
      a.replay.assign(gen.begin() + std::max<int64_t>(0, reused - P), gen.end() - 1);
      a.next = gen.back();
    }
    if (sl.res.preemptions == 0) {
      sl.res.reused_tokens = reused;
      sl.res.t_start_ms = now_ms();
    }
    running_.push_back(std::move(a));
  }
}

int64_t Scheduler::committed_pages() const {
  int64_t n = 0;
  for (const Active& a : running_) {
    const int64_t known = a.seq->n_past() + static_cast<int64_t>(a.pending.size() + a.replay.size()) + 1;
    n += Engine::pages_for(known) - static_cast<int64_t>(a.seq->pages().size()) + 1;
  }
  return n;
}

void Scheduler::preempt_newest() {
  TS_CHECK(!running_.empty());
  Active& a = running_.back();
  Slot& s = slot(a.request);
  ++s.res.preemptions;
  s.sampler = std::move(a.seq->sampler);  // its draws go on where they were
  waiting_.insert(waiting_.begin(), a.request);
  running_.pop_back();  // frees its pages
}

void Scheduler::finish(Active& a, const char* reason) {
  a.seq.reset();  // frees its pages
  done(slot(a.request), a.request, reason);
}

bool Scheduler::step() {
  for (Active& a : running_)
    if (const char* why = slot(a.request).cancel) finish(a, why);
  running_.erase(std::remove_if(running_.begin(), running_.end(), [](const Active& a) { return !a.seq; }),
                 running_.end());
  admit();
  if (running_.empty()) return false;
  // The step: one token per generating sequence, then prompt chunks in admission order. A chunk never leaves
  // exactly one prompt token for later (a single token would run decode's attention, not prefill's: the result
  // must not depend on how the prompt was cut).
  for (;;) {
    batch_.clear();
    int64_t budget = opts_.max_batch_tokens;
    for (Active& a : running_) {
      a.added = 0;
      a.logits_entry = -1;
      if (!a.pending.empty()) continue;
      if (!a.replay.empty()) {
        batch_.add(*a.seq, a.replay.front(), a.seq->n_past(), false);
      } else {
        a.logits_entry = static_cast<int64_t>(batch_.size());
        batch_.add(*a.seq, a.next, a.seq->n_past(), true);
      }
      a.added = 1;
      --budget;
    }
    for (Active& a : running_) {
      if (a.pending.empty() || budget <= 0) continue;
      const int64_t left = static_cast<int64_t>(a.pending.size());
      int64_t take = opts_.prefill_chunk == 0 ? left : std::min({left, budget, opts_.prefill_chunk});
      if (left - take == 1) take = take >= 3 ? take - 1 : left;  // a chunk of 2 leaving 1 goes one over the budget
      if (take < 2 && take != left) continue;  // waits for a step with room for two
      // Logits at the prompt's end, unless the request already has tokens (a preempted one going on).
      const bool sample = take == left && a.replay.empty() && slot(a.request).res.tokens.empty();
      batch_.add(*a.seq, std::vector<TokenId>(a.pending.begin(), a.pending.begin() + take), sample);
      if (sample) a.logits_entry = static_cast<int64_t>(batch_.size()) - 1;
      a.added = take;
      budget -= take;
    }
    TS_CHECK(!batch_.empty());  // the budget (>= 2) always admits a decode or a chunk
    if (engine_.pages_needed(batch_) <= engine_.kv().free_pages()) break;
    if (running_.size() == 1)
      fail("request %d needs more KV cache than there is: the pool holds %lld tokens (raise -c)",
           running_.front().request, static_cast<long long>(engine_.kv().capacity_tokens()));
    preempt_newest();
  }
  const double t_eval = now_ms();
  engine_.eval(batch_);
  last_.ms = now_ms() - t_eval;
  last_.tokens = static_cast<int64_t>(batch_.size());
  last_.sequences = 0;
  bool all_one = true, all_many = true;
  for (const Active& a : running_)
    if (a.added > 0) {
      ++last_.sequences;
      (a.added == 1 ? all_many : all_one) = false;
    }
  last_.stage = all_many ? profile::Stage::prefill : all_one ? profile::Stage::decode : profile::Stage::mixed;

  const int64_t n_vocab = engine_.n_vocab();
  const Tokenizer& tok = engine_.tokenizer();
  for (Active& a : running_) {
    if (a.added == 0) continue;
    if (!a.pending.empty()) {
      a.pending.erase(a.pending.begin(), a.pending.begin() + a.added);
    } else if (a.logits_entry < 0) {
      a.replay.erase(a.replay.begin());
    }
    if (a.logits_entry < 0) continue;
    Slot& sl = slot(a.request);
    if (!a.seq->sampler) a.seq->sampler.emplace(sl.req.sampling);
    const TokenId id = a.seq->sampler->sample(batch_.logits(static_cast<size_t>(a.logits_entry)), n_vocab, a.seq->tokens());
    if (sl.res.tokens.empty() && sl.res.t_first_ms == 0) sl.res.t_first_ms = now_ms();
    if (!a.seq->ignore_eos && tok.is_eog(id)) {
      finish(a, "eog");
      continue;
    }
    sl.res.tokens.push_back(id);
    const std::string piece = tok.token_to_piece(id);
    sl.res.text += piece;
    if (on_token_) on_token_(a.request, id, piece);  // may submit or cancel (slots_ keeps sl in place)
    a.next = id;
    if (sl.cancel) {
      finish(a, sl.cancel);
    } else if (a.seq->n_predict >= 0 && static_cast<int64_t>(sl.res.tokens.size()) >= a.seq->n_predict) {
      finish(a, "length");
    } else if (a.seq->n_past() >= engine_.n_ctx()) {
      finish(a, "context");
    }
  }
  running_.erase(std::remove_if(running_.begin(), running_.end(), [](const Active& a) { return !a.seq; }),
                 running_.end());
  return true;
}

void Scheduler::run() {
  while (step()) {
  }
}

}  // namespace tokenscope
