// The block32 family's 256-bit x86 kernels, shared by block32_avx2.cpp and block32_avx512.cpp, instantiated with
// kVnni false (AVX2: maddubs + madd) or true (AVX-512 VNNI on 256-bit registers: vpdpbusd). Include only from
// those two files.
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
#include "kernels/block32/block32.h"
#include "kernels/simd/x86.h"

namespace tokenscope::kernels::x86 {
// Internal linkage: each including file (compiled with different -m flags) keeps its own copies, so the
// linker can never hand the AVX2 table a function compiled for AVX-512.
namespace {

// 32 nibbles of a Q4 block in element order: low nibbles (elements 0..15) then high nibbles (16..31).
inline __m256i unpack_nibbles(const uint8_t* qs) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

template <bool kVnni>
float dot_q4_0_q8_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  const int64_t nb = n / QK4_0;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 1 < nb; i += 2) {
    const __m256i qx0 = _mm256_sub_epi8(unpack_nibbles(x[i].qs), _mm256_set1_epi8(8));
    const __m256i qx1 = _mm256_sub_epi8(unpack_nibbles(x[i + 1].qs), _mm256_set1_epi8(8));
    const __m256i qy0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    const __m256i qy1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i + 1].qs));
    const __m256 s0 = _mm256_cvtepi32_ps(dot_s8s8<kVnni>(_mm256_setzero_si256(), qx0, qy0));
    const __m256 s1 = _mm256_cvtepi32_ps(dot_s8s8<kVnni>(_mm256_setzero_si256(), qx1, qy1));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d)), s0, acc0);
    acc1 = _mm256_fmadd_ps(_mm256_set1_ps(fp16_to_fp32(x[i + 1].d) * fp16_to_fp32(y[i + 1].d)), s1, acc1);
  }
  for (; i < nb; ++i) {
    const __m256i qx = _mm256_sub_epi8(unpack_nibbles(x[i].qs), _mm256_set1_epi8(8));
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    const __m256 s = _mm256_cvtepi32_ps(dot_s8s8<kVnni>(_mm256_setzero_si256(), qx, qy));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d)), s, acc0);
  }
  return hsum(_mm256_add_ps(acc0, acc1));
}

template <bool kVnni>
float dot_q4_1_q8_1(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_1*>(w);
  const auto* y = static_cast<const BlockQ8_1*>(a);
  const int64_t nb = n / QK4_1;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  float summ = 0;
  int64_t i = 0;
  for (; i + 1 < nb; i += 2) {
    const __m256i qy0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    const __m256i qy1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i + 1].qs));
    const __m256 s0 = _mm256_cvtepi32_ps(dot_u8s8<kVnni>(_mm256_setzero_si256(), unpack_nibbles(x[i].qs), qy0));
    const __m256 s1 = _mm256_cvtepi32_ps(dot_u8s8<kVnni>(_mm256_setzero_si256(), unpack_nibbles(x[i + 1].qs), qy1));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d)), s0, acc0);
    acc1 = _mm256_fmadd_ps(_mm256_set1_ps(fp16_to_fp32(x[i + 1].d) * fp16_to_fp32(y[i + 1].d)), s1, acc1);
    summ += fp16_to_fp32(x[i].m) * fp16_to_fp32(y[i].s) + fp16_to_fp32(x[i + 1].m) * fp16_to_fp32(y[i + 1].s);
  }
  for (; i < nb; ++i) {
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    const __m256 s = _mm256_cvtepi32_ps(dot_u8s8<kVnni>(_mm256_setzero_si256(), unpack_nibbles(x[i].qs), qy));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d)), s, acc0);
    summ += fp16_to_fp32(x[i].m) * fp16_to_fp32(y[i].s);
  }
  return hsum(_mm256_add_ps(acc0, acc1)) + summ;
}

template <bool kVnni>
float dot_q8_0_q8_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ8_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  const int64_t nb = n / QK8_0;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 1 < nb; i += 2) {
    const __m256i qx0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs));
    const __m256i qx1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i + 1].qs));
    const __m256i qy0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    const __m256i qy1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i + 1].qs));
    const __m256 s0 = _mm256_cvtepi32_ps(dot_s8s8<kVnni>(_mm256_setzero_si256(), qx0, qy0));
    const __m256 s1 = _mm256_cvtepi32_ps(dot_s8s8<kVnni>(_mm256_setzero_si256(), qx1, qy1));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d)), s0, acc0);
    acc1 = _mm256_fmadd_ps(_mm256_set1_ps(fp16_to_fp32(x[i + 1].d) * fp16_to_fp32(y[i + 1].d)), s1, acc1);
  }
  for (; i < nb; ++i) {
    const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs));
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    const __m256 s = _mm256_cvtepi32_ps(dot_s8s8<kVnni>(_mm256_setzero_si256(), qx, qy));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d)), s, acc0);
  }
  return hsum(_mm256_add_ps(acc0, acc1));
}

template <bool kVnni, bool kQ4_1, int NT>
void gemm_packed_q4_nt(int64_t n, const uint8_t* g, const uint8_t* act, size_t act_stride, const int32_t* act_sums,
                       float* y, int64_t ldy) {
  using ABlock = std::conditional_t<kQ4_1, BlockQ8_1, BlockQ8_0>;
  const int64_t nb = n / 32;
  const size_t group_block = kQ4_1 ? 8 * 4 + 128 : 8 * 2 + 128;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, g += group_block) {
    if constexpr (NT == 1) prefetch_ahead(g, group_block);  // decode streams; prefill reuses the group
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g)));
    __m256 mw = _mm256_setzero_ps();
    if constexpr (kQ4_1) mw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g + 16)));
    const uint8_t* q = g + (kQ4_1 ? 32 : 16);
    __m256i lo[4], hi[4];
    for (int c = 0; c < 4; ++c) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * c));
      lo[c] = _mm256_and_si256(v, m4);
      hi[c] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    }
    for (int t = 0; t < NT; ++t) {
      const auto* a = reinterpret_cast<const ABlock*>(act + t * act_stride) + b;
      __m256i s = q4_block_sums<kVnni>(lo, hi, a->qs);
      if constexpr (!kQ4_1) s = _mm256_sub_epi32(s, _mm256_set1_epi32(8 * act_sums[t * nb + b]));
      const __m256 scale = _mm256_mul_ps(dw, _mm256_set1_ps(fp16_to_fp32(a->d)));
      acc[t] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(s), acc[t]);
      if constexpr (kQ4_1) acc[t] = _mm256_fmadd_ps(mw, _mm256_set1_ps(fp16_to_fp32(a->s)), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) _mm256_storeu_ps(y + t * ldy, acc[t]);
}

template <bool kVnni, int NT>
void gemm_packed_q8_0_nt(int64_t n, const uint8_t* g, const uint8_t* act, size_t act_stride, const int32_t*,
                         float* y, int64_t ldy) {
  const int64_t nb = n / 32;
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, g += 8 * 2 + 256) {
    if constexpr (NT == 1) prefetch_ahead(g, 8 * 2 + 256);
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g)));
    const uint8_t* q = g + 16;
    // Chunk-outer: each chunk's |w| is formed once for all tokens; the signs move onto the activations.
    const BlockQ8_0* a[NT];
    __m256i s[NT];
    for (int t = 0; t < NT; ++t) {
      a[t] = reinterpret_cast<const BlockQ8_0*>(act + t * act_stride) + b;
      s[t] = _mm256_setzero_si256();
    }
    for (int c = 0; c < 8; ++c) {
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * c));
      const __m256i aw = _mm256_sign_epi8(w, w);
      for (int t = 0; t < NT; ++t) s[t] = dpbusd<kVnni>(s[t], aw, _mm256_sign_epi8(bcast4(a[t]->qs + 4 * c), w));
    }
    for (int t = 0; t < NT; ++t)
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(fp16_to_fp32(a[t]->d))), _mm256_cvtepi32_ps(s[t]), acc[t]);
  }
  for (int t = 0; t < NT; ++t) _mm256_storeu_ps(y + t * ldy, acc[t]);
}

template <bool kVnni>
struct PackedBlock32 {
  template <int NT> struct Q4_0 { static void run(int64_t n, const uint8_t* g, const uint8_t* a, size_t as, const int32_t* s, float* y, int64_t ldy) { gemm_packed_q4_nt<kVnni, false, NT>(n, g, a, as, s, y, ldy); } };
  template <int NT> struct Q4_1 { static void run(int64_t n, const uint8_t* g, const uint8_t* a, size_t as, const int32_t* s, float* y, int64_t ldy) { gemm_packed_q4_nt<kVnni, true, NT>(n, g, a, as, s, y, ldy); } };
  template <int NT> struct Q8_0 { static void run(int64_t n, const uint8_t* g, const uint8_t* a, size_t as, const int32_t* s, float* y, int64_t ldy) { gemm_packed_q8_0_nt<kVnni, NT>(n, g, a, as, s, y, ldy); } };
  static void q4_0(int64_t n, const void* w, const void* act, size_t as, const int32_t* s, int nt, float* y, int64_t ldy) { by_nt<Q4_0>(nt, n, w, act, as, s, y, ldy); }
  static void q4_1(int64_t n, const void* w, const void* act, size_t as, const int32_t* s, int nt, float* y, int64_t ldy) { by_nt<Q4_1>(nt, n, w, act, as, s, y, ldy); }
  static void q8_0(int64_t n, const void* w, const void* act, size_t as, const int32_t* s, int nt, float* y, int64_t ldy) { by_nt<Q8_0>(nt, n, w, act, as, s, y, ldy); }
};

// ---- Activation quantization (bit-identical to the scalar quantize_act_q8_0 / _q8_1). ----

// Quantizes 32 floats: returns d's float value, writes 32 int8 and (if sum) the sum of the quants.
inline float quantize_block_q8(const float* x, int8_t* q, int* sum) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 v[4];
  __m256 mx = _mm256_setzero_ps();
  for (int k = 0; k < 4; ++k) {
    v[k] = _mm256_loadu_ps(x + 8 * k);
    mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v[k]));
  }
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  const float amax = _mm_cvtss_f32(m4);
  const float id = amax != 0.f ? 127.f / amax : 0.f;
  const __m256 mul = _mm256_set1_ps(id);
  __m256i i[4];
  for (int k = 0; k < 4; ++k)
    i[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  if (sum) {
    const __m256i s = _mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3]));
    *sum = hsum_i32(s);
  }
  // Pack 32 int32 -> 32 int8; packs work within 128-bit lanes, so restore the order with a permute.
  const __m256i p01 = _mm256_packs_epi32(i[0], i[1]);
  const __m256i p23 = _mm256_packs_epi32(i[2], i[3]);
  __m256i p = _mm256_packs_epi16(p01, p23);
  p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), p);
  return amax / 127.f;
}

inline void quantize_act_q8_0(const float* x, void* y, int64_t n) {
  auto* b = static_cast<BlockQ8_0*>(y);
  for (int64_t i = 0; i < n / QK8_0; ++i) b[i].d = fp32_to_fp16(quantize_block_q8(x + i * QK8_0, b[i].qs, nullptr));
}

inline void quantize_act_q8_1(const float* x, void* y, int64_t n) {
  auto* b = static_cast<BlockQ8_1*>(y);
  for (int64_t i = 0; i < n / QK8_1; ++i) {
    int sum = 0;
    const float d = quantize_block_q8(x + i * QK8_1, b[i].qs, &sum);
    b[i].d = fp32_to_fp16(d);
    b[i].s = fp32_to_fp16(d * static_cast<float>(sum));
  }
}

// Sums of the 8 int32 lanes of each of v[0..7], as one vector (lane r: v[r]); integer, so exact in any order.
inline __m256i hsum8_i32(const __m256i v[8]) {
  const __m256i u0 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
  const __m256i u1 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
  return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20), _mm256_permute2x128_si256(u0, u1, 0x31));
}

// dot_q8_0_rows: 8 rows at a time; per block, the 8 rows' integer dot products are reduced together
// (hsum8_i32) and scaled as one vector, out[r] = sum over blocks of fma(dx * dy, int sum, acc) - no
// horizontal float sum per row. The integer parts equal the scalar reference's; the float combination of
// the blocks is fused, so results are within the vec_dot bound of it. Remaining rows: the row-at-a-time dot.
template <bool kVnni>
void dot_q8_0_rows(int64_t n, const void* x, size_t stride, int64_t count, const void* y, float* out) {
  const auto* base = static_cast<const uint8_t*>(x);
  const auto* yb = static_cast<const BlockQ8_0*>(y);
  const int64_t nb = n / QK8_0;
  int64_t j = 0;
  for (; j + 8 <= count; j += 8) {
    const BlockQ8_0* r[8];
    for (int q = 0; q < 8; ++q) r[q] = reinterpret_cast<const BlockQ8_0*>(base + static_cast<size_t>(j + q) * stride);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb[b].qs));
      __m256i v[8];
      for (int q = 0; q < 8; ++q)
        v[q] = dot_s8s8<kVnni>(_mm256_setzero_si256(), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r[q][b].qs)), qy);
      const __m128i dx = _mm_setr_epi16(static_cast<short>(r[0][b].d), static_cast<short>(r[1][b].d),
                                        static_cast<short>(r[2][b].d), static_cast<short>(r[3][b].d),
                                        static_cast<short>(r[4][b].d), static_cast<short>(r[5][b].d),
                                        static_cast<short>(r[6][b].d), static_cast<short>(r[7][b].d));
      const __m256 scale = _mm256_mul_ps(_mm256_cvtph_ps(dx), _mm256_set1_ps(fp16_to_fp32(yb[b].d)));
      acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(hsum8_i32(v)), acc);
    }
    _mm256_storeu_ps(out + j, acc);
  }
  for (; j < count; ++j) out[j] = dot_q8_0_q8_0<kVnni>(n, base + static_cast<size_t>(j) * stride, y);
}

// axpy_q8_0_rows: per block of 32 elements, four 8-lane accumulators held across all rows (each element's
// terms in row order, one FMA each, as the scalar version).
inline void axpy_q8_0_rows(int64_t n, const void* x, size_t stride, int64_t count, const float* p, float* out) {
  const auto* base = static_cast<const uint8_t*>(x);
  for (int64_t k = 0; k < n / QK8_0; ++k) {
    float* o = out + k * QK8_0;
    __m256 a0 = _mm256_loadu_ps(o), a1 = _mm256_loadu_ps(o + 8), a2 = _mm256_loadu_ps(o + 16), a3 = _mm256_loadu_ps(o + 24);
    for (int64_t j = 0; j < count; ++j) {
      const auto* b = reinterpret_cast<const BlockQ8_0*>(base + static_cast<size_t>(j) * stride) + k;
      const __m256 s = _mm256_set1_ps(p[j] * fp16_to_fp32(b->d));
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qs));
      const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
      a0 = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), a0);
      a1 = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(lo, lo))), a1);
      a2 = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), a2);
      a3 = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(hi, hi))), a3);
    }
    _mm256_storeu_ps(o, a0);
    _mm256_storeu_ps(o + 8, a1);
    _mm256_storeu_ps(o + 16, a2);
    _mm256_storeu_ps(o + 24, a3);
  }
}

}  // namespace
}  // namespace tokenscope::kernels::x86
