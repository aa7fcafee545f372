#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "engine/sampler.h"
#include "engine/session.h"

using namespace tokenscope;

namespace {
std::vector<float> make_logits() { return {1.0f, 3.0f, 2.0f, -1.0f, 2.5f, 0.0f}; }
}  // namespace

TEST(Sampler, GreedyPicksArgmaxAndFirstOnTies) {
  SamplerParams p;
  p.temperature = 0;
  Sampler s(p);
  auto l = make_logits();
  EXPECT_EQ(s.sample(l.data(), 6, {}), 1);
  std::vector<float> tie = {0.5f, 2.0f, 2.0f};
  EXPECT_EQ(s.sample(tie.data(), 3, {}), 1);
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegative) {
  SamplerParams p;
  p.temperature = 0;
  p.repeat_penalty = 2.0f;
  Sampler s(p);
  auto l = make_logits();
  // token 1 (3.0) seen -> 1.5; token 4 (2.5) wins
  EXPECT_EQ(s.sample(l.data(), 6, {1}), 4);
  // only the last repeat_last_n tokens count
  p.repeat_last_n = 1;
  Sampler s2(p);
  EXPECT_EQ(s2.sample(l.data(), 6, {1, 5}), 1);
}

TEST(Sampler, TopKOneIsGreedyWhateverTheTemperature) {
  SamplerParams p;
  p.temperature = 5.0f;
  p.top_k = 1;
  p.seed = 7;
  Sampler s(p);
  auto l = make_logits();
  for (int i = 0; i < 50; ++i) EXPECT_EQ(s.sample(l.data(), 6, {}), 1);
}

TEST(Sampler, TopPKeepsSmallestNucleus) {
  // softmax: id1 0.459, id4 0.279, id2 0.169, id0 0.062, id5 0.023, id3 0.008
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.min_p = 0;
  p.top_p = 0.5f;  // id 1 has ~0.46 of the mass, with id 4 over 0.5 -> {1, 4}
  p.seed = 123;
  Sampler s(p);
  auto l = make_logits();
  std::map<int, int> counts;
  for (int i = 0; i < 2000; ++i) counts[s.sample(l.data(), 6, {})]++;
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_GT(counts[1], counts[4]);
  EXPECT_GT(counts[4], 0);
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.5f;  // keep p >= 0.5 * p(max): exp(3)=20.1 -> keep >= 10.04: exp(2.5)=12.2 yes, exp(2)=7.4 no
  p.seed = 5;
  Sampler s(p);
  auto l = make_logits();
  std::map<int, int> counts;
  for (int i = 0; i < 1000; ++i) counts[s.sample(l.data(), 6, {})]++;
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_TRUE(counts.count(1) && counts.count(4));
}

// The candidates a top-k sampler draws from, the plain way: all ids sorted by logit (larger first, ties by
// id), the first k kept, then top-p, min-p and temperature as in Sampler, with the same seeded draw.
int32_t reference_sample(std::vector<float> logits, const SamplerParams& p, const std::vector<int32_t>& history,
                         std::mt19937& rng) {
  if (p.repeat_penalty != 1.0f) {  // once per distinct id among the last repeat_last_n tokens
    const size_t n = std::min(history.size(), static_cast<size_t>(p.repeat_last_n));
    const std::set<int32_t> seen(history.end() - static_cast<std::ptrdiff_t>(n), history.end());
    for (int32_t id : seen) {
      float& l = logits[static_cast<size_t>(id)];
      l = l > 0 ? l / p.repeat_penalty : l * p.repeat_penalty;
    }
  }
  struct C { int32_t id; float logit; double p; };
  std::vector<C> c;
  for (size_t i = 0; i < logits.size(); ++i) c.push_back({static_cast<int32_t>(i), logits[i], 0.0});
  std::sort(c.begin(), c.end(), [](const C& a, const C& b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); });
  size_t n = p.top_k > 0 ? std::min(c.size(), static_cast<size_t>(p.top_k)) : c.size();
  auto softmax = [&](size_t count, float temp) {
    double sum = 0;
    for (size_t i = 0; i < count; ++i) sum += (c[i].p = std::exp((c[i].logit - c[0].logit) / temp));
    for (size_t i = 0; i < count; ++i) c[i].p = static_cast<float>(c[i].p / sum);
  };
  if (p.top_p < 1.0f) {
    softmax(n, 1.0f);
    double cum = 0;
    for (size_t i = 0; i < n; ++i)
      if ((cum += c[i].p) >= p.top_p) { n = i + 1; break; }
  }
  if (p.min_p > 0.0f) {
    softmax(n, 1.0f);
    size_t keep = 1;
    while (keep < n && c[keep].p >= c[0].p * p.min_p) ++keep;
    n = keep;
  }
  softmax(n, p.temperature);
  const double r = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  double cum = 0;
  for (size_t i = 0; i < n; ++i)
    if (r < (cum += c[i].p)) return c[i].id;
  return c[n - 1].id;
}

TEST(Sampler, TopKSelectionMatchesAFullSortWithTies) {
  // A large vocabulary with many equal logits (a coarse grid), so the selection's tie rule matters: the one-pass
  // top-k must keep exactly the ids a full sort keeps, in the same order, or the seeded draws differ.
  std::mt19937 gen(11);
  std::uniform_int_distribution<int> grid(-400, 400);
  // k = 20000 and more: the whole vocabulary, sorted; the repetition penalty over a history of earlier draws.
  for (int32_t k : {1, 5, 40, 300, 20000, 25000}) {
    for (float top_p : {1.0f, 0.9f}) {
      SamplerParams p;
      p.temperature = 1.5f;
      p.top_k = k;
      p.top_p = top_p;
      p.min_p = 0.0f;
      p.repeat_penalty = top_p < 1.0f ? 1.3f : 1.0f;
      p.repeat_last_n = 16;
      p.seed = 99;
      Sampler s(p);
      std::mt19937 ref_rng(99);
      std::set<int32_t> seen;
      std::vector<int32_t> history;
      for (int step = 0; step < 40; ++step) {
        std::vector<float> l(20000);
        for (float& v : l) v = 0.05f * static_cast<float>(grid(gen));
        for (size_t i = 0; i < history.size(); i += 2) l[static_cast<size_t>(history[i])] = 19.5f;  // near the top
        const int32_t want = reference_sample(l, p, history, ref_rng);
        ASSERT_EQ(s.sample(l.data(), static_cast<int64_t>(l.size()), history), want) << "k " << k << " step " << step;
        seen.insert(want);
        history.push_back(want);
      }
      if (k > 1) {
        EXPECT_GT(seen.size(), 1u) << "k " << k;  // the draws do vary
      }
    }
  }
}

TEST(Sampler, NanLogitsAreAnErrorNamingTheFirstId) {
  std::vector<float> l(1000, 0.5f);
  l[637] = std::numeric_limits<float>::quiet_NaN();
  l[900] = std::numeric_limits<float>::quiet_NaN();
  for (float temp : {0.0f, 0.8f}) {
    SamplerParams p;
    p.temperature = temp;
    p.seed = 3;
    Sampler s(p);
    try {
      s.sample(l.data(), static_cast<int64_t>(l.size()), {});
      FAIL() << "no error at temperature " << temp;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("NaN logits (first at token id 637 of 1000)"), std::string::npos) << e.what();
    }
  }
  std::vector<float> tail(1003, 0.5f);  // past the last whole group of 4
  tail[1002] = std::numeric_limits<float>::quiet_NaN();
  SamplerParams g;
  g.temperature = 0;
  EXPECT_THROW(Sampler(g).sample(tail.data(), static_cast<int64_t>(tail.size()), {}), Error);
  l[637] = l[900] = -std::numeric_limits<float>::infinity();  // infinities are fine
  SamplerParams p;
  p.temperature = 0;
  EXPECT_EQ(Sampler(p).sample(l.data(), static_cast<int64_t>(l.size()), {}), 0);
}

TEST(Sampler, SameSeedSameSequenceAndDistributionFollowsSoftmax) {
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = 42;
  Sampler a(p), b(p);
  auto l = make_logits();
  std::vector<int> counts(6, 0);
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const int x = a.sample(l.data(), 6, {});
    ASSERT_EQ(x, b.sample(l.data(), 6, {}));
    counts[static_cast<size_t>(x)]++;
  }
  double z = 0;
  for (float v : l) z += std::exp(v);
  for (int i = 0; i < 6; ++i) {
    const double expect = std::exp(l[static_cast<size_t>(i)]) / z;
    EXPECT_NEAR(counts[static_cast<size_t>(i)] / double(n), expect, 0.015) << "id " << i;
  }
}

TEST(Sampler, RejectsBadParameters) {
  SamplerParams p;
  p.temperature = -1;
  EXPECT_THROW(validate(p), Error);
  p = {};
  p.top_p = 1.5f;
  EXPECT_THROW(validate(p), Error);
  p = {};
  p.min_p = -0.1f;
  EXPECT_THROW(validate(p), Error);
  p = {};
  p.repeat_penalty = 0;
  EXPECT_THROW(validate(p), Error);
}

TEST(Utf8Stream, HoldsIncompleteCharacters) {
  Utf8Stream s;
  const std::string euro = "\xE2\x82\xAC";  // U+20AC in 3 bytes
  EXPECT_EQ(s.push("a"), "a");
  EXPECT_EQ(s.push(euro.substr(0, 1)), "");
  EXPECT_EQ(s.push(euro.substr(1, 1)), "");
  EXPECT_EQ(s.push(euro.substr(2, 1) + "b"), euro + "b");
  const std::string emoji = "\xF0\x9F\x98\x80";
  EXPECT_EQ(s.push("x" + emoji.substr(0, 2)), "x");
  EXPECT_EQ(s.push(emoji.substr(2)), emoji);
  EXPECT_EQ(s.push("\x80\x80"), "\x80\x80");  // stray continuation bytes pass through
  EXPECT_EQ(s.flush(), "");
}
