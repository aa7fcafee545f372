// AVX2 LUT multiply (ternary_lut.h): per quad of pairs, four vpshufb look 16 rows' indices up in the two pairs'
// low- and high-byte tables of each 128-bit lane, unpacked to int16 and added; int16 sums are widened every 128
// pairs (at most 2 x 254 a quad each: 32 quads stay below 2^15).
#include <immintrin.h>

#include <algorithm>

#include "kernels/simd/x86.h"
#include "kernels/ternary/ternary_kernels.h"
#include "kernels/ternary/ternary_lut.h"

namespace tokenscope::kernels::ternary::lut {

void gemv_avx2(TensorType t, int64_t n, const void* group, const void* tables, const void* act, float* y) {
  const auto* g = static_cast<const uint8_t*>(group);
  const auto* tb = static_cast<const uint8_t*>(tables);
  const int64_t quads = n / 8, quads_per_flush = 32;  // 32 quads = 128 pairs = one TQ block
  const __m256i mask = _mm256_set1_epi8(0x0F);
  LutRowTotals totals(t, n, group);
  for (int64_t q0 = 0; q0 < quads; q0 += quads_per_flush) {
    __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();  // int16: rows 0-7 / 8-15, per lane a pair
    const int64_t q1 = std::min(quads, q0 + quads_per_flush);
    for (int64_t q = q0; q < q1; ++q) {
      if (q % 2 == 0) kernels::x86::prefetch_ahead(g + q * 32, 64);  // the weights stream once per token
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + q * 32));
      const __m256i ilo = _mm256_and_si256(v, mask), ihi = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
      const auto* tq = reinterpret_cast<const __m256i*>(tb + q * 128);
      const __m256i l0 = _mm256_shuffle_epi8(_mm256_loadu_si256(tq), ilo);
      const __m256i h0 = _mm256_shuffle_epi8(_mm256_loadu_si256(tq + 1), ilo);
      const __m256i l1 = _mm256_shuffle_epi8(_mm256_loadu_si256(tq + 2), ihi);
      const __m256i h1 = _mm256_shuffle_epi8(_mm256_loadu_si256(tq + 3), ihi);
      a0 = _mm256_add_epi16(a0, _mm256_add_epi16(_mm256_unpacklo_epi8(l0, h0), _mm256_unpacklo_epi8(l1, h1)));
      a1 = _mm256_add_epi16(a1, _mm256_add_epi16(_mm256_unpackhi_epi8(l0, h0), _mm256_unpackhi_epi8(l1, h1)));
    }
    // Each row's two lanes (its even and odd pairs) added, then widened to int32.
    const __m256i r0 = _mm256_cvtepi16_epi32(_mm_add_epi16(_mm256_castsi256_si128(a0), _mm256_extracti128_si256(a0, 1)));
    const __m256i r1 = _mm256_cvtepi16_epi32(_mm_add_epi16(_mm256_castsi256_si128(a1), _mm256_extracti128_si256(a1, 1)));
    alignas(32) int32_t s[kLutRows];
    _mm256_store_si256(reinterpret_cast<__m256i*>(s), r0);
    _mm256_store_si256(reinterpret_cast<__m256i*>(s + 8), r1);
    totals.add_block(q0 / quads_per_flush, s);
  }
  totals.finish(act, y);
}

}  // namespace tokenscope::kernels::ternary::lut
