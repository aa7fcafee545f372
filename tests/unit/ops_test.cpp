// ops: matmul / matmul_multi (packed and plain paths, ragged row counts, token chunks, bias) against a
// double-precision product of the dequantized weights with the dequantized activations.
#include <gtest/gtest.h>

#include <cfloat>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "base/fp16.h"
#include "formats/tensor_type.h"
#include "kernels/kernels.h"
#include "ops/ops.h"
#include "runtime/thread_pool.h"

using namespace tokenscope;

namespace {

struct OwnedWeight {
  std::vector<uint8_t> bytes;
  ops::Weight w;
};

OwnedWeight make_weight(TensorType t, int64_t cols, int64_t rows, uint32_t seed) {
  OwnedWeight o;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 0.05f);
  std::vector<float> x(static_cast<size_t>(cols * rows));
  for (auto& v : x) v = nd(rng);
  const size_t rb = row_size(t, cols);
  o.bytes.resize(rb * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) quantize_row(t, x.data() + r * cols, o.bytes.data() + r * rb, cols);
  o.w.name = "test";
  o.w.type = t;
  o.w.data = o.bytes.data();
  o.w.cols = cols;
  o.w.rows = rows;
  o.w.row_bytes = rb;
  ops::pack_weight(o.w);
  return o;
}

// Reference: the kernel's own activation quantization, then exact products of the dequantized operands
// (for Q4_1 the product uses the activation block sum s, as the format defines).
std::vector<double> reference(const kernels::KernelTable& k, const ops::Weight& w, const std::vector<float>& x,
                              int64_t T, const std::vector<float>& bias) {
  const auto& wk = k.for_type(w.type);
  const int64_t K = w.cols;
  std::vector<double> y(static_cast<size_t>(T * w.rows));
  std::vector<uint8_t> act(row_size(wk.act_type, K));
  std::vector<float> a(static_cast<size_t>(K)), wr(static_cast<size_t>(K));
  for (int64_t t = 0; t < T; ++t) {
    wk.quantize_act(x.data() + t * K, act.data(), K);
    for (int64_t r = 0; r < w.rows; ++r) {
      // The scalar kernel is the reference definition of the dot (exact integer parts).
      y[static_cast<size_t>(t * w.rows + r)] =
          kernels::table(kernels::Isa::scalar).for_type(w.type).vec_dot(K, w.data + r * w.row_bytes, act.data()) +
          (bias.empty() ? 0.0 : bias[static_cast<size_t>(r)]);
    }
  }
  return y;
}

class Matmul : public ::testing::TestWithParam<kernels::Isa> {};

TEST_P(Matmul, MultiMatchesReferenceOnPackedPlainAndMixedWeights) {
  const kernels::KernelTable& k = kernels::table(GetParam());
  ThreadPool pool(2);
  ops::Context ctx(pool, k);
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  struct Combo {
    TensorType a, b;
  };
  // The K-quants (packed super-blocks; Q4_K and Q6_K share the Q8_K activations, Q4_K with Q4_0 does not) need
  // rows of a multiple of 256.
  for (Combo c : {Combo{TensorType::Q4_1, TensorType::Q4_1}, Combo{TensorType::Q4_0, TensorType::Q8_0},
                  Combo{TensorType::Q4_0, TensorType::Q4_1}, Combo{TensorType::F16, TensorType::F32},
                  Combo{TensorType::Q8_0, TensorType::Q8_0}, Combo{TensorType::Q4_K, TensorType::Q6_K},
                  Combo{TensorType::Q5_K, TensorType::Q5_K}, Combo{TensorType::Q4_K, TensorType::Q4_0},
                  Combo{TensorType::BF16, TensorType::BF16}}) {
    const bool k_quant = type_traits(c.a).block_size == 256 || type_traits(c.b).block_size == 256;
    const int64_t K = k_quant ? 512 : 96;
    for (int64_t T : {1, 3, 5, 70}) {
      // 29 rows: a pair of packed groups (where the table has a pair kernel and T >= 4), a single group and
      // 5 plain rows; 16 rows: one pair (or two groups).
      OwnedWeight w1 = make_weight(c.a, K, 29, 1);
      OwnedWeight w2 = make_weight(c.b, K, 16, 2);
      std::vector<float> x(static_cast<size_t>(T * K));
      for (auto& v : x) v = nd(rng);
      std::vector<float> bias1(29);
      for (auto& v : bias1) v = nd(rng);
      std::vector<float> y1(static_cast<size_t>(T * 29), NAN), y2(static_cast<size_t>(T * 16), NAN);
      ops::matmul_multi(ctx, {{&w1.w, y1.data(), bias1.data()}, {&w2.w, y2.data()}}, x.data(), T);
      const auto r1 = reference(k, w1.w, x, T, bias1);
      const auto r2 = reference(k, w2.w, x, T, {});
      for (size_t i = 0; i < r1.size(); ++i)
        ASSERT_NEAR(y1[i], r1[i], 1e-4 * (1 + std::fabs(r1[i]))) << type_name(c.a) << " T=" << T << " i=" << i;
      for (size_t i = 0; i < r2.size(); ++i)
        ASSERT_NEAR(y2[i], r2[i], 1e-4 * (1 + std::fabs(r2[i]))) << type_name(c.b) << " T=" << T << " i=" << i;
    }
  }
}

// rope over a precomputed table: each pair (adjacent for llama, halves for neox) turned by pos * base^(-2i/n_rot);
// dims past n_rot untouched.
TEST(Rope, TableRotatesPairsByPositionAngles) {
  ThreadPool pool(2);
  ops::Context ctx(pool, kernels::table(kernels::Isa::scalar));
  const int64_t T = 19, H = 3, hd = 8, n_rot = 6;
  const float base = 10000.0f;
  std::vector<int32_t> pos(T);
  for (int64_t t = 0; t < T; ++t) pos[static_cast<size_t>(t)] = static_cast<int32_t>(100 + 3 * t);
  std::vector<float> cs(static_cast<size_t>(T * n_rot));
  ops::rope_table(ctx, pos.data(), T, n_rot, base, cs.data());
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (ops::RopeStyle style : {ops::RopeStyle::normal, ops::RopeStyle::neox}) {
    std::vector<float> x(static_cast<size_t>(T * H * hd));
    for (auto& v : x) v = nd(rng);
    auto y = x;
    ops::rope(ctx, y.data(), T, H, hd, n_rot, cs.data(), style);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h) {
        const float* in = x.data() + (t * H + h) * hd;
        const float* out = y.data() + (t * H + h) * hd;
        for (int64_t i = 0; i < n_rot / 2; ++i) {
          const double th = pos[static_cast<size_t>(t)] * std::pow(double{base}, -2.0 * i / n_rot);
          const int64_t a = style == ops::RopeStyle::normal ? 2 * i : i;
          const int64_t b = style == ops::RopeStyle::normal ? 2 * i + 1 : i + n_rot / 2;
          EXPECT_NEAR(out[a], in[a] * std::cos(th) - in[b] * std::sin(th), 2e-4) << "t=" << t << " i=" << i;
          EXPECT_NEAR(out[b], in[a] * std::sin(th) + in[b] * std::cos(th), 2e-4) << "t=" << t << " i=" << i;
        }
        for (int64_t d = n_rot; d < hd; ++d) EXPECT_EQ(out[d], in[d]);
      }
  }
}

// pack_weights copies and packs in pieces (2048 groups, 16 MB) on several threads: a weight of many pieces
// (packed: 2100 groups; plain F32 rows: 17 MB) multiplies as its rows do.
TEST(Matmul, PackingInPiecesMatchesTheRows) {
  ThreadPool pool(2);
  ops::Context ctx(pool, kernels::active());
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto [t, cols, rows] : {std::tuple<TensorType, int64_t, int64_t>{TensorType::Q4_0, 64, 2100 * 8 + 3},
                               {TensorType::F32, 1024, 4400}}) {
    OwnedWeight w = make_weight(t, cols, rows, 3);
    if (t == TensorType::Q4_0) {
      EXPECT_TRUE(w.w.packed);
    } else {  // the rows were copied, piece by piece, exactly
      ASSERT_NE(w.w.data, w.bytes.data());
      EXPECT_EQ(0, std::memcmp(w.w.data, w.bytes.data(), w.bytes.size()));
    }
    ops::Weight rows_only = w.w;  // the reference reads the original rows
    rows_only.data = w.bytes.data();
    std::vector<float> x(static_cast<size_t>(cols));
    for (auto& v : x) v = nd(rng);
    std::vector<float> y(static_cast<size_t>(rows), NAN);
    ops::matmul(ctx, w.w, x.data(), 1, y.data());
    const auto r = reference(kernels::active(), rows_only, x, 1, {});
    for (int64_t i = 0; i < rows; ++i) ASSERT_NEAR(y[i], r[i], 1e-4 * (1 + std::fabs(r[i]))) << type_name(t) << " row " << i;
  }
}

TEST(Matmul, PackingHappensOnlyForPackableTypesWithAFullGroup) {
  EXPECT_TRUE(make_weight(TensorType::Q4_0, 64, 8, 1).w.packed);
  EXPECT_TRUE(make_weight(TensorType::Q8_0, 64, 17, 1).w.packed);
  EXPECT_FALSE(make_weight(TensorType::Q4_0, 64, 7, 1).w.packed);   // fewer rows than a group
  EXPECT_FALSE(make_weight(TensorType::F16, 64, 64, 1).w.packed);   // no packed layout for F16
  EXPECT_TRUE(make_weight(TensorType::Q4_K, 256, 8, 1).w.packed);
  EXPECT_TRUE(make_weight(TensorType::Q6_K, 256, 9, 1).w.packed);
}

INSTANTIATE_TEST_SUITE_P(Isas, Matmul, ::testing::ValuesIn(kernels::available_isas()),
                         [](const auto& info) { return std::string(kernels::isa_name(info.param)); });

}  // namespace

namespace {

// Attention over an f16 cache against a double-precision reference (same f16 cache contents), for both
// paths: one query at a time (T < 8) and the prefill tiles (T >= 8), with GQA groups and a non-zero start.
class Attention : public ::testing::TestWithParam<kernels::Isa> {
 protected:
  struct Shape {
    int64_t n_head, n_head_kv, pos0, T;
  };
  static constexpr int64_t hd = 64;
  ThreadPool pool{2};
  ops::Context ctx{pool, kernels::table(GetParam())};
  std::normal_distribution<float> nd{0.f, 1.f};
};

TEST_P(Attention, BothPathsMatchDoubleReference) {
  std::mt19937 rng(11);
  // The prefill path walks the keys in blocks of 512: the later shapes span two, one with a tile whose first
  // rows see none of the second block (pos0 505) and one from position 0. Head sizes: 64, and 80 and 128
  // for a few shapes (80: a key-score tail past the last chunk of 32, value rows not a multiple of 8); one
  // decode over 4101 positions (value rows longer than the SIMD row-dot's y buffer).
  struct Case {
    int64_t hd;
    Shape sh;
  };
  std::vector<Case> cases;
  for (Shape sh : {Shape{9, 3, 0, 1}, Shape{9, 3, 5, 3}, Shape{9, 3, 0, 20}, Shape{4, 4, 7, 33}, Shape{8, 2, 30, 9},
                   Shape{16, 2, 0, 70}, Shape{9, 3, 505, 20}, Shape{9, 3, 600, 2}, Shape{8, 2, 0, 530}})
    cases.push_back({64, sh});
  for (Shape sh : {Shape{6, 2, 37, 1}, Shape{6, 2, 10, 12}}) {
    cases.push_back({80, sh});
    cases.push_back({128, sh});
  }
  cases.push_back({64, Shape{4, 2, 4100, 1}});
  for (const auto& [hd, sh] : cases) {
    const int64_t kvd = sh.n_head_kv * hd, n_kv = sh.pos0 + sh.T;
    const int64_t n_ctx = std::max<int64_t>(96, (n_kv + 5 + 31) / 32 * 32);  // a multiple of ops::kAttnPad
    // The value cache starts full of NaN (stale values; 0 x NaN is NaN): storing must zero the unused tail of
    // the last block, which the one-query path multiplies by zero-padded probabilities.
    std::vector<uint16_t> kc(static_cast<size_t>(n_ctx * kvd)), vt(static_cast<size_t>(kvd * n_ctx), uint16_t{0x7E00});  // f16 NaN
    std::vector<float> kf(static_cast<size_t>(n_kv * kvd)), vf(static_cast<size_t>(n_kv * kvd));
    for (auto& v : kf) v = nd(rng);
    for (auto& v : vf) v = nd(rng);
    ops::store_heads(ctx, TensorType::F16, kf.data(), kc.data(), n_kv, sh.n_head_kv, hd, 0, n_ctx);
    ops::store_value_blocks(ctx, vf.data(), vt.data(), n_kv, sh.n_head_kv, hd, 0, n_ctx);
    std::vector<float> q(static_cast<size_t>(sh.T * sh.n_head * hd)), out(q.size(), NAN);
    for (auto& v : q) v = nd(rng);
    const float scale = 0.125f;
    ops::attention(ctx, q.data(), kc.data(), vt.data(), out.data(), sh.T, sh.pos0, n_ctx, sh.n_head, sh.n_head_kv, hd,
                   scale);
    for (int64_t t = 0; t < sh.T; ++t)
      for (int64_t h = 0; h < sh.n_head; ++h) {
        const int64_t kvh = h / (sh.n_head / sh.n_head_kv), nk = sh.pos0 + t + 1;
        std::vector<double> s(static_cast<size_t>(nk));
        double mx = -1e300;
        for (int64_t j = 0; j < nk; ++j) {
          double d = 0;
          for (int64_t i = 0; i < hd; ++i)
            d += static_cast<double>(q[(t * sh.n_head + h) * hd + i]) *
                 fp16_to_fp32(kc[static_cast<size_t>((kvh * n_ctx + j) * hd + i)]);
          s[static_cast<size_t>(j)] = d * scale;
          mx = std::max(mx, d * scale);
        }
        double sum = 0;
        for (auto& e : s) sum += (e = std::exp(e - mx));
        for (int64_t i = 0; i < hd; ++i) {
          double o = 0;
          for (int64_t j = 0; j < nk; ++j)
            o += s[static_cast<size_t>(j)] / sum *
                 fp16_to_fp32(vt[static_cast<size_t>(kvh * hd * n_ctx + ops::value_index(hd, i, j))]);
          // q and the probabilities are rounded to f16 on the way: relative error ~1e-3 of the magnitudes.
          ASSERT_NEAR(out[(t * sh.n_head + h) * hd + i], o, 4e-3 * (1 + std::fabs(o)))
              << "heads " << sh.n_head << "/" << sh.n_head_kv << " pos0 " << sh.pos0 << " T " << sh.T << " t " << t
              << " h " << h << " i " << i << " head size " << hd;
        }
      }
  }
}

// The value cache's layout and padding invariant with a watermark: each stored value lands at value_index in
// its head's blocks; positions before stale_end (a rolled-back sequence's values, NaN here) are cleared up to
// the end of the block; those from stale_end on are trusted to be zero and left alone (seen here by planting a
// marker there, which a clear would have overwritten). Stores spanning a block boundary (positions 30..33) and
// within one block (10, 11).
TEST(StoreValueBlocks, LayoutAndBlockTailClearedOnlyBeforeTheWatermark) {
  ThreadPool pool(1);
  ops::Context ctx(pool, kernels::active());
  const int64_t heads = 2, hd = 3, n_ctx = 96;
  const uint16_t kNan = 0x7E00, kMarker = 0x3C00;  // f16 NaN, 1.0
  auto at = [&](int64_t h, int64_t i, int64_t p) { return static_cast<size_t>(h * hd * n_ctx + ops::value_index(hd, i, p)); };
  // value_index is a bijection onto one head's hd * n_ctx slots.
  std::vector<int> hits(static_cast<size_t>(hd * n_ctx), 0);
  for (int64_t i = 0; i < hd; ++i)
    for (int64_t p = 0; p < n_ctx; ++p) ++hits[at(0, i, p)];
  EXPECT_EQ(std::count(hits.begin(), hits.end(), 1), hd * n_ctx);
  for (auto [pos0, T] : {std::pair<int64_t, int64_t>{10, 2}, {30, 4}}) {
    const int64_t end = pos0 + T, block_end = (end + 31) / 32 * 32;
    std::vector<float> x(static_cast<size_t>(T * heads * hd));
    for (size_t j = 0; j < x.size(); ++j) x[j] = 0.25f * static_cast<float>(j) - 2.0f;  // exact in f16
    for (int64_t stale_end : {int64_t{0}, end + 5, end + 40, INT64_MAX}) {
      const auto marked = [&](int64_t p) { return p < stale_end ? kNan : (p == end + 7 ? kMarker : uint16_t{0}); };
      std::vector<uint16_t> vt(static_cast<size_t>(heads * hd * n_ctx), 0);
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < hd; ++i)
          for (int64_t p = 0; p < n_ctx; ++p) vt[at(h, i, p)] = marked(p);
      ops::store_value_blocks(ctx, x.data(), vt.data(), T, heads, hd, pos0, n_ctx, stale_end);
      const std::string where = "pos0 " + std::to_string(pos0) + " stale_end " + std::to_string(stale_end);
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < hd; ++i) {
          for (int64_t t = 0; t < T; ++t)
            EXPECT_EQ(fp16_to_fp32(vt[at(h, i, pos0 + t)]), x[static_cast<size_t>((t * heads + h) * hd + i)]) << where;
          for (int64_t p = end; p < block_end; ++p) {
            if (p < stale_end) EXPECT_EQ(vt[at(h, i, p)], 0) << "stale position " << p << " not cleared, " << where;
            else EXPECT_EQ(vt[at(h, i, p)], marked(p)) << "position " << p << " past the watermark was written, " << where;
          }
          for (int64_t p = 0; p < n_ctx; ++p) {  // nothing before the stores, nor in the next blocks, is touched
            if (p < pos0 || p >= block_end) {
              EXPECT_EQ(vt[at(h, i, p)], marked(p)) << "position " << p << ", " << where;
            }
          }
        }
    }
  }
}

// Decode with the rotation and the cache stores fused into the attention jobs equals, bit for bit, the separate
// ops it replaces: the output, both caches (incl. the cleared tail of the value block under a watermark) and the
// rotated q and k rows.
TEST_P(Attention, FusedDecodeEqualsSeparateOps) {
  std::mt19937 rng(13);
  // Head size, rotated dims and pool size vary too: partial rotation, a head wider than the 256 values the
  // store converts at a time, one and three threads.
  struct Case {
    int64_t hd, n_rot;
    int threads;
    Shape sh;
  };
  std::vector<Case> cases;
  for (Shape sh : {Shape{9, 3, 0, 1}, Shape{9, 3, 37, 1}, Shape{16, 16, 64, 1}, Shape{8, 2, 30, 3}, Shape{4, 4, 95, 1}})
    cases.push_back({64, 64, 2, sh});
  cases.push_back({128, 64, 3, Shape{8, 2, 20, 2}});
  cases.push_back({320, 32, 3, Shape{6, 3, 9, 1}});
  cases.push_back({32, 32, 1, Shape{9, 3, 50, 3}});
  for (const auto& [hd, n_rot, threads, sh] : cases) {
    ThreadPool local_pool(threads);
    ops::Context ctx(local_pool, kernels::table(GetParam()));
    const int64_t kvd = sh.n_head_kv * hd, n_ctx = 128, end = sh.pos0 + sh.T;
    for (ops::RopeStyle style : {ops::RopeStyle::normal, ops::RopeStyle::neox}) {
      // Caches holding earlier positions, and stale values (NaN) past them up to a watermark.
      std::vector<uint16_t> kc(static_cast<size_t>(kvd * n_ctx)), vt(kc.size(), uint16_t{0});
      std::vector<float> hist(static_cast<size_t>(std::max<int64_t>(sh.pos0, 1) * kvd));
      for (auto& v : hist) v = nd(rng);
      ops::store_heads(ctx, TensorType::F16, hist.data(), kc.data(), sh.pos0, sh.n_head_kv, hd, 0, n_ctx);
      ops::store_value_blocks(ctx, hist.data(), vt.data(), sh.pos0, sh.n_head_kv, hd, 0, n_ctx);
      const int64_t stale_end = std::min<int64_t>(n_ctx, end + 20);
      for (int64_t h = 0; h < sh.n_head_kv; ++h)
        for (int64_t i = 0; i < hd; ++i)
          for (int64_t p = end; p < stale_end; ++p) vt[static_cast<size_t>(h * hd * n_ctx + ops::value_index(hd, i, p))] = 0x7E00;
      auto kc2 = kc, vt2 = vt;
      std::vector<float> q(static_cast<size_t>(sh.T * sh.n_head * hd)), kn(static_cast<size_t>(sh.T * kvd)), vn(kn.size());
      for (auto* v : {&q, &kn, &vn})
        for (auto& x : *v) x = nd(rng);
      std::vector<int32_t> pos(static_cast<size_t>(sh.T));
      for (int64_t t = 0; t < sh.T; ++t) pos[static_cast<size_t>(t)] = static_cast<int32_t>(sh.pos0 + t);
      std::vector<float> cs(static_cast<size_t>(sh.T * n_rot));
      ops::rope_table(ctx, pos.data(), sh.T, n_rot, 10000.0f, cs.data());
      auto q2 = q, kn2 = kn;
      std::vector<float> out1(q.size(), NAN), out2(q.size(), NAN);
      ops::rope(ctx, q.data(), sh.T, sh.n_head, hd, n_rot, cs.data(), style);
      ops::rope(ctx, kn.data(), sh.T, sh.n_head_kv, hd, n_rot, cs.data(), style);
      ops::store_heads(ctx, TensorType::F16, kn.data(), kc.data(), sh.T, sh.n_head_kv, hd, sh.pos0, n_ctx);
      ops::store_value_blocks(ctx, vn.data(), vt.data(), sh.T, sh.n_head_kv, hd, sh.pos0, n_ctx, stale_end);
      ops::attention(ctx, q.data(), kc.data(), vt.data(), out1.data(), sh.T, sh.pos0, n_ctx, sh.n_head, sh.n_head_kv, hd,
                     0.125f);
      ops::attention_decode(ctx, q2.data(), kn2.data(), vn.data(), kc2.data(), vt2.data(), out2.data(), sh.T, sh.pos0,
                            n_ctx, sh.n_head, sh.n_head_kv, hd, 0.125f, cs.data(), n_rot, style, stale_end);
      const std::string at = "heads " + std::to_string(sh.n_head) + "/" + std::to_string(sh.n_head_kv) + " pos0 " +
                             std::to_string(sh.pos0) + " T " + std::to_string(sh.T);
      ASSERT_EQ(0, std::memcmp(out1.data(), out2.data(), out1.size() * sizeof(float))) << at;
      EXPECT_EQ(kc, kc2) << at;
      EXPECT_EQ(vt, vt2) << at;
      EXPECT_EQ(q, q2) << at;
      EXPECT_EQ(kn, kn2) << at;
    }
  }
}

// The Q8_0 cache against a double reference over the dequantized cache, with the query rounded as each path
// rounds it: through Q8_0 for decode (T < 8), through f16 for prefill, where the cache values are also rounded
// to f16 on the way (the f16 staging copy).
TEST_P(Attention, Q8_0CacheMatchesDoubleReference) {
  std::mt19937 rng(12);
  // Head sizes of 1, 2, 3 and 5 blocks (the AVX-512 value sums take up to 4 blocks at a time).
  std::vector<std::pair<int64_t, Shape>> cases;
  for (Shape sh : {Shape{9, 3, 0, 1}, Shape{9, 3, 5, 3}, Shape{9, 3, 0, 20}, Shape{8, 2, 30, 9}, Shape{16, 2, 0, 70},
                   Shape{9, 3, 505, 20}, Shape{8, 2, 700, 1}})
    cases.push_back({64, sh});
  for (int64_t d : {32, 96, 160})
    for (Shape sh : {Shape{9, 3, 17, 1}, Shape{8, 2, 30, 9}, Shape{4, 4, 40, 2}}) cases.push_back({d, sh});
  for (const auto& [hd, sh] : cases) {
    const size_t row = row_size(TensorType::Q8_0, hd);
    const int64_t kvd = sh.n_head_kv * hd, n_kv = sh.pos0 + sh.T;
    const int64_t n_ctx = n_kv + 7;
    std::vector<uint8_t> kc(static_cast<size_t>(sh.n_head_kv * n_ctx) * row, 0xFF), vc(kc.size(), 0xFF);
    std::vector<float> kf(static_cast<size_t>(n_kv * kvd)), vf(kf.size());
    for (auto& v : kf) v = nd(rng);
    for (auto& v : vf) v = nd(rng);
    // Stored in two calls, as a prompt and then its continuation are.
    const int64_t first = n_kv / 2;
    for (auto [x, c] : {std::pair{&kf, &kc}, std::pair{&vf, &vc}}) {
      ops::store_heads(ctx, TensorType::Q8_0, x->data(), c->data(), first, sh.n_head_kv, hd, 0, n_ctx);
      ops::store_heads(ctx, TensorType::Q8_0, x->data() + first * kvd, c->data(), n_kv - first, sh.n_head_kv, hd, first, n_ctx);
    }
    std::vector<float> q(static_cast<size_t>(sh.T * sh.n_head * hd)), out(q.size(), NAN);
    for (auto& v : q) v = nd(rng);
    const float scale = 0.125f;
    ops::attention_q8_0(ctx, q.data(), kc.data(), vc.data(), out.data(), sh.T, sh.pos0, n_ctx, sh.n_head, sh.n_head_kv,
                        hd, scale);
    const bool decode = sh.T < 8;
    auto cached = [&](const std::vector<uint8_t>& c, int64_t kvh, int64_t pos) {
      std::vector<float> f(static_cast<size_t>(hd));
      dequantize_row(TensorType::Q8_0, c.data() + static_cast<size_t>(kvh * n_ctx + pos) * row, f.data(), hd);
      if (!decode)
        for (auto& v : f) v = fp16_to_fp32(fp32_to_fp16(v));
      return f;
    };
    for (int64_t t = 0; t < sh.T; ++t)
      for (int64_t h = 0; h < sh.n_head; ++h) {
        const int64_t kvh = h / (sh.n_head / sh.n_head_kv), nk = sh.pos0 + t + 1;
        std::vector<float> qr(q.begin() + (t * sh.n_head + h) * hd, q.begin() + (t * sh.n_head + h + 1) * hd);
        if (decode) {
          std::vector<uint8_t> q8(row);
          kernels::table(kernels::Isa::scalar).for_type(TensorType::Q8_0).quantize_act(qr.data(), q8.data(), hd);
          dequantize_row(TensorType::Q8_0, q8.data(), qr.data(), hd);
        } else {
          for (auto& v : qr) v = fp16_to_fp32(fp32_to_fp16(v));
        }
        std::vector<double> s(static_cast<size_t>(nk));
        double mx = -1e300;
        for (int64_t j = 0; j < nk; ++j) {
          const auto kr = cached(kc, kvh, j);
          double d = 0;
          for (int64_t i = 0; i < hd; ++i) d += static_cast<double>(qr[static_cast<size_t>(i)]) * kr[static_cast<size_t>(i)];
          s[static_cast<size_t>(j)] = d * scale;
          mx = std::max(mx, d * scale);
        }
        double sum = 0;
        for (auto& e : s) sum += (e = std::exp(e - mx));
        std::vector<double> o(static_cast<size_t>(hd), 0.0);
        for (int64_t j = 0; j < nk; ++j) {
          const auto vr = cached(vc, kvh, j);
          for (int64_t i = 0; i < hd; ++i) o[static_cast<size_t>(i)] += s[static_cast<size_t>(j)] / sum * vr[static_cast<size_t>(i)];
        }
        for (int64_t i = 0; i < hd; ++i)
          ASSERT_NEAR(out[(t * sh.n_head + h) * hd + i], o[static_cast<size_t>(i)], 1e-3 * (1 + std::fabs(o[static_cast<size_t>(i)])))
              << "heads " << sh.n_head << "/" << sh.n_head_kv << " pos0 " << sh.pos0 << " T " << sh.T << " t " << t
              << " h " << h << " i " << i << " head size " << hd;
      }
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, Attention, ::testing::ValuesIn(kernels::available_isas()),
                         [](const auto& info) { return std::string(kernels::isa_name(info.param)); });

}  // namespace
