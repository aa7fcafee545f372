// The K-quants' 256-bit x86 kernels, shared by kquants_avx2.cpp and kquants_avx512.cpp, instantiated with kVnni
// false (AVX2: maddubs + madd) or true (AVX-512 VNNI on 256-bit registers: vpdpbusd). Include only from those two
// files.
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
#include "kernels/kquants/kquants.h"
#include "kernels/simd/x86.h"

namespace tokenscope::kernels::x86 {
// Internal linkage: each including file (compiled with different -m flags) keeps its own copies, so the
// linker can never hand the AVX2 table a function compiled for AVX-512.
namespace {

// a | (b & m); AVX-512 VL (kVnni): one ternary-logic op.
template <bool kVnni>
inline __m256i or_masked(__m256i a, __m256i b, __m256i m) {
  if constexpr (kVnni) {
    return _mm256_ternarylogic_epi32(a, b, m, 0xF8);
  } else {
    return _mm256_or_si256(a, _mm256_and_si256(b, m));
  }
}

// Q5_K's fifth bits: q with bit k (0-7) of each byte of hb ORed in at bit 4 (q's bit 4 is zero). The 16-bit
// shifts carry bits across byte boundaries only into bits that the 0x10 mask clears (shifts of at most 4).
// Three ops at most, two with AVX-512 VL.
template <bool kVnni>
inline __m256i or_fifth_bit(__m256i q, __m256i hb, int k) {
  const __m256i s = k <= 4 ? _mm256_slli_epi16(hb, 4 - k) : _mm256_srli_epi16(hb, k - 4);
  return or_masked<kVnni>(q, s, _mm256_set1_epi8(0x10));
}

// Q6_K's 6-bit quants of a chunk pair's chunk cc (0 or 1) from its low-nibble bytes v and the pair's high-bit
// vector hv (kernels_internal.h, packed Q6_K): the nibbles with the two high bits at bits 4-5, shifted there
// straight from hv (16-bit shifts: bits crossing a byte boundary land where the 0x30 mask clears them).
template <bool kVnni>
inline void q6_k_chunk(__m256i v, __m256i hv, int cc, __m256i& lo, __m256i& hi) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
  const __m256i hl = cc == 0 ? _mm256_slli_epi16(hv, 4) : hv;                      // hv bits 0-1 / 4-5
  const __m256i hh = cc == 0 ? _mm256_slli_epi16(hv, 2) : _mm256_srli_epi16(hv, 2);  // hv bits 2-3 / 6-7
  lo = or_masked<kVnni>(_mm256_and_si256(v, m4), hl, m30);
  hi = or_masked<kVnni>(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), hh, m30);
}

// Sum over i of scale16[i] * (u8 x s8 pairs) -> int32 lanes; scale applied per 16-bit pair sum.
// Used by the K-quants, where a sub-block's integer dot is multiplied by its small integer scale.
inline __m256i scaled_u8s8(__m256i u, __m256i s, __m256i scale16) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), scale16);
}

// Q4_K and Q5_K: 8 sub-blocks of 32 with 6-bit scales and mins; Q5_K adds a fifth bit per element from qh.
// The mins enter through the activation block sums (bsums), the scales multiply each sub-block's integer dot.
template <bool kVnni, typename Block, bool kFifthBit>
float dot_qk_min_q8_k(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const Block*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  float sum = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    prefetch_ahead(x + i, sizeof(Block));
    uint8_t sc[8];
    const int summ = scales_and_min_sum_k4(x[i].scales, y[i].bsums, sc);
    __m256i qh = _mm256_setzero_si256();
    if constexpr (kFifthBit) qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qh));
    __m256i acc = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs + 32 * c));
      __m256i lo = _mm256_and_si256(q, m4);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      if constexpr (kFifthBit) {
        lo = or_fifth_bit<kVnni>(lo, qh, 2 * c);
        hi = or_fifth_bit<kVnni>(hi, qh, 2 * c + 1);
      }
      const __m256i y0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs + 64 * c));
      const __m256i y1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs + 64 * c + 32));
      if constexpr (kVnni) {
        const __m256i d0 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, y0);
        const __m256i d1 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), hi, y1);
        acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(d0, _mm256_set1_epi32(sc[2 * c])));
        acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(d1, _mm256_set1_epi32(sc[2 * c + 1])));
      } else {
        acc = _mm256_add_epi32(acc, scaled_u8s8(lo, y0, _mm256_set1_epi16(sc[2 * c])));
        acc = _mm256_add_epi32(acc, scaled_u8s8(hi, y1, _mm256_set1_epi16(sc[2 * c + 1])));
      }
    }
    // One explicit fma, so the rounding does not depend on how the compiler contracts d * a - dmin * b.
    const float d = fp16_to_fp32(x[i].d) * y[i].d;
    const float min_part = fp16_to_fp32(x[i].dmin) * y[i].d * static_cast<float>(summ);
    sum += std::fma(d, static_cast<float>(hsum_i32(acc)), -min_part);
  }
  return sum;
}

template <bool kVnni>
float dot_q4_k_q8_k(int64_t n, const void* w, const void* a) { return dot_qk_min_q8_k<kVnni, BlockQ4_K, false>(n, w, a); }
template <bool kVnni>
float dot_q5_k_q8_k(int64_t n, const void* w, const void* a) { return dot_qk_min_q8_k<kVnni, BlockQ5_K, true>(n, w, a); }

// Q6_K: 16 sub-blocks of 16 with int8 scales; 4 low bits in ql, 2 high bits in qh; x = d * sc * (q - 32).
// q (0..63) times the activation goes through maddubs; the -32 offset comes back through the activation's
// block sums, scales times bsums in one madd. Each 32-element run has two sub-blocks, i.e. two scales, which
// one byte shuffle of the sign-extended scales spreads over the run's two 128-bit halves. Integer sums stay
// in vectors per super-block and the float accumulation is vector-wide: one horizontal sum per row.
template <bool kVnni>
float dot_q6_k_q8_k(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ6_K*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i m3 = _mm256_set1_epi8(0x03);
  // Per run k (0..3) within a half: i16 scale 2k in the low 128 bits, 2k+1 in the high 128 bits.
  const __m256i shuf[4] = {
      _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3),
      _mm256_setr_epi8(4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7),
      _mm256_setr_epi8(8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11,
                       10, 11, 10, 11),
      _mm256_setr_epi8(12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 14, 15, 14, 15, 14, 15, 14, 15,
                       14, 15, 14, 15, 14, 15, 14, 15)};
  __m256 accf = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / QK_K; ++i) {
    prefetch_ahead(x + i, sizeof(BlockQ6_K));
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i].scales)));
    // Scales 8c..8c+7 in both 128-bit lanes, for the halves c = 0, 1.
    const __m256i sc_halves[2] = {_mm256_permute4x64_epi64(sc16, 0x44), _mm256_permute4x64_epi64(sc16, 0xEE)};
    __m256i acc = _mm256_setzero_si256();
    for (int c = 0; c < 2; ++c) {
      const __m256i sc_half = sc_halves[c];
      const uint8_t* ql = x[i].ql + 64 * c;
      const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
      const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qh + 32 * c));
      __m256i q[4];
      q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(h, m3), 4));
      q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m3), 4));
      q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m3), 4));
      q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m3), 4));
      for (int k = 0; k < 4; ++k) {
        const __m256i yy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs + 128 * c + 32 * k));
        const __m256i scale = _mm256_shuffle_epi8(sc_half, shuf[k]);
        acc = _mm256_add_epi32(acc, scaled_u8s8(q[k], yy, scale));
      }
    }
    const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].bsums));
    // 32 * sum over sub-blocks of scale * bsum, subtracted at the end.
    const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bsums), 5);
    accf = _mm256_fmadd_ps(_mm256_set1_ps(fp16_to_fp32(x[i].d) * y[i].d),
                           _mm256_cvtepi32_ps(_mm256_sub_epi32(acc, offset)), accf);
  }
  return hsum(accf);
}

// The activation's sums over Q4_K sub-blocks 2k and 2k + 1 (each the sum of two Q8_K bsums of 16; |sum| < 2^12,
// exact in int16) as the two 16-bit halves of one int32: the packed Q4_K/Q5_K multiplies madd it with each
// row's two mins.
inline int32_t bsum_pair_k(const int16_t* bsums, int k) {
  const int b0 = bsums[4 * k] + bsums[4 * k + 1], b1 = bsums[4 * k + 2] + bsums[4 * k + 3];
  return static_cast<int32_t>((static_cast<uint32_t>(b0) & 0xFFFF) | (static_cast<uint32_t>(b1) << 16));
}

// Per 32-bit lane (row): sum over k of mpair[k]'s two 16-bit mins times bsum_pair_k(bsums, k).
inline __m256i mins_dot_q8_k(const __m256i* mpair, const int16_t* bsums) {
  __m256i m = _mm256_setzero_si256();
  for (int k = 0; k < 4; ++k)
    m = _mm256_add_epi32(m, _mm256_madd_epi16(mpair[k], _mm256_set1_epi32(bsum_pair_k(bsums, k))));
  return m;
}

// Q4_K over the packed layout (kquants_packed.cpp): per sub-block of 32, the Q4_0 block sums of the 8 rows
// (u4 x s8) times each row's 6-bit scale, summed over the super-block in int32; the mins through the
// activation's sub-block sums; then per super-block y += d_w * d_a * sums - dmin_w * d_a * mins. Q5_K
// (kFifthBit): the fifth bits ORed in at bit 4 of each quant first.
template <bool kVnni, int NT, bool kFifthBit = false>
void gemm_packed_q4_k_nt(int64_t n, const uint8_t* g, const uint8_t* act, size_t act_stride, const int32_t*, float* y,
                         int64_t ldy) {
  constexpr size_t kBytes = detail::qk_min_packed_bytes(kFifthBit);
  const int64_t nsb = n / QK_K;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t sb = 0; sb < nsb; ++sb, g += kBytes) {
    if constexpr (NT == 1) prefetch_ahead(g, kBytes);  // decode streams; prefill reuses it
    const BlockQ8_K* a[NT];
    __m256i isum[NT], msum[NT];
    for (int t = 0; t < NT; ++t) {
      a[t] = reinterpret_cast<const BlockQ8_K*>(act + t * act_stride) + sb;
      isum[t] = msum[t] = _mm256_setzero_si256();
    }
    for (int j = 0; j < 8; ++j) {
      const uint8_t* q = g + detail::kQ4KPackedQuants + 128 * j;
      __m256i lo[4], hi[4];
      for (int c = 0; c < 4; ++c) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * c));
        lo[c] = _mm256_and_si256(v, m4);
        hi[c] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
      }
      if constexpr (kFifthBit) {
        const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + detail::kQ5KPackedHigh + 32 * j));
        for (int c = 0; c < 4; ++c) {
          lo[c] = or_fifth_bit<kVnni>(lo[c], hb, 2 * c);
          hi[c] = or_fifth_bit<kVnni>(hi[c], hb, 2 * c + 1);
        }
      }
      const __m256i sc = _mm256_cvtepu8_epi32(
          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(g + detail::kQ4KPackedScales + 8 * j)));
      for (int t = 0; t < NT; ++t) {
        __m256i s;
        if constexpr (kFifthBit && !kVnni) {
          // 5-bit quants: q4_block_sums' single int16 sum of 8 maddubs would reach 16 x 31 x 127 and wrap;
          // the low and high chunks' sums (at most 4 x 2 x 31 x 128 each) are widened separately.
          __m256i pl = _mm256_setzero_si256(), ph = _mm256_setzero_si256();
          for (int c = 0; c < 4; ++c) {
            pl = _mm256_add_epi16(pl, _mm256_maddubs_epi16(lo[c], bcast4(a[t]->qs + 32 * j + 4 * c)));
            ph = _mm256_add_epi16(ph, _mm256_maddubs_epi16(hi[c], bcast4(a[t]->qs + 32 * j + 16 + 4 * c)));
          }
          const __m256i ones = _mm256_set1_epi16(1);
          s = _mm256_add_epi32(_mm256_madd_epi16(pl, ones), _mm256_madd_epi16(ph, ones));
        } else {
          s = q4_block_sums<kVnni>(lo, hi, a[t]->qs + 32 * j);
        }
        isum[t] = _mm256_add_epi32(isum[t], _mm256_mullo_epi32(s, sc));
      }
      if constexpr (NT == 1) {  // one token: the mins in the same loop (see below)
        const __m256i mn = _mm256_cvtepu8_epi32(
            _mm_loadl_epi64(reinterpret_cast<const __m128i*>(g + detail::kQ4KPackedMins + 8 * j)));
        const int bs = a[0]->bsums[2 * j] + a[0]->bsums[2 * j + 1];
        msum[0] = _mm256_add_epi32(msum[0], _mm256_mullo_epi32(mn, _mm256_set1_epi32(bs)));
      }
    }
    // The mins: per row, sum over sub-blocks of min j x the activation's sum over sub-block j (exact either
    // way). Several tokens: as 16-bit pairs (sub-blocks 2k, 2k + 1) through four madds per token, the pairs
    // built once and shared by the tokens; one token (decode): one multiply per sub-block inside the loop
    // above, as there is nothing to share.
    if constexpr (NT > 1) {
      __m256i mpair[4];
      for (int k = 0; k < 4; ++k) {
        const __m128i m0 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(g + detail::kQ4KPackedMins + 16 * k));
        const __m128i m1 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(g + detail::kQ4KPackedMins + 16 * k + 8));
        mpair[k] = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m0, m1));
      }
      for (int t = 0; t < NT; ++t) msum[t] = mins_dot_q8_k(mpair, a[t]->bsums);
    }
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g + detail::kQ4KPackedD)));
    const __m256 mw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g + detail::kQ4KPackedDmin)));
    for (int t = 0; t < NT; ++t) {
      const __m256 ad = _mm256_set1_ps(a[t]->d);
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dw, ad), _mm256_cvtepi32_ps(isum[t]), acc[t]);
      acc[t] = _mm256_fnmadd_ps(_mm256_mul_ps(mw, ad), _mm256_cvtepi32_ps(msum[t]), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) _mm256_storeu_ps(y + t * ldy, acc[t]);
}

// Q6_K over the packed layout (kquants_packed.cpp): the 6-bit values rebuilt from the low nibbles and the
// high-bit vectors (shared by all tokens), u6 x s8 sums per sub-block of 16 with the -32 offset entering as
// the chain's start (-32 x the activation's sub-block sum), times each row's int8 scale, summed in int32 per
// super-block; then y += d_w * d_a * sum.
template <bool kVnni, int NT>
void gemm_packed_q6_k_nt(int64_t n, const uint8_t* g, const uint8_t* act, size_t act_stride, const int32_t*, float* y,
                         int64_t ldy) {
  const int64_t nsb = n / QK_K;
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t sb = 0; sb < nsb; ++sb, g += detail::kQ6KPackedBytes) {
    if constexpr (NT == 1) prefetch_ahead(g, detail::kQ6KPackedBytes);
    const BlockQ8_K* a[NT];
    __m256i isum[NT];
    for (int t = 0; t < NT; ++t) {
      a[t] = reinterpret_cast<const BlockQ8_K*>(act + t * act_stride) + sb;
      isum[t] = _mm256_setzero_si256();
    }
    for (int blk = 0; blk < 8; ++blk) {
      const uint8_t* low = g + detail::kQ6KPackedLow + 128 * blk;
      const uint8_t* high = g + detail::kQ6KPackedHigh + 64 * blk;
      __m256i lo[4], hi[4];
      for (int m = 0; m < 2; ++m) {
        const __m256i hv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(high + 32 * m));
        for (int cc = 0; cc < 2; ++cc) {
          const int c = 2 * m + cc;
          q6_k_chunk<kVnni>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(low + 32 * c)), hv, cc, lo[c], hi[c]);
        }
      }
      const __m256i sc_a = _mm256_cvtepi8_epi32(
          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(g + detail::kQ6KPackedScales + (2 * blk) * 8)));
      const __m256i sc_b = _mm256_cvtepi8_epi32(
          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(g + detail::kQ6KPackedScales + (2 * blk + 1) * 8)));
      for (int t = 0; t < NT; ++t) {
        const int8_t* aq = a[t]->qs + 32 * blk;
        __m256i da = _mm256_set1_epi32(-32 * a[t]->bsums[2 * blk]);
        __m256i db = _mm256_set1_epi32(-32 * a[t]->bsums[2 * blk + 1]);
        for (int c = 0; c < 4; ++c) {
          da = dot_u8s8<kVnni>(da, lo[c], bcast4(aq + 4 * c));
          db = dot_u8s8<kVnni>(db, hi[c], bcast4(aq + 16 + 4 * c));
        }
        isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(_mm256_mullo_epi32(da, sc_a), _mm256_mullo_epi32(db, sc_b)));
      }
    }
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g + detail::kQ6KPackedD)));
    for (int t = 0; t < NT; ++t)
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(a[t]->d)), _mm256_cvtepi32_ps(isum[t]), acc[t]);
  }
  for (int t = 0; t < NT; ++t) _mm256_storeu_ps(y + t * ldy, acc[t]);
}

template <bool kVnni>
struct PackedKQuants {
  template <int NT> struct Q4_K { static void run(int64_t n, const uint8_t* g, const uint8_t* a, size_t as, const int32_t* s, float* y, int64_t ldy) { gemm_packed_q4_k_nt<kVnni, NT>(n, g, a, as, s, y, ldy); } };
  template <int NT> struct Q5_K { static void run(int64_t n, const uint8_t* g, const uint8_t* a, size_t as, const int32_t* s, float* y, int64_t ldy) { gemm_packed_q4_k_nt<kVnni, NT, true>(n, g, a, as, s, y, ldy); } };
  template <int NT> struct Q6_K { static void run(int64_t n, const uint8_t* g, const uint8_t* a, size_t as, const int32_t* s, float* y, int64_t ldy) { gemm_packed_q6_k_nt<kVnni, NT>(n, g, a, as, s, y, ldy); } };
  static void q4_k(int64_t n, const void* w, const void* act, size_t as, const int32_t* s, int nt, float* y, int64_t ldy) { by_nt<Q4_K>(nt, n, w, act, as, s, y, ldy); }
  static void q5_k(int64_t n, const void* w, const void* act, size_t as, const int32_t* s, int nt, float* y, int64_t ldy) { by_nt<Q5_K>(nt, n, w, act, as, s, y, ldy); }
  static void q6_k(int64_t n, const void* w, const void* act, size_t as, const int32_t* s, int nt, float* y, int64_t ldy) { by_nt<Q6_K>(nt, n, w, act, as, s, y, ldy); }
};

}  // namespace
}  // namespace tokenscope::kernels::x86
