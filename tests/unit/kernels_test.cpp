// Every SIMD kernel against the scalar reference, on every ISA this machine has, over ragged shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <algorithm>
#include <random>
#include <tuple>
#include <vector>

#include "base/error.h"
#include "base/fp16.h"
#include <cfloat>
#include "formats/blocks.h"
#include "formats/quant_ref.h"
#include "formats/tensor_type.h"
#include "kernels/kernels.h"
#include "isa_param.h"

using namespace tokenscope;
using namespace tokenscope::kernels;

namespace {

std::vector<float> random_floats(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = nd(rng);
  // A few outliers, as real activations have.
  for (int64_t i = 0; i < n; i += 97) v[static_cast<size_t>(i)] *= 8.0f;
  return v;
}

// A page table: logical pages 0..used-1 on distinct physical pages drawn at random from 0..n_pages-1.
std::vector<int32_t> random_page_map(int64_t n_pages, int64_t used, uint32_t seed) {
  std::vector<int32_t> pages(static_cast<size_t>(n_pages));
  for (int64_t p = 0; p < n_pages; ++p) pages[static_cast<size_t>(p)] = static_cast<int32_t>(p);
  std::shuffle(pages.begin(), pages.end(), std::mt19937(seed));
  return std::vector<int32_t>(pages.begin(), pages.begin() + used);  // exactly `used` entries
}

// Exact value of the dot product of the dequantized operands, in double.
double exact_dot(TensorType wt, const std::vector<uint8_t>& w, TensorType at, const std::vector<uint8_t>& a, int64_t n) {
  std::vector<float> fw(static_cast<size_t>(n)), fa(static_cast<size_t>(n));
  dequantize_row(wt, w.data(), fw.data(), n);
  dequantize_row(at, a.data(), fa.data(), n);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(fw[i]) * fa[i];
  if (wt == TensorType::Q4_1) {
    // Q4_1 x Q8_1 is defined with the activation block sum s (stored as f16) standing in for d * sum(q):
    // x = d*q + m, so x.y = sum(d*q*y) + m * s. Replace the exact m * sum(y) by m * s.
    const auto* bw = reinterpret_cast<const BlockQ4_1*>(w.data());
    const auto* ba = reinterpret_cast<const BlockQ8_1*>(a.data());
    for (int64_t b = 0; b < n / QK4_1; ++b) {
      double sy = 0;
      for (int j = 0; j < QK8_1; ++j) sy += fa[b * QK8_1 + j];
      s += static_cast<double>(fp16_to_fp32(bw[b].m)) * (fp16_to_fp32(ba[b].s) - sy);
    }
  }
  return s;
}

const TensorType kWeightTypes[] = {TensorType::F32,  TensorType::F16,  TensorType::BF16, TensorType::Q4_0, TensorType::Q4_1,
                                   TensorType::Q8_0, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K};

class KernelIsa : public tokenscope::testing::IsaTest {};

TEST_P(KernelIsa, VecDotMatchesScalarReferenceOnRaggedShapes) {
  const KernelTable& ref = table(Isa::scalar);
  const KernelTable& k = table(GetParam());
  uint32_t seed = 7;
  for (TensorType wt : kWeightTypes) {
    const WeightKernels& rk = ref.for_type(wt);
    const WeightKernels& kk = k.for_type(wt);
    ASSERT_TRUE(rk.supported && kk.supported) << type_name(wt);
    ASSERT_STREQ(rk.act.name, kk.act.name) << type_name(wt);
    const int64_t bs = std::max<int64_t>(type_traits(wt).block_size, type_traits(rk.act.type.value()).block_size);
    for (int64_t nblk : {1, 2, 3, 5, 8, 17, 18, 48}) {
      // Float types (block size 1) also in rows long enough for every unrolled SIMD loop, with ragged tails.
      const int64_t n = bs == 1 ? nblk * 37 : nblk * bs;
      const auto xw = random_floats(n, seed++, 0.05f);
      const auto xa = random_floats(n, seed++, 1.0f);
      std::vector<uint8_t> w(row_size(wt, n)), a(row_size(rk.act.type.value(), n)), a2(row_size(rk.act.type.value(), n));
      quantize_row(wt, xw.data(), w.data(), n);
      rk.act.quantize(xa.data(), a.data(), n);
      kk.act.quantize(xa.data(), a2.data(), n);
      ASSERT_EQ(a, a2) << "activation quantization differs: " << type_name(wt) << " n=" << n;
      const double exact = exact_dot(wt, w, rk.act.type.value(), a, n);
      const float r = rk.vec_dot(n, w.data(), a.data());
      const float s = kk.vec_dot(n, w.data(), a.data());
      // Integer parts are exact; the float scale products are summed in a different order. The bound is
      // relative to the sum of |terms| (condition of the sum), with float epsilon times a small factor.
      std::vector<float> fw(static_cast<size_t>(n)), fa(static_cast<size_t>(n));
      dequantize_row(wt, w.data(), fw.data(), n);
      dequantize_row(rk.act.type.value(), a.data(), fa.data(), n);
      double mag = 0;
      for (int64_t i = 0; i < n; ++i) mag += std::fabs(static_cast<double>(fw[i]) * fa[i]);
      // Worst case of a float sum of (n / block) exact block terms, both orders: (blocks + 16) * eps * sum|terms|.
      const double tol = (static_cast<double>(n) / bs + 16) * FLT_EPSILON * mag + 1e-6;
      EXPECT_NEAR(r, exact, tol) << "scalar " << type_name(wt) << " n=" << n;
      EXPECT_NEAR(s, exact, tol) << isa_name(GetParam()) << " " << type_name(wt) << " n=" << n;
    }
  }
}

// K-quant multiplies at the extremes of their integer sums: every quant at its maximum (Q4_K 15, Q5_K 31,
// Q6_K 63, scales and mins at theirs) against activations (all but one) +127 or -127, where an int16 partial
// sum would wrap; vec_dot, the packed one- and two-group multiplies against the scalar
// vec_dot, every row (each with its own scale) and token.
TEST_P(KernelIsa, KQuantKernelsAtExtremeValues) {
  const KernelTable& ref = table(Isa::scalar);
  const KernelTable& k = table(GetParam());
  const int64_t n = 2 * QK_K;
  for (TensorType wt : {TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K}) {
    const WeightKernels& kk = k.for_type(wt);
    const size_t rb = row_size(wt, n);
    std::vector<uint8_t> rows(rb * 2 * kPackRows, 0xFF);  // every quant, scale and min bit set
    for (int r = 0; r < 2 * kPackRows; ++r)
      for (int64_t b = 0; b < n / QK_K; ++b) {
        uint8_t* blk = rows.data() + r * rb + b * type_traits(wt).type_size;
        const uint16_t d = fp32_to_fp16(0.01f * static_cast<float>(r + 1)), dmin = fp32_to_fp16(0.002f);
        if (wt == TensorType::Q6_K) {
          auto* x = reinterpret_cast<BlockQ6_K*>(blk);
          for (auto& s : x->scales) s = 127;
          x->d = d;
        } else {
          std::memcpy(blk, &d, 2);  // d, dmin lead both Q4_K and Q5_K
          std::memcpy(blk + 2, &dmin, 2);
        }
      }
    // Q8_K maps the largest magnitude to -127: equal values all become -127 (sign -1); one element of the
    // opposite sign slightly larger than the rest makes every other quant +127 (sign 1).
    for (int sign : {1, -1}) {
      std::vector<float> xa(static_cast<size_t>(n), 3.0f);
      if (sign > 0) xa[0] = -3.01f;
      const size_t ab = row_size(kk.act.type.value(), n);
      std::vector<uint8_t> act(ab * kPacked2MaxTokens);
      for (int t = 0; t < kPacked2MaxTokens; ++t) kk.act.quantize(xa.data(), act.data() + t * ab, n);
      ASSERT_EQ(reinterpret_cast<const BlockQ8_K*>(act.data())->qs[1], sign > 0 ? 127 : -127);
      std::vector<float> want(2 * kPackRows);  // each row has its own d
      for (int r = 0; r < 2 * kPackRows; ++r) want[r] = ref.for_type(wt).vec_dot(n, rows.data() + r * rb, act.data());
      auto check = [&](float got, int r, const char* what) {
        EXPECT_NEAR(got, want[r], 1e-5 * std::fabs(want[r])) << type_name(wt) << " " << what << ", row " << r
                                                               << ", sign " << sign;
      };
      for (int r = 0; r < 2 * kPackRows; ++r) check(kk.vec_dot(n, rows.data() + r * rb, act.data()), r, "vec_dot");
      if (!kk.gemm_packed) continue;
      const size_t gb = kk.packed_group_bytes(n);
      std::vector<uint8_t> groups(2 * gb);
      kk.pack_rows(rows.data(), rb, n, groups.data());
      kk.pack_rows(rows.data() + kPackRows * rb, rb, n, groups.data() + gb);
      std::vector<int32_t> sums(static_cast<size_t>(kPacked2MaxTokens * n / 32), 0);
      for (int nt : {1, 4}) {
        std::vector<float> y(static_cast<size_t>(nt * kPackRows));
        kk.gemm_packed(n, groups.data(), act.data(), ab, sums.data(), nt, y.data(), kPackRows);
        for (int t = 0; t < nt; ++t)
          for (int r = 0; r < kPackRows; ++r) check(y[t * kPackRows + r], r, nt == 1 ? "gemm_packed nt 1" : "gemm_packed nt 4");
      }
      if (!kk.gemm_packed2) continue;
      std::vector<float> y2(static_cast<size_t>(kPacked2MaxTokens * 2 * kPackRows));
      kk.gemm_packed2(n, groups.data(), gb, act.data(), ab, sums.data(), kPacked2MaxTokens, y2.data(), 2 * kPackRows);
      for (int t = 0; t < kPacked2MaxTokens; ++t)
        for (int r = 0; r < 2 * kPackRows; ++r) check(y2[t * 2 * kPackRows + r], r, "gemm_packed2");
    }
  }
}

TEST_P(KernelIsa, FloatHelpersMatchScalar) {
  const KernelTable& ref = table(Isa::scalar);
  const KernelTable& k = table(GetParam());
  for (int64_t n : {1, 7, 8, 15, 16, 31, 32, 33, 64, 100, 129, 1000}) {
    const auto a = random_floats(n, 100 + static_cast<uint32_t>(n));
    const auto b = random_floats(n, 200 + static_cast<uint32_t>(n));
    std::vector<uint16_t> ha(static_cast<size_t>(n)), hb(static_cast<size_t>(n)), ha2(static_cast<size_t>(n));
    ref.f32_to_f16(a.data(), ha.data(), n);
    k.f32_to_f16(a.data(), ha2.data(), n);
    EXPECT_EQ(ha, ha2) << "f32_to_f16 n=" << n;
    ref.f32_to_f16(b.data(), hb.data(), n);
    std::vector<float> fa(static_cast<size_t>(n)), fa2(static_cast<size_t>(n));
    ref.f16_to_f32(ha.data(), fa.data(), n);
    k.f16_to_f32(ha.data(), fa2.data(), n);
    EXPECT_EQ(fa, fa2) << "f16_to_f32 n=" << n;
    double mag = 0;
    for (int64_t i = 0; i < n; ++i) mag += std::fabs(a[i] * b[i]);
    EXPECT_NEAR(k.dot_f32(n, a.data(), b.data()), ref.dot_f32(n, a.data(), b.data()), 1e-5 * mag + 1e-6);
    // The f16 dot product's summation order is part of its definition: every ISA gives the same bits.
    EXPECT_EQ(k.dot_f16(n, ha.data(), hb.data()), ref.dot_f16(n, ha.data(), hb.data())) << "n=" << n;
    std::vector<float> y1 = b, y2 = b;
    ref.axpy_f16(n, 0.37f, ha.data(), y1.data());
    k.axpy_f16(n, 0.37f, ha.data(), y2.data());
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(y1[i], y2[i], 1e-6f * (1 + std::fabs(y1[i])));
  }
}

TEST_P(KernelIsa, AttentionHelpersMatchScalar) {
  const KernelTable& ref = table(Isa::scalar);
  const KernelTable& k = table(GetParam());
  // dot_f16_rows: each output bit-identical to dot_f16 of its row, for ragged lengths and strides.
  for (int64_t n : {1, 31, 32, 64, 77, 128, 200, 1000, 4200}) {  // 4200: longer than the SIMD rows' y buffer
    const int64_t count = 13, stride = n + 5;
    const auto xs = random_floats(count * stride, 300 + static_cast<uint32_t>(n));
    const auto ys = random_floats(n, 400 + static_cast<uint32_t>(n));
    std::vector<uint16_t> hx(xs.size()), hy(ys.size());
    ref.f32_to_f16(xs.data(), hx.data(), static_cast<int64_t>(xs.size()));
    ref.f32_to_f16(ys.data(), hy.data(), n);
    std::vector<float> out(static_cast<size_t>(count), -1.0f);
    k.dot_f16_rows(n, hx.data(), stride, F16Chunks{}, count, hy.data(), out.data());
    for (int64_t j = 0; j < count; ++j) EXPECT_EQ(out[j], ref.dot_f16(n, hx.data() + j * stride, hy.data())) << "n=" << n;
    // Rows interleaved in blocks (the value cache's layout): row j's chunk c at c * chunk + j * 32, a gap
    // after each block; every result equals dot_f16 of the row gathered into one piece. 13 and 75 rows: a
    // partial group of rows, and more rows than the SIMD versions' panel of 64.
    const int64_t n_chunks = (n + kF16Chunk - 1) / kF16Chunk;
    for (int64_t rows : {int64_t{13}, int64_t{75}}) {
      const auto xb = random_floats(rows * n, 350 + static_cast<uint32_t>(n));
      std::vector<uint16_t> hb(xb.size());
      ref.f32_to_f16(xb.data(), hb.data(), static_cast<int64_t>(xb.size()));
      const int64_t chunk = rows * kF16Chunk + 24;
      std::vector<uint16_t> blocked(static_cast<size_t>(n_chunks * chunk), uint16_t{0x7E00});  // gaps: f16 NaN
      for (int64_t j = 0; j < rows; ++j)
        for (int64_t i = 0; i < n; ++i)
          blocked[static_cast<size_t>((i / 32) * chunk + j * 32 + i % 32)] = hb[static_cast<size_t>(j * n + i)];
      std::vector<float> bout(static_cast<size_t>(rows), -1.0f);
      k.dot_f16_rows(n, blocked.data(), kF16Chunk, F16Chunks{chunk}, rows, hy.data(), bout.data());
      for (int64_t j = 0; j < rows; ++j)
        EXPECT_EQ(bout[j], ref.dot_f16(n, hb.data() + j * n, hy.data())) << "blocked rows, n=" << n << " j=" << j;
    }
    // Paged blocks (a paged value cache): logical chunk c of every row on physical page map[c], a random
    // permutation of more pages than the rows use (the rest NaN); a page holds a block of 32 positions for
    // rows + 2 rows and a gap, row j's chunk at page + (j + 1) * 32. 1 and 5 rows: fewer than the SIMD groups.
    for (int64_t rows : {int64_t{1}, int64_t{5}, int64_t{13}, int64_t{75}}) {
      const auto xb = random_floats(rows * n, 370 + static_cast<uint32_t>(n + rows));
      std::vector<uint16_t> hb(xb.size());
      ref.f32_to_f16(xb.data(), hb.data(), static_cast<int64_t>(xb.size()));
      const int64_t page = (rows + 2) * kF16Chunk + 8, n_pages = n_chunks + 3;
      const auto map = random_page_map(n_pages, n_chunks, 380 + static_cast<uint32_t>(n + rows));
      std::vector<uint16_t> pool(static_cast<size_t>(n_pages * page), uint16_t{0x7E00});  // unused: f16 NaN
      const int64_t base = kF16Chunk;  // row 0's chunk within a page
      for (int64_t j = 0; j < rows; ++j)
        for (int64_t i = 0; i < n; ++i)
          pool[static_cast<size_t>(map[static_cast<size_t>(i / 32)] * page + base + j * 32 + i % 32)] =
              hb[static_cast<size_t>(j * n + i)];
      std::vector<float> pout(static_cast<size_t>(rows), -1.0f);
      k.dot_f16_rows(n, pool.data() + base, kF16Chunk, F16Chunks{page, map.data()}, rows, hy.data(), pout.data());
      for (int64_t j = 0; j < rows; ++j)
        EXPECT_EQ(pout[j], ref.dot_f16(n, hb.data() + j * n, hy.data())) << "paged rows, n=" << n << " j=" << j;
    }
    // A map with chunks kF16Chunk apart (not plain rows): each row's own chunks permuted within the row.
    {
      const int64_t rows = 13, n_pages = n_chunks + 1, rstride = n_pages * kF16Chunk + 5;
      const auto map = random_page_map(n_pages, n_chunks, 390 + static_cast<uint32_t>(n));
      const auto xb = random_floats(rows * n, 395 + static_cast<uint32_t>(n));
      std::vector<uint16_t> hb(xb.size());
      ref.f32_to_f16(xb.data(), hb.data(), static_cast<int64_t>(xb.size()));
      std::vector<uint16_t> permuted(static_cast<size_t>(rows * rstride), uint16_t{0x7E00});
      for (int64_t j = 0; j < rows; ++j)
        for (int64_t i = 0; i < n; ++i)
          permuted[static_cast<size_t>(j * rstride + map[static_cast<size_t>(i / 32)] * kF16Chunk + i % 32)] =
              hb[static_cast<size_t>(j * n + i)];
      std::vector<float> pout(static_cast<size_t>(rows), -1.0f);
      k.dot_f16_rows(n, permuted.data(), rstride, F16Chunks{kF16Chunk, map.data()}, rows, hy.data(), pout.data());
      for (int64_t j = 0; j < rows; ++j)
        EXPECT_EQ(pout[j], ref.dot_f16(n, hb.data() + j * n, hy.data())) << "permuted rows, n=" << n << " j=" << j;
    }
  }
  // exp_sum_f32 and silu_mul_f32: within a few ulps of libm's exp; -inf (masked scores) gives exactly 0.
  for (int64_t n : {1, 7, 8, 9, 100, 1001}) {
    auto x = random_floats(n, 500 + static_cast<uint32_t>(n), 6.0f);
    if (n > 3) x[2] = -INFINITY;
    if (n > 5) x[4] = -200.0f;
    auto x1 = x, x2 = x;
    const float sub = *std::max_element(x.begin(), x.end()) - 3.0f;  // as softmax subtracts the max; up to e^3
    const double s1 = ref.exp_sum_f32(x1.data(), n, sub);
    const double s2 = k.exp_sum_f32(x2.data(), n, sub);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(x2[i], x1[i], 4e-7 * x1[i] + 1e-37) << "exp n=" << n << " i=" << i;
    if (n > 3) {
      EXPECT_EQ(x2[2], 0.0f);
    }
    EXPECT_NEAR(s2, s1, 4e-7 * s1);
    x = random_floats(n, 550 + static_cast<uint32_t>(n), 6.0f);  // silu of finite gates, large ones included
    if (n > 5) x[4] = -120.0f;
    const auto u = random_floats(n, 600 + static_cast<uint32_t>(n));
    std::vector<float> o1(static_cast<size_t>(n)), o2(static_cast<size_t>(n));
    ref.silu_mul_f32(x.data(), u.data(), o1.data(), n);
    k.silu_mul_f32(x.data(), u.data(), o2.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(o2[i], o1[i], 1e-6 * std::fabs(o1[i]) + 1e-30) << "silu n=" << n;
    // relu_sqr_mul_f32: exactly the scalar's, for negative, zero and positive gates, and in place.
    if (n > 6) x[6] = 0.0f;
    ref.relu_sqr_mul_f32(x.data(), u.data(), o1.data(), n);
    k.relu_sqr_mul_f32(x.data(), u.data(), o2.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(o2[i], o1[i]) << "relu_sqr n=" << n << " i=" << i;
    k.relu_sqr_mul_f32(x.data(), u.data(), x.data(), n);
    EXPECT_EQ(x, o1) << "relu_sqr in place, n=" << n;
  }
  // max_f32: exact, wherever the largest sits (each vector lane, the tail), all -inf, and n == 0.
  EXPECT_EQ(k.max_f32(nullptr, 0), -INFINITY);
  for (int64_t n : {1, 7, 8, 15, 16, 17, 31, 32, 33, 100, 1001}) {
    auto x = random_floats(n, 970 + static_cast<uint32_t>(n), 50.0f);
    for (int64_t at = 0; at < n; at += std::max<int64_t>(1, n / 9)) {
      auto y = x;
      y[static_cast<size_t>(at)] = 1000.0f + static_cast<float>(at);
      EXPECT_EQ(k.max_f32(y.data(), n), y[static_cast<size_t>(at)]) << "max n=" << n << " at=" << at;
    }
    EXPECT_EQ(k.max_f32(x.data(), n), ref.max_f32(x.data(), n)) << "max n=" << n;
    std::vector<float> ninf(static_cast<size_t>(n), -INFINITY);
    EXPECT_EQ(k.max_f32(ninf.data(), n), -INFINITY);
  }
  // softmax_f16r: probabilities on the f16 grid, each within one f16 step of the scalar one (exp may differ by
  // a few float ulps and so round to the neighbouring half), summing to ~1; the largest score gets the largest.
  for (int64_t n : {1, 7, 8, 9, 33, 100, 1001}) {
    const auto x = random_floats(n, 900 + static_cast<uint32_t>(n), 20.0f);
    auto p1 = x, p2 = x;
    ref.softmax_f16r(p1.data(), n, 0.125f);
    k.softmax_f16r(p2.data(), n, 0.125f);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_EQ(p2[i], fp16_to_fp32(fp32_to_fp16(p2[i]))) << "not on the f16 grid, n=" << n;
      EXPECT_NEAR(p2[i], p1[i], std::ldexp(std::fabs(p1[i]), -10) + 1e-7) << "softmax n=" << n << " i=" << i;
      sum += p2[i];
    }
    EXPECT_NEAR(sum, 1.0, 2e-3 + n * 1e-4) << "n=" << n;
    const auto imax = std::max_element(x.begin(), x.end()) - x.begin();
    EXPECT_EQ(*std::max_element(p2.begin(), p2.end()), p2[static_cast<size_t>(imax)]);
  }
  // rmsnorm_f32: the same as the scalar version up to the double sum's order (so to a float ulp or two).
  for (int64_t n : {1, 7, 8, 9, 64, 576, 1001}) {
    const auto x = random_floats(n, 950 + static_cast<uint32_t>(n), 3.0f);
    const auto w = random_floats(n, 960 + static_cast<uint32_t>(n));
    std::vector<float> y1(static_cast<size_t>(n)), y2 = y1;
    ref.rmsnorm_f32(x.data(), w.data(), y1.data(), n, 1e-5f);
    k.rmsnorm_f32(x.data(), w.data(), y2.data(), n, 1e-5f);
    double ss = 0;
    for (float v : x) ss += static_cast<double>(v) * v;
    const double scale = 1.0 / std::sqrt(ss / static_cast<double>(n) + 1e-5);
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_NEAR(y2[i], y1[i], 4e-7 * std::fabs(y1[i])) << "rmsnorm n=" << n << " i=" << i;
      EXPECT_NEAR(y2[i], x[i] * scale * w[i], 1e-6 * std::fabs(x[i] * scale * w[i]) + 1e-30);
    }
  }
  // gemm_f32_f16t: ragged m, n, k (k longer than one block of the SIMD versions), overwrite and accumulate.
  for (auto [m, n, kk] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {3, 7, 5}, {4, 8, 64}, {15, 37, 64},
                          {2, 40, 129}, {9, 16, 160}, {5, 64, 300}, {16, 9, 513}}) {
    const int64_t lda = kk + 3, ldb = kk + 11, ldc = n + 2;
    const auto a = random_floats(m * lda, 700 + static_cast<uint32_t>(kk));
    const auto bf = random_floats(n * ldb, 800 + static_cast<uint32_t>(kk));
    std::vector<uint16_t> b(bf.size());
    ref.f32_to_f16(bf.data(), b.data(), static_cast<int64_t>(bf.size()));
    // b also as rows interleaved in blocks (row j's chunk c at c * b_chunk + j * 32, a gap after each block).
    const int64_t b_chunk = n * kF16Chunk + 8, n_chunks = (kk + 31) / 32;
    std::vector<uint16_t> bb(static_cast<size_t>(n_chunks * b_chunk), uint16_t{0x7E00});  // gaps: f16 NaN
    for (int64_t j = 0; j < n; ++j)
      for (int64_t l = 0; l < kk; ++l) bb[static_cast<size_t>((l / 32) * b_chunk + j * 32 + l % 32)] = b[j * ldb + l];
    // And as paged blocks: logical chunk c on page map[c] (a random permutation of more pages than used), row j's
    // chunk at page + (j + 1) * 32.
    const int64_t page = (n + 2) * kF16Chunk + 8, n_pages = n_chunks + 2;
    const auto map = random_page_map(n_pages, n_chunks, 850 + static_cast<uint32_t>(kk + n));
    std::vector<uint16_t> pool(static_cast<size_t>(n_pages * page), uint16_t{0x7E00});
    for (int64_t j = 0; j < n; ++j)
      for (int64_t l = 0; l < kk; ++l)
        pool[static_cast<size_t>(map[static_cast<size_t>(l / 32)] * page + (j + 1) * 32 + l % 32)] = b[j * ldb + l];
    const char* layouts[] = {"plain", "blocked", "paged"};
    for (int layout : {0, 1, 2})
      for (bool acc : {false, true}) {
        const uint16_t* bp = layout == 0 ? b.data() : layout == 1 ? bb.data() : pool.data() + kF16Chunk;
        const int64_t ld = layout == 0 ? ldb : kF16Chunk;
        const F16Chunks ch = layout == 0 ? F16Chunks{} : layout == 1 ? F16Chunks{b_chunk} : F16Chunks{page, map.data()};
        std::vector<float> c1(static_cast<size_t>(m * ldc), 0.5f), c2 = c1;
        ref.gemm_f32_f16t(m, n, kk, a.data(), lda, bp, ld, ch, c1.data(), ldc, acc);
        k.gemm_f32_f16t(m, n, kk, a.data(), lda, bp, ld, ch, c2.data(), ldc, acc);
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) {
            double mag = acc ? 0.5 : 0.0, exact = acc ? 0.5 : 0.0;
            for (int64_t l = 0; l < kk; ++l) {
              mag += std::fabs(a[i * lda + l] * fp16_to_fp32(b[j * ldb + l]));
              exact += static_cast<double>(a[i * lda + l]) * fp16_to_fp32(b[j * ldb + l]);
            }
            ASSERT_NEAR(c1[i * ldc + j], exact, 4 * kk * FLT_EPSILON * mag + 1e-6) << "scalar, " << layouts[layout];
            ASSERT_NEAR(c2[i * ldc + j], c1[i * ldc + j], 4 * kk * FLT_EPSILON * mag + 1e-6)
                << isa_name(GetParam()) << " m=" << m << " n=" << n << " k=" << kk << " i=" << i << " j=" << j
                << " " << layouts[layout];
          }
        // Padding columns of c are not touched.
        for (int64_t i = 0; i < m; ++i) EXPECT_EQ(c2[i * ldc + n], 0.5f);
      }
  }
}

// Activation quantization on awkward blocks (all zero, tiny values whose d is subnormal in f16, huge values
// whose d overflows f16, one outlier) is byte-identical to the scalar quantizer, in every position of a
// row (the SIMD versions work on groups of blocks).
// The Q8_0 KV cache's two helpers: scores within the Q8_0 vec_dot's bound of the scalar reference (row groups of
// 8 and the rows left over), and the value sums bit-identical to the scalar version.
TEST_P(KernelIsa, Q8_0CacheRowsMatch) {
  const KernelTable& ref = table(Isa::scalar);
  const KernelTable& k = table(GetParam());
  uint32_t seed = 2100;
  for (int64_t n : {32, 64, 96, 128, 256}) {
    const size_t row = row_size(TensorType::Q8_0, n), stride = row + 6;  // rows not 4-byte aligned
    for (int64_t count : {1, 2, 7, 8, 9, 17, 50}) {
      std::vector<uint8_t> rows(stride * static_cast<size_t>(count), 0xAB), y(row);
      for (int64_t j = 0; j < count; ++j) {
        const auto x = random_floats(n, seed++, 2.0f);
        ref.for_type(TensorType::Q8_0).act.quantize(x.data(), rows.data() + static_cast<size_t>(j) * stride, n);
      }
      const auto yf = random_floats(n, seed++);
      ref.for_type(TensorType::Q8_0).act.quantize(yf.data(), y.data(), n);
      std::vector<float> out(static_cast<size_t>(count) + 1, -7.0f);
      k.dot_q8_0_rows(n, rows.data(), stride, count, y.data(), out.data());
      std::vector<float> want(static_cast<size_t>(count));
      ref.dot_q8_0_rows(n, rows.data(), stride, count, y.data(), want.data());
      for (int64_t j = 0; j < count; ++j) {
        std::vector<float> fx(static_cast<size_t>(n)), fy(static_cast<size_t>(n));
        dequantize_row(TensorType::Q8_0, rows.data() + static_cast<size_t>(j) * stride, fx.data(), n);
        dequantize_row(TensorType::Q8_0, y.data(), fy.data(), n);
        double mag = 0, exact = 0;
        for (int64_t i = 0; i < n; ++i) {
          mag += std::fabs(static_cast<double>(fx[i]) * fy[i]);
          exact += static_cast<double>(fx[i]) * fy[i];
        }
        const double tol = (static_cast<double>(n) / 32 + 16) * FLT_EPSILON * mag + 1e-6;  // as VecDot's
        EXPECT_NEAR(out[j], want[j], tol) << isa_name(GetParam()) << " n=" << n << " count=" << count << " row " << j;
        EXPECT_NEAR(want[j], exact, tol) << "scalar n=" << n << " row " << j;
      }
      EXPECT_EQ(out[static_cast<size_t>(count)], -7.0f) << "wrote past the last row";

      auto p = random_floats(count, seed++);
      for (auto& v : p) v = std::fabs(v) / static_cast<float>(count);  // probabilities-like weights
      const auto init = random_floats(n + 1, seed++);
      std::vector<float> a(init), b(init);
      ref.axpy_q8_0_rows(n, rows.data(), stride, count, p.data(), a.data());
      k.axpy_q8_0_rows(n, rows.data(), stride, count, p.data(), b.data());
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(b[i], a[i]) << isa_name(GetParam()) << " n=" << n << " count=" << count << " i=" << i;
      EXPECT_EQ(b[static_cast<size_t>(n)], init[static_cast<size_t>(n)]) << "wrote past n";
      // And the scalar version is the sum it claims to be (against double).
      for (int64_t i = 0; i < n; ++i) {
        double e = init[static_cast<size_t>(i)];
        for (int64_t j = 0; j < count; ++j) {
          const auto* blk = reinterpret_cast<const BlockQ8_0*>(rows.data() + static_cast<size_t>(j) * stride) + i / 32;
          e += static_cast<double>(p[j]) * fp16_to_fp32(blk->d) * blk->qs[i % 32];
        }
        EXPECT_NEAR(a[i], e, 1e-5 * (1 + std::fabs(e))) << "n=" << n << " i=" << i;
      }
    }
  }
}

TEST_P(KernelIsa, ActivationQuantizationOfEdgeBlocksIsExact) {
  const KernelTable& ref = table(Isa::scalar);
  const KernelTable& k = table(GetParam());
  const std::vector<float> specials = {0.0f, 1e-30f, 3e-7f, 1e7f, -2.5f};
  for (TensorType wt : {TensorType::Q4_0, TensorType::Q4_1, TensorType::Q8_0}) {
    const WeightKernels& kk = k.for_type(wt);
    for (int64_t nblk : {1, 4, 5, 9}) {
      for (int64_t where = 0; where < nblk; ++where) {
        for (float sp : specials) {
          const int64_t n = nblk * 32;
          auto x = random_floats(n, 77 + static_cast<uint32_t>(where), 1.0f);
          for (int j = 0; j < 32; ++j) x[where * 32 + j] = sp == -2.5f ? (j == 7 ? 1000.0f : 0.001f * j) : sp * (j % 3 - 1);
          std::vector<uint8_t> a(row_size(kk.act.type.value(), n)), a2 = a;
          ref.for_type(wt).act.quantize(x.data(), a.data(), n);
          kk.act.quantize(x.data(), a2.data(), n);
          ASSERT_EQ(a, a2) << type_name(wt) << " nblk=" << nblk << " block " << where << " special " << sp;
        }
      }
    }
  }
}

TEST_P(KernelIsa, ZeroBlocksGiveZero) {
  const KernelTable& k = table(GetParam());
  for (TensorType wt : kWeightTypes) {
    const WeightKernels& kk = k.for_type(wt);
    const int64_t n = 512;
    std::vector<float> zeros(n, 0.0f);
    const auto xa = random_floats(n, 5);
    std::vector<uint8_t> w(row_size(wt, n)), a(row_size(kk.act.type.value(), n));
    quantize_row(wt, zeros.data(), w.data(), n);
    kk.act.quantize(xa.data(), a.data(), n);
    EXPECT_EQ(kk.vec_dot(n, w.data(), a.data()), 0.0f) << type_name(wt);
  }
}

// Quantizes one activation row into the type's activation format and fills the per-block quant sums the
// packed kernels take.
void quantize_with_sums(const WeightKernels& kk, const std::vector<float>& x, uint8_t* act, int32_t* sums) {
  const int64_t n = static_cast<int64_t>(x.size());
  kk.act.quantize(x.data(), act, n);
  if (kk.act.type.value() == TensorType::Q8_K) return;  // its blocks carry their sums (bsums); the kernels take none
  const size_t bb = row_size(kk.act.type.value(), 32);
  const size_t qoff = kk.act.type.value() == TensorType::Q8_1 ? 4 : 2;  // the quants follow d (and s)
  for (int64_t b = 0; b < n / 32; ++b) {
    int sum = 0;
    for (int j = 0; j < 32; ++j) sum += static_cast<int8_t>(act[b * bb + qoff + j]);
    sums[b] = sum;
  }
}

// Sum over elements of the magnitudes of a Q4_K / Q5_K row's two terms (d * scale * q and dmin * min) times
// |a|: the scale of the cancellation the float sums see.
template <typename Block, bool kFifthBit>
double qk_min_terms(const uint8_t* row, const std::vector<float>& a, int64_t n) {
  const auto* x = reinterpret_cast<const Block*>(row);
  double mag = 0;
  for (int64_t i = 0; i < n; ++i) {
    const Block& b = x[i / QK_K];
    const int64_t e = i % QK_K, j = e / 32;
    uint8_t sc, m;
    get_scale_min_k4(static_cast<int>(j), b.scales, &sc, &m);
    const uint8_t byte = b.qs[32 * (j / 2) + e % 32];
    int q = j % 2 == 0 ? (byte & 0xF) : (byte >> 4);
    if constexpr (kFifthBit) q |= ((b.qh[e % 32] >> j) & 1) << 4;
    mag += (fp16_to_fp32(b.d) * sc * q + fp16_to_fp32(b.dmin) * m) * std::fabs(a[static_cast<size_t>(i)]);
  }
  return mag;
}
// The magnitude a K-quant row's float sum against an activation row is bounded by: Q4_K / Q5_K the two
// terms above (they may cancel), Q6_K (one term) sum |w_i a_i|.
double k_quant_term_magnitude(TensorType wt, const uint8_t* row, TensorType act_type, const uint8_t* act, int64_t n) {
  std::vector<float> a(static_cast<size_t>(n));
  dequantize_row(act_type, act, a.data(), n);
  if (wt == TensorType::Q4_K) return qk_min_terms<BlockQ4_K, false>(row, a, n);
  if (wt == TensorType::Q5_K) return qk_min_terms<BlockQ5_K, true>(row, a, n);
  std::vector<float> w(static_cast<size_t>(n));
  dequantize_row(wt, row, w.data(), n);
  double mag = 0;
  for (int64_t i = 0; i < n; ++i) mag += std::fabs(static_cast<double>(w[i]) * a[i]);
  return mag;
}

TEST_P(KernelIsa, PackedGemmMatchesPerRowDotProducts) {
  const KernelTable& ref = table(Isa::scalar);
  const KernelTable& k = table(GetParam());
  uint32_t seed = 1000;
  for (TensorType wt : {TensorType::Q4_0, TensorType::Q4_1, TensorType::Q8_0, TensorType::Q4_K, TensorType::Q5_K,
                        TensorType::Q6_K}) {
    const WeightKernels& kk = k.for_type(wt);
    const bool k_quant = wt == TensorType::Q4_K || wt == TensorType::Q5_K || wt == TensorType::Q6_K;
    ASSERT_NE(kk.gemm_packed, nullptr) << type_name(wt);
    for (int64_t nblk : k_quant ? std::vector<int64_t>{1, 2, 3, 5} : std::vector<int64_t>{1, 2, 3, 18, 48}) {
      const int64_t n = nblk * (k_quant ? QK_K : 32);
      const size_t rb = row_size(wt, n);
      std::vector<uint8_t> rows(rb * kPackRows);
      for (int r = 0; r < kPackRows; ++r) {
        const auto x = random_floats(n, seed++, 0.05f);
        quantize_row(wt, x.data(), rows.data() + r * rb, n);
      }
      std::vector<uint8_t> group(kk.packed_group_bytes(n));
      kk.pack_rows(rows.data(), rb, n, group.data());
      const size_t ab = row_size(kk.act.type.value(), n);
      for (int nt = 1; nt <= 4; ++nt) {
        std::vector<uint8_t> act(ab * nt);
        std::vector<int32_t> sums(static_cast<size_t>(nt * nblk));
        for (int t = 0; t < nt; ++t) quantize_with_sums(kk, random_floats(n, seed++), act.data() + t * ab, sums.data() + t * nblk);
        const int64_t ldy = 11;
        std::vector<float> y(static_cast<size_t>(ldy * nt + kPackRows), -1.0f);
        kk.gemm_packed(n, group.data(), act.data(), ab, sums.data(), nt, y.data(), ldy);
        for (int t = 0; t < nt; ++t) {
          for (int r = 0; r < kPackRows; ++r) {
            const float want = ref.for_type(wt).vec_dot(n, rows.data() + r * rb, act.data() + t * ab);
            double tol = (nblk + 16) * FLT_EPSILON * (std::fabs(want) + 1.0);
            if (k_quant) tol = (nblk + 16) * FLT_EPSILON * (k_quant_term_magnitude(wt, rows.data() + r * rb, kk.act.type.value(),
                                                                                   act.data() + t * ab, n) + 1.0);
            ASSERT_NEAR(y[t * ldy + r], want, tol) << isa_name(GetParam()) << " " << type_name(wt) << " n=" << n
                                                   << " nt=" << nt << " t=" << t << " r=" << r;
          }
        }
      }
    }
  }
}

// The two-group multiply (16 rows, up to kPacked2MaxTokens tokens): bit-identical to the same table's
// one-group multiply on each group, and close to the scalar per-row dot products.
TEST_P(KernelIsa, Packed2GemmEqualsOneGroupAtATime) {
  const KernelTable& ref = table(Isa::scalar);
  const KernelTable& k = table(GetParam());
  uint32_t seed = 5000;
  int tested = 0;
  for (TensorType wt : {TensorType::Q4_0, TensorType::Q4_1, TensorType::Q8_0, TensorType::Q4_K, TensorType::Q5_K,
                        TensorType::Q6_K}) {
    const WeightKernels& kk = k.for_type(wt);
    if (GetParam() == Isa::avx512) {
      ASSERT_NE(kk.gemm_packed2, nullptr) << type_name(wt);
    }
    if (!kk.gemm_packed2) continue;
    ++tested;
    const bool k_quant = wt == TensorType::Q4_K || wt == TensorType::Q5_K || wt == TensorType::Q6_K;
    for (int64_t nblk : k_quant ? std::vector<int64_t>{1, 2, 5} : std::vector<int64_t>{1, 2, 5, 18, 48}) {
      const int64_t n = nblk * (k_quant ? QK_K : 32);
      const size_t rb = row_size(wt, n);
      std::vector<uint8_t> rows(rb * 2 * kPackRows);
      for (int r = 0; r < 2 * kPackRows; ++r) {
        const auto x = random_floats(n, seed++, 0.05f);
        quantize_row(wt, x.data(), rows.data() + r * rb, n);
      }
      // Two groups with a gap between them (the kernel must use group_bytes, not assume adjacency).
      const size_t gsize = kk.packed_group_bytes(n), gb = gsize + 64;
      std::vector<uint8_t> groups(gb + gsize, 0xAB);
      kk.pack_rows(rows.data(), rb, n, groups.data());
      kk.pack_rows(rows.data() + kPackRows * rb, rb, n, groups.data() + gb);
      const size_t ab = row_size(kk.act.type.value(), n);
      for (int nt = 1; nt <= kPacked2MaxTokens; ++nt) {
        std::vector<uint8_t> act(ab * nt);
        std::vector<int32_t> sums(static_cast<size_t>(nt * nblk));
        for (int t = 0; t < nt; ++t) quantize_with_sums(kk, random_floats(n, seed++), act.data() + t * ab, sums.data() + t * nblk);
        const int64_t ldy = 2 * kPackRows + 3;
        std::vector<float> y2(static_cast<size_t>(ldy * nt), -1.0f), y1 = y2;
        kk.gemm_packed2(n, groups.data(), gb, act.data(), ab, sums.data(), nt, y2.data(), ldy);
        for (int t0 = 0; t0 < nt; t0 += 4) {
          const int m = std::min(4, nt - t0);
          for (int g = 0; g < 2; ++g)
            kk.gemm_packed(n, groups.data() + g * gb, act.data() + t0 * ab, ab, sums.data() + t0 * nblk, m,
                           y1.data() + t0 * ldy + g * kPackRows, ldy);
        }
        for (int t = 0; t < nt; ++t) {
          for (int r = 0; r < 2 * kPackRows; ++r) {
            ASSERT_EQ(y2[t * ldy + r], y1[t * ldy + r]) << isa_name(GetParam()) << " " << type_name(wt) << " n=" << n
                                                         << " nt=" << nt << " t=" << t << " r=" << r;
            const float want = ref.for_type(wt).vec_dot(n, rows.data() + r * rb, act.data() + t * ab);
            double tol = (nblk + 16) * FLT_EPSILON * (std::fabs(want) + 1.0);
            if (k_quant) tol = (nblk + 16) * FLT_EPSILON * (k_quant_term_magnitude(wt, rows.data() + r * rb, kk.act.type.value(),
                                                                                   act.data() + t * ab, n) + 1.0);
            ASSERT_NEAR(y2[t * ldy + r], want, tol);
          }
          EXPECT_EQ(y2[t * ldy + 2 * kPackRows], -1.0f);  // nothing written past the 16 rows
        }
      }
    }
  }
  if (GetParam() == Isa::avx512) {
    EXPECT_EQ(tested, 6);
  }
}

TS_INSTANTIATE_FOR_ISAS(KernelIsa);

TEST(KernelSelection, IsaNamesRoundTripAndUnavailableIsaIsAnError) {
  // Printed for scripts/test-arm.sh, which checks that qemu's CPU models reach the expected variants.
  for (Isa i : available_isas()) std::printf("kernel table: %s [%s]\n", isa_name(i), table(i).features);
  for (Isa i : {Isa::scalar, Isa::avx2, Isa::avx512, Isa::neon}) EXPECT_EQ(isa_from_name(isa_name(i)), i);
  EXPECT_FALSE(isa_from_name("sse9").has_value());
  EXPECT_TRUE(isa_available(Isa::scalar));
#if defined(TS_HAVE_X86)
  EXPECT_FALSE(isa_available(Isa::neon));
  EXPECT_THROW(select_isa(Isa::neon), tokenscope::Error);
#endif
#if defined(TS_HAVE_ARM)
  EXPECT_FALSE(isa_available(Isa::avx2));
  EXPECT_FALSE(isa_available(Isa::avx512));
  EXPECT_THROW(select_isa(Isa::avx2), tokenscope::Error);
#endif
  const Isa before = active_isa();
  select_isa(Isa::scalar);
  EXPECT_EQ(active().isa, Isa::scalar);
  select_isa(before);
}

}  // namespace
