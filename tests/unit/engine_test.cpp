#include <gtest/gtest.h>

#include <cmath>
#include <map>
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
