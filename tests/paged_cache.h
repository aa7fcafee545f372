// A single sequence's paged KV cache for the model and ops tests (the engine's KVPool does this for real): a
// buffer in ops::KVStore's layout and a page table covering n_ctx positions, its pages in order or shuffled
// (so that attention must follow the table).
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "model/model.h"
#include "ops/ops.h"

namespace tokenscope::testing {

class PagedCache {
 public:
  PagedCache(int64_t n_layer, int64_t n_head_kv, int64_t head_dim, int64_t n_ctx, TensorType type = TensorType::F16,
             bool shuffled = false) {
    store_.layout.type = type;
    store_.layout.n_layer = n_layer;
    store_.layout.n_head_kv = n_head_kv;
    store_.layout.head_dim = head_dim;
    const int64_t pages = (n_ctx + ops::kAttnPad - 1) / ops::kAttnPad;
    store_.layout.n_pages = shuffled ? 2 * pages + 1 : pages;  // spare pages, so the table skips some
    mem_.assign(store_.layout.bytes(), 0);
    store_.base = mem_.data();
    std::vector<int32_t> all(static_cast<size_t>(store_.layout.n_pages));
    std::iota(all.begin(), all.end(), 0);
    if (shuffled) std::shuffle(all.begin(), all.end(), std::mt19937(7));
    pages_.assign(all.begin(), all.begin() + pages);
  }
  PagedCache(const ModelConfig& c, int64_t n_ctx, TensorType type = TensorType::F16, bool shuffled = false)
      : PagedCache(c.n_layer, c.n_head_kv, c.head_dim, n_ctx, type, shuffled) {}

  const ops::KVStore& store() const { return store_; }
  const int32_t* pages() const { return pages_.data(); }
  ops::AttnSeq seq(int64_t row0, int64_t n, int64_t pos0) const { return {row0, n, pos0, pages_.data()}; }

  // Forward::eval of tokens[0..T) at positions pos0.. as one sequence; the last token's logits into last, and
  // every token's into all if given.
  void eval(Forward& f, ops::Context& ctx, const int32_t* tokens, int64_t T, int64_t pos0, float* last,
            float* all = nullptr) {
    std::vector<int32_t> pos(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) pos[static_cast<size_t>(t)] = static_cast<int32_t>(pos0 + t);
    StepInput in;
    in.tokens = tokens;
    in.positions = pos.data();
    in.n_tokens = T;
    in.seqs = {seq(0, T, pos0)};
    if (all) {
      for (int64_t t = 0; t < T; ++t) in.logit_rows.push_back(t);
      f.eval(ctx, store_, in, all);
      const int64_t V = f.n_vocab();
      if (last) std::copy(all + (T - 1) * V, all + T * V, last);
      return;
    }
    in.logit_rows = {T - 1};
    f.eval(ctx, store_, in, last);
  }

 private:
  ops::KVStore store_;
  std::vector<uint8_t> mem_;
  std::vector<int32_t> pages_;
};

}  // namespace tokenscope::testing
