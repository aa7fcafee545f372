// 256-bit x86 kernels shared by kernels_avx2.cpp and kernels_avx512.cpp. Each of those files is compiled
// with its own ISA flags and instantiates these templates with kVnni false (AVX2: maddubs + madd) or true
// (AVX-512 VNNI on 256-bit registers: vpdpbusd). Include only from those two files.
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

namespace tokenscope::kernels::x86 {
// Internal linkage: each including file (compiled with different -m flags) keeps its own copies, so the
// linker can never hand the AVX2 table a function compiled for AVX-512.
namespace {

// Weights stream from memory once per token in decode. Software prefetches kPrefetchAhead bytes ahead of
// the block being multiplied (one per cache line of it) measured +15-20% decode tok/s over the hardware
// prefetchers alone on the Zen 3 VM (2048 slightly ahead of 1024; side by side, 4 rounds). On the Zen 5 VM
// 4096 against 2048: tg128 Q4_0 +8% / +12%, Q8_0 +2% / -2%, Qwen-shape 0% / -1% (two interleaved runs).
constexpr size_t kPrefetchAhead = 4096;
inline void prefetch_ahead(const void* block, size_t bytes) {
  const char* p = static_cast<const char*>(block) + kPrefetchAhead;
  for (size_t off = 0; off < bytes; off += 64) _mm_prefetch(p + off, _MM_HINT_T0);
}

// Prefetches rows r0..r1-1 of n f16 values, `stride` apart (one prefetch per cache line): attention's rows
// are short and far apart in the KV cache, where the hardware prefetchers miss them.
inline void prefetch_f16_rows(const uint16_t* x, int64_t stride, int64_t n, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t i = 0; i < n; i += 32) _mm_prefetch(reinterpret_cast<const char*>(x + r * stride + i), _MM_HINT_T0);
}

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
// Three ops at most, two with AVX-512 VL (was four: shift, and, shift, or).
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

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// Sum over groups of four of u8 x s8 products, into 8 int32 lanes (added to acc).
template <bool kVnni>
inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) {
  if constexpr (kVnni) {
    return _mm256_dpbusd_epi32(acc, u, s);
  } else {
    const __m256i p16 = _mm256_maddubs_epi16(u, s);  // |u| <= 127 here, so no saturation
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
  }
}

// Signed x signed via |x| * sign(y, x).
template <bool kVnni>
inline __m256i dot_s8s8(__m256i acc, __m256i x, __m256i y) {
  return dot_u8s8<kVnni>(acc, _mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

// 32 nibbles of a Q4 block in element order: low nibbles (elements 0..15) then high nibbles (16..31).
inline __m256i unpack_nibbles(const uint8_t* qs) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

inline __m256 load_f16x8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
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

// f16 x f16 dot product with f32 FMAs in a fixed order: four 8-lane accumulators over chunks of 32,
// folded as (a0 + a2) + (a1 + a3), lanes reduced with horizontal adds; the tail (n % 32) is added in
// double. The scalar reference in kernels_scalar.cpp follows the same order, so the two agree exactly
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
  // The tail in order, in double. (A zero-padded copy read back as vectors stalls on store forwarding and
  // was slower; callers with long rows avoid the tail: see ops::kAttnPad.)
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

// ---- Packed (row-interleaved) weights, see kernels.h: lane r of every vector belongs to row r. ----

inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// Sum of u8 x s8 products over groups of 4 bytes into int32 lanes (acc added).
template <bool kVnni>
inline __m256i dpbusd(__m256i acc, __m256i u, __m256i s) {
  if constexpr (kVnni) return _mm256_dpbusd_epi32(acc, u, s);
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}

// Q4_0 / Q4_1 groups: per token, the 8 rows' integer sums of q * a (q unsigned, 0..15) for one block.
// Without VNNI the eight u8 x s8 pair sums of a row stay in int16 (8 * 2 * 15 * 127 < 32768) and are
// widened once.
template <bool kVnni>
inline __m256i q4_block_sums(const __m256i lo[4], const __m256i hi[4], const int8_t* a) {
  if constexpr (kVnni) {
    __m256i s = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      s = _mm256_dpbusd_epi32(s, lo[c], bcast4(a + 4 * c));
      s = _mm256_dpbusd_epi32(s, hi[c], bcast4(a + 16 + 4 * c));
    }
    return s;
  } else {
    __m256i p = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      p = _mm256_add_epi16(p, _mm256_maddubs_epi16(lo[c], bcast4(a + 4 * c)));
      p = _mm256_add_epi16(p, _mm256_maddubs_epi16(hi[c], bcast4(a + 16 + 4 * c)));
    }
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
  }
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

// Q4_K over the packed layout (kernels_packed.cpp): per sub-block of 32, the Q4_0 block sums of the 8 rows
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
    // built once (pp512 +17% on the Qwen shape); one token (decode): one multiply per sub-block inside the
    // loop above, which measured faster in the kernel (45 against 38-42 GB/s in L2).
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

// Q6_K over the packed layout (kernels_packed.cpp): the 6-bit values rebuilt from the low nibbles and the
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

// Dispatch on the number of activation rows (1..4).
template <template <int> class F>
void by_nt(int nt, int64_t n, const void* w, const void* act, size_t act_stride, const int32_t* sums, float* y,
           int64_t ldy) {
  const auto* g = static_cast<const uint8_t*>(w);
  const auto* a = static_cast<const uint8_t*>(act);
  switch (nt) {
    case 1: F<1>::run(n, g, a, act_stride, sums, y, ldy); break;
    case 2: F<2>::run(n, g, a, act_stride, sums, y, ldy); break;
    case 3: F<3>::run(n, g, a, act_stride, sums, y, ldy); break;
    default: F<4>::run(n, g, a, act_stride, sums, y, ldy); break;
  }
}

template <bool kVnni>
struct PackedQ4 {
  template <int NT> struct Q4_0 { static void run(int64_t n, const uint8_t* g, const uint8_t* a, size_t as, const int32_t* s, float* y, int64_t ldy) { gemm_packed_q4_nt<kVnni, false, NT>(n, g, a, as, s, y, ldy); } };
  template <int NT> struct Q4_1 { static void run(int64_t n, const uint8_t* g, const uint8_t* a, size_t as, const int32_t* s, float* y, int64_t ldy) { gemm_packed_q4_nt<kVnni, true, NT>(n, g, a, as, s, y, ldy); } };
  template <int NT> struct Q8_0 { static void run(int64_t n, const uint8_t* g, const uint8_t* a, size_t as, const int32_t* s, float* y, int64_t ldy) { gemm_packed_q8_0_nt<kVnni, NT>(n, g, a, as, s, y, ldy); } };
  static void q4_0(int64_t n, const void* w, const void* act, size_t as, const int32_t* s, int nt, float* y, int64_t ldy) { by_nt<Q4_0>(nt, n, w, act, as, s, y, ldy); }
  static void q4_1(int64_t n, const void* w, const void* act, size_t as, const int32_t* s, int nt, float* y, int64_t ldy) { by_nt<Q4_1>(nt, n, w, act, as, s, y, ldy); }
  static void q8_0(int64_t n, const void* w, const void* act, size_t as, const int32_t* s, int nt, float* y, int64_t ldy) { by_nt<Q8_0>(nt, n, w, act, as, s, y, ldy); }
  template <int NT> struct Q4_K { static void run(int64_t n, const uint8_t* g, const uint8_t* a, size_t as, const int32_t* s, float* y, int64_t ldy) { gemm_packed_q4_k_nt<kVnni, NT>(n, g, a, as, s, y, ldy); } };
  static void q4_k(int64_t n, const void* w, const void* act, size_t as, const int32_t* s, int nt, float* y, int64_t ldy) { by_nt<Q4_K>(nt, n, w, act, as, s, y, ldy); }
  template <int NT> struct Q5_K { static void run(int64_t n, const uint8_t* g, const uint8_t* a, size_t as, const int32_t* s, float* y, int64_t ldy) { gemm_packed_q4_k_nt<kVnni, NT, true>(n, g, a, as, s, y, ldy); } };
  static void q5_k(int64_t n, const void* w, const void* act, size_t as, const int32_t* s, int nt, float* y, int64_t ldy) { by_nt<Q5_K>(nt, n, w, act, as, s, y, ldy); }
  template <int NT> struct Q6_K { static void run(int64_t n, const uint8_t* g, const uint8_t* a, size_t as, const int32_t* s, float* y, int64_t ldy) { gemm_packed_q6_k_nt<kVnni, NT>(n, g, a, as, s, y, ldy); } };
  static void q6_k(int64_t n, const void* w, const void* act, size_t as, const int32_t* s, int nt, float* y, int64_t ldy) { by_nt<Q6_K>(nt, n, w, act, as, s, y, ldy); }
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

// The float helpers are the same on AVX2 and AVX-512 (256-bit F16C / FMA).
template <typename Table>
void set_float_helpers(Table& t) {
  t.dot_f32 = dot_f32_plain;
  t.dot_f16 = dot_f16_pair;
  t.axpy_f16 = axpy_f16;
  t.f32_to_f16 = f32_to_f16;
  t.f16_to_f32 = f16_to_f32;
  t.dot_f16_rows = dot_f16_rows;
  t.axpy_q8_0_rows = axpy_q8_0_rows;
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
