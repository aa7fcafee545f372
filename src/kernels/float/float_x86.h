// The float family's 256-bit x86 kernels, shared by float_avx2.cpp and float_avx512.cpp (AVX-512 uses these
// where it has no 512-bit version). Include only from those two files.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "base/fp16.h"
#include "formats/blocks.h"
#include "formats/quant_ref.h"
#include "kernels/kernels_internal.h"
#include "kernels/simd/x86.h"

namespace tokenscope::kernels::x86 {
// Internal linkage: each including file (compiled with different -m flags) keeps its own copies, so the
// linker can never hand the AVX2 table a function compiled for AVX-512.
namespace {

// Prefetches rows r0..r1-1 of n f16 values, `stride` apart (one prefetch per cache line): attention's rows
// are short and far apart in the KV cache, where the hardware prefetchers miss them.
inline void prefetch_f16_rows(const uint16_t* x, int64_t stride, int64_t n, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t i = 0; i < n; i += 32) _mm_prefetch(reinterpret_cast<const char*>(x + r * stride + i), _MM_HINT_T0);
}

// f16 x f16 dot product with f32 FMAs in a fixed order: four 8-lane accumulators over chunks of 32,
// folded as (a0 + a2) + (a1 + a3), lanes reduced with horizontal adds; the tail (n % 32) is added in
// double. The scalar reference in float_scalar.cpp follows the same order, so the two agree exactly
// (and so does llama.cpp's AVX2 F16 dot, which has this structure).
// x in chunks of 32 elements placed as `chunks` says (kernels.h, F16Chunks); F16Chunks{} is a plain row.
inline float dot_f16_chunked(int64_t n, const uint16_t* x, F16Chunks chunks, const uint16_t* y) {
  const int64_t n32 = n & ~int64_t{31};
  double sum = 0.0;
  if (n32 > 0) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t i = 0; i < n32; i += 32) {
      const uint16_t* xc = detail::f16_chunk_at(x, chunks, i);
      for (int r = 0; r < 4; ++r) acc[r] = _mm256_fmadd_ps(load_f16x8(xc + 8 * r), load_f16x8(y + i + 8 * r), acc[r]);
    }
    const __m256 v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
    const __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 t1 = _mm_hadd_ps(t0, t0);
    sum = _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
  }
  // The tail in order, in double (not a zero-padded copy read back as vectors: that stalls on store
  // forwarding). Callers with long rows avoid the tail: see ops::kAttnPad.
  return detail::dot_f16_finish(sum, detail::f16_tail_at(x, chunks, n32, n), y, n32, n);
}

inline float dot_f16_f16(int64_t n, const void* w, const void* a) {
  return dot_f16_chunked(n, static_cast<const uint16_t*>(w), F16Chunks{}, static_cast<const uint16_t*>(a));
}

// Many rows against one y: y is converted to f32 once (on the stack, up to kDotRowsMax elements), rows go
// four at a time and their final reductions share the horizontal adds. Each row's sum uses dot_f16_f16's
// accumulators, order and reduction tree, so every result is bit-identical to it.
// One chunk of 32 elements of 4 rows (row q at xg + q * stride) into their accumulators acc[4 * q + r].
inline void f16_rows_chunk4(const uint16_t* xg, int64_t stride, const __m256* yv, __m256* acc) {
  for (int r = 0; r < 4; ++r)
    for (int q = 0; q < 4; ++q) acc[4 * q + r] = _mm256_fmadd_ps(load_f16x8(xg + q * stride + 8 * r), yv[r], acc[4 * q + r]);
}

// Rows j..j+3's results from their accumulators, the tails added if n > n32.
inline void f16_rows_finish4(const __m256* acc, const uint16_t* x, int64_t stride, F16Chunks chunks, int64_t j,
                             const uint16_t* y, int64_t n32, int64_t n, float* out) {
  __m128 t0[4];
  for (int q = 0; q < 4; ++q) {
    const __m256 v = _mm256_add_ps(_mm256_add_ps(acc[4 * q], acc[4 * q + 2]), _mm256_add_ps(acc[4 * q + 1], acc[4 * q + 3]));
    t0[q] = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  }
  // hadd(t0, t0) then hadd again gives (t0[0] + t0[1]) + (t0[2] + t0[3]) per row; two rows per hadd here.
  const __m128 h = _mm_hadd_ps(_mm_hadd_ps(t0[0], t0[1]), _mm_hadd_ps(t0[2], t0[3]));
  alignas(16) float sums[4];
  _mm_store_ps(sums, h);
  for (int q = 0; q < 4; ++q)
    out[j + q] =
        detail::dot_f16_finish(sums[q], detail::f16_tail_at(x + (j + q) * stride, chunks, n32, n), y, n32, n);
}

inline void dot_f16_rows(int64_t n, const uint16_t* x, int64_t stride, F16Chunks chunks, int64_t count,
                         const uint16_t* y, float* out) {
  constexpr int64_t kDotRowsMax = 4096;
  const int64_t n32 = n & ~int64_t{31};
  if (n32 == 0 || count < 4) {
    for (int64_t j = 0; j < count; ++j) out[j] = dot_f16_chunked(n, x + j * stride, chunks, y);
    return;
  }
  // Longer rows convert y once per four rows instead (the same values: the f16 -> f32 conversion is exact).
  const bool buffered = n32 <= kDotRowsMax;
  alignas(32) float yf[kDotRowsMax];
  if (buffered)
    for (int64_t i = 0; i < n32; i += 8) _mm256_store_ps(yf + i, load_f16x8(y + i));
  auto y_chunk = [&](int64_t i, __m256* yv) {
    for (int r = 0; r < 4; ++r) yv[r] = buffered ? _mm256_load_ps(yf + i + 8 * r) : load_f16x8(y + i + 8 * r);
  };
  int64_t j = 0;
  if (!detail::f16_plain(chunks)) {
    // Rows in chunks (the value cache's blocks, a paged cache's pages): the chunks walked in turn, each for all
    // rows of a panel of up to 64, the accumulators kept in L1 from one chunk to the next (as in the AVX-512
    // version).
    constexpr int64_t kPanelGroups = 16;
    __m256 accs[kPanelGroups][16];
    while (j + 4 <= count) {
      const int64_t groups = std::min<int64_t>(kPanelGroups, (count - j) / 4);
      for (int64_t g = 0; g < groups; ++g)
        for (int q = 0; q < 16; ++q) accs[g][q] = _mm256_setzero_ps();
      for (int64_t i = 0; i < n32; i += 32) {
        __m256 yv[4];
        y_chunk(i, yv);
        const uint16_t* xc = detail::f16_chunk_at(x + j * stride, chunks, i);
        for (int64_t g = 0; g < groups; ++g) f16_rows_chunk4(xc + 4 * g * stride, stride, yv, accs[g]);
      }
      for (int64_t g = 0; g < groups; ++g) f16_rows_finish4(accs[g], x, stride, chunks, j + 4 * g, y, n32, n, out);
      j += 4 * groups;
    }
  } else {
    for (; j + 4 <= count; j += 4) {
      __m256 acc[16];
      for (auto& a : acc) a = _mm256_setzero_ps();
      if (j + 12 <= count) prefetch_f16_rows(x, stride, n, j + 8, j + 12);  // the rows two groups ahead (plain rows)
      for (int64_t i = 0; i < n32; i += 32) {
        __m256 yv[4];
        y_chunk(i, yv);
        f16_rows_chunk4(x + j * stride + i, stride, yv, acc);  // plain rows: chunk i / 32 at i
      }
      f16_rows_finish4(acc, x, stride, chunks, j, y, n32, n, out);
    }
  }
  for (; j < count; ++j) out[j] = dot_f16_chunked(n, x + j * stride, chunks, y);
}

// exp on 8 floats: x = k * ln2 + r with |r| <= ln2 / 2, exp(r) by a degree-6 polynomial, 2^k through the
// exponent bits. Inputs below -87.3 give 0 (exp would be subnormal), above 88.7 give +inf.
inline __m256 exp8(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.7228f), lo = _mm256_set1_ps(-87.3365f);
  const __m256 too_small = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  const __m256 too_big = _mm256_cmp_ps(x, hi, _CMP_GT_OQ);
  const __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  const __m256 k = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693145752f), xc);  // ln2 split in a high and a low part
  r = _mm256_fnmadd_ps(k, _mm256_set1_ps(1.42860677e-6f), r);
  __m256 p = _mm256_set1_ps(1.0f / 720);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  // 2^k in two halves (k up to 128 would overflow the exponent field in one step).
  const __m256i ki = _mm256_cvtps_epi32(k);
  const __m256i k1 = _mm256_srai_epi32(ki, 1), k2 = _mm256_sub_epi32(ki, k1);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, _mm256_set1_epi32(127)), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, _mm256_set1_epi32(127)), 23));
  __m256 res = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
  res = _mm256_blendv_ps(res, _mm256_setzero_ps(), too_small);
  return _mm256_blendv_ps(res, _mm256_set1_ps(INFINITY), too_big);
}

inline double exp_sum_f32(float* x, int64_t n, float sub) {
  const __m256 vs = _mm256_set1_ps(sub);
  __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vs));
    _mm256_storeu_ps(x + i, e);
    acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  if (i < n) {
    alignas(32) float t[8] = {};
    const int64_t rest = n - i;
    std::memcpy(t, x + i, static_cast<size_t>(rest) * 4);
    _mm256_store_ps(t, exp8(_mm256_sub_ps(_mm256_load_ps(t), vs)));
    std::memcpy(x + i, t, static_cast<size_t>(rest) * 4);
    for (int64_t j = 0; j < rest; ++j) acc0 = _mm256_add_pd(acc0, _mm256_set_pd(0, 0, 0, t[j]));
  }
  alignas(32) double d[4];
  _mm256_store_pd(d, _mm256_add_pd(acc0, acc1));
  return (d[0] + d[1]) + (d[2] + d[3]);
}

inline float max_f32(const float* x, int64_t n) {
  __m256 v0 = _mm256_set1_ps(-INFINITY), v1 = v0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    v0 = _mm256_max_ps(v0, _mm256_loadu_ps(x + i));
    v1 = _mm256_max_ps(v1, _mm256_loadu_ps(x + i + 8));
  }
  alignas(32) float m8[8];
  _mm256_store_ps(m8, _mm256_max_ps(v0, v1));
  float mx = -INFINITY;
  for (float v : m8) mx = std::max(mx, v);
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  return mx;
}

inline void softmax_f16r(float* x, int64_t n, float scale) {
  const __m256 vs = _mm256_set1_ps(scale);
  __m256 vmx = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), vs);
    _mm256_storeu_ps(x + i, v);
    vmx = _mm256_max_ps(vmx, v);
  }
  alignas(32) float m8[8];
  _mm256_store_ps(m8, vmx);
  float mx = -INFINITY;
  for (float v : m8) mx = std::max(mx, v);
  for (; i < n; ++i) {
    x[i] *= scale;
    mx = std::max(mx, x[i]);
  }
  const __m256 inv = _mm256_set1_ps(static_cast<float>(1.0 / exp_sum_f32(x, n, mx)));
  for (i = 0; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_mul_ps(_mm256_loadu_ps(x + i), inv), _MM_FROUND_TO_NEAREST_INT);
    _mm256_storeu_ps(x + i, _mm256_cvtph_ps(h));
  }
  const float inv1 = _mm256_cvtss_f32(inv);
  for (; i < n; ++i) x[i] = fp16_to_fp32(fp32_to_fp16(x[i] * inv1));
}

inline void rmsnorm_f32(const float* x, const float* w, float* y, int64_t n, float eps) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 sq = _mm256_mul_ps(v, v);
    a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
    a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(sq, 1)));
  }
  alignas(32) double d[4];
  _mm256_store_pd(d, _mm256_add_pd(a0, a1));
  double sum = (d[0] + d[1]) + (d[2] + d[3]);
  for (; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float scale = 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(n)) + eps);
  const __m256 vs = _mm256_set1_ps(scale);
  for (i = 0; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), _mm256_loadu_ps(w + i)));
  for (; i < n; ++i) y[i] = (x[i] * scale) * w[i];
}

inline void silu_mul_f32(const float* g, const float* u, float* out, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 vg = _mm256_loadu_ps(g + i);
    const __m256 e = exp8(_mm256_xor_ps(vg, sign));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(vg, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
  }
  for (; i < n; ++i) out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

inline void relu_sqr_mul_f32(const float* g, const float* u, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 r = _mm256_max_ps(_mm256_loadu_ps(g + i), _mm256_setzero_ps());
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(r, r), _mm256_loadu_ps(u + i)));
  }
  for (; i < n; ++i) {
    const float r = g[i] > 0.0f ? g[i] : 0.0f;
    out[i] = r * r * u[i];
  }
}

// 8 x 8 transpose of f32 rows r[0..7] in place (row j becomes column j).
inline void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// Converts b rows 0..nj-1 (nj <= kNb, row j at b + j * ldb, in chunks placed as b_chunks says) over
// l0 <= l < l0 + kl (l0 a multiple of 32) from f16 and transposes them into bt[l - l0][kNb], columns past nj
// zero: 8 x 8 transposes for full groups of 8 rows (8 values of l never straddle a chunk), a scalar gather
// for the rest. Chunk addresses are found once per chunk; every row shares the chunk's offset.
template <int64_t kNb>
inline void pack_f16t_panel(const uint16_t* b, int64_t ldb, F16Chunks b_chunks, int64_t l0, int64_t nj, int64_t kl,
                            float* bt) {
  for (int64_t jh = 0; jh < kNb; jh += 8) {  // columns jh .. jh + 7 of the panel
    const int64_t nh = std::max<int64_t>(0, std::min<int64_t>(8, nj - jh));
    for (int64_t lc = 0; lc < kl; lc += kF16Chunk) {
      const uint16_t* src = detail::f16_chunk_at(b + jh * ldb, b_chunks, l0 + lc);  // row jh + jj at + jj * ldb
      const int64_t le = std::min(kF16Chunk, kl - lc);
      float* dst = bt + lc * kNb + jh;
      int64_t l = 0;
      if (nh == 8) {
        for (; l + 8 <= le; l += 8) {
          __m256 r[8];
          for (int jj = 0; jj < 8; ++jj) r[jj] = load_f16x8(src + jj * ldb + l);
          transpose8(r);
          for (int q = 0; q < 8; ++q) _mm256_store_ps(dst + (l + q) * kNb, r[q]);
        }
      }
      for (; l < le; ++l)
        for (int64_t jj = 0; jj < 8; ++jj) dst[l * kNb + jj] = jj < nh ? fp16_to_fp32(src[jj * ldb + l]) : 0.0f;
    }
  }
}

// c (+)= a x b^T with b in f16: blocks of 16 b rows are converted and transposed into bt[l][16] (for up to
// kKc values of l at a time), then each a row broadcasts its values against bt: 8 outputs per FMA, no
// horizontal sums. The micro-kernel takes 4 a rows x 16 columns (8 accumulators): 6 loads per 8 FMAs.
inline void gemm_f32_f16t(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const uint16_t* b, int64_t ldb,
                          F16Chunks b_chunks, float* c, int64_t ldc, bool accumulate) {
  constexpr int64_t kKc = 128, kNb = 16;  // kKc: a multiple of 32, so each k block starts a chunk
  alignas(32) float bt[kKc * kNb];
  for (int64_t j0 = 0; j0 < n; j0 += kNb) {
    const int64_t nj = std::min<int64_t>(kNb, n - j0);
    for (int64_t l0 = 0; l0 < k; l0 += kKc) {
      const int64_t kl = std::min(kKc, k - l0);
      pack_f16t_panel<kNb>(b + j0 * ldb, ldb, b_chunks, l0, nj, kl, bt);
      const bool add = accumulate || l0 > 0;
      auto finish = [&](int64_t i, __m256 lo, __m256 hi) {
        float* ci = c + i * ldc + j0;
        if (nj == kNb) {
          _mm256_storeu_ps(ci, add ? _mm256_add_ps(lo, _mm256_loadu_ps(ci)) : lo);
          _mm256_storeu_ps(ci + 8, add ? _mm256_add_ps(hi, _mm256_loadu_ps(ci + 8)) : hi);
        } else {
          alignas(32) float t[kNb];
          _mm256_store_ps(t, lo);
          _mm256_store_ps(t + 8, hi);
          for (int64_t jj = 0; jj < nj; ++jj) ci[jj] = add ? ci[jj] + t[jj] : t[jj];
        }
      };
      int64_t i = 0;
      for (; i + 4 <= m; i += 4) {
        const float* a0 = a + i * lda + l0;
        __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(),
               c11 = _mm256_setzero_ps(), c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(),
               c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
        for (int64_t q = 0; q < kl; ++q) {
          const __m256 b0 = _mm256_load_ps(bt + q * kNb), b1 = _mm256_load_ps(bt + q * kNb + 8);
          __m256 av = _mm256_broadcast_ss(a0 + q);
          c00 = _mm256_fmadd_ps(av, b0, c00);
          c01 = _mm256_fmadd_ps(av, b1, c01);
          av = _mm256_broadcast_ss(a0 + lda + q);
          c10 = _mm256_fmadd_ps(av, b0, c10);
          c11 = _mm256_fmadd_ps(av, b1, c11);
          av = _mm256_broadcast_ss(a0 + 2 * lda + q);
          c20 = _mm256_fmadd_ps(av, b0, c20);
          c21 = _mm256_fmadd_ps(av, b1, c21);
          av = _mm256_broadcast_ss(a0 + 3 * lda + q);
          c30 = _mm256_fmadd_ps(av, b0, c30);
          c31 = _mm256_fmadd_ps(av, b1, c31);
        }
        finish(i, c00, c01);
        finish(i + 1, c10, c11);
        finish(i + 2, c20, c21);
        finish(i + 3, c30, c31);
      }
      for (; i < m; ++i) {
        const float* ai = a + i * lda + l0;
        __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
        for (int64_t q = 0; q < kl; ++q) {
          const __m256 av = _mm256_broadcast_ss(ai + q);
          lo = _mm256_fmadd_ps(av, _mm256_load_ps(bt + q * kNb), lo);
          hi = _mm256_fmadd_ps(av, _mm256_load_ps(bt + q * kNb + 8), hi);
        }
        finish(i, lo, hi);
      }
    }
  }
}

// Four accumulators: with two, the FMA latency capped one thread at 16 bytes per cycle, below what one core
// reads from memory (sysinfo measures the read bandwidth with this kernel).
inline float dot_f32_plain(int64_t n, const float* x, const float* y) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int r = 0; r < 4; ++r) acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8 * r), _mm256_loadu_ps(y + i + 8 * r), acc[r]);
  for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc[0]);
  float s = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) s += x[i] * y[i];
  return s;
}

inline float dot_f32_f32(int64_t n, const void* w, const void* a) {
  return dot_f32_plain(n, static_cast<const float*>(w), static_cast<const float*>(a));
}

inline float dot_f16_pair(int64_t n, const uint16_t* a, const uint16_t* b) { return dot_f16_f16(n, a, b); }

// bf16 -> f32 is the 16 bits moved to the top of the word (exact).
inline __m256 load_bf16x8(const uint16_t* p) {
  return _mm256_castsi256_ps(
      _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
}

// BF16 weights x BF16 activations: each product of two bf16 values is exact in f32, summed with FMAs into four
// 8-lane accumulators (the scalar reference sums in double; the difference is the f32 sum's rounding).
inline float dot_bf16_bf16(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int r = 0; r < 4; ++r) acc[r] = _mm256_fmadd_ps(load_bf16x8(x + i + 8 * r), load_bf16x8(y + i + 8 * r), acc[r]);
  for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(load_bf16x8(x + i), load_bf16x8(y + i), acc[0]);
  float s = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) s += bf16_to_fp32(x[i]) * bf16_to_fp32(y[i]);
  return s;
}

inline void axpy_f16(int64_t n, float alpha, const uint16_t* x, float* y) {
  const __m256 va = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, load_f16x8(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += alpha * fp16_to_fp32(x[i]);
}

inline void f32_to_f16(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}

inline void f16_to_f32(const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, load_f16x8(x + i));
  for (; i < n; ++i) y[i] = fp16_to_fp32(x[i]);
}

// The float helpers are the same on AVX2 and AVX-512 (256-bit F16C / FMA).
template <typename Table>
void set_float_helpers(Table& t) {
  t.dot_f32 = dot_f32_plain;
  t.dot_f16 = dot_f16_pair;
  t.axpy_f16 = axpy_f16;
  t.f32_to_f16 = f32_to_f16;
  t.f16_to_f32 = f16_to_f32;
  t.dot_f16_rows = dot_f16_rows;
  t.exp_sum_f32 = exp_sum_f32;
  t.silu_mul_f32 = silu_mul_f32;
  t.relu_sqr_mul_f32 = relu_sqr_mul_f32;
  t.softmax_f16r = softmax_f16r;
  t.max_f32 = max_f32;
  t.rmsnorm_f32 = rmsnorm_f32;
  t.gemm_f32_f16t = gemm_f32_f16t;
}

}  // namespace
}  // namespace tokenscope::kernels::x86
