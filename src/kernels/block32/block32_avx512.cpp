// The block32 family on AVX-512 (F, BW, VL, VNNI): 512-bit dot products (two blocks per register, vpdpbusd),
// two packed groups per multiply (GemmPacked2Fn), 512-bit activation quantizers and Q8_0 cache rows.
#include "kernels/block32/block32_x86.h"
#include "kernels/simd/avx512.h"

namespace tokenscope::kernels::detail {

namespace {

// Two Q4 blocks' 64 nibbles in element order, as u8 0..15.
inline __m512i unpack2_nibbles(const uint8_t* qa, const uint8_t* qb) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(x86::unpack_nibbles(qa)), x86::unpack_nibbles(qb), 1);
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
void gemm_packed2_q4_0(int64_t n, const void* w, size_t gb, const void* act, size_t as, const int32_t* s, int nt, float* y, int64_t ldy) { by_nt<P2Q4_0>(nt, n, w, gb, act, as, s, y, ldy); }
void gemm_packed2_q4_1(int64_t n, const void* w, size_t gb, const void* act, size_t as, const int32_t* s, int nt, float* y, int64_t ldy) { by_nt<P2Q4_1>(nt, n, w, gb, act, as, s, y, ldy); }
void gemm_packed2_q8_0(int64_t n, const void* w, size_t gb, const void* act, size_t as, const int32_t* s, int nt, float* y, int64_t ldy) { by_nt<P2Q8_0>(nt, n, w, gb, act, as, s, y, ldy); }

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

}  // namespace

// Applied after the AVX2 installers (registry.h), so each sets what this ISA does differently.
void install_q4_0_avx512(KernelTable& t) {
  WeightKernels& k = t.for_type(TensorType::Q4_0);
  k.act.quantize = quantize_act_q8_512<BlockQ8_0, false>;
  k.vec_dot = dot_q4_0_q8_0;
  k.gemm_packed = x86::PackedBlock32<true>::q4_0;
  k.gemm_packed2 = gemm_packed2_q4_0;
}
void install_q4_1_avx512(KernelTable& t) {
  WeightKernels& k = t.for_type(TensorType::Q4_1);
  k.act.quantize = quantize_act_q8_512<BlockQ8_1, true>;
  k.vec_dot = dot_q4_1_q8_1;
  k.gemm_packed = x86::PackedBlock32<true>::q4_1;
  k.gemm_packed2 = gemm_packed2_q4_1;
}
void install_q8_0_avx512(KernelTable& t) {
  WeightKernels& k = t.for_type(TensorType::Q8_0);
  k.act.quantize = quantize_act_q8_512<BlockQ8_0, false>;
  k.vec_dot = dot_q8_0_q8_0;
  k.gemm_packed = x86::PackedBlock32<true>::q8_0;
  k.gemm_packed2 = gemm_packed2_q8_0;
  t.dot_q8_0_rows = x86::dot_q8_0_rows<true>;
  t.axpy_q8_0_rows = axpy_q8_0_rows;
}

}  // namespace tokenscope::kernels::detail
