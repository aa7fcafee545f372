// The batched engine: the KV pool's pages (reference counts, prefix cache, copy on write, running out), and on the
// default model, sequences evaluated together give exactly what they give alone.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.h"
#include "engine/engine.h"
#include "engine/scheduler.h"
#include "engine/session.h"
#include "profile/profiler.h"
#include "test_util.h"

using namespace tokenscope;
using namespace tokenscope::testing;

namespace {

ModelConfig tiny_config() {
  ModelConfig c;
  c.n_layer = 2;
  c.n_head_kv = 2;
  c.head_dim = 32;
  return c;
}

std::vector<int32_t> page_of(int32_t first) {
  std::vector<int32_t> t(static_cast<size_t>(ops::kAttnPad));
  for (size_t i = 0; i < t.size(); ++i) t[i] = first + static_cast<int32_t>(i);
  return t;
}

}  // namespace

TEST(KVPool, PagesAreCountedFreedAndReused) {
  KVPool pool(tiny_config(), 100, TensorType::F16);  // rounds up to 4 pages of 32
  EXPECT_EQ(pool.n_pages(), 4);
  EXPECT_EQ(pool.capacity_tokens(), 128);
  std::vector<int32_t> got;
  for (int i = 0; i < 4; ++i) got.push_back(pool.allocate());
  EXPECT_EQ(pool.allocate(), -1) << "a fifth page from a pool of four";
  EXPECT_EQ(pool.free_pages(), 0);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<int32_t>{0, 1, 2, 3}));
  pool.retain(2);
  pool.release(2);
  EXPECT_EQ(pool.free_pages(), 0) << "a page with a reference left is not free";
  pool.release(2);
  EXPECT_EQ(pool.free_pages(), 1);
  EXPECT_EQ(pool.allocate(), 2);
  for (int32_t p : got) pool.release(p);
  EXPECT_EQ(pool.free_pages(), 4);
}

TEST(KVPool, NewF16PagesHaveZeroValuesAndCopiesAreExact) {
  KVPool pool(tiny_config(), 64, TensorType::F16);
  const ops::KVStore& s = pool.store();
  const int32_t a = pool.allocate();
  for (int64_t il = 0; il < 2; ++il)
    for (int64_t h = 0; h < 2; ++h) {
      std::memset(s.key_page(il, h, a), 0x11 + static_cast<int>(il * 2 + h), s.layout.page_bytes());
      std::memset(s.value_page(il, h, a), 0x51 + static_cast<int>(il * 2 + h), s.layout.page_bytes());
    }
  const int32_t b = pool.copy(a);
  ASSERT_GE(b, 0);
  for (int64_t il = 0; il < 2; ++il)
    for (int64_t h = 0; h < 2; ++h) {
      EXPECT_EQ(0, std::memcmp(s.key_page(il, h, a), s.key_page(il, h, b), s.layout.page_bytes()));
      EXPECT_EQ(0, std::memcmp(s.value_page(il, h, a), s.value_page(il, h, b), s.layout.page_bytes()));
    }
  pool.release(a);
  const int32_t c = pool.allocate();  // the page just freed, its values cleared
  EXPECT_EQ(c, a);
  const auto* v = s.value_page(1, 1, c);
  EXPECT_TRUE(std::all_of(v, v + s.layout.page_bytes(), [](uint8_t x) { return x == 0; }));
}

TEST(KVPool, PublishedPagesAreFoundUntilReused) {
  KVPool pool(tiny_config(), 96, TensorType::Q8_0);  // 3 pages
  const auto t0 = page_of(100), t1 = page_of(200);
  const int32_t p0 = pool.allocate(), p1 = pool.allocate();
  pool.publish(p0, 0, t0.data());
  const uint64_t h0 = KVPool::page_hash(0, t0.data());
  pool.publish(p1, h0, t1.data());
  EXPECT_EQ(pool.cached_pages(), 2);
  EXPECT_TRUE(pool.shared(p0)) << "a published page is copied before it is written";
  // Found with the same tokens after the same prefix, not after another one or with other tokens.
  EXPECT_EQ(pool.lookup(0, t0.data()), p0);
  EXPECT_EQ(pool.refs(p0), 2);
  EXPECT_EQ(pool.lookup(0, t1.data()), -1);
  EXPECT_EQ(pool.lookup(h0 + 1, t1.data()), -1);
  auto other = t1;
  other[31] = 7;
  EXPECT_EQ(pool.lookup(h0, other.data()), -1);
  // Released pages stay findable (and count as free) until the pool needs them.
  pool.release(p0);
  pool.release(p0);
  pool.release(p1);
  EXPECT_EQ(pool.free_pages(), 3);
  EXPECT_EQ(pool.lookup(h0, t1.data()), p1) << "a free published page is revived";
  EXPECT_EQ(pool.free_pages(), 2);
  pool.release(p1);
  // Allocation takes the page that was never published first, then the least recently freed published one.
  const int32_t q0 = pool.allocate();
  EXPECT_NE(q0, p0);
  EXPECT_NE(q0, p1);
  EXPECT_EQ(pool.allocate(), p0);
  EXPECT_EQ(pool.lookup(0, t0.data()), -1) << "a reused page's entry is gone";
  EXPECT_EQ(pool.lookup(h0, t1.data()), p1);
  EXPECT_EQ(pool.cached_pages(), 1);
}

namespace {

std::unique_ptr<Engine> open_engine(int64_t kv_tokens, std::optional<kernels::Isa> isa = std::nullopt,
                                    profile::Profiler* prof = nullptr, bool prefix_cache = true) {
  EngineOptions o;
  o.model_path = model_path(kSmolLM2);
  o.n_threads = 2;
  o.kv_tokens = kv_tokens;
  o.isa = isa;
  o.profiler = prof;
  o.prefix_cache = prefix_cache;
  return Engine::open(o);
}

std::vector<TokenId> tokens_of(const Engine& e, const std::string& text) { return e.tokenizer().encode(text, true, true); }

std::vector<float> eval_last(Engine& e, Sequence& s, const std::vector<TokenId>& toks) {
  Batch b;
  b.add(s, toks, true);
  e.eval(b);
  return std::vector<float>(b.logits(toks.size() - 1), b.logits(toks.size() - 1) + e.n_vocab());
}

// Greedy generation of n tokens on the engine, alone: the prompt in one step, then one token per step.
std::vector<TokenId> greedy_alone(Engine& e, const std::vector<TokenId>& prompt, int n) {
  auto s = e.new_sequence();
  std::vector<TokenId> out;
  auto logits = eval_last(e, *s, prompt);
  for (int k = 0; k < n; ++k) {
    const TokenId id = static_cast<TokenId>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(id);
    if (k + 1 < n) logits = eval_last(e, *s, {id});
  }
  return out;
}

}  // namespace

class EngineBatch : public ::testing::Test {
 protected:
  void SetUp() override {
    if (model_path(kSmolLM2).empty()) GTEST_SKIP() << "default model missing: run scripts/fetch-models.sh";
  }
};

// A second sequence with the same long prompt takes the first one's full pages instead of storing them again;
// forks share everything; writing into a shared page copies it first and both sequences stay correct; every page
// comes back when the sequences end.
TEST_F(EngineBatch, SharedPrefixesAreStoredOnceAndCopiedOnWrite) {
  auto e = open_engine(1024);
  const std::string sys = "You are a helpful assistant. Answer briefly and precisely, in plain words, and say so "
                          "when you do not know something. Never invent facts, names, numbers or sources, and keep "
                          "each answer under one hundred words unless the user asks for more detail.";
  const auto prompt = tokens_of(*e, sys + " What is a CPU cache?");
  ASSERT_GT(prompt.size(), 40u);
  const int64_t n_pages = e->kv().n_pages();
  auto a = e->new_sequence();
  const auto la = eval_last(*e, *a, prompt);
  const int64_t pages_a = (static_cast<int64_t>(prompt.size()) + 31) / 32;
  EXPECT_EQ(e->kv().used_pages(), pages_a);

  // Same prompt: the full pages (leaving at least two tokens to evaluate) come from the cache.
  auto b = e->new_sequence();
  const int64_t reused = e->reuse_prefix(*b, prompt);
  EXPECT_EQ(reused, (static_cast<int64_t>(prompt.size()) - 2) / 32 * 32);
  EXPECT_GT(reused, 0);
  const auto lb = eval_last(*e, *b, std::vector<TokenId>(prompt.begin() + reused, prompt.end()));
  EXPECT_EQ(e->kv().used_pages(), pages_a + (pages_a - reused / 32)) << "the shared pages are stored once";
  EXPECT_EQ(la, lb) << "logits after a reused prefix differ from computing it";

  // A fork shares every page, the partial last one too; each then writes a different token: the shared last page
  // is copied for the first writer, and each sequence's logits equal a fresh sequence's given the same tokens.
  auto c = e->new_sequence();
  e->fork(*a, *c);
  EXPECT_EQ(e->kv().used_pages(), pages_a + (pages_a - reused / 32));
  const TokenId x = 42, y = 1234;
  const auto la2 = eval_last(*e, *a, {x});
  const auto lc2 = eval_last(*e, *c, {y});
  auto fresh = e->new_sequence();
  auto with = [&](TokenId t) {  // the same steps: the prompt, then the token (decode's attention)
    e->clear(*fresh);
    eval_last(*e, *fresh, prompt);
    return eval_last(*e, *fresh, {t});
  };
  EXPECT_EQ(la2, with(x)) << "the first writer's copy-on-write";
  EXPECT_EQ(lc2, with(y)) << "the fork's copy-on-write";
  EXPECT_EQ(a->tokens().back(), x);
  EXPECT_EQ(c->tokens().back(), y);

  a.reset();
  b.reset();
  c.reset();
  fresh.reset();
  EXPECT_EQ(e->kv().free_pages(), n_pages) << "pages left behind by ended sequences";
  EXPECT_GT(e->kv().cached_pages(), 0) << "full pages stay findable after their sequences end";
}

// Running out of pages is an error that names the shortage and changes nothing; after freeing, the step runs.
TEST_F(EngineBatch, RunningOutOfPagesIsAClearErrorNotCorruption) {
  auto e = open_engine(64);  // two pages
  auto a = e->new_sequence(), b = e->new_sequence();
  const auto pa = tokens_of(*e, "The quick brown fox jumps over the lazy dog near the river bank, while the sun sets.");
  ASSERT_GT(pa.size(), 10u);
  ASSERT_LE(pa.size(), 32u);
  const auto la = eval_last(*e, *a, pa);
  std::vector<TokenId> long_prompt(40, 300);
  Batch batch;
  batch.add(*b, long_prompt, true);  // needs two pages, one is free
  try {
    e->eval(batch);
    FAIL() << "expected a KV-full error";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("KV cache is full"), std::string::npos) << err.what();
  }
  EXPECT_EQ(b->n_past(), 0);
  EXPECT_EQ(e->kv().free_pages(), 1);
  // The running sequence is intact: its next step equals a fresh computation.
  const auto next = eval_last(*e, *a, {77});
  a.reset();
  auto fresh = e->new_sequence();
  eval_last(*e, *fresh, pa);
  EXPECT_EQ(next, eval_last(*e, *fresh, {77}));
  // Bad entries are errors too, before anything changes.
  Batch bad;
  bad.add(*fresh, 5, fresh->n_past() + 1, true);
  EXPECT_THROW(e->eval(bad), Error);
  Batch bad2;
  bad2.add(*fresh, -3, fresh->n_past(), true);
  EXPECT_THROW(e->eval(bad2), Error);
  EXPECT_EQ(fresh->n_past(), static_cast<int64_t>(pa.size()) + 1);
}

namespace {

// Sixteen prompts of different lengths, some sharing a long prefix (the prefix cache then hands pages over).
std::vector<std::string> prompts16() {
  const std::string shared = "The following is a conversation about computers, written for curious readers who want "
                             "to understand how the machines on their desks work inside: processors, memory, caches, "
                             "disks and networks, and how programs use them. Each answer is short, concrete and "
                             "avoids jargon where a plain word will do. ";
  return {"Hi",
          "The capital of France is",
          shared + "What does a CPU do?",
          "Once upon a time, in a small village by the sea, there lived an old fisherman who",
          shared + "Why is memory slower than the processor?",
          "1, 2, 3, 4, 5,",
          "Write a haiku about autumn leaves.",
          shared + "What is a cache line?",
          "def fibonacci(n):",
          "The three most useful things to know about CPUs are",
          "Translate to French: good morning, how are you?",
          shared + "Explain branch prediction in one paragraph, with an example from a loop that runs a million times.",
          "Q: What is 12 times 12? A:",
          "Roses are red,",
          "In 1969, the first humans",
          "A list of prime numbers: 2, 3, 5, 7,"};
}

}  // namespace

// Each sequence of a batch of prompts of different lengths, with sequences joining and leaving (at most 6 at
// once), prompts cut into chunks that ride with other sequences' decodes (at most 40 tokens a step: mixed steps),
// and shared prefixes taken from the cache, produces exactly the greedy tokens it produces alone, on every ISA
// this machine has. The scalar kernels run a shorter version (6 prompts, 4 tokens each): they are ~50x slower.
TEST_F(EngineBatch, EachSequenceOfABatchGeneratesWhatItGeneratesAlone) {
  const auto all_prompts = prompts16();
  for (kernels::Isa isa : kernels::available_isas()) {
    const bool scalar = isa == kernels::Isa::scalar;
    const size_t n = scalar ? 6 : all_prompts.size();
    profile::Profiler prof;
    auto e = open_engine(2048, isa, &prof);
    std::vector<Request> reqs;
    for (size_t i = 0; i < n; ++i) {
      Request r;
      r.prompt = tokens_of(*e, all_prompts[i]);
      r.n_predict = scalar ? 4 : 6 + static_cast<int64_t>(i % 5) * 3;
      r.ignore_eos = true;
      r.sampling.temperature = 0;
      reqs.push_back(r);
    }
    SchedulerOptions so;
    so.max_parallel = 6;
    so.max_batch_tokens = 40;
    Scheduler sched(*e, so);
    for (const Request& r : reqs) sched.submit(r);
    sched.run();

    // Alone: one session per ISA, no prefix cache, the whole prompt in one step.
    SessionOptions o;
    o.model_path = model_path(kSmolLM2);
    o.n_threads = 2;
    o.isa = isa;
    o.n_ctx = 512;
    auto s = Session::open(o);
    int64_t reused = 0;
    for (size_t i = 0; i < n; ++i) {
      s->reset();
      GenerateOptions g;
      g.n_predict = reqs[i].n_predict;
      g.ignore_eos = true;
      g.sampling.temperature = 0;
      const GenerationResult alone = s->generate(reqs[i].prompt, g);
      const RequestResult& batched = sched.result(static_cast<int>(i));
      EXPECT_TRUE(batched.done);
      EXPECT_EQ(batched.tokens, alone.tokens) << kernels::isa_name(isa) << " prompt " << i << ": " << all_prompts[i];
      reused += batched.reused_tokens;
    }
    int mixed = 0, max_batch = 0;
    for (const auto& st : prof.steps()) {
      mixed += st.stage == profile::Stage::mixed;
      max_batch = std::max(max_batch, static_cast<int>(st.seqs.size()));
    }
    EXPECT_GT(mixed, 0) << "no step mixed prompt chunks with decodes";
    EXPECT_GE(max_batch, scalar ? 4 : 6) << "the batch never filled up";
    if (!scalar) {
      EXPECT_GT(reused, 0) << "the shared prefix was never taken from the cache";
    }
    EXPECT_EQ(e->kv().free_pages(), e->kv().n_pages());
    std::printf("%s: %zu prompts, %d mixed steps of %zu, %lld prompt tokens reused\n", kernels::isa_name(isa), n, mixed,
                prof.steps().size(), static_cast<long long>(reused));
  }
}

// When the pool cannot hold every running sequence, the newest is preempted and recomputed later: every request
// still completes with the tokens it generates alone.
TEST_F(EngineBatch, PreemptedSequencesCompleteWithTheSameTokens) {
  auto e = open_engine(160);  // five pages for four sequences that each grow past two
  std::vector<Request> reqs;
  const auto prompts = prompts16();
  for (size_t i : {3, 9, 11, 15}) {
    Request r;
    r.prompt = tokens_of(*e, prompts[i]);
    r.n_predict = 40;
    r.ignore_eos = true;
    r.sampling.temperature = 0;
    reqs.push_back(r);
  }
  SchedulerOptions so;
  so.max_parallel = 4;
  Scheduler sched(*e, so);
  for (const Request& r : reqs) sched.submit(r);
  sched.run();
  int preempted = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    const RequestResult& res = sched.result(static_cast<int>(i));
    preempted += res.preemptions;
    EXPECT_EQ(res.tokens, greedy_alone(*e, reqs[i].prompt, 40)) << "request " << i;
  }
  EXPECT_GT(preempted, 0) << "the pool was large enough: nothing was preempted";
  EXPECT_LE(preempted, static_cast<int>(reqs.size())) << "a preempted request was taken back in too early, again and again";
}

// Prompts of 33 tokens: after a preemption, the first page of the prompt is in the prefix cache and the request's
// known tokens (prompt and generated) would leave a single prompt token to evaluate, which must not run alone
// (decode's attention instead of prefill's). Every request completes with its tokens alone, and a preempted
// request waits for room instead of being taken back and preempted again each step.
TEST_F(EngineBatch, PreemptionAtAPageBoundaryKeepsTheTokens) {
  auto e = open_engine(160);  // five pages: two sequences of 33 + 40 tokens need six
  const auto text = tokens_of(*e, prompts16()[11]);
  ASSERT_GE(text.size(), 40u);
  std::vector<Request> reqs;
  for (int i = 0; i < 3; ++i) {
    Request r;
    r.prompt.assign(text.begin() + i, text.begin() + i + 33);
    r.n_predict = 40;
    r.ignore_eos = true;
    r.sampling.temperature = 0;
    reqs.push_back(r);
  }
  SchedulerOptions so;
  so.max_parallel = 3;
  Scheduler sched(*e, so);
  for (const Request& r : reqs) sched.submit(r);
  sched.run();
  int preempted = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    const RequestResult& res = sched.result(static_cast<int>(i));
    preempted += res.preemptions;
    EXPECT_EQ(res.stop_reason, "length");
    EXPECT_EQ(res.tokens, greedy_alone(*e, reqs[i].prompt, 40)) << "request " << i;
  }
  EXPECT_GT(preempted, 0) << "nothing was preempted";
  EXPECT_LE(preempted, 3);
  EXPECT_EQ(e->kv().free_pages(), e->kv().n_pages());
}

// The smallest batch (2 tokens) with prompts whose rest after a chunk would be a single token: the chunk goes one
// over the budget instead of stalling, and the tokens equal those generated alone.
TEST_F(EngineBatch, TwoTokenStepsFinishOddPrompts) {
  auto e = open_engine(256);
  const auto text = tokens_of(*e, prompts16()[3]);
  std::vector<Request> reqs;
  for (size_t len : {3u, 5u, 2u}) {
    Request r;
    r.prompt.assign(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(len));
    r.n_predict = 3;
    r.ignore_eos = true;
    r.sampling.temperature = 0;
    reqs.push_back(r);
  }
  SchedulerOptions so;
  so.max_parallel = 2;
  so.max_batch_tokens = 2;
  Scheduler sched(*e, so);
  for (const Request& r : reqs) sched.submit(r);
  sched.run();
  for (size_t i = 0; i < reqs.size(); ++i)
    EXPECT_EQ(sched.result(static_cast<int>(i)).tokens, greedy_alone(*e, reqs[i].prompt, 3)) << "request " << i;
}

// Pages whose positions were evaluated one token at a time (generated tokens) are not published: a later prompt
// that starts with the same tokens computes them as its own prefill would, and gets the same logits as without
// the prefix cache. Pages computed by prefill are published and taken.
TEST_F(EngineBatch, OnlyPrefilledPagesArePublished) {
  auto e = open_engine(512);
  const auto text = tokens_of(*e, prompts16()[11]);
  ASSERT_GE(text.size(), 60u);
  // 40 prompt tokens, then 30 one at a time: page 0 prefilled, page 1 finished by decode steps.
  auto a = e->new_sequence();
  eval_last(*e, *a, std::vector<TokenId>(text.begin(), text.begin() + 40));
  EXPECT_EQ(e->kv().cached_pages(), 1);
  for (int k = 0; k < 30; ++k) eval_last(*e, *a, {text[static_cast<size_t>(40 + k) % text.size()]});
  EXPECT_EQ(e->kv().cached_pages(), 1) << "a page filled by decode steps was published";
  // The same 70 tokens as a prompt: only page 0 is taken; logits equal a run without the cache.
  auto b = e->new_sequence();
  std::vector<TokenId> p70 = a->tokens();
  p70.push_back(text[5]);
  EXPECT_EQ(e->reuse_prefix(*b, p70), 32);
  const auto lb = eval_last(*e, *b, std::vector<TokenId>(p70.begin() + 32, p70.end()));
  auto plain = open_engine(512, std::nullopt, nullptr, false);
  auto c = plain->new_sequence();
  EXPECT_EQ(lb, eval_last(*plain, *c, p70));
}

// Misuse of the engine and scheduler is an error that names it.
TEST_F(EngineBatch, BadRequestsAndForeignSequencesAreErrors) {
  auto e = open_engine(128);
  auto other = open_engine(128);
  auto a = e->new_sequence(), b = other->new_sequence();
  EXPECT_THROW(e->fork(*a, *b), Error);
  EXPECT_THROW(e->truncate(*b, 0), Error);
  EXPECT_THROW(e->reuse_prefix(*b, {1, 2, 3}), Error);
  Batch batch;
  batch.add(*a, 5, -7, true);  // a position before the start
  EXPECT_EQ(e->pages_needed(batch), 1);
  EXPECT_THROW(e->eval(batch), Error);
  Scheduler sched(*e, SchedulerOptions{});
  Request r;
  r.prompt = {1, 2, static_cast<TokenId>(e->n_vocab())};
  EXPECT_THROW(sched.submit(r), Error);
  r.prompt = {1, -2};
  EXPECT_THROW(sched.submit(r), Error);
  EXPECT_FALSE(sched.step()) << "a refused request was queued";
}

// The token callback may submit more requests (the results move): they all complete.
TEST_F(EngineBatch, RequestsSubmittedFromTheTokenCallbackComplete) {
  auto e = open_engine(1024);
  const auto prompt = tokens_of(*e, prompts16()[1]);
  Scheduler* self = nullptr;
  int submitted = 1;
  Scheduler sched(*e, SchedulerOptions{}, [&](int, TokenId, const std::string&) {
    if (submitted < 40) {
      Request r;
      r.prompt = prompt;
      r.n_predict = 2;
      r.ignore_eos = true;
      self->submit(r);
      ++submitted;
    }
  });
  self = &sched;
  Request r;
  r.prompt = prompt;
  r.n_predict = 2;
  r.ignore_eos = true;
  sched.submit(r);
  sched.run();
  EXPECT_EQ(submitted, 40);
  for (int i = 0; i < submitted; ++i) {
    EXPECT_TRUE(sched.result(i).done) << i;
    EXPECT_EQ(sched.result(i).tokens.size(), 2u) << i;
  }
}
