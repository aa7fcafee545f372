// AVX-512 LUT multiply (ternary_lut.h): the AVX2 multiply at twice the width. A 64-byte load holds the indices of
// two consecutive quads of pairs (32 bytes each), and each of the four 64-byte table vectors puts quad q's 32-byte
// table piece under its indices and quad q + 1's under theirs, so one vpshufb looks up 16 rows in two quads' tables
// (each 128-bit lane its own table). The int16 sums of the two quads lie in the two 256-bit halves and are added when
// widened (every 32 quads, as the AVX2 multiply; the count of quads is even: rows are multiples of 64 elements).
#include <immintrin.h>

#include <algorithm>

#include "kernels/simd/x86.h"
#include "kernels/ternary/ternary_kernels.h"
#include "kernels/ternary/ternary_lut.h"

namespace tokenscope::kernels::ternary::lut {

namespace {

// Piece k (32 bytes) of quad q's tables, and of quad q + 1's in the high half.
inline __m512i table_pair(const uint8_t* tb, int64_t q, int k) {
  const auto* p = reinterpret_cast<const __m256i*>(tb + q * 128) + k;
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(p)), _mm256_loadu_si256(p + 4), 1);
}

// Rows 0-7 (or 8-15) as int32: the four 128-bit lanes of an int16 accumulator (quad q's even / odd pairs, then
// quad q + 1's) added.
inline __m256i rows_of(__m512i a) {
  const __m256i h = _mm256_add_epi16(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
  return _mm256_cvtepi16_epi32(_mm_add_epi16(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1)));
}

}  // namespace

void gemv_avx512(TensorType t, int64_t n, const void* group, const void* tables, const void* act, float* y) {
  const auto* g = static_cast<const uint8_t*>(group);
  const auto* tb = static_cast<const uint8_t*>(tables);
  const int64_t quads = n / 8, quads_per_flush = 32;  // 32 quads = 128 pairs = one TQ block
  const __m512i mask = _mm512_set1_epi8(0x0F);
  LutRowTotals totals(t, n, group);
  for (int64_t q0 = 0; q0 < quads; q0 += quads_per_flush) {
    __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();  // int16: rows 0-7 / 8-15
    const int64_t q1 = std::min(quads, q0 + quads_per_flush);
    for (int64_t q = q0; q < q1; q += 2) {
      kernels::x86::prefetch_ahead(g + q * 32, 64);  // the weights stream once per token
      const __m512i v = _mm512_loadu_si512(g + q * 32);
      const __m512i ilo = _mm512_and_si512(v, mask), ihi = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
      const __m512i l0 = _mm512_shuffle_epi8(table_pair(tb, q, 0), ilo);
      const __m512i h0 = _mm512_shuffle_epi8(table_pair(tb, q, 1), ilo);
      const __m512i l1 = _mm512_shuffle_epi8(table_pair(tb, q, 2), ihi);
      const __m512i h1 = _mm512_shuffle_epi8(table_pair(tb, q, 3), ihi);
      a0 = _mm512_add_epi16(a0, _mm512_add_epi16(_mm512_unpacklo_epi8(l0, h0), _mm512_unpacklo_epi8(l1, h1)));
      a1 = _mm512_add_epi16(a1, _mm512_add_epi16(_mm512_unpackhi_epi8(l0, h0), _mm512_unpackhi_epi8(l1, h1)));
    }
    const __m256i r0 = rows_of(a0), r1 = rows_of(a1);
    alignas(32) int32_t s[kLutRows];
    _mm256_store_si256(reinterpret_cast<__m256i*>(s), r0);
    _mm256_store_si256(reinterpret_cast<__m256i*>(s + 8), r1);
    totals.add_block(q0 / quads_per_flush, s);
  }
  totals.finish(act, y);
}

}  // namespace tokenscope::kernels::ternary::lut
