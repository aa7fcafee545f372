// AVX-512 (BW + VNNI) MAD kernels for the ternary formats: 64 codes a vector, vpdpbusd multiplying the unsigned
// codes with the int8 activations straight into int32 lanes. TQ1_0 and IQ2_BN keep the AVX2 kernels (their
// blocks, 16-byte pieces and base-3 digits, fill a 512-bit vector only by gathering pieces of four blocks).
#include <immintrin.h>

#include "kernels/ternary/ternary_kernels.h"

namespace tokenscope::kernels::ternary::avx512 {

namespace {

inline __m512i codes_at(__m512i v, int shift) {
  return _mm512_and_si512(_mm512_srli_epi16(v, shift), _mm512_set1_epi8(3));
}
inline int32_t hsum(__m256i v) {
  __m128i h = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  h = _mm_add_epi32(h, _mm_unpackhi_epi64(h, h));
  h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 1));
  return _mm_cvtsi128_si32(h);
}
inline __m256i load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
// 32 activations at p0 in the low half, 32 at p1 in the high half.
inline __m512i load_pair(const int8_t* p0, const int8_t* p1) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(load(p0)), load(p1), 1);
}

}  // namespace

float dot_tq2_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockTQ2_0*>(w);
  const auto* q = static_cast<const int8_t*>(a);
  float acc = 0;
  for (int64_t b = 0; b < n / QK_TQ; ++b) {
    // Bytes 0..31 hold elements 32 l + m, bytes 32..63 elements 128 + 32 l + m, in bits 2l.
    const __m512i v = _mm512_loadu_si512(x[b].qs);
    const int8_t* qa = q + b * QK_TQ;
    __m512i s = _mm512_setzero_si512();
    for (int l = 0; l < 4; ++l) s = _mm512_dpbusd_epi32(s, codes_at(v, 2 * l), load_pair(qa + 32 * l, qa + 128 + 32 * l));
    acc = tq_step(acc, x[b].d, _mm512_reduce_add_epi32(s), a, n, b);
  }
  return tq_finish(acc, a, n);
}

float dot_i2_s(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint8_t*>(w);
  const auto* q = static_cast<const int8_t*>(a);
  const int64_t nb = n / QK_I2_S;
  __m512i s = _mm512_setzero_si512();
  int64_t b = 0;
  // Two blocks a vector: block b's 32 bytes low, block b + 1's high; group g is in bits 6 - 2g.
  for (; b + 2 <= nb; b += 2) {
    const __m512i v = _mm512_loadu_si512(x + 32 * b);
    const int8_t* qa = q + b * QK_I2_S;
    for (int g = 0; g < 4; ++g)
      s = _mm512_dpbusd_epi32(s, codes_at(v, 6 - 2 * g), load_pair(qa + 32 * g, qa + QK_I2_S + 32 * g));
  }
  __m256i s8 = _mm256_setzero_si256();
  if (b < nb) {
    const __m256i v = load(x + 32 * b);
    const int8_t* qa = q + b * QK_I2_S;
    for (int g = 0; g < 4; ++g)
      s8 = _mm256_dpbusd_epi32(s8, _mm256_and_si256(_mm256_srli_epi16(v, 6 - 2 * g), _mm256_set1_epi8(3)), load(qa + 32 * g));
  }
  return finish_i2_s(_mm512_reduce_add_epi32(s) + hsum(s8), a, n);
}

}  // namespace tokenscope::kernels::ternary::avx512

namespace tokenscope::kernels::detail {

void install_tq1_0_avx512(KernelTable&) {}
void install_tq2_0_avx512(KernelTable& t) { t.for_type(TensorType::TQ2_0).vec_dot = ternary::avx512::dot_tq2_0; }
void install_i2_s_avx512(KernelTable& t) { t.for_type(TensorType::I2_S).vec_dot = ternary::avx512::dot_i2_s; }
void install_iq2_bn_avx512(KernelTable&) {}

}  // namespace tokenscope::kernels::detail
