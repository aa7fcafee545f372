// ops: matmul / matmul_multi (packed and plain paths, ragged row counts, token chunks, bias) against a
// double-precision product of the dequantized weights with the dequantized activations.
#include <gtest/gtest.h>

#include <cfloat>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "base/fp16.h"
#include "formats/tensor_type.h"
#include "kernels/kernels.h"
#include "ops/ops.h"
#include "runtime/thread_pool.h"
#include "isa_param.h"

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
  std::vector<uint8_t> act(wk.act.row_bytes(K));
  std::vector<float> a(static_cast<size_t>(K)), wr(static_cast<size_t>(K));
  for (int64_t t = 0; t < T; ++t) {
    wk.act.quantize(x.data() + t * K, act.data(), K);
    for (int64_t r = 0; r < w.rows; ++r) {
      // The scalar kernel is the reference definition of the dot (exact integer parts).
      y[static_cast<size_t>(t * w.rows + r)] =
          kernels::table(kernels::Isa::scalar).for_type(w.type).vec_dot(K, w.data + r * w.row_bytes, act.data()) +
          (bias.empty() ? 0.0 : bias[static_cast<size_t>(r)]);
    }
  }
  return y;
}

class Matmul : public tokenscope::testing::IsaTest {};

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

// Batch invariance: a token's output row is the same, bit for bit, whatever other tokens share the call (its
// index among them, their number: 1, 3, 4, 16, 37 and 70 cross the packed kernels' 4- and 16-token steps, the
// pair kernel's T >= 4 switch and the 64-token chunks), for every type with a kernel, packed or not.
TEST_P(Matmul, RowsDoNotDependOnTheOtherTokensInTheCall) {
  const kernels::KernelTable& k = kernels::table(GetParam());
  ThreadPool pool(2);
  ops::Context ctx(pool, k);
  std::mt19937 rng(8);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (TensorType t : {TensorType::Q4_0, TensorType::Q4_1, TensorType::Q8_0, TensorType::Q4_K, TensorType::Q5_K,
                       TensorType::Q6_K, TensorType::F16, TensorType::F32, TensorType::BF16}) {
    if (!k.for_type(t).supported) continue;
    const int64_t K = type_traits(t).block_size == 256 ? 512 : 96, N = 45;  // 2 pairs of groups, a group, 5 rows
    OwnedWeight w = make_weight(t, K, N, 3);
    const int64_t T_max = 70;
    std::vector<float> x(static_cast<size_t>(T_max * K));
    for (auto& v : x) v = nd(rng);
    std::vector<float> alone(static_cast<size_t>(T_max * N));
    for (int64_t i = 0; i < T_max; ++i) ops::matmul(ctx, w.w, x.data() + i * K, 1, alone.data() + i * N);
    for (int64_t T : {3, 4, 16, 37, 70})
      for (int64_t first : {int64_t{0}, T_max - T}) {
        std::vector<float> y(static_cast<size_t>(T * N));
        ops::matmul(ctx, w.w, x.data() + first * K, T, y.data());
        ASSERT_EQ(0, std::memcmp(y.data(), alone.data() + first * N, y.size() * sizeof(float)))
            << type_name(t) << " T=" << T << " first token " << first;
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

TS_INSTANTIATE_FOR_ISAS(Matmul);

}  // namespace

namespace {

// A pool of KV pages shared by several sequences, each with its own page table drawn from a shuffled order (so
// attention must follow the tables), in ops::KVStore's layout.
struct Pages {
  ops::KVStore store;
  std::vector<uint8_t> mem;
  std::vector<std::vector<int32_t>> tables;
  // One table per entry of lengths (positions), one layer.
  Pages(TensorType type, int64_t n_head_kv, int64_t hd, const std::vector<int64_t>& lengths, uint32_t seed, uint8_t fill) {
    store.layout.type = type;
    store.layout.n_layer = 1;
    store.layout.n_head_kv = n_head_kv;
    store.layout.head_dim = hd;
    int64_t total = 0;
    for (int64_t n : lengths) total += (n + ops::kAttnPad - 1) / ops::kAttnPad;
    store.layout.n_pages = total + 3;
    mem.assign(store.layout.bytes(), fill);
    store.base = mem.data();
    std::vector<int32_t> order(static_cast<size_t>(store.layout.n_pages));
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937(seed));
    size_t at = 0;
    for (int64_t n : lengths) {
      const size_t np = static_cast<size_t>((n + ops::kAttnPad - 1) / ops::kAttnPad);
      tables.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(at), order.begin() + static_cast<std::ptrdiff_t>(at + np));
      at += np;
    }
    // F16 value pages start zeroed (the engine zeroes a page when it hands it out): the one-query path reads
    // whole pages.
    if (type == TensorType::F16)
      for (int64_t h = 0; h < n_head_kv; ++h)
        for (int64_t p = 0; p < store.layout.n_pages; ++p) std::memset(store.value_page(0, h, p), 0, store.layout.page_bytes());
  }
};

// Attention (layer 0) of several sequences in one call. Each sequence: `past` positions already in its cache
// (stored by an earlier call, as a prompt and then its continuation are), then `n` new rows.
struct SeqCase {
  int64_t past, n;
};

class Attention : public tokenscope::testing::IsaTest {
 protected:
  std::normal_distribution<float> nd{0.f, 1.f};
};

struct AttnData {
  std::vector<float> q, k, v, out, cs;
  std::vector<int32_t> pos;
};

// Random rows for a batch of T rows with n_head query heads, at the given positions; cs for n_rot.
AttnData attn_data(std::mt19937& rng, int64_t T, int64_t n_head, int64_t n_head_kv, int64_t hd, int64_t n_rot,
                   const std::vector<int32_t>& pos, ThreadPool& pool) {
  std::normal_distribution<float> nd(0.f, 1.f);
  AttnData d;
  d.q.resize(static_cast<size_t>(T * n_head * hd));
  d.k.resize(static_cast<size_t>(T * n_head_kv * hd));
  d.v.resize(d.k.size());
  for (auto* x : {&d.q, &d.k, &d.v})
    for (auto& e : *x) e = nd(rng);
  d.out.assign(d.q.size(), NAN);
  d.pos = pos;
  d.cs.resize(static_cast<size_t>(T * std::max<int64_t>(n_rot, 2)));
  ops::Context ctx(pool, kernels::active());
  if (n_rot > 0) ops::rope_table(ctx, pos.data(), T, n_rot, 10000.0f, d.cs.data());
  return d;
}

// Runs one sequence's history (past positions) through attention to store it, then its n new rows; returns the
// new rows' data (q, k, v as given, out as computed). The history's rows are remembered in hist_k / hist_v (as
// given, before rotation) for the reference.
struct SeqRun {
  AttnData hist, now;
};

// Double-precision attention of one sequence's new rows over all its keys (history then new), from the rotated
// keys and queries rounded to f16 (as the F16 cache and the query conversion round them).
void check_against_reference(const SeqRun& r, const SeqCase& sc, int64_t n_head, int64_t n_head_kv, int64_t hd,
                             int64_t n_rot, ops::RopeStyle style, float scale, TensorType type, const std::string& where) {
  ThreadPool pool(1);
  ops::Context ctx(pool, kernels::table(kernels::Isa::scalar));
  const int64_t kvd = n_head_kv * hd, n_kv = sc.past + sc.n;
  // All keys rotated (ops::rope is the rotation attention applies), then rounded as the cache stores them.
  std::vector<float> keys(static_cast<size_t>(n_kv * kvd)), vals(keys.size());
  std::copy(r.hist.k.begin(), r.hist.k.end(), keys.begin());
  std::copy(r.now.k.begin(), r.now.k.end(), keys.begin() + sc.past * kvd);
  std::copy(r.hist.v.begin(), r.hist.v.end(), vals.begin());
  std::copy(r.now.v.begin(), r.now.v.end(), vals.begin() + sc.past * kvd);
  std::vector<float> cs_all(static_cast<size_t>(n_kv * std::max<int64_t>(n_rot, 2)));
  std::vector<int32_t> pos(static_cast<size_t>(n_kv));
  std::iota(pos.begin(), pos.end(), 0);
  if (n_rot > 0) {
    ops::rope_table(ctx, pos.data(), n_kv, n_rot, 10000.0f, cs_all.data());
    ops::rope(ctx, keys.data(), n_kv, n_head_kv, hd, n_rot, cs_all.data(), style);
  }
  std::vector<float> q = r.now.q;
  if (n_rot > 0) ops::rope(ctx, q.data(), sc.n, n_head, hd, n_rot, cs_all.data() + sc.past * n_rot, style);
  const bool decode = sc.n == 1;
  auto round_row = [&](float* x) {
    if (type == TensorType::Q8_0) {
      std::vector<uint8_t> b(row_size(TensorType::Q8_0, hd));
      quantize_row(TensorType::Q8_0, x, b.data(), hd);
      dequantize_row(TensorType::Q8_0, b.data(), x, hd);
      if (!decode)
        for (int64_t i = 0; i < hd; ++i) x[i] = fp16_to_fp32(fp32_to_fp16(x[i]));  // the f16 staging copy
    } else {
      for (int64_t i = 0; i < hd; ++i) x[i] = fp16_to_fp32(fp32_to_fp16(x[i]));
    }
  };
  for (int64_t j = 0; j < n_kv * n_head_kv; ++j) {
    round_row(keys.data() + j * hd);
    round_row(vals.data() + j * hd);
  }
  const int64_t group = n_head / n_head_kv;
  for (int64_t t = 0; t < sc.n; ++t)
    for (int64_t h = 0; h < n_head; ++h) {
      const int64_t kvh = h / group, nk = sc.past + t + 1;
      std::vector<float> qr(q.begin() + (t * n_head + h) * hd, q.begin() + (t * n_head + h + 1) * hd);
      if (type == TensorType::Q8_0 && decode) {
        std::vector<uint8_t> q8(row_size(TensorType::Q8_0, hd));
        kernels::table(kernels::Isa::scalar).for_type(TensorType::Q8_0).act.quantize(qr.data(), q8.data(), hd);
        dequantize_row(TensorType::Q8_0, q8.data(), qr.data(), hd);
      } else {
        for (auto& x : qr) x = fp16_to_fp32(fp32_to_fp16(x));
      }
      std::vector<double> s(static_cast<size_t>(nk));
      double mx = -1e300;
      for (int64_t j = 0; j < nk; ++j) {
        double d = 0;
        for (int64_t i = 0; i < hd; ++i) d += static_cast<double>(qr[static_cast<size_t>(i)]) * keys[static_cast<size_t>((j * n_head_kv + kvh) * hd + i)];
        s[static_cast<size_t>(j)] = d * scale;
        mx = std::max(mx, d * scale);
      }
      double sum = 0;
      for (auto& e : s) sum += (e = std::exp(e - mx));
      for (int64_t i = 0; i < hd; ++i) {
        double o = 0;
        for (int64_t j = 0; j < nk; ++j) o += s[static_cast<size_t>(j)] / sum * vals[static_cast<size_t>((j * n_head_kv + kvh) * hd + i)];
        // F16: q and the decode probabilities are rounded to f16 on the way: relative error ~1e-3.
        ASSERT_NEAR(r.now.out[static_cast<size_t>((t * n_head + h) * hd + i)], o, 4e-3 * (1 + std::fabs(o)))
            << where << " t " << t << " h " << h << " i " << i;
      }
    }
}

// Sequences of the batch, run together in one call after each stored its history (one call per history).
// Returns per sequence its data; `together`: the new rows in one call, else one call per sequence.
std::vector<SeqRun> run_batch(ops::Context& ctx, Pages& pg, const std::vector<SeqCase>& seqs, int64_t n_head,
                              int64_t hd, int64_t n_rot, ops::RopeStyle style, float scale, bool together, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t n_head_kv = pg.store.layout.n_head_kv, kvd = n_head_kv * hd;
  std::vector<SeqRun> runs(seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i) {
    const SeqCase& sc = seqs[i];
    std::vector<int32_t> hp(static_cast<size_t>(sc.past)), np(static_cast<size_t>(sc.n));
    std::iota(hp.begin(), hp.end(), 0);
    std::iota(np.begin(), np.end(), static_cast<int32_t>(sc.past));
    runs[i].hist = attn_data(rng, sc.past, n_head, n_head_kv, hd, n_rot, hp, ctx.pool());
    runs[i].now = attn_data(rng, sc.n, n_head, n_head_kv, hd, n_rot, np, ctx.pool());
    if (sc.past > 0) {
      AttnData h = runs[i].hist;  // attention rotates its inputs in place
      ops::attention(ctx, pg.store, 0, {{0, sc.past, 0, pg.tables[i].data()}}, h.q.data(), h.k.data(), h.v.data(),
                     h.out.data(), n_head, scale, h.cs.data(), n_rot, style);
    }
  }
  auto call = [&](const std::vector<size_t>& which) {
    int64_t T = 0;
    for (size_t i : which) T += seqs[i].n;
    std::vector<float> q(static_cast<size_t>(T * n_head * hd)), k(static_cast<size_t>(T * kvd)), v(k.size()),
        out(q.size(), NAN), cs(static_cast<size_t>(T * std::max<int64_t>(n_rot, 2)));
    std::vector<ops::AttnSeq> as;
    int64_t row = 0;
    for (size_t i : which) {
      const AttnData& d = runs[i].now;
      std::copy(d.q.begin(), d.q.end(), q.begin() + row * n_head * hd);
      std::copy(d.k.begin(), d.k.end(), k.begin() + row * kvd);
      std::copy(d.v.begin(), d.v.end(), v.begin() + row * kvd);
      std::copy(d.cs.begin(), d.cs.end(), cs.begin() + row * std::max<int64_t>(n_rot, 2));
      as.push_back({row, seqs[i].n, seqs[i].past, pg.tables[i].data()});
      row += seqs[i].n;
    }
    ops::attention(ctx, pg.store, 0, as, q.data(), k.data(), v.data(), out.data(), n_head, scale, cs.data(), n_rot, style);
    row = 0;
    for (size_t i : which) {
      std::copy(out.begin() + row * n_head * hd, out.begin() + (row + seqs[i].n) * n_head * hd, runs[i].now.out.begin());
      row += seqs[i].n;
    }
  };
  if (together) {
    std::vector<size_t> all(seqs.size());
    std::iota(all.begin(), all.end(), size_t{0});
    call(all);
  } else {
    for (size_t i = 0; i < seqs.size(); ++i) call({i});
  }
  return runs;
}

// Both attention kinds (one row: one-query decode; two or more: flash) against a double-precision reference, with
// GQA groups, partial rotation, histories stored by an earlier call, pages in shuffled order, several sequences in
// one call. The flash path walks the keys in blocks of 512: some cases span two, one with a tile whose first
// rows see none of the second block (past 505). Head sizes 64, 80 (a key tail past the last chunk of 32) and
// 128; one decode over 4101 positions.
TEST_P(Attention, BothKindsMatchDoubleReference) {
  ThreadPool pool(2);
  ops::Context ctx(pool, kernels::table(GetParam()));
  struct Case {
    int64_t hd, n_head, n_head_kv, n_rot;
    std::vector<SeqCase> seqs;
  };
  const std::vector<Case> cases = {
      {64, 9, 3, 64, {{0, 1}, {5, 3}, {0, 20}, {37, 1}, {30, 9}}},
      {64, 4, 4, 32, {{7, 33}, {64, 1}, {0, 2}}},
      {64, 16, 2, 64, {{0, 70}, {31, 1}, {32, 1}}},
      {64, 9, 3, 64, {{505, 20}, {600, 2}}},
      {64, 8, 2, 64, {{0, 530}}},
      {80, 6, 2, 80, {{37, 1}, {10, 12}}},
      {128, 6, 2, 64, {{37, 1}, {10, 12}}},
      {64, 4, 2, 64, {{4100, 1}}},
  };
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const Case& c = cases[ci];
    // Both rotation styles, on alternate cases (the long ones once each: the scalar reference is slow).
    const ops::RopeStyle style = ci % 2 ? ops::RopeStyle::neox : ops::RopeStyle::normal;
    std::vector<int64_t> lengths;
    for (const SeqCase& s : c.seqs) lengths.push_back(s.past + s.n);
    Pages pg(TensorType::F16, c.n_head_kv, c.hd, lengths, 3, 0x7E);  // key pages start as NaN (0x7E7E)
    const auto runs = run_batch(ctx, pg, c.seqs, c.n_head, c.hd, c.n_rot, style, 0.125f, true, 11);
    for (size_t i = 0; i < c.seqs.size(); ++i)
      check_against_reference(runs[i], c.seqs[i], c.n_head, c.n_head_kv, c.hd, c.n_rot, style, 0.125f, TensorType::F16,
                              "hd " + std::to_string(c.hd) + " heads " + std::to_string(c.n_head) + "/" +
                                  std::to_string(c.n_head_kv) + " past " + std::to_string(c.seqs[i].past) + " n " +
                                  std::to_string(c.seqs[i].n));
  }
}

// The Q8_0 cache against the reference over the dequantized cache, with the query rounded as each kind rounds it:
// through Q8_0 for decode, through f16 for prefill, where the cache values are also rounded to f16 on the way
// (the staging copy). Head sizes of 1, 2, 3 and 5 blocks (the AVX-512 value sums take up to 4 blocks at a time).
TEST_P(Attention, Q8_0CacheMatchesDoubleReference) {
  ThreadPool pool(2);
  ops::Context ctx(pool, kernels::table(GetParam()));
  for (int64_t hd : {32, 64, 96, 160}) {
    const std::vector<SeqCase> seqs = {{0, 1}, {5, 3}, {0, 20}, {30, 9}, {17, 1}, {40, 2}};
    std::vector<int64_t> lengths;
    for (const SeqCase& s : seqs) lengths.push_back(s.past + s.n);
    Pages pg(TensorType::Q8_0, 2, hd, lengths, 5, 0xFF);
    const auto runs = run_batch(ctx, pg, seqs, 8, hd, hd, ops::RopeStyle::neox, 0.125f, true, 12);
    for (size_t i = 0; i < seqs.size(); ++i)
      check_against_reference(runs[i], seqs[i], 8, 2, hd, hd, ops::RopeStyle::neox, 0.125f, TensorType::Q8_0,
                              "q8_0 hd " + std::to_string(hd) + " past " + std::to_string(seqs[i].past) + " n " +
                                  std::to_string(seqs[i].n));
  }
  // A long decode and a prefill across the 512-key blocks.
  const std::vector<SeqCase> seqs = {{700, 1}, {505, 20}};
  Pages pg(TensorType::Q8_0, 2, 64, {701, 525}, 6, 0xFF);
  const auto runs = run_batch(ctx, pg, seqs, 8, 64, 64, ops::RopeStyle::normal, 0.125f, true, 13);
  for (size_t i = 0; i < seqs.size(); ++i)
    check_against_reference(runs[i], seqs[i], 8, 2, 64, 64, ops::RopeStyle::normal, 0.125f, TensorType::Q8_0, "q8_0 long");
}

// A sequence's attention output and the cache contents it stores are the same, bit for bit, whether it runs alone
// or with other sequences in the call, on 1, 2 or 3 threads: batching never changes a sequence's result.
TEST_P(Attention, BatchedEqualsAlone) {
  const std::vector<SeqCase> seqs = {{0, 1}, {5, 3}, {0, 20}, {37, 1}, {30, 9}, {63, 1}, {64, 1}, {100, 40}, {3, 2}};
  std::vector<int64_t> lengths;
  for (const SeqCase& s : seqs) lengths.push_back(s.past + s.n);
  for (TensorType type : {TensorType::F16, TensorType::Q8_0})
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      ops::Context ctx(pool, kernels::table(GetParam()));
      Pages a(type, 3, 64, lengths, 9, 0), b(type, 3, 64, lengths, 9, 0);
      const auto together = run_batch(ctx, a, seqs, 9, 64, 64, ops::RopeStyle::normal, 0.125f, true, 21);
      const auto alone = run_batch(ctx, b, seqs, 9, 64, 64, ops::RopeStyle::normal, 0.125f, false, 21);
      for (size_t i = 0; i < seqs.size(); ++i)
        ASSERT_EQ(0, std::memcmp(together[i].now.out.data(), alone[i].now.out.data(), together[i].now.out.size() * 4))
            << type_name(type) << " threads " << threads << " sequence " << i;
      EXPECT_EQ(a.mem, b.mem) << type_name(type) << " threads " << threads << ": the caches differ";
    }
}

// The cache layout: a new key lands rotated, as f16, in its page's row (p % kAttnPad); a value dimension i at
// value_index(i, p) of its value page; pages through the table; nothing else in the pool changes.
TEST(AttentionStore, KeysAndValuesLandWhereTheLayoutSays) {
  ThreadPool pool(2);
  ops::Context ctx(pool, kernels::active());
  const int64_t hd = 64, n_head_kv = 2, n_head = 4;
  for (int64_t n : {1, 3}) {
    Pages pg(TensorType::F16, n_head_kv, hd, {70}, 4, 0);
    const auto before = pg.mem;
    std::mt19937 rng(3);
    std::vector<int32_t> pos(static_cast<size_t>(n));
    std::iota(pos.begin(), pos.end(), 30);  // positions 30.. cross into the second page
    AttnData d = attn_data(rng, n, n_head, n_head_kv, hd, 0, pos, pool);
    const AttnData given = d;
    ops::attention(ctx, pg.store, 0, {{0, n, 30, pg.tables[0].data()}}, d.q.data(), d.k.data(), d.v.data(),
                   d.out.data(), n_head, 0.125f, d.cs.data(), 0, ops::RopeStyle::normal);
    size_t changed = 0;
    for (size_t i = 0; i < pg.mem.size(); ++i) changed += pg.mem[i] != before[i];
    size_t expect_changed = 0;
    for (int64_t t = 0; t < n; ++t)
      for (int64_t h = 0; h < n_head_kv; ++h) {
        const int64_t p = 30 + t, page = pg.tables[0][static_cast<size_t>(p / ops::kAttnPad)];
        const auto* kp = reinterpret_cast<const uint16_t*>(pg.store.key_page(0, h, page));
        const auto* vp = reinterpret_cast<const uint16_t*>(pg.store.value_page(0, h, page));
        for (int64_t i = 0; i < hd; ++i) {
          const float k = given.k[static_cast<size_t>((t * n_head_kv + h) * hd + i)];
          const float v = given.v[static_cast<size_t>((t * n_head_kv + h) * hd + i)];
          EXPECT_EQ(kp[(p % ops::kAttnPad) * hd + i], fp32_to_fp16(k));
          EXPECT_EQ(vp[ops::value_index(i, p)], fp32_to_fp16(v));
          expect_changed += (fp32_to_fp16(k) & 0xFF) != 0;
          expect_changed += (fp32_to_fp16(k) >> 8) != 0;
          expect_changed += (fp32_to_fp16(v) & 0xFF) != 0;
          expect_changed += (fp32_to_fp16(v) >> 8) != 0;
        }
      }
    EXPECT_EQ(changed, expect_changed) << "bytes outside the new positions changed";
  }
}

TS_INSTANTIATE_FOR_ISAS(Attention);

}  // namespace
