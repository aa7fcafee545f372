// x86 AVX-512 (F, BW, VL, VNNI) kernels: 512-bit versions of the 32-element block formats (two blocks
// per register, vpdpbusd), and VNNI on 256-bit registers for the K-quants.
#include "kernels/kernels_internal.h"
#include "kernels/kernels_x86.h"

#include <array>
#include <utility>

namespace tokenscope::kernels::detail {

namespace {

// 32 bytes from a (low half) and 32 from b (high half).
inline __m512i load2x32(const void* a, const void* b) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(static_cast<const __m256i*>(a))),
                            _mm256_loadu_si256(static_cast<const __m256i*>(b)), 1);
}

// Two Q4 blocks' 64 nibbles in element order, as u8 0..15.
inline __m512i unpack2_nibbles(const uint8_t* qa, const uint8_t* qb) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(x86::unpack_nibbles(qa)), x86::unpack_nibbles(qb), 1);
}

// Mask of the first `rest` of 16 lanes (none for rest <= 0).
inline __mmask16 tail_mask(int64_t rest) {
  return static_cast<__mmask16>(rest >= 16 ? 0xFFFF : rest <= 0 ? 0 : (1u << rest) - 1);
}

// Per-lane scale: d0 for lanes 0..7, d1 for lanes 8..15.
inline __m512 scale2(float d0, float d1) {
  return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(d0)), _mm256_set1_ps(d1), 1);
}

inline __m512i dot_s8s8(__m512i x, __m512i y) {
  const __m512i ax = _mm512_abs_epi8(x);
  // sign(y, x): negate y where x < 0 (x == 0 contributes 0 through |x| anyway).
  const __mmask64 neg = _mm512_movepi8_mask(x);
  const __m512i sy = _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y);
  return _mm512_dpbusd_epi32(_mm512_setzero_si512(), ax, sy);
}

float dot_q4_0_q8_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  const int64_t nb = n / QK4_0;
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 1 < nb; i += 2) {
    const __m512i qx = _mm512_sub_epi8(unpack2_nibbles(x[i].qs, x[i + 1].qs), _mm512_set1_epi8(8));
    const __m512i qy = load2x32(y[i].qs, y[i + 1].qs);
    const __m512 s = _mm512_cvtepi32_ps(dot_s8s8(qx, qy));
    acc = _mm512_fmadd_ps(scale2(fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d),
                                 fp16_to_fp32(x[i + 1].d) * fp16_to_fp32(y[i + 1].d)), s, acc);
  }
  float sum = _mm512_reduce_add_ps(acc);
  if (i < nb) sum += x86::dot_q4_0_q8_0<true>(QK4_0, &x[i], &y[i]);
  return sum;
}

float dot_q4_1_q8_1(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_1*>(w);
  const auto* y = static_cast<const BlockQ8_1*>(a);
  const int64_t nb = n / QK4_1;
  __m512 acc = _mm512_setzero_ps();
  float summ = 0;
  int64_t i = 0;
  for (; i + 1 < nb; i += 2) {
    const __m512i qx = unpack2_nibbles(x[i].qs, x[i + 1].qs);
    const __m512i qy = load2x32(y[i].qs, y[i + 1].qs);
    const __m512 s = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), qx, qy));
    acc = _mm512_fmadd_ps(scale2(fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d),
                                 fp16_to_fp32(x[i + 1].d) * fp16_to_fp32(y[i + 1].d)), s, acc);
    summ += fp16_to_fp32(x[i].m) * fp16_to_fp32(y[i].s) + fp16_to_fp32(x[i + 1].m) * fp16_to_fp32(y[i + 1].s);
  }
  float sum = _mm512_reduce_add_ps(acc) + summ;
  if (i < nb) sum += x86::dot_q4_1_q8_1<true>(QK4_1, &x[i], &y[i]);
  return sum;
}

float dot_q8_0_q8_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ8_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  const int64_t nb = n / QK8_0;
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 1 < nb; i += 2) {
    const __m512i qx = load2x32(x[i].qs, x[i + 1].qs);
    const __m512i qy = load2x32(y[i].qs, y[i + 1].qs);
    const __m512 s = _mm512_cvtepi32_ps(dot_s8s8(qx, qy));
    acc = _mm512_fmadd_ps(scale2(fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d),
                                 fp16_to_fp32(x[i + 1].d) * fp16_to_fp32(y[i + 1].d)), s, acc);
  }
  float sum = _mm512_reduce_add_ps(acc);
  if (i < nb) sum += x86::dot_q8_0_q8_0<true>(QK8_0, &x[i], &y[i]);
  return sum;
}

// ---- Packed groups, two at a time (GemmPacked2Fn): lanes 0..7 hold the first group's rows, 8..15 the
// second's, so each 512-bit vpdpbusd covers 16 rows and one broadcast activation serves both groups. ----

// 8 f16 of each group as 16 floats.
inline __m512 load_pair_f16(const uint8_t* g0, const uint8_t* g1) {
  const __m256i h = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g0))),
                                            _mm_loadu_si128(reinterpret_cast<const __m128i*>(g1)), 1);
  return _mm512_cvtph_ps(h);
}

// x86::or_fifth_bit on 512-bit registers.
inline __m512i or_fifth_bit512(__m512i q, __m512i hb, int k) {
  const __m512i s = k <= 4 ? _mm512_slli_epi16(hb, 4 - k) : _mm512_srli_epi16(hb, k - 4);
  return _mm512_ternarylogic_epi32(q, s, _mm512_set1_epi8(0x10), 0xF8);  // q | (s & 0x10)
}

// x86::q6_k_chunk on 512-bit registers.
inline void q6_k_chunk512(__m512i v, __m512i hv, int cc, __m512i& lo, __m512i& hi) {
  const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
  const __m512i hl = cc == 0 ? _mm512_slli_epi16(hv, 4) : hv;
  const __m512i hh = cc == 0 ? _mm512_slli_epi16(hv, 2) : _mm512_srli_epi16(hv, 2);
  lo = _mm512_ternarylogic_epi32(_mm512_and_si512(v, m4), hl, m30, 0xF8);
  hi = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(v, 4), m4), hh, m30, 0xF8);
}

inline __m512i bcast4_512(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// Q4_0 / Q4_1: per token and block, sum of q * a with q the unsigned nibbles (Q4_0's -8 comes off through
// the activation block sums), as in gemm_packed_q4_nt.
template <bool kQ4_1, int NT>
void gemm_packed2_q4_nt(int64_t n, const uint8_t* g0, size_t group_bytes, const uint8_t* act, size_t act_stride,
                        const int32_t* act_sums, float* y, int64_t ldy) {
  using ABlock = std::conditional_t<kQ4_1, BlockQ8_1, BlockQ8_0>;
  const int64_t nb = n / 32;
  const size_t block = kQ4_1 ? 8 * 4 + 128 : 8 * 2 + 128;
  const uint8_t* g1 = g0 + group_bytes;
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, g0 += block, g1 += block) {
    if constexpr (NT == 1) {  // decode streams both groups; prefill reuses them across tokens
      x86::prefetch_ahead(g0, block);
      x86::prefetch_ahead(g1, block);
    }
    const __m512 dw = load_pair_f16(g0, g1);
    __m512 mw = _mm512_setzero_ps();
    if constexpr (kQ4_1) mw = load_pair_f16(g0 + 16, g1 + 16);
    const size_t qoff = kQ4_1 ? 32 : 16;
    __m512i lo[4], hi[4];
    for (int c = 0; c < 4; ++c) {
      const __m512i v = load2x32(g0 + qoff + 32 * c, g1 + qoff + 32 * c);
      lo[c] = _mm512_and_si512(v, m4);
      hi[c] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    }
    for (int t = 0; t < NT; ++t) {
      const auto* a = reinterpret_cast<const ABlock*>(act + t * act_stride) + b;
      // Two chains of four (low and high nibbles) to halve the vpdpbusd latency chain.
      // Q4_0's -8 offset enters as the starting value of one chain.
      __m512i sl = kQ4_1 ? _mm512_setzero_si512() : _mm512_set1_epi32(-8 * act_sums[t * nb + b]);
      __m512i sh = _mm512_setzero_si512();
      for (int c = 0; c < 4; ++c) {
        sl = _mm512_dpbusd_epi32(sl, lo[c], bcast4_512(a->qs + 4 * c));
        sh = _mm512_dpbusd_epi32(sh, hi[c], bcast4_512(a->qs + 16 + 4 * c));
      }
      const __m512i s = _mm512_add_epi32(sl, sh);
      const __m512 scale = _mm512_mul_ps(dw, _mm512_set1_ps(fp16_to_fp32(a->d)));
      acc[t] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(s), acc[t]);
      if constexpr (kQ4_1) acc[t] = _mm512_fmadd_ps(mw, _mm512_set1_ps(fp16_to_fp32(a->s)), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) _mm512_storeu_ps(y + t * ldy, acc[t]);
}

// Q8_0: the weights move to unsigned (w + 128, one xor per chunk shared by all tokens) so one vpdpbusd
// does each chunk; 128 * (sum of the activation block) comes off afterwards. Exact: the int32 sums stay
// below 32 * 255 * 127.
template <int NT>
void gemm_packed2_q8_0_nt(int64_t n, const uint8_t* g0, size_t group_bytes, const uint8_t* act, size_t act_stride,
                          const int32_t* act_sums, float* y, int64_t ldy) {
  const int64_t nb = n / 32;
  constexpr size_t block = 8 * 2 + 256;
  const uint8_t* g1 = g0 + group_bytes;
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, g0 += block, g1 += block) {
    if constexpr (NT == 1) {
      x86::prefetch_ahead(g0, block);
      x86::prefetch_ahead(g1, block);
    }
    const __m512 dw = load_pair_f16(g0, g1);
    const BlockQ8_0* a[NT];
    __m512i s[NT];
    for (int t = 0; t < NT; ++t) {
      a[t] = reinterpret_cast<const BlockQ8_0*>(act + t * act_stride) + b;
      s[t] = _mm512_set1_epi32(-128 * act_sums[t * nb + b]);
    }
    for (int c = 0; c < 8; ++c) {
      const __m512i w = _mm512_xor_si512(load2x32(g0 + 16 + 32 * c, g1 + 16 + 32 * c), bias);
      for (int t = 0; t < NT; ++t) s[t] = _mm512_dpbusd_epi32(s[t], w, bcast4_512(a[t]->qs + 4 * c));
    }
    for (int t = 0; t < NT; ++t)
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(fp16_to_fp32(a[t]->d))), _mm512_cvtepi32_ps(s[t]), acc[t]);
  }
  for (int t = 0; t < NT; ++t) _mm512_storeu_ps(y + t * ldy, acc[t]);
}

// Q4_K over two packed groups: gemm_packed_q4_k_nt (kernels_x86.h) with 16 rows per vector, the same
// integer sums and the same two float steps per lane, so each group's result equals the one-group multiply.
template <int NT, bool kFifthBit>
void gemm_packed2_q4_k_nt(int64_t n, const uint8_t* g0, size_t group_bytes, const uint8_t* act, size_t act_stride,
                          const int32_t*, float* y, int64_t ldy) {
  constexpr size_t kBytes = qk_min_packed_bytes(kFifthBit);
  const int64_t nsb = n / QK_K;
  const uint8_t* g1 = g0 + group_bytes;
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t sb = 0; sb < nsb; ++sb, g0 += kBytes, g1 += kBytes) {
    if constexpr (NT == 1) {
      x86::prefetch_ahead(g0, kBytes);
      x86::prefetch_ahead(g1, kBytes);
    }
    const BlockQ8_K* a[NT];
    __m512i isum[NT], msum[NT];
    for (int t = 0; t < NT; ++t) {
      a[t] = reinterpret_cast<const BlockQ8_K*>(act + t * act_stride) + sb;
      isum[t] = _mm512_setzero_si512();
    }
    for (int j = 0; j < 8; ++j) {
      const size_t qo = kQ4KPackedQuants + 128 * j;
      __m512i lo[4], hi[4];
      for (int c = 0; c < 4; ++c) {
        const __m512i v = load2x32(g0 + qo + 32 * c, g1 + qo + 32 * c);
        lo[c] = _mm512_and_si512(v, m4);
        hi[c] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
      }
      if constexpr (kFifthBit) {
        const __m512i hb = load2x32(g0 + kQ5KPackedHigh + 32 * j, g1 + kQ5KPackedHigh + 32 * j);
        for (int c = 0; c < 4; ++c) {
          lo[c] = or_fifth_bit512(lo[c], hb, 2 * c);
          hi[c] = or_fifth_bit512(hi[c], hb, 2 * c + 1);
        }
      }
      auto bytes16 = [&](size_t off) {  // 8 bytes of each group as 16 int32
        return _mm512_cvtepu8_epi32(_mm_unpacklo_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(g0 + off)),
                                                       _mm_loadl_epi64(reinterpret_cast<const __m128i*>(g1 + off))));
      };
      const __m512i sc = bytes16(kQ4KPackedScales + 8 * j);
      for (int t = 0; t < NT; ++t) {
        const int8_t* aq = a[t]->qs + 32 * j;
        __m512i sl = _mm512_setzero_si512(), sh = _mm512_setzero_si512();
        for (int c = 0; c < 4; ++c) {
          sl = _mm512_dpbusd_epi32(sl, lo[c], bcast4_512(aq + 4 * c));
          sh = _mm512_dpbusd_epi32(sh, hi[c], bcast4_512(aq + 16 + 4 * c));
        }
        isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(_mm512_add_epi32(sl, sh), sc));
      }
    }
    // The mins as 16-bit pairs (sub-blocks 2k, 2k + 1) of both groups, four madds per token (exact, as the
    // one-group multiply's).
    __m512i mpair[4];
    for (int k = 0; k < 4; ++k) {
      auto pairs8 = [&](const uint8_t* gg) {
        return _mm_unpacklo_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(gg + kQ4KPackedMins + 16 * k)),
                                 _mm_loadl_epi64(reinterpret_cast<const __m128i*>(gg + kQ4KPackedMins + 16 * k + 8)));
      };
      mpair[k] = _mm512_cvtepu8_epi16(_mm256_inserti128_si256(_mm256_castsi128_si256(pairs8(g0)), pairs8(g1), 1));
    }
    for (int t = 0; t < NT; ++t) {
      __m512i m = _mm512_setzero_si512();
      for (int k = 0; k < 4; ++k)
        m = _mm512_add_epi32(m, _mm512_madd_epi16(mpair[k], _mm512_set1_epi32(x86::bsum_pair_k(a[t]->bsums, k))));
      msum[t] = m;
    }
    const __m512 dw = load_pair_f16(g0 + kQ4KPackedD, g1 + kQ4KPackedD);
    const __m512 mw = load_pair_f16(g0 + kQ4KPackedDmin, g1 + kQ4KPackedDmin);
    for (int t = 0; t < NT; ++t) {
      const __m512 ad = _mm512_set1_ps(a[t]->d);
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, ad), _mm512_cvtepi32_ps(isum[t]), acc[t]);
      acc[t] = _mm512_fnmadd_ps(_mm512_mul_ps(mw, ad), _mm512_cvtepi32_ps(msum[t]), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) _mm512_storeu_ps(y + t * ldy, acc[t]);
}

// Q6_K over two packed groups: gemm_packed_q6_k_nt (kernels_x86.h) with 16 rows per vector, the same
// integer sums and float step per lane, so each group's result equals the one-group multiply.
template <int NT>
void gemm_packed2_q6_k_nt(int64_t n, const uint8_t* g0, size_t group_bytes, const uint8_t* act, size_t act_stride,
                          const int32_t*, float* y, int64_t ldy) {
  const int64_t nsb = n / QK_K;
  const uint8_t* g1 = g0 + group_bytes;
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t sb = 0; sb < nsb; ++sb, g0 += kQ6KPackedBytes, g1 += kQ6KPackedBytes) {
    if constexpr (NT == 1) {
      x86::prefetch_ahead(g0, kQ6KPackedBytes);
      x86::prefetch_ahead(g1, kQ6KPackedBytes);
    }
    const BlockQ8_K* a[NT];
    __m512i isum[NT];
    for (int t = 0; t < NT; ++t) {
      a[t] = reinterpret_cast<const BlockQ8_K*>(act + t * act_stride) + sb;
      isum[t] = _mm512_setzero_si512();
    }
    auto scales16 = [&](size_t off) {  // 8 int8 scales of each group as 16 int32
      return _mm512_cvtepi8_epi32(_mm_unpacklo_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(g0 + off)),
                                                     _mm_loadl_epi64(reinterpret_cast<const __m128i*>(g1 + off))));
    };
    for (int blk = 0; blk < 8; ++blk) {
      const size_t lo_off = kQ6KPackedLow + 128 * blk, hi_off = kQ6KPackedHigh + 64 * blk;
      __m512i lo[4], hi[4];
      for (int m = 0; m < 2; ++m) {
        const __m512i hv = load2x32(g0 + hi_off + 32 * m, g1 + hi_off + 32 * m);
        for (int cc = 0; cc < 2; ++cc) {
          const int c = 2 * m + cc;
          q6_k_chunk512(load2x32(g0 + lo_off + 32 * c, g1 + lo_off + 32 * c), hv, cc, lo[c], hi[c]);
        }
      }
      const __m512i sc_a = scales16(kQ6KPackedScales + (2 * blk) * 8);
      const __m512i sc_b = scales16(kQ6KPackedScales + (2 * blk + 1) * 8);
      for (int t = 0; t < NT; ++t) {
        const int8_t* aq = a[t]->qs + 32 * blk;
        __m512i da = _mm512_set1_epi32(-32 * a[t]->bsums[2 * blk]);
        __m512i db = _mm512_set1_epi32(-32 * a[t]->bsums[2 * blk + 1]);
        for (int c = 0; c < 4; ++c) {
          da = _mm512_dpbusd_epi32(da, lo[c], bcast4_512(aq + 4 * c));
          db = _mm512_dpbusd_epi32(db, hi[c], bcast4_512(aq + 16 + 4 * c));
        }
        isum[t] = _mm512_add_epi32(isum[t], _mm512_add_epi32(_mm512_mullo_epi32(da, sc_a), _mm512_mullo_epi32(db, sc_b)));
      }
    }
    const __m512 dw = load_pair_f16(g0 + kQ6KPackedD, g1 + kQ6KPackedD);
    for (int t = 0; t < NT; ++t)
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(a[t]->d)), _mm512_cvtepi32_ps(isum[t]), acc[t]);
  }
  for (int t = 0; t < NT; ++t) _mm512_storeu_ps(y + t * ldy, acc[t]);
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

template <int NT> struct P2Q4_0 { static void run(int64_t n, const uint8_t* g, size_t gb, const uint8_t* a, size_t as, const int32_t* s, float* y, int64_t ldy) { gemm_packed2_q4_nt<false, NT>(n, g, gb, a, as, s, y, ldy); } };
template <int NT> struct P2Q4_1 { static void run(int64_t n, const uint8_t* g, size_t gb, const uint8_t* a, size_t as, const int32_t* s, float* y, int64_t ldy) { gemm_packed2_q4_nt<true, NT>(n, g, gb, a, as, s, y, ldy); } };
// Q8_0 keeps an int32 and a float accumulator per token: more than 8 tokens would spill, so they go in two calls.
template <int NT> struct P2Q8_0 {
  static void run(int64_t n, const uint8_t* g, size_t gb, const uint8_t* a, size_t as, const int32_t* s, float* y, int64_t ldy) {
    if constexpr (NT <= 8) {
      gemm_packed2_q8_0_nt<NT>(n, g, gb, a, as, s, y, ldy);
    } else {
      gemm_packed2_q8_0_nt<8>(n, g, gb, a, as, s, y, ldy);
      gemm_packed2_q8_0_nt<NT - 8>(n, g, gb, a + 8 * as, as, s + 8 * (n / 32), y + 8 * ldy, ldy);
    }
  }
};

// Q4_K / Q5_K keep two int32 and a float accumulator per token: more than 8 tokens go in two calls.
template <bool kFifthBit>
struct P2QkMin {
  template <int NT> struct K {
    static void run(int64_t n, const uint8_t* g, size_t gb, const uint8_t* a, size_t as, const int32_t* s, float* y, int64_t ldy) {
      if constexpr (NT <= 8) {
        gemm_packed2_q4_k_nt<NT, kFifthBit>(n, g, gb, a, as, s, y, ldy);
      } else {
        gemm_packed2_q4_k_nt<8, kFifthBit>(n, g, gb, a, as, s, y, ldy);
        gemm_packed2_q4_k_nt<NT - 8, kFifthBit>(n, g, gb, a + 8 * as, as, s, y + 8 * ldy, ldy);
      }
    }
  };
};
// Q6_K keeps an int32 and a float accumulator per token, and 8 weight vectors: 8 tokens per call at most.
template <int NT> struct P2Q6_K {
  static void run(int64_t n, const uint8_t* g, size_t gb, const uint8_t* a, size_t as, const int32_t* s, float* y, int64_t ldy) {
    if constexpr (NT <= 8) {
      gemm_packed2_q6_k_nt<NT>(n, g, gb, a, as, s, y, ldy);
    } else {
      gemm_packed2_q6_k_nt<8>(n, g, gb, a, as, s, y, ldy);
      gemm_packed2_q6_k_nt<NT - 8>(n, g, gb, a + 8 * as, as, s, y + 8 * ldy, ldy);
    }
  }
};
void gemm_packed2_q6_k(int64_t n, const void* w, size_t gb, const void* act, size_t as, const int32_t* s, int nt, float* y, int64_t ldy) { by_nt<P2Q6_K>(nt, n, w, gb, act, as, s, y, ldy); }
void gemm_packed2_q4_k(int64_t n, const void* w, size_t gb, const void* act, size_t as, const int32_t* s, int nt, float* y, int64_t ldy) { by_nt<P2QkMin<false>::K>(nt, n, w, gb, act, as, s, y, ldy); }
void gemm_packed2_q5_k(int64_t n, const void* w, size_t gb, const void* act, size_t as, const int32_t* s, int nt, float* y, int64_t ldy) { by_nt<P2QkMin<true>::K>(nt, n, w, gb, act, as, s, y, ldy); }
void gemm_packed2_q4_0(int64_t n, const void* w, size_t gb, const void* act, size_t as, const int32_t* s, int nt, float* y, int64_t ldy) { by_nt<P2Q4_0>(nt, n, w, gb, act, as, s, y, ldy); }
void gemm_packed2_q4_1(int64_t n, const void* w, size_t gb, const void* act, size_t as, const int32_t* s, int nt, float* y, int64_t ldy) { by_nt<P2Q4_1>(nt, n, w, gb, act, as, s, y, ldy); }
void gemm_packed2_q8_0(int64_t n, const void* w, size_t gb, const void* act, size_t as, const int32_t* s, int nt, float* y, int64_t ldy) { by_nt<P2Q8_0>(nt, n, w, gb, act, as, s, y, ldy); }

// ---- f32 x f16^T small GEMM (attention tiles), 512-bit: panels of 32 b rows are converted and
// transposed into bt[l][32] (8 x 8 transposes, as the 256-bit version), then an MR x 32 micro-kernel
// (MR <= 8 a rows, two zmm per row: 16 FMAs per 8 broadcasts and 2 loads). ----

template <int MR>
inline void f16t_micro(const float* a, int64_t lda, const float* bt, int64_t kl, float* c, int64_t ldc, int64_t nj,
                       bool add) {
  constexpr int64_t kNb = 32;
  __m512 acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t q = 0; q < kl; ++q) {
    const __m512 b0 = _mm512_load_ps(bt + q * kNb), b1 = _mm512_load_ps(bt + q * kNb + 16);
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(a[i * lda + q]);
      acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
    }
  }
  const __mmask16 m0 = tail_mask(nj), m1 = tail_mask(nj - 16);
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    __m512 lo = acc[i][0], hi = acc[i][1];
    if (add) {
      lo = _mm512_add_ps(lo, _mm512_maskz_loadu_ps(m0, ci));
      hi = _mm512_add_ps(hi, _mm512_maskz_loadu_ps(m1, ci + 16));
    }
    _mm512_mask_storeu_ps(ci, m0, lo);
    _mm512_mask_storeu_ps(ci + 16, m1, hi);
  }
}

void gemm_f32_f16t(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const uint16_t* b, int64_t ldb,
                   F16Chunks b_chunks, float* c, int64_t ldc, bool accumulate) {
  constexpr int64_t kKc = 128, kNb = 32;  // kKc: a multiple of 32, so each k block starts a chunk
  alignas(64) float bt[kKc * kNb];
  for (int64_t j0 = 0; j0 < n; j0 += kNb) {
    const int64_t nj = std::min<int64_t>(kNb, n - j0);
    for (int64_t l0 = 0; l0 < k; l0 += kKc) {
      const int64_t kl = std::min(kKc, k - l0);
      x86::pack_f16t_panel<kNb>(b + j0 * ldb, ldb, b_chunks, l0, nj, kl, bt);
      const bool add = accumulate || l0 > 0;
      int64_t i = 0;
      for (; i + 8 <= m; i += 8) f16t_micro<8>(a + i * lda + l0, lda, bt, kl, c + i * ldc + j0, ldc, nj, add);
      switch (m - i) {
        case 7: f16t_micro<7>(a + i * lda + l0, lda, bt, kl, c + i * ldc + j0, ldc, nj, add); break;
        case 6: f16t_micro<6>(a + i * lda + l0, lda, bt, kl, c + i * ldc + j0, ldc, nj, add); break;
        case 5: f16t_micro<5>(a + i * lda + l0, lda, bt, kl, c + i * ldc + j0, ldc, nj, add); break;
        case 4: f16t_micro<4>(a + i * lda + l0, lda, bt, kl, c + i * ldc + j0, ldc, nj, add); break;
        case 3: f16t_micro<3>(a + i * lda + l0, lda, bt, kl, c + i * ldc + j0, ldc, nj, add); break;
        case 2: f16t_micro<2>(a + i * lda + l0, lda, bt, kl, c + i * ldc + j0, ldc, nj, add); break;
        case 1: f16t_micro<1>(a + i * lda + l0, lda, bt, kl, c + i * ldc + j0, ldc, nj, add); break;
        default: break;
      }
    }
  }
}

// ---- 512-bit exp (the same range reduction and polynomial as x86::exp8) and the helpers built on it. ----

inline __m512 exp16(__m512 x) {
  const __m512 hi = _mm512_set1_ps(88.7228f), lo = _mm512_set1_ps(-87.3365f);
  const __mmask16 too_small = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
  const __mmask16 too_big = _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ);
  const __m512 xc = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693145752f), xc);
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(1.42860677e-6f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  const __m512i ki = _mm512_cvtps_epi32(k);
  const __m512i k1 = _mm512_srai_epi32(ki, 1), k2 = _mm512_sub_epi32(ki, k1);
  const __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(k1, _mm512_set1_epi32(127)), 23));
  const __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(k2, _mm512_set1_epi32(127)), 23));
  __m512 res = _mm512_mul_ps(_mm512_mul_ps(p, s1), s2);
  res = _mm512_mask_mov_ps(res, too_small, _mm512_setzero_ps());
  return _mm512_mask_mov_ps(res, too_big, _mm512_set1_ps(INFINITY));
}

double exp_sum_f32(float* x, int64_t n, float sub) {
  const __m512 vs = _mm512_set1_ps(sub);
  __m512d acc0 = _mm512_setzero_pd(), acc1 = _mm512_setzero_pd();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vs)));
    _mm512_mask_storeu_ps(x + i, m, e);
    acc0 = _mm512_add_pd(acc0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    acc1 = _mm512_add_pd(acc1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(acc0, acc1));
}

float max_f32(const float* x, int64_t n) {
  __m512 v0 = _mm512_set1_ps(-INFINITY), v1 = v0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    v0 = _mm512_max_ps(v0, _mm512_loadu_ps(x + i));
    v1 = _mm512_max_ps(v1, _mm512_loadu_ps(x + i + 16));
  }
  for (; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    v0 = _mm512_mask_max_ps(v0, m, v0, _mm512_maskz_loadu_ps(m, x + i));
  }
  return _mm512_reduce_max_ps(_mm512_max_ps(v0, v1));
}

void softmax_f16r(float* x, int64_t n, float scale) {
  const __m512 vs = _mm512_set1_ps(scale);
  __m512 vmx = _mm512_set1_ps(-INFINITY);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vs);
    _mm512_mask_storeu_ps(x + i, m, v);
    vmx = _mm512_mask_max_ps(vmx, m, vmx, v);
  }
  const float mx = _mm512_reduce_max_ps(vmx);
  const __m512 inv = _mm512_set1_ps(static_cast<float>(1.0 / exp_sum_f32(x, n, mx)));
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m256i h = _mm512_cvtps_ph(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv), _MM_FROUND_TO_NEAREST_INT);
    _mm512_mask_storeu_ps(x + i, m, _mm512_cvtph_ps(h));
  }
}

void silu_mul_f32(const float* g, const float* u, float* out, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 vg = _mm512_maskz_loadu_ps(m, g + i);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), vg));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_div_ps(vg, _mm512_add_ps(one, e)), _mm512_maskz_loadu_ps(m, u + i)));
  }
}

void relu_sqr_mul_f32(const float* g, const float* u, float* out, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 r = _mm512_max_ps(_mm512_maskz_loadu_ps(m, g + i), _mm512_setzero_ps());
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_mul_ps(r, r), _mm512_maskz_loadu_ps(m, u + i)));
  }
}

// ---- Activation quantization, 512-bit: the same arithmetic as x86::quantize_block_q8 (scale 127 / amax,
// round to nearest even), so the quants are bit-identical on every x86 table. ----

// Horizontal reduction of four 16-lane vectors at once: on return, 128-bit lane b of the result holds the
// reduction of v[b] in each of its four elements.
template <typename Op>
inline __m512 reduce4(__m512 v0, __m512 v1, __m512 v2, __m512 v3, Op op) {
  const __m512 t01 = op(_mm512_shuffle_f32x4(v0, v1, 0x44), _mm512_shuffle_f32x4(v0, v1, 0xEE));  // v0 | v1 halves
  const __m512 t23 = op(_mm512_shuffle_f32x4(v2, v3, 0x44), _mm512_shuffle_f32x4(v2, v3, 0xEE));
  __m512 u = op(_mm512_shuffle_f32x4(t01, t23, 0x88), _mm512_shuffle_f32x4(t01, t23, 0xDD));    // lane b: v[b]
  u = op(u, _mm512_permute_ps(u, 0x4E));
  return op(u, _mm512_permute_ps(u, 0xB1));
}

// Quantizes 4 consecutive blocks of 32 floats: writes each block's 32 quants to q[b] and returns the four
// d values (amax / 127) in a vector; sums (if wanted) gets the four quant sums.
template <bool kSums>
inline __m128 quantize4_q8(const float* x, int8_t* const q[4], int32_t sums[4]) {
  __m512 v[8], m[4];
  const __m512 sign = _mm512_set1_ps(-0.0f);
  for (int b = 0; b < 4; ++b) {
    v[2 * b] = _mm512_loadu_ps(x + 32 * b);
    v[2 * b + 1] = _mm512_loadu_ps(x + 32 * b + 16);
    m[b] = _mm512_max_ps(_mm512_andnot_ps(sign, v[2 * b]), _mm512_andnot_ps(sign, v[2 * b + 1]));
  }
  const __m512 amax = reduce4(m[0], m[1], m[2], m[3], [](__m512 a, __m512 b) { return _mm512_max_ps(a, b); });
  const __mmask16 nz = _mm512_cmp_ps_mask(amax, _mm512_setzero_ps(), _CMP_NEQ_OQ);
  const __m512 id = _mm512_maskz_div_ps(nz, _mm512_set1_ps(127.f), amax);  // 127 / amax, 0 for an all-zero block
  __m512 isum[4];
  for (int b = 0; b < 4; ++b) {
    const __m512 mul = _mm512_permutexvar_ps(_mm512_set1_epi32(4 * b), id);
    const __m512i i0 = _mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v[2 * b], mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __m512i i1 = _mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v[2 * b + 1], mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q[b]), _mm512_cvtsepi32_epi8(i0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q[b] + 16), _mm512_cvtsepi32_epi8(i1));
    if constexpr (kSums) isum[b] = _mm512_castsi512_ps(_mm512_add_epi32(i0, i1));
  }
  if constexpr (kSums) {
    const __m512 s = reduce4(isum[0], isum[1], isum[2], isum[3], [](__m512 a, __m512 b) {
      return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(a), _mm512_castps_si512(b)));
    });
    const __m512i si = _mm512_castps_si512(s);
    alignas(64) int32_t lanes[16];
    _mm512_store_si512(lanes, si);
    for (int b = 0; b < 4; ++b) sums[b] = lanes[4 * b];
  }
  // d = amax / 127 per block (lane 4b).
  const __m512 d = _mm512_div_ps(amax, _mm512_set1_ps(127.f));
  return _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), d));
}

template <typename Block, bool kQ8_1>
void quantize_act_q8_512(const float* x, void* y, int64_t n) {
  auto* blk = static_cast<Block*>(y);
  const int64_t nb = n / 32;
  int64_t i = 0;
  for (; i + 4 <= nb; i += 4) {
    int8_t* const q[4] = {blk[i].qs, blk[i + 1].qs, blk[i + 2].qs, blk[i + 3].qs};
    int32_t sums[4];
    const __m128 d = quantize4_q8<kQ8_1>(x + i * 32, q, sums);
    alignas(16) uint16_t dh[8];
    _mm_store_si128(reinterpret_cast<__m128i*>(dh), _mm_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT));
    if constexpr (kQ8_1) {
      const __m128 s = _mm_mul_ps(d, _mm_cvtepi32_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sums))));
      alignas(16) uint16_t sh[8];
      _mm_store_si128(reinterpret_cast<__m128i*>(sh), _mm_cvtps_ph(s, _MM_FROUND_TO_NEAREST_INT));
      for (int b = 0; b < 4; ++b) blk[i + b].s = sh[b];
    }
    for (int b = 0; b < 4; ++b) blk[i + b].d = dh[b];
  }
  // The last (nb % 4) blocks: the 256-bit path (same arithmetic).
  if (i < nb) {
    if constexpr (kQ8_1) x86::quantize_act_q8_1(x + i * 32, blk + i, (nb - i) * 32);
    else x86::quantize_act_q8_0(x + i * 32, blk + i, (nb - i) * 32);
  }
}

// axpy_q8_0_rows on 512-bit registers: up to 4 blocks (128 elements) of accumulators held while the rows
// stream past once (rows outer), two 16-lane FMAs per block per row; each element's terms in row order, one
// FMA each, so bit-identical to the scalar version.
template <int NK>
void axpy_q8_0_group(const uint8_t* base, size_t stride, int64_t count, const float* p, float* out) {
  __m512 a[2 * NK];
  for (int i = 0; i < 2 * NK; ++i) a[i] = _mm512_loadu_ps(out + 16 * i);
  for (int64_t j = 0; j < count; ++j) {
    const auto* b = reinterpret_cast<const BlockQ8_0*>(base + static_cast<size_t>(j) * stride);
    for (int k = 0; k < NK; ++k) {
      const __m512 s = _mm512_set1_ps(p[j] * fp16_to_fp32(b[k].d));
      const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[k].qs));
      const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[k].qs + 16));
      a[2 * k] = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0)), a[2 * k]);
      a[2 * k + 1] = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1)), a[2 * k + 1]);
    }
  }
  for (int i = 0; i < 2 * NK; ++i) _mm512_storeu_ps(out + 16 * i, a[i]);
}

void axpy_q8_0_rows(int64_t n, const void* x, size_t stride, int64_t count, const float* p, float* out) {
  const auto* base = static_cast<const uint8_t*>(x);
  const int64_t nb = n / QK8_0;
  for (int64_t k0 = 0; k0 < nb; k0 += 4) {
    const uint8_t* b = base + static_cast<size_t>(k0) * sizeof(BlockQ8_0);
    float* o = out + k0 * QK8_0;
    switch (std::min<int64_t>(4, nb - k0)) {
      case 1: axpy_q8_0_group<1>(b, stride, count, p, o); break;
      case 2: axpy_q8_0_group<2>(b, stride, count, p, o); break;
      case 3: axpy_q8_0_group<3>(b, stride, count, p, o); break;
      default: axpy_q8_0_group<4>(b, stride, count, p, o); break;
    }
  }
}

// The BF16 dot product on 512-bit registers (as x86::dot_bf16_bf16: exact products, f32 FMA accumulators);
// the last partial vector masked.
inline __m512 load_bf16x16(const uint16_t* p, __mmask16 m) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}
float dot_bf16_bf16(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64)
    for (int r = 0; r < 4; ++r)
      acc[r] = _mm512_fmadd_ps(load_bf16x16(x + i + 16 * r, 0xFFFF), load_bf16x16(y + i + 16 * r, 0xFFFF), acc[r]);
  for (; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    acc[0] = _mm512_fmadd_ps(load_bf16x16(x + i, m), load_bf16x16(y + i, m), acc[0]);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

// dot_f16_rows on 512-bit registers, 8 rows per step. Each lane sees the same FMA chain as in x86::dot_f16_rows
// (four accumulators of 8 lanes over chunks of 32): a row's accumulators 0 and 1 share one register (lanes 0-7
// and 8-15), 2 and 3 another, so each conversion reads 16 consecutive halves of the row straight from memory
// (rows p and p + 4 sharing a register needed a 128-bit insert per conversion; in cache at 512 positions keys
// 1200 -> 1040-1100 ns, values 1150 -> 950-1010 ns; decode, bound by reading the cache, did not change).
// The reduction keeps dot_f16's order: (a0 + a2) + (a1 + a3), then low + high 128 bits, then two rounds of
// hadd; bit-identical to dot_f16. acc[2 * q], acc[2 * q + 1]: row q of a group of 8 rows starting at xr[0].

// One chunk of 32 elements of a group of 8 rows (row q at xg + q * stride) into its accumulators; yv: the
// chunk of y in f32, elements 0-15 and 16-31.
inline void f16_rows_chunk8(const uint16_t* xg, int64_t stride, const __m512* yv, __m512* acc) {
  for (int q = 0; q < 8; ++q) {
    const uint16_t* xr = xg + q * stride;
    acc[2 * q] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr))), yv[0],
                                 acc[2 * q]);
    acc[2 * q + 1] = _mm512_fmadd_ps(
        _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + 16))), yv[1], acc[2 * q + 1]);
  }
}

// The 8 rows' results from their accumulators (rows j..j+7 at x + j * stride), the tails added if n > n32.
inline void f16_rows_finish8(const __m512* acc, const uint16_t* x, int64_t stride, F16Chunks chunks, int64_t j,
                             const uint16_t* y, int64_t n32, int64_t n, float* out) {
  __m256 t0[4];  // per p: rows p (low 128 bits) and p + 4 (high), each low + high half of its 8 lanes
  for (int p = 0; p < 4; ++p) {
    const __m512 sp = _mm512_add_ps(acc[2 * p], acc[2 * p + 1]);  // row p: lanes 0-7 a0 + a2, 8-15 a1 + a3
    const __m512 sq = _mm512_add_ps(acc[2 * p + 8], acc[2 * p + 9]);  // row p + 4
    const __m512 v = _mm512_add_ps(_mm512_shuffle_f32x4(sp, sq, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_f32x4(sp, sq, _MM_SHUFFLE(3, 2, 3, 2)));  // rows p | p + 4
    const __m512 s = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
    t0[p] = _mm512_castps512_ps256(_mm512_shuffle_f32x4(s, s, 0x08));  // 128-bit lanes 0 and 2
  }
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(t0[0], t0[1]), _mm256_hadd_ps(t0[2], t0[3]));
  if (n32 == n) {
    _mm256_storeu_ps(out + j, h);
    return;
  }
  alignas(32) float sums[8];
  _mm256_store_ps(sums, h);
  for (int q = 0; q < 8; ++q)
    out[j + q] = dot_f16_finish(sums[q], f16_tail_at(x + (j + q) * stride, chunks, n32, n), y, n32, n);
}

void dot_f16_rows(int64_t n, const uint16_t* x, int64_t stride, F16Chunks chunks, int64_t count, const uint16_t* y,
                  float* out) {
  constexpr int64_t kDotRowsMax = 4096;
  const int64_t n32 = n & ~int64_t{31};
  if (n32 == 0 || n32 > kDotRowsMax || count < 8) {
    x86::dot_f16_rows(n, x, stride, chunks, count, y, out);
    return;
  }
  alignas(64) float yf[kDotRowsMax];
  for (int64_t i = 0; i < n32; i += 8) _mm256_store_ps(yf + i, x86::load_f16x8(y + i));
  int64_t j = 0;
  if (!f16_plain(chunks)) {
    // Rows in chunks (the value cache's blocks, a paged cache's pages): the chunks are walked in turn, each for
    // all rows of a panel of up to 64, the accumulators kept in L1 from one chunk to the next (a group of 8 rows
    // at a time over all chunks read the blocks with a stride, which measured ~7% slower decode at depth 1024).
    // Every row's accumulators see the same chunks in the same order: the results are the same.
    constexpr int64_t kPanelGroups = 8;
    __m512 accs[kPanelGroups][16];
    while (j + 8 <= count) {
      const int64_t groups = std::min<int64_t>(kPanelGroups, (count - j) / 8);
      for (int64_t g = 0; g < groups; ++g)
        for (int q = 0; q < 16; ++q) accs[g][q] = _mm512_setzero_ps();
      for (int64_t i = 0; i < n32; i += 32) {
        const __m512 yv[2] = {_mm512_load_ps(yf + i), _mm512_load_ps(yf + i + 16)};
        const uint16_t* xc = f16_chunk_at(x + j * stride, chunks, i);
        for (int64_t g = 0; g < groups; ++g) f16_rows_chunk8(xc + 8 * g * stride, stride, yv, accs[g]);
      }
      for (int64_t g = 0; g < groups; ++g) f16_rows_finish8(accs[g], x, stride, chunks, j + 8 * g, y, n32, n, out);
      j += 8 * groups;
    }
  } else {
    for (; j + 8 <= count; j += 8) {
      if (j + 16 <= count) x86::prefetch_f16_rows(x, stride, n, j + 8, j + 16);  // the next group's rows (plain rows)
      __m512 acc[16];
      for (auto& a : acc) a = _mm512_setzero_ps();
      for (int64_t i = 0; i < n32; i += 32) {
        const __m512 yv[2] = {_mm512_load_ps(yf + i), _mm512_load_ps(yf + i + 16)};
        f16_rows_chunk8(x + j * stride + i, stride, yv, acc);  // plain rows: chunk i / 32 at i
      }
      f16_rows_finish8(acc, x, stride, chunks, j, y, n32, n, out);
    }
  }
  if (j < count) x86::dot_f16_rows(n, x + j * stride, stride, chunks, count - j, y, out + j);
}

}  // namespace

void init_avx512(KernelTable& t) {
  init_scalar(t);
  t.isa = Isa::avx512;
  t.features = "avx512bw+vnni";
  x86::set_float_helpers(t);
  t.gemm_f32_f16t = gemm_f32_f16t;
  t.exp_sum_f32 = exp_sum_f32;
  t.softmax_f16r = softmax_f16r;
  t.max_f32 = max_f32;
  t.dot_f16_rows = dot_f16_rows;
  t.dot_q8_0_rows = x86::dot_q8_0_rows<true>;
  t.axpy_q8_0_rows = axpy_q8_0_rows;
  t.silu_mul_f32 = silu_mul_f32;
  t.relu_sqr_mul_f32 = relu_sqr_mul_f32;
}

// Applied after the AVX2 installers (registry.h), so each sets what this ISA does differently.
void install_f32_avx512(KernelTable& t) { t.for_type(TensorType::F32).vec_dot = x86::dot_f32_f32; }
void install_f16_avx512(KernelTable& t) { t.for_type(TensorType::F16).vec_dot = x86::dot_f16_f16; }
void install_bf16_avx512(KernelTable& t) { t.for_type(TensorType::BF16).vec_dot = dot_bf16_bf16; }
void install_q4_0_avx512(KernelTable& t) {
  WeightKernels& k = t.for_type(TensorType::Q4_0);
  k.act.quantize = quantize_act_q8_512<BlockQ8_0, false>;
  k.vec_dot = dot_q4_0_q8_0;
  k.gemm_packed = x86::PackedQ4<true>::q4_0;
  k.gemm_packed2 = gemm_packed2_q4_0;
}
void install_q4_1_avx512(KernelTable& t) {
  WeightKernels& k = t.for_type(TensorType::Q4_1);
  k.act.quantize = quantize_act_q8_512<BlockQ8_1, true>;
  k.vec_dot = dot_q4_1_q8_1;
  k.gemm_packed = x86::PackedQ4<true>::q4_1;
  k.gemm_packed2 = gemm_packed2_q4_1;
}
void install_q8_0_avx512(KernelTable& t) {
  WeightKernels& k = t.for_type(TensorType::Q8_0);
  k.act.quantize = quantize_act_q8_512<BlockQ8_0, false>;
  k.vec_dot = dot_q8_0_q8_0;
  k.gemm_packed = x86::PackedQ4<true>::q8_0;
  k.gemm_packed2 = gemm_packed2_q8_0;
}
void install_q4_k_avx512(KernelTable& t) {
  WeightKernels& k = t.for_type(TensorType::Q4_K);
  k.vec_dot = x86::dot_q4_k_q8_k<true>;
  k.gemm_packed = x86::PackedQ4<true>::q4_k;
  k.gemm_packed2 = gemm_packed2_q4_k;
}
void install_q5_k_avx512(KernelTable& t) {
  WeightKernels& k = t.for_type(TensorType::Q5_K);
  k.vec_dot = x86::dot_q5_k_q8_k<true>;
  k.gemm_packed = x86::PackedQ4<true>::q5_k;
  k.gemm_packed2 = gemm_packed2_q5_k;
}
void install_q6_k_avx512(KernelTable& t) {
  WeightKernels& k = t.for_type(TensorType::Q6_K);
  k.vec_dot = x86::dot_q6_k_q8_k<true>;
  k.gemm_packed = x86::PackedQ4<true>::q6_k;
  k.gemm_packed2 = gemm_packed2_q6_k;
}

}  // namespace tokenscope::kernels::detail
