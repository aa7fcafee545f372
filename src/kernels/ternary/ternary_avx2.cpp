// AVX2 MAD kernels for the ternary formats: codes unpacked to bytes with shifts and masks (TQ1_0: base-3 digits by
// byte multiplies), multiplied with the int8 activations by maddubs (codes unsigned, at most 2: no saturation).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/ternary/ternary_kernels.h"
#include "kernels/simd/x86.h"
#include "kernels/ternary/ternary_packed_x86.h"

namespace tokenscope::kernels::ternary::avx2 {

namespace {

inline int32_t hsum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

inline __m256i codes_at(__m256i v, int shift) {
  return _mm256_and_si256(_mm256_srli_epi16(v, shift), _mm256_set1_epi8(3));
}

// Byte-wise v * p mod 256, then the base-3 digit ((that * 3) >> 8) = (m >= 86) + (m >= 171).
inline __m256i trit(__m256i v, int p) {
  const __m256i pv = _mm256_set1_epi16(static_cast<int16_t>(p));
  const __m256i lo = _mm256_and_si256(_mm256_mullo_epi16(v, pv), _mm256_set1_epi16(0x00FF));
  const __m256i hi = _mm256_and_si256(_mm256_mullo_epi16(_mm256_and_si256(v, _mm256_set1_epi16(static_cast<int16_t>(0xFF00))), pv),
                                      _mm256_set1_epi16(static_cast<int16_t>(0xFF00)));
  const __m256i m = _mm256_or_si256(lo, hi);
  const __m256i one = _mm256_set1_epi8(1);
  const __m256i t1 = _mm256_min_epu8(_mm256_subs_epu8(m, _mm256_set1_epi8(85)), one);
  const __m256i t2 = _mm256_min_epu8(_mm256_subs_epu8(m, _mm256_set1_epi8(static_cast<char>(170))), one);
  return _mm256_add_epi8(t1, t2);
}

inline __m256i load(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline __m256i load(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
// 16 bytes in the low half, zeros above.
inline __m256i load16(const void* p) {
  return _mm256_set_m128i(_mm_setzero_si128(), _mm_loadu_si128(static_cast<const __m128i*>(p)));
}

}  // namespace

float dot_tq2_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockTQ2_0*>(w);
  const auto* q = static_cast<const int8_t*>(a);
  float acc = 0;
  for (int64_t b = 0; b < n / QK_TQ; ++b) {
    __m256i s16 = _mm256_setzero_si256();
    for (int j = 0; j < 2; ++j) {
      const __m256i v = load(x[b].qs + 32 * j);
      const int8_t* qa = q + b * QK_TQ + 128 * j;
      for (int l = 0; l < 4; ++l) s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(codes_at(v, 2 * l), load(qa + 32 * l)));
    }
    acc = tq_step(acc, x[b].d, hsum(_mm256_madd_epi16(s16, _mm256_set1_epi16(1))), a, n, b);
  }
  return tq_finish(acc, a, n);
}

float dot_tq1_0(int64_t n, const void* w, const void* a) {
  static constexpr int kPow3[5] = {1, 3, 9, 27, 81};
  const auto* x = static_cast<const BlockTQ1_0*>(w);
  const auto* q = static_cast<const int8_t*>(a);
  float acc = 0;
  for (int64_t b = 0; b < n / QK_TQ; ++b) {
    const int8_t* qa = q + b * QK_TQ;
    __m256i s16 = _mm256_setzero_si256();
    const __m256i v0 = load(x[b].qs), v1 = load16(x[b].qs + 32);
    for (int k = 0; k < 5; ++k) {
      s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(trit(v0, kPow3[k]), load(qa + 32 * k)));
      s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(trit(v1, kPow3[k]), load16(qa + 160 + 16 * k)));
    }
    int32_t cq = hsum(_mm256_madd_epi16(s16, _mm256_set1_epi16(1)));
    // The last 16 elements, four trits in each of the 4 qh bytes (element 240 + j + 4k is trit k of qh[j]).
    for (int k = 0; k < 4; ++k)
      for (int j = 0; j < 4; ++j) {
        const auto m = static_cast<uint8_t>(x[b].qh[j] * kPow3[k]);
        cq += ((static_cast<unsigned>(m) * 3) >> 8) * qa[240 + 4 * k + j];
      }
    acc = tq_step(acc, x[b].d, cq, a, n, b);
  }
  return tq_finish(acc, a, n);
}

float dot_i2_s(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint8_t*>(w);
  const auto* q = static_cast<const int8_t*>(a);
  __m256i s32 = _mm256_setzero_si256();
  for (int64_t b = 0; b < n / QK_I2_S; ++b) {
    const __m256i v = load(x + 32 * b);
    const int8_t* qa = q + b * QK_I2_S;
    __m256i s16 = _mm256_maddubs_epi16(codes_at(v, 6), load(qa));
    s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(codes_at(v, 4), load(qa + 32)));
    s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(codes_at(v, 2), load(qa + 64)));
    s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(codes_at(v, 0), load(qa + 96)));
    s32 = _mm256_add_epi32(s32, _mm256_madd_epi16(s16, _mm256_set1_epi16(1)));
  }
  return finish_i2_s(hsum(s32), a, n);
}

float dot_iq2_bn(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint8_t*>(w) + kIQ2BNRowMeta;
  const auto* q = static_cast<const int8_t*>(a);
  const int64_t nb = n / QK_IQ2_BN;
  __m256i s32 = _mm256_setzero_si256();
  int64_t b = 0;
  // Two blocks a vector: block b's 16 bytes in the low half, block b + 1's in the high half.
  for (; b + 2 <= nb; b += 2) {
    const __m256i v = load(x + 16 * b);
    const int8_t* qa = q + b * QK_IQ2_BN;
    __m256i s16 = _mm256_setzero_si256();
    for (int l = 0; l < 4; ++l) {
      const __m256i av = _mm256_set_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qa + 64 + 16 * l)),
                                          _mm_loadu_si128(reinterpret_cast<const __m128i*>(qa + 16 * l)));
      s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(codes_at(v, 2 * l), av));
    }
    s32 = _mm256_add_epi32(s32, _mm256_madd_epi16(s16, _mm256_set1_epi16(1)));
  }
  if (b < nb) {
    const __m256i v = load16(x + 16 * b);
    const int8_t* qa = q + b * QK_IQ2_BN;
    __m256i s16 = _mm256_setzero_si256();
    for (int l = 0; l < 4; ++l) s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(codes_at(v, 2 * l), load16(qa + 16 * l)));
    s32 = _mm256_add_epi32(s32, _mm256_madd_epi16(s16, _mm256_set1_epi16(1)));
  }
  return finish_iq2_bn(w, hsum(s32), a, n);
}

namespace {

// The packed multiply's sums (ternary_packed_x86.h). A 32-byte load of a block holds 2 rows, one per 128-bit lane
// (rows 2p and 2p + 1 at offset 32 p), and bits 2s..2s+1 of byte j are the code of element 16 s + j, against 16
// activations broadcast to both lanes. Codes are at most 2 and activations at most 127 in magnitude, so a vpmaddubsw
// lane (two products) is at most 508, a block's four positions at most 2032, and 16 blocks add up in 16 bits before
// widening to 32.
inline __m256i bcast16(const uint8_t* p) {
  return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// Row pair sums (2 x 4 int32 lanes) of one 16-bit accumulator pair, into out[2p] and out[2p + 1].
inline void store_pair(__m256i s32, __m256i s16, int p, int32_t* out) {
  const __m256i s = _mm256_add_epi32(s32, _mm256_madd_epi16(s16, _mm256_set1_epi16(1)));
  __m128i lo = _mm_hadd_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  lo = _mm_hadd_epi32(lo, lo);
  out[2 * p] = _mm_cvtsi128_si32(lo);
  out[2 * p + 1] = _mm_extract_epi32(lo, 1);
}

// One token (decode): block by block through the group's bytes in memory order, the 4 row pairs with their own
// accumulators, sharing the block's 4 activation broadcasts. Position s is masked in place (4^s times the codes)
// and its multiply's sums shifted back by 2s: the same count of operations as shifting the codes out, and one fewer
// register.
struct PairAcc {
  __m256i s16 = _mm256_setzero_si256(), s32 = _mm256_setzero_si256();
};
inline void pair_block(PairAcc& acc, __m256i v, __m256i a0, __m256i a1, __m256i a2, __m256i a3) {
  const __m256i x0 = _mm256_maddubs_epi16(_mm256_and_si256(v, _mm256_set1_epi8(0x03)), a0);
  const __m256i x1 = _mm256_srai_epi16(_mm256_maddubs_epi16(_mm256_and_si256(v, _mm256_set1_epi8(0x0C)), a1), 2);
  const __m256i x2 = _mm256_srai_epi16(_mm256_maddubs_epi16(_mm256_and_si256(v, _mm256_set1_epi8(0x30)), a2), 4);
  const __m256i x3 =
      _mm256_srai_epi16(_mm256_maddubs_epi16(_mm256_and_si256(v, _mm256_set1_epi8(static_cast<char>(0xC0))), a3), 6);
  acc.s16 = _mm256_add_epi16(acc.s16, _mm256_add_epi16(_mm256_add_epi16(x0, x1), _mm256_add_epi16(x2, x3)));
}
inline void widen(PairAcc& acc) {
  acc.s32 = _mm256_add_epi32(acc.s32, _mm256_madd_epi16(acc.s16, _mm256_set1_epi16(1)));
  acc.s16 = _mm256_setzero_si256();
}
inline void one_token_sums(const void* w, const uint8_t* a, int64_t b0, int64_t b1, int32_t* out) {
  PairAcc r0, r1, r2, r3;
  int pending = 0;
  for (int64_t b = b0; b < b1; ++b) {
    const uint8_t* q = a + 64 * b;
    const __m256i a0 = bcast16(q), a1 = bcast16(q + 16), a2 = bcast16(q + 32), a3 = bcast16(q + 48);
    const uint8_t* c = packed_codes(w, b);
    kernels::x86::prefetch_ahead(c, 128);  // decode streams the weights once
    pair_block(r0, load(c), a0, a1, a2, a3);
    pair_block(r1, load(c + 32), a0, a1, a2, a3);
    pair_block(r2, load(c + 64), a0, a1, a2, a3);
    pair_block(r3, load(c + 96), a0, a1, a2, a3);
    if (++pending == 16) {
      widen(r0), widen(r1), widen(r2), widen(r3);
      pending = 0;
    }
  }
  store_pair(r0.s32, r0.s16, 0, out);
  store_pair(r1.s32, r1.s16, 1, out);
  store_pair(r2.s32, r2.s16, 2, out);
  store_pair(r3.s32, r3.s16, 3, out);
}

// Several tokens (prefill): row pair by row pair, the codes shifted out once per block and shared by the tokens,
// so a token's block costs 4 vpmaddubsw and 4 adds. Four tokens' block is written as the instructions: GCC 12, given
// the intrinsics, spills codes and accumulators to the stack every block.
struct Acc4 {
  __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256(), s2 = _mm256_setzero_si256(),
          s3 = _mm256_setzero_si256();
};
// One position (codes c) of one block for 4 tokens whose 16 activations are at q, q + st, q + 2 st, q3.
#define TS_TERNARY_AVX2_POS(off)                                   \
  "vbroadcasti128 " #off "(%[q]), %[t]\n\t"                       \
  "vpmaddubsw %[t], %[c], %[t]\n\t"                                \
  "vpaddw %[t], %[s0], %[s0]\n\t"                                  \
  "vbroadcasti128 " #off "(%[q],%[st],1), %[t]\n\t"               \
  "vpmaddubsw %[t], %[c], %[t]\n\t"                                \
  "vpaddw %[t], %[s1], %[s1]\n\t"                                  \
  "vbroadcasti128 " #off "(%[q],%[st],2), %[t]\n\t"               \
  "vpmaddubsw %[t], %[c], %[t]\n\t"                                \
  "vpaddw %[t], %[s2], %[s2]\n\t"                                  \
  "vbroadcasti128 " #off "(%[q3]), %[t]\n\t"                      \
  "vpmaddubsw %[t], %[c], %[t]\n\t"                                \
  "vpaddw %[t], %[s3], %[s3]\n\t"
inline void block4(Acc4& acc, __m256i v, __m256i three, const uint8_t* q, size_t st) {
  const uint8_t* q3 = q + 3 * st;
  __m256i c, t;
  asm("vpand %[three], %[v], %[c]\n\t" TS_TERNARY_AVX2_POS(0)
      "vpsrlw $2, %[v], %[c]\n\tvpand %[three], %[c], %[c]\n\t" TS_TERNARY_AVX2_POS(16)
      "vpsrlw $4, %[v], %[c]\n\tvpand %[three], %[c], %[c]\n\t" TS_TERNARY_AVX2_POS(32)
      "vpsrlw $6, %[v], %[c]\n\tvpand %[three], %[c], %[c]\n\t" TS_TERNARY_AVX2_POS(48)
      : [s0] "+x"(acc.s0), [s1] "+x"(acc.s1), [s2] "+x"(acc.s2), [s3] "+x"(acc.s3), [c] "=&x"(c), [t] "=&x"(t)
      : [v] "x"(v), [three] "x"(three), [q] "r"(q), [st] "r"(st), [q3] "r"(q3), "m"(*q), "m"(*q3));
}
#undef TS_TERNARY_AVX2_POS

template <int kNt>
inline void tokens_sums(const void* w, const uint8_t* a, size_t act_stride, int64_t b0, int64_t b1,
                        int32_t (*out)[kPackRows]) {
  const __m256i three = _mm256_set1_epi8(3);
  const __m256i ones = _mm256_set1_epi16(1);
  for (int p = 0; p < kPackRows / 2; ++p) {
    if constexpr (kNt == 4) {
      Acc4 s16;
      __m256i w0 = _mm256_setzero_si256(), w1 = w0, w2 = w0, w3 = w0;  // the 32-bit sums
      int pending = 0;
      for (int64_t b = b0; b < b1; ++b) {
        block4(s16, load(packed_codes(w, b) + 32 * p), three, a + 64 * b, act_stride);
        if (++pending == 16) {
          w0 = _mm256_add_epi32(w0, _mm256_madd_epi16(s16.s0, ones));
          w1 = _mm256_add_epi32(w1, _mm256_madd_epi16(s16.s1, ones));
          w2 = _mm256_add_epi32(w2, _mm256_madd_epi16(s16.s2, ones));
          w3 = _mm256_add_epi32(w3, _mm256_madd_epi16(s16.s3, ones));
          s16 = Acc4{};
          pending = 0;
        }
      }
      store_pair(w0, s16.s0, p, out[0]);
      store_pair(w1, s16.s1, p, out[1]);
      store_pair(w2, s16.s2, p, out[2]);
      store_pair(w3, s16.s3, p, out[3]);
    } else {
      __m256i s32[kNt], s16[kNt];
      for (int t = 0; t < kNt; ++t) s32[t] = s16[t] = _mm256_setzero_si256();
      int pending = 0;
      for (int64_t b = b0; b < b1; ++b) {
        const __m256i v = load(packed_codes(w, b) + 32 * p);
        const uint8_t* q = a + 64 * b;
        for (int s = 0; s < 4; ++s) {
          const __m256i c = _mm256_and_si256(s == 0 ? v : _mm256_srli_epi16(v, 2 * s), three);
          for (int t = 0; t < kNt; ++t)
            s16[t] = _mm256_add_epi16(s16[t],
                                      _mm256_maddubs_epi16(c, bcast16(q + static_cast<size_t>(t) * act_stride + 16 * s)));
        }
        if (++pending == 16) {
          for (int t = 0; t < kNt; ++t) {
            s32[t] = _mm256_add_epi32(s32[t], _mm256_madd_epi16(s16[t], ones));
            s16[t] = _mm256_setzero_si256();
          }
          pending = 0;
        }
      }
      for (int t = 0; t < kNt; ++t) store_pair(s32[t], s16[t], p, out[t]);
    }
  }
}

struct Sums {
  template <int kNt>
  static void run(const void* w, const uint8_t* a, size_t act_stride, int64_t b0, int64_t b1, int32_t (*out)[kPackRows]) {
    if constexpr (kNt == 1)
      one_token_sums(w, a, b0, b1, out[0]);
    else
      tokens_sums<kNt>(w, a, act_stride, b0, b1, out);
  }
};

}  // namespace

template <TensorType kType>
void gemm_packed(int64_t n, const void* w, const void* act, size_t act_stride, const int32_t* sums, int nt, float* y,
                 int64_t ldy) {
  x86::gemm_packed<kType, Sums>(n, w, act, act_stride, sums, nt, y, ldy);
}

// The "i8_row" activations (ternary_kernels.h), as the scalar quantizer computes them: the largest magnitude (a
// maximum, exact in any order), q = nearest-even(x * (127 / amax)) by the conversion's default rounding (as
// nearbyint), then each 64 quants' sum.
void quantize_act_i8_row(const float* x, void* y, int64_t n) {
  auto* q = static_cast<int8_t*>(y);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  __m256 vmax = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask));
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  float amax = _mm_cvtss_f32(m4);
  for (; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = amax / 127.f;
  const float id = amax != 0.f ? 127.f / amax : 0.f;
  const __m256 vid = _mm256_set1_ps(id);
  auto* sums = reinterpret_cast<int32_t*>(q + n + 4);
  // n is a multiple of 64 (every ternary block is): 2 x 32 quants a block.
  for (int64_t b = 0; b < n / kSumBlock; ++b) {
    __m256i s = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const int64_t j = b * kSumBlock + 32 * h;
      __m256i v[4];
      for (int k = 0; k < 4; ++k) {
        v[k] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * k), vid));
        s = _mm256_add_epi32(s, v[k]);
      }
      // Saturating packs (no value is beyond +-127) interleave the 128-bit lanes; the permute puts them in order.
      const __m256i b8 = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + j),
                          _mm256_permutevar8x32_epi32(b8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    }
    sums[b] = hsum(s);
  }
  std::memcpy(q + n, &d, sizeof d);
}

}  // namespace tokenscope::kernels::ternary::avx2

namespace tokenscope::kernels::detail {

void install_tq1_0_avx2(KernelTable& t) {
  t.for_type(TensorType::TQ1_0).vec_dot = ternary::avx2::dot_tq1_0;
  t.for_type(TensorType::TQ1_0).gemm_packed = ternary::avx2::gemm_packed<TensorType::TQ1_0>;
  t.for_type(TensorType::TQ1_0).act.quantize = ternary::avx2::quantize_act_i8_row;
}
void install_tq2_0_avx2(KernelTable& t) {
  t.for_type(TensorType::TQ2_0).vec_dot = ternary::avx2::dot_tq2_0;
  t.for_type(TensorType::TQ2_0).gemm_packed = ternary::avx2::gemm_packed<TensorType::TQ2_0>;
  t.for_type(TensorType::TQ2_0).act.quantize = ternary::avx2::quantize_act_i8_row;
}
void install_i2_s_avx2(KernelTable& t) {
  t.for_type(TensorType::I2_S).vec_dot = ternary::avx2::dot_i2_s;
  t.for_type(TensorType::I2_S).gemm_packed = ternary::avx2::gemm_packed<TensorType::I2_S>;
  t.for_type(TensorType::I2_S).act.quantize = ternary::avx2::quantize_act_i8_row;
}
void install_iq2_bn_avx2(KernelTable& t) {
  t.for_type(TensorType::IQ2_BN).vec_dot = ternary::avx2::dot_iq2_bn;
  t.for_type(TensorType::IQ2_BN).gemm_packed = ternary::avx2::gemm_packed<TensorType::IQ2_BN>;
  t.for_type(TensorType::IQ2_BN).act.quantize = ternary::avx2::quantize_act_i8_row;
}

}  // namespace tokenscope::kernels::detail
