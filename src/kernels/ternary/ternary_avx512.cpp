// AVX-512 (BW + VNNI) MAD kernels for the ternary formats: 64 codes a vector, vpdpbusd multiplying the unsigned
// codes with the int8 activations straight into int32 lanes. Where a format's bytes hold codes of elements a fixed
// distance apart (IQ2_BN's 16, TQ1_0's 32 and 16), the bytes are broadcast to every 128- or 256-bit lane and each lane
// shifted or multiplied by its own amount, so the codes come out in element order, next to contiguous activations.
#include <immintrin.h>

#include <cstring>

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

// Byte-wise base-3 digits ((v * p mod 256) * 3) >> 8 = (m >= 86) + (m >= 171), p given per 16-bit word.
inline __m512i trit(__m512i v, __m512i p) {
  const __m512i lo = _mm512_and_si512(_mm512_mullo_epi16(v, p), _mm512_set1_epi16(0x00FF));
  const __m512i hi = _mm512_and_si512(_mm512_mullo_epi16(_mm512_and_si512(v, _mm512_set1_epi16(static_cast<int16_t>(0xFF00))), p),
                                      _mm512_set1_epi16(static_cast<int16_t>(0xFF00)));
  const __m512i m = _mm512_or_si512(lo, hi), one = _mm512_set1_epi8(1);
  return _mm512_add_epi8(_mm512_min_epu8(_mm512_subs_epu8(m, _mm512_set1_epi8(85)), one),
                         _mm512_min_epu8(_mm512_subs_epu8(m, _mm512_set1_epi8(static_cast<char>(170))), one));
}
inline __m256i trit(__m256i v, __m256i p) {
  const __m256i lo = _mm256_and_si256(_mm256_mullo_epi16(v, p), _mm256_set1_epi16(0x00FF));
  const __m256i hi = _mm256_and_si256(_mm256_mullo_epi16(_mm256_and_si256(v, _mm256_set1_epi16(static_cast<int16_t>(0xFF00))), p),
                                      _mm256_set1_epi16(static_cast<int16_t>(0xFF00)));
  const __m256i m = _mm256_or_si256(lo, hi), one = _mm256_set1_epi8(1);
  return _mm256_add_epi8(_mm256_min_epu8(_mm256_subs_epu8(m, _mm256_set1_epi8(85)), one),
                         _mm256_min_epu8(_mm256_subs_epu8(m, _mm256_set1_epi8(static_cast<char>(170))), one));
}
// Multipliers p0 for the low 256 bits, p1 for the high.
inline __m512i halves(int16_t p0, int16_t p1) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(p0)), _mm256_set1_epi16(p1), 1);
}

}  // namespace

float dot_tq1_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockTQ1_0*>(w);
  const auto* q = static_cast<const int8_t*>(a);
  // qs[0..31]: digits n = 0..4 of byte m are elements 32 n + m; two digits a vector (low and high 256 bits).
  const __m512i p01 = halves(1, 3), p23 = halves(9, 27);
  // qs[32..47]: digit n of byte m is element 160 + 16 n + m; digits 0..3 in the four 128-bit lanes.
  const __m512i p0123 = _mm512_inserti64x4(
      _mm512_castsi256_si512(_mm256_set_m128i(_mm_set1_epi16(3), _mm_set1_epi16(1))),
      _mm256_set_m128i(_mm_set1_epi16(27), _mm_set1_epi16(9)), 1);
  // Digit 4 of qs[0..31] (elements 128..159), then digit 4 of qs[32..47] (224..239) next to qh's four bytes
  // repeated (element 240 + 4k + j is digit k of qh[j]: words 2k, 2k + 1 multiply by 3^k).
  const __m256i p4 = _mm256_set1_epi16(81);
  const __m256i ptail = _mm256_setr_epi16(81, 81, 81, 81, 81, 81, 81, 81, 1, 1, 3, 3, 9, 9, 27, 27);
  float acc = 0;
  for (int64_t b = 0; b < n / QK_TQ; ++b) {
    const int8_t* qa = q + b * QK_TQ;
    const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs));
    const __m512i v0x2 = _mm512_broadcast_i64x4(v0);
    const __m512i v1x4 = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].qs + 32)));
    __m512i s = _mm512_setzero_si512();
    s = _mm512_dpbusd_epi32(s, trit(v0x2, p01), _mm512_loadu_si512(qa));
    s = _mm512_dpbusd_epi32(s, trit(v0x2, p23), _mm512_loadu_si512(qa + 64));
    s = _mm512_dpbusd_epi32(s, trit(v1x4, p0123), _mm512_loadu_si512(qa + 160));
    uint32_t qh;
    std::memcpy(&qh, x[b].qh, 4);
    const __m256i vt = _mm256_set_m128i(_mm_set1_epi32(static_cast<int>(qh)), _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].qs + 32)));
    __m256i s8 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), trit(v0, p4), load(qa + 128));
    s8 = _mm256_dpbusd_epi32(s8, trit(vt, ptail), load(qa + 224));
    acc = tq_step(acc, x[b].d, _mm512_reduce_add_epi32(s) + hsum(s8), a, n, b);
  }
  return tq_finish(acc, a, n);
}

float dot_iq2_bn(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint8_t*>(w) + kIQ2BNRowMeta;
  const auto* q = static_cast<const int8_t*>(a);
  // A block's 16 bytes in every 128-bit lane, lane l shifted right by 2l: the codes of elements 16 l + j in order.
  const __m512i shifts = _mm512_set_epi64(0x0006000600060006, 0x0006000600060006, 0x0004000400040004,
                                          0x0004000400040004, 0x0002000200020002, 0x0002000200020002, 0, 0);
  __m512i s = _mm512_setzero_si512();
  for (int64_t b = 0; b < n / QK_IQ2_BN; ++b) {
    const __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + 16 * b)));
    const __m512i c = _mm512_and_si512(_mm512_srlv_epi16(v, shifts), _mm512_set1_epi8(3));
    s = _mm512_dpbusd_epi32(s, c, _mm512_loadu_si512(q + b * QK_IQ2_BN));
  }
  return finish_iq2_bn(w, _mm512_reduce_add_epi32(s), a, n);
}

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

// The packed multiply (ternary_kernels.h). A 64-byte load of a block holds 4 rows' 16 bytes, one row per 128-bit
// lane, and bits 2s..2s+1 of byte j are the code of element 16 s + j. So v & (3 << 2s) is 4^s times the codes of
// elements 16 s .. 16 s + 15 of each of the 4 rows, in order, against the same 16 activations broadcast to every
// lane: no shifts, one mask per position, and the 4^s comes off exactly (every product is a multiple of it) when
// the position's sums are combined. One accumulator per (position, token, 4-row half) keeps the multiply-adds
// independent; a 4-row half's lanes are summed per row at the end (per block of 256 for TQ1_0 / TQ2_0).
namespace {

// Per 128-bit lane (one row), the sum of its 4 int32 lanes, in every lane.
inline __m512i row_sums(__m512i v) {
  v = _mm512_add_epi32(v, _mm512_shuffle_epi32(v, _MM_PERM_BADC));
  return _mm512_add_epi32(v, _mm512_shuffle_epi32(v, _MM_PERM_CDAB));
}

// The rows' exact sums of c * q for elements [64 b0, 64 b1) of 4 * kHalves rows (halves h0.. of the group) and
// kNt tokens: out[t][4 h + r].
template <int kNt, int kHalves>
inline void packed_sums(const void* w, const uint8_t* a, size_t act_stride, int h0, int64_t b0, int64_t b1,
                        int32_t (*out)[kPackRows]) {
  __m512i acc[kNt][kHalves][4];
  for (int t = 0; t < kNt; ++t)
    for (int h = 0; h < kHalves; ++h)
      for (int s = 0; s < 4; ++s) acc[t][h][s] = _mm512_setzero_si512();
  const __m512i m0 = _mm512_set1_epi8(0x03), m1 = _mm512_set1_epi8(0x0C), m2 = _mm512_set1_epi8(0x30),
                m3 = _mm512_set1_epi8(static_cast<char>(0xC0));
  for (int64_t b = b0; b < b1; ++b) {
    __m512i c[kHalves][4];
    for (int h = 0; h < kHalves; ++h) {
      const __m512i v = _mm512_loadu_si512(packed_codes(w, b) + 64 * (h0 + h));
      c[h][0] = _mm512_and_si512(v, m0);
      c[h][1] = _mm512_and_si512(v, m1);
      c[h][2] = _mm512_and_si512(v, m2);
      c[h][3] = _mm512_and_si512(v, m3);
    }
    for (int t = 0; t < kNt; ++t) {
      const uint8_t* at = a + static_cast<size_t>(t) * act_stride + 64 * b;
      for (int s = 0; s < 4; ++s) {
        const __m512i q = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(at + 16 * s)));
        for (int h = 0; h < kHalves; ++h) acc[t][h][s] = _mm512_dpbusd_epi32(acc[t][h][s], c[h][s], q);
      }
    }
  }
  for (int t = 0; t < kNt; ++t)
    for (int h = 0; h < kHalves; ++h) {
      const __m512i sum = _mm512_add_epi32(
          _mm512_add_epi32(acc[t][h][0], _mm512_srai_epi32(acc[t][h][1], 2)),
          _mm512_add_epi32(_mm512_srai_epi32(acc[t][h][2], 4), _mm512_srai_epi32(acc[t][h][3], 6)));
      alignas(64) int32_t lanes[16];
      _mm512_store_si512(lanes, row_sums(sum));
      for (int r = 0; r < 4; ++r) out[t][4 * (h0 + h) + r] = lanes[4 * r];
    }
}

// kNt tokens (1, 2 or 4) of a group: the sums over [64 b0, 64 b1), all 8 rows. Four tokens take 16 accumulators per
// 4-row half, so they go one half at a time; fewer tokens take both halves at once.
template <int kNt>
inline void group_sums(const void* w, const uint8_t* a, size_t act_stride, int64_t b0, int64_t b1,
                       int32_t (*out)[kPackRows]) {
  if constexpr (kNt == 4) {
    packed_sums<4, 1>(w, a, act_stride, 0, b0, b1, out);
    packed_sums<4, 1>(w, a, act_stride, 1, b0, b1, out);
  } else {
    packed_sums<kNt, 2>(w, a, act_stride, 0, b0, b1, out);
  }
}

template <TensorType kType, int kNt>
void gemm_packed_nt(int64_t n, const void* w, const uint8_t* a, size_t act_stride, float* y, int64_t ldy) {
  constexpr bool kTq = kType == TensorType::TQ1_0 || kType == TensorType::TQ2_0;
  int32_t sums[kNt][kPackRows];
  float acc[kNt][kPackRows] = {};
  if constexpr (kTq) {
    for (int64_t b = 0; b < n / QK_TQ; ++b) {
      group_sums<kNt>(w, a, act_stride, 4 * b, 4 * b + 4, sums);
      for (int t = 0; t < kNt; ++t) {
        const void* at = a + static_cast<size_t>(t) * act_stride;
        const int32_t asum = act_sum(at, n, b * QK_TQ, QK_TQ);
        for (int r = 0; r < kPackRows; ++r) acc[t][r] = packed_tq_step(acc[t][r], n, w, r, b, sums[t][r] - asum);
      }
    }
  } else {
    group_sums<kNt>(w, a, act_stride, 0, n / 64, sums);
  }
  for (int t = 0; t < kNt; ++t) {
    const void* at = a + static_cast<size_t>(t) * act_stride;
    const int32_t asum = kTq ? 0 : act_sum(at, n, 0, n);
    for (int r = 0; r < kPackRows; ++r)
      y[t * ldy + r] = packed_finish(kType, n, w, r, acc[t][r], kTq ? 0 : sums[t][r] - asum, at);
  }
}

}  // namespace

template <TensorType kType>
void gemm_packed(int64_t n, const void* w, const void* act, size_t act_stride, const int32_t*, int nt, float* y,
                 int64_t ldy) {
  const auto* a = static_cast<const uint8_t*>(act);
  int t = 0;
  for (; t + 4 <= nt; t += 4) gemm_packed_nt<kType, 4>(n, w, a + t * act_stride, act_stride, y + t * ldy, ldy);
  if (t + 2 <= nt) {
    gemm_packed_nt<kType, 2>(n, w, a + t * act_stride, act_stride, y + t * ldy, ldy);
    t += 2;
  }
  if (t < nt) gemm_packed_nt<kType, 1>(n, w, a + t * act_stride, act_stride, y + t * ldy, ldy);
}

}  // namespace tokenscope::kernels::ternary::avx512

namespace tokenscope::kernels::detail {

void install_tq1_0_avx512(KernelTable& t) {
  t.for_type(TensorType::TQ1_0).vec_dot = ternary::avx512::dot_tq1_0;
  t.for_type(TensorType::TQ1_0).gemm_packed = ternary::avx512::gemm_packed<TensorType::TQ1_0>;
}
void install_tq2_0_avx512(KernelTable& t) {
  t.for_type(TensorType::TQ2_0).vec_dot = ternary::avx512::dot_tq2_0;
  t.for_type(TensorType::TQ2_0).gemm_packed = ternary::avx512::gemm_packed<TensorType::TQ2_0>;
}
void install_i2_s_avx512(KernelTable& t) {
  t.for_type(TensorType::I2_S).vec_dot = ternary::avx512::dot_i2_s;
  t.for_type(TensorType::I2_S).gemm_packed = ternary::avx512::gemm_packed<TensorType::I2_S>;
}
void install_iq2_bn_avx512(KernelTable& t) {
  t.for_type(TensorType::IQ2_BN).vec_dot = ternary::avx512::dot_iq2_bn;
  t.for_type(TensorType::IQ2_BN).gemm_packed = ternary::avx512::gemm_packed<TensorType::IQ2_BN>;
}

}  // namespace tokenscope::kernels::detail
