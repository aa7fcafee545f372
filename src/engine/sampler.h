// Token sampling: repetition penalty, top-k, top-p, min-p, temperature, seeded draw.
// temperature <= 0 means greedy (argmax after the penalty), as in llama.cpp.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace tokenscope {

struct SamplerParams {
  float temperature = 0.8f;
  int32_t top_k = 40;          // <= 0: off
  float top_p = 0.95f;         // >= 1: off
  float min_p = 0.05f;         // <= 0: off
  float repeat_penalty = 1.0f; // 1: off
  int32_t repeat_last_n = 64;  // how many recent tokens the penalty looks at
  uint32_t seed = 0xFFFFFFFFu; // 0xFFFFFFFF: random
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& p);
  // Picks the next token from logits[n_vocab]; history holds the tokens seen so far (prompt + generated).
  int32_t sample(const float* logits, int64_t n_vocab, const std::vector<int32_t>& history);
  const SamplerParams& params() const { return p_; }
  uint32_t seed() const { return seed_; }

 private:
  struct Cand { int32_t id; float logit; float p; };
  SamplerParams p_;
  uint32_t seed_;
  std::mt19937 rng_;
  std::vector<Cand> cands_;
  std::vector<float> penalized_;  // the logits with the repetition penalty applied
};

// Validates sampler parameters; throws tokenscope::Error naming the flag.
void validate(const SamplerParams& p);

}  // namespace tokenscope
