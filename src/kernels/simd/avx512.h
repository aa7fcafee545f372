// AVX-512 helpers shared by the formats' 512-bit packed multiplies (GemmPacked2Fn: two packed groups at once,
// lanes 0..7 the first group's rows, 8..15 the second's) and their token-count dispatch.
// Include only from files compiled with AVX-512 flags (names ending in _avx512.cpp).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "base/fp16.h"
#include "kernels/kernels.h"

namespace tokenscope::kernels::detail {
namespace {

// 32 bytes from a (low half) and 32 from b (high half).
inline __m512i load2x32(const void* a, const void* b) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(static_cast<const __m256i*>(a))),
                            _mm256_loadu_si256(static_cast<const __m256i*>(b)), 1);
}

// 8 f16 of each group as 16 floats.
inline __m512 load_pair_f16(const uint8_t* g0, const uint8_t* g1) {
  const __m256i h = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g0))),
                                            _mm_loadu_si128(reinterpret_cast<const __m128i*>(g1)), 1);
  return _mm512_cvtph_ps(h);
}

inline __m512i bcast4_512(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// Dispatch on the number of tokens (1..kPacked2MaxTokens) through a table of the instantiations.
template <template <int> class F, size_t... I>
constexpr auto nt_table(std::index_sequence<I...>) {
  using Fn = void (*)(int64_t, const uint8_t*, size_t, const uint8_t*, size_t, const int32_t*, float*, int64_t);
  return std::array<Fn, sizeof...(I)>{&F<static_cast<int>(I) + 1>::run...};
}

template <template <int> class F>
void by_nt(int nt, int64_t n, const void* w, size_t gb, const void* act, size_t as, const int32_t* sums, float* y,
            int64_t ldy) {
  static constexpr auto table = nt_table<F>(std::make_index_sequence<kPacked2MaxTokens>());
  const int i = std::clamp(nt, 1, kPacked2MaxTokens) - 1;
  table[static_cast<size_t>(i)](n, static_cast<const uint8_t*>(w), gb, static_cast<const uint8_t*>(act), as, sums, y, ldy);
}

}  // namespace
}  // namespace tokenscope::kernels::detail
