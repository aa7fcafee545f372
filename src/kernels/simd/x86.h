// x86 helpers shared by the formats' AVX2 and AVX-512 kernels (256-bit): horizontal sums, the u8 x s8
// dot-product step with and without VNNI (kVnni), the packed groups' broadcasts and token-count dispatch.
// Include only from files compiled with an x86 ISA's flags (names ending in _avx2.cpp or _avx512.cpp).
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


// Weights stream from memory once per token in decode: software prefetches kPrefetchAhead bytes ahead of the
// block being multiplied (one per cache line of it) keep the loads further ahead than the hardware prefetchers
// alone do (the distance's measurements: docs/performance.md).
constexpr size_t kPrefetchAhead = 4096;
inline void prefetch_ahead(const void* block, size_t bytes) {
  const char* p = static_cast<const char*>(block) + kPrefetchAhead;
  for (size_t off = 0; off < bytes; off += 64) _mm_prefetch(p + off, _MM_HINT_T0);
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

inline __m256 load_f16x8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
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

}  // namespace
}  // namespace tokenscope::kernels::x86
