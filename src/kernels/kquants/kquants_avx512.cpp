// The K-quants on AVX-512: VNNI on 256-bit registers for the dot products, two packed groups per multiply
// (GemmPacked2Fn, 16 rows per vector).
#include "kernels/kquants/kquants_x86.h"
#include "kernels/simd/avx512.h"

namespace tokenscope::kernels::detail {

namespace {

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

// Q4_K over two packed groups: gemm_packed_q4_k_nt (kquants_x86.h) with 16 rows per vector, the same
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

// Q6_K over two packed groups: gemm_packed_q6_k_nt (kquants_x86.h) with 16 rows per vector, the same
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

}  // namespace

void install_q4_k_avx512(KernelTable& t) {
  WeightKernels& k = t.for_type(TensorType::Q4_K);
  k.vec_dot = x86::dot_q4_k_q8_k<true>;
  k.gemm_packed = x86::PackedKQuants<true>::q4_k;
  k.gemm_packed2 = gemm_packed2_q4_k;
}
void install_q5_k_avx512(KernelTable& t) {
  WeightKernels& k = t.for_type(TensorType::Q5_K);
  k.vec_dot = x86::dot_q5_k_q8_k<true>;
  k.gemm_packed = x86::PackedKQuants<true>::q5_k;
  k.gemm_packed2 = gemm_packed2_q5_k;
}
void install_q6_k_avx512(KernelTable& t) {
  WeightKernels& k = t.for_type(TensorType::Q6_K);
  k.vec_dot = x86::dot_q6_k_q8_k<true>;
  k.gemm_packed = x86::PackedKQuants<true>::q6_k;
  k.gemm_packed2 = gemm_packed2_q6_k;
}

}  // namespace tokenscope::kernels::detail
