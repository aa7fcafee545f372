#include "engine/engine.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "base/error.h"
#include "base/file_load.h"
#include "base/huge_buffer.h"
#include "base/memory_stats.h"
#include "profile/usdt.h"

namespace tokenscope {

namespace {
double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}
constexpr int64_t kPage = ops::kAttnPad;
}  // namespace

Sequence::~Sequence() { engine_.release_pages(*this, 0); }

void Batch::add(Sequence& seq, TokenId token, int64_t pos, bool logits) {
  entries_.push_back({&seq, token, pos, logits});
}

void Batch::add(Sequence& seq, const std::vector<TokenId>& tokens, bool logits_last) {
  int64_t pos = seq.n_past();
  if (!entries_.empty() && entries_.back().seq == &seq) pos = entries_.back().pos + 1;
  for (size_t i = 0; i < tokens.size(); ++i)
    add(seq, tokens[i], pos + static_cast<int64_t>(i), logits_last && i + 1 == tokens.size());
}

void Batch::clear() {
  entries_.clear();
  logit_index_.clear();
}

const float* Batch::logits(size_t i) const {
  if (i >= logit_index_.size() || logit_index_[i] < 0) return nullptr;
  return logits_.data() + logit_index_[i] * n_vocab_;
}

namespace {
// The load's fallbacks so far, a line each: the file's (O_DIRECT refused) and the huge pages' (reserved pages short,
// for the weights and, once an engine is open, its KV cache).
std::string load_notes(const LoadStats& file) { return (file.note.empty() ? "" : file.note + "\n") + huge_pages_notes(); }
}  // namespace

std::shared_ptr<const Model> Engine::load_model(const EngineOptions& opts, LoadReport* report) {
  const double t0 = now_ms();
  if (opts.model_path.empty()) fail("no model file given");
  if (!std::filesystem::exists(opts.model_path)) fail("%s: no such file", opts.model_path.c_str());
  const PageFaults f0 = page_faults_now();
  set_huge_pages(opts.huge_pages);
  std::shared_ptr<const Model> model = Model::load(opts.model_path, opts.load);
  if (report) {
    const PageFaults f1 = page_faults_now();
    report->file = model->file().image().stats();
    report->ms = now_ms() - t0;
    report->minor_faults = f1.minor - f0.minor;
    report->major_faults = f1.major - f0.major;
    report->rss_bytes = current_rss_bytes();
    report->huge_pages = opts.huge_pages;
    report->notes = load_notes(report->file);
  }
  return model;
}

std::unique_ptr<Engine> Engine::open(const EngineOptions& opts) {
  const double t0 = now_ms();
  const PageFaults f0 = page_faults_now();
  LoadReport loaded;
  std::shared_ptr<const Model> model = load_model(opts, &loaded);
  std::shared_ptr<const Tokenizer> tok = Tokenizer::from_gguf(model->file());
  if (tok->n_vocab() > model->config().n_vocab)
    fail("%s: the tokenizer has %d tokens but token_embd.weight has only %lld rows", opts.model_path.c_str(),
         tok->n_vocab(), static_cast<long long>(model->config().n_vocab));
  std::unique_ptr<Engine> e(new Engine());
  e->model_ = std::move(model);
  e->tok_ = std::move(tok);
  e->init(opts, t0, &loaded);
  // The whole open's faults: the model's, then the KV cache's pages.
  const PageFaults f1 = page_faults_now();
  e->load_report_.minor_faults = f1.minor - f0.minor;
  e->load_report_.major_faults = f1.major - f0.major;
  return e;
}

std::unique_ptr<Engine> Engine::open(std::shared_ptr<const Model> model, std::shared_ptr<const Tokenizer> tok,
                                     const EngineOptions& opts, const LoadReport* loaded) {
  TS_CHECK(model && tok);
  std::unique_ptr<Engine> e(new Engine());
  e->model_ = std::move(model);
  e->tok_ = std::move(tok);
  e->init(opts, now_ms(), loaded);
  return e;
}

void Engine::init(const EngineOptions& opts, double t0, const LoadReport* loaded) {
  if (opts.n_threads < 0) fail("-t must be >= 1 (got %d)", opts.n_threads);
  if (opts.kv_tokens < 0) fail("-c must be >= 1 (got %lld)", static_cast<long long>(opts.kv_tokens));
  const ModelConfig& c = model_->config();
  const int threads = opts.n_threads > 0 ? opts.n_threads : available_cpus();
  if (threads > 512)
    fail("-t %d: at most 512 threads (this process may use %d CPUs)", threads, available_cpus());
  const int64_t tokens = opts.kv_tokens > 0 ? opts.kv_tokens : std::min<int64_t>(4096, c.n_ctx_train);
  if (tokens > (int64_t{1} << 24)) fail("-c %lld is too large", static_cast<long long>(tokens));
  if (opts.isa && !kernels::isa_available(*opts.isa))
    fail("ISA %s is not available on this machine", kernels::isa_name(*opts.isa));
  pool_ = std::make_unique<ThreadPool>(threads, opts.pool);
  ctx_ = std::make_unique<ops::Context>(*pool_, opts.isa ? kernels::table(*opts.isa) : kernels::active());
  kv_ = std::make_unique<KVPool>(c, tokens, opts.kv_type);
  n_ctx_ = tokens;
  fwd_ = std::make_unique<Forward>(*model_);
  prefix_cache_ = opts.prefix_cache;
  if (opts.profiler) {
    prof_ = opts.profiler;
    fwd_->set_profiler(prof_);
    // Counters per pool thread: learn each thread's id from inside the pool.
    std::vector<int> tids(static_cast<size_t>(pool_->size()));
    pool_->run([&](int ith, int) { tids[static_cast<size_t>(ith)] = static_cast<int>(::gettid()); });
    prof_->open_counters(tids);
    // Each pool thread's share of every op, for the per-thread tracks of the trace.
    prof_->set_thread_count(pool_->size());
    pool_->set_observer(prof_);
  }
  if (opts.load.mlock) lock_memory();
  load_ms_ = now_ms() - t0;
  load_report_.ms = load_ms_;
  load_report_.rss_bytes = current_rss_bytes();
  load_report_.huge_pages = opts.huge_pages;
  if (loaded) {
    load_report_.file = loaded->file;
    load_report_.minor_faults = loaded->minor_faults;
    load_report_.major_faults = loaded->major_faults;
  }
  load_report_.notes = load_notes(load_report_.file);
}

Engine::~Engine() {
  if (prof_) pool_->set_observer(nullptr);
}

std::unique_ptr<Sequence> Engine::new_sequence() { return std::unique_ptr<Sequence>(new Sequence(*this, next_id_++)); }

void Engine::release_pages(Sequence& seq, size_t keep) {
  while (seq.pages_.size() > keep) {
    kv_->release(seq.pages_.back());
    seq.pages_.pop_back();
  }
  if (seq.page_hashes_.size() > keep) seq.page_hashes_.resize(keep);
}

void Engine::check_owner(const Sequence& seq, const char* what) const {
  if (&seq.engine_ != this) fail("%s: sequence %d belongs to another engine", what, seq.id());
}

void Engine::truncate(Sequence& seq, int64_t n) {
  check_owner(seq, "truncate");
  n = std::max<int64_t>(n, 0);
  if (n >= seq.n_past()) return;
  seq.tokens_.resize(static_cast<size_t>(n));
  release_pages(seq, static_cast<size_t>((n + kPage - 1) / kPage));
  // A page cut in the middle is no longer full: its hash goes (the page stays published for others).
  seq.page_hashes_.resize(static_cast<size_t>(n / kPage));
  seq.reused_ = std::min(seq.reused_, n);
  if (seq.first_single_ >= n) seq.first_single_ = INT64_MAX;
}

void Engine::fork(const Sequence& from, Sequence& to) {
  check_owner(from, "fork");
  check_owner(to, "fork");
  if (&from == &to) return;
  if (to.n_past() > 0 || !to.pages_.empty()) fail("fork: the target sequence is not empty");
  for (int32_t p : from.pages_) kv_->retain(p);
  to.pages_ = from.pages_;
  to.page_hashes_ = from.page_hashes_;
  to.tokens_ = from.tokens_;
  to.reused_ = from.reused_;
  to.first_single_ = from.first_single_;
}

Engine::PrefixProbe Engine::probe_prefix(const std::vector<TokenId>& prompt, int64_t max_tokens) const {
  PrefixProbe r;
  if (!prefix_cache_) return r;
  const int64_t len = std::min(static_cast<int64_t>(prompt.size()), max_tokens);
  const int64_t max_pages = std::min<int64_t>(len / kPage, prompt.size() >= 2 ? (prompt.size() - 2) / kPage : 0);
  uint64_t prev = 0;
  for (int64_t i = 0; i < max_pages; ++i) {
    const int32_t* toks = prompt.data() + i * kPage;
    const int32_t p = kv_->find(prev, toks);
    if (p < 0) break;
    prev = KVPool::page_hash(prev, toks);
    r.tokens += kPage;
    r.free_pages += kv_->refs(p) == 0;
  }
  return r;
}

int64_t Engine::reuse_prefix(Sequence& seq, const std::vector<TokenId>& prompt, int64_t max_tokens) {
  check_owner(seq, "reuse_prefix");
  if (!prefix_cache_ || seq.n_past() > 0) return 0;
  const int64_t n_pages = probe_prefix(prompt, max_tokens).tokens / kPage;
  uint64_t prev = 0;
  for (int64_t i = 0; i < n_pages; ++i) {
    const int32_t* toks = prompt.data() + i * kPage;
    const int32_t p = kv_->lookup(prev, toks);
    TS_CHECK(p >= 0);
    prev = KVPool::page_hash(prev, toks);
    seq.pages_.push_back(p);
    seq.page_hashes_.push_back(prev);
    seq.tokens_.insert(seq.tokens_.end(), toks, toks + kPage);
  }
  seq.reused_ = seq.n_past();
  return seq.n_past();
}

namespace {
// A sequence's run of entries in a batch: entries [b, e).
struct Run {
  Sequence* seq;
  size_t b, e;
};
}  // namespace

int64_t Engine::pages_needed(const Batch& batch) const {
  int64_t need = 0;
  size_t i = 0;
  while (i < batch.entries_.size()) {
    Sequence* s = batch.entries_[i].seq;
    size_t j = i;
    while (j < batch.entries_.size() && batch.entries_[j].seq == s) ++j;
    // eval places a sequence's entries at its next positions (and refuses them otherwise).
    const int64_t pos0 = s->n_past(), end = pos0 + static_cast<int64_t>(j - i);
    const int64_t have = static_cast<int64_t>(s->pages_.size());
    need += std::max<int64_t>(0, pages_for(end) - have);
    // The first page written, if the sequence holds it already and shares it, is copied.
    if (pos0 / kPage < have && kv_->shared(s->pages_[static_cast<size_t>(pos0 / kPage)])) ++need;
    i = j;
  }
  return need;
}

void Engine::eval(Batch& batch) {
  if (batch.entries_.empty()) fail("nothing to evaluate: the batch is empty");
  const int64_t n_vocab = model_->config().n_vocab;
  // Runs of entries per sequence, checked before anything changes.
  std::vector<Run> runs;
  for (size_t i = 0; i < batch.entries_.size();) {
    Sequence* s = batch.entries_[i].seq;
    if (&s->engine_ != this) fail("batch entry %zu: the sequence belongs to another engine", i);
    size_t j = i;
    while (j < batch.entries_.size() && batch.entries_[j].seq == s) {
      const Batch::Entry& en = batch.entries_[j];
      const int64_t want = s->n_past() + static_cast<int64_t>(j - i);
      if (en.pos != want)
        fail("batch entry %zu: sequence %d is at position %lld, the entry is at %lld (positions must continue the "
             "sequence, one after another)", j, s->id(), static_cast<long long>(want), static_cast<long long>(en.pos));
      if (en.token < 0 || en.token >= n_vocab)
        fail("batch entry %zu: token id %d is outside the vocabulary (0..%lld)", j, en.token,
             static_cast<long long>(n_vocab - 1));
      ++j;
    }
    for (const Run& r : runs)
      if (r.seq == s) fail("batch entry %zu: sequence %d's entries must be consecutive in the batch", i, s->id());
    const int64_t end = s->n_past() + static_cast<int64_t>(j - i);
    if (end > n_ctx_)
      fail("context is full: sequence %d would hold %lld tokens, the context holds %lld (raise -c)", s->id(),
           static_cast<long long>(end), static_cast<long long>(n_ctx_));
    runs.push_back({s, i, j});
    i = j;
  }
  const int64_t need = pages_needed(batch);
  if (need > kv_->free_pages())
    fail("the KV cache is full: this step needs %lld free pages of %lld tokens, %lld are free (%lld pages in all; "
         "raise -c or run fewer sequences at once)", static_cast<long long>(need), static_cast<long long>(kPage),
         static_cast<long long>(kv_->free_pages()), static_cast<long long>(kv_->n_pages()));

  // Pages: a private copy of a shared page about to be written, new pages past the end.
  StepInput in;
  const int64_t T = static_cast<int64_t>(batch.entries_.size());
  tokens_.resize(static_cast<size_t>(T));
  positions_.resize(static_cast<size_t>(T));
  std::vector<profile::SeqEval> seq_evals;
  for (const Run& r : runs) {
    Sequence& s = *r.seq;
    const int64_t pos0 = batch.entries_[r.b].pos, n = static_cast<int64_t>(r.e - r.b);
    const size_t first = static_cast<size_t>(pos0 / kPage);
    if (first < s.pages_.size() && kv_->shared(s.pages_[first])) {
      const int32_t p = kv_->copy(s.pages_[first]);
      TS_CHECK(p >= 0);
      kv_->release(s.pages_[first]);
      s.pages_[first] = p;
    }
    while (static_cast<int64_t>(s.pages_.size()) * kPage < pos0 + n) {
      const int32_t p = kv_->allocate();
      TS_CHECK(p >= 0);
      s.pages_.push_back(p);
    }
    for (size_t k = r.b; k < r.e; ++k) {
      tokens_[k] = batch.entries_[k].token;
      positions_[k] = static_cast<int32_t>(batch.entries_[k].pos);
    }
    in.seqs.push_back({static_cast<int64_t>(r.b), n, pos0, s.pages_.data()});
    seq_evals.push_back({s.id(), pos0, n});
  }
  in.tokens = tokens_.data();
  in.positions = positions_.data();
  in.n_tokens = T;
  batch.logit_index_.assign(batch.entries_.size(), -1);
  for (size_t k = 0; k < batch.entries_.size(); ++k)
    if (batch.entries_[k].logits) {
      batch.logit_index_[k] = static_cast<int64_t>(in.logit_rows.size());
      in.logit_rows.push_back(static_cast<int64_t>(k));
    }
  batch.n_vocab_ = n_vocab;
  batch.logits_.resize(in.logit_rows.size() * static_cast<size_t>(n_vocab));

  bool all_one = true, all_many = true;
  for (const ops::AttnSeq& s : in.seqs) (s.n == 1 ? all_many : all_one) = false;
  const profile::Stage st = all_many ? profile::Stage::prefill : all_one ? profile::Stage::decode : profile::Stage::mixed;
  const int64_t usdt_past = runs.size() == 1 ? in.seqs[0].pos0 : -1;
  profile::usdt_step_begin(static_cast<int>(st), usdt_past, T);
  if (prof_) prof_->begin_step(st, seq_evals);
  fwd_->eval(*ctx_, kv_->store(), in, batch.logits_.data());
  if (prof_) prof_->end_step();
  profile::usdt_step_end(static_cast<int>(st), usdt_past, T);
  ++stats_.steps;
  stats_.tokens += T;

  // The sequences' histories, and the pages they filled into the prefix cache.
  for (const Run& r : runs) {
    Sequence& s = *r.seq;
    if (r.e - r.b == 1) s.first_single_ = std::min(s.first_single_, s.n_past());
    for (size_t k = r.b; k < r.e; ++k) s.tokens_.push_back(batch.entries_[k].token);
    while (static_cast<int64_t>(s.page_hashes_.size() + 1) * kPage <= s.n_past()) {
      const size_t i = s.page_hashes_.size();
      const uint64_t prev = i ? s.page_hashes_[i - 1] : 0;
      const int32_t* toks = s.tokens_.data() + i * kPage;
      if (prefix_cache_ && static_cast<int64_t>(i + 1) * kPage <= s.first_single_) kv_->publish(s.pages_[i], prev, toks);
      s.page_hashes_.push_back(KVPool::page_hash(prev, toks));
    }
  }
}

}  // namespace tokenscope
