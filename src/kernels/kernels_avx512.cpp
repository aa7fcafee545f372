// x86 AVX-512 (F, BW, VL, VNNI) kernels: 512-bit versions of the 32-element block formats (two blocks
// per register, vpdpbusd), and VNNI on 256-bit registers for the K-quants.
#include "kernels/kernels_internal.h"
#include "kernels/kernels_x86.h"

namespace tokenscope::kernels::detail {

namespace {

inline __m512i load2x32(const int8_t* a, const int8_t* b) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a))),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b)), 1);
}

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

}  // namespace

void init_avx512(KernelTable& t) {
  init_scalar(t);
  t.isa = Isa::avx512;
  t.features = "avx512bw+vnni";
  auto set = [&](TensorType w, VecDotFn d) { t.weights[static_cast<int>(w)].vec_dot = d; };
  set(TensorType::F32, x86::dot_f32_f32);
  set(TensorType::F16, x86::dot_f16_f16);
  set(TensorType::Q4_0, dot_q4_0_q8_0);
  set(TensorType::Q4_1, dot_q4_1_q8_1);
  set(TensorType::Q8_0, dot_q8_0_q8_0);
  set(TensorType::Q4_K, x86::dot_q4_k_q8_k<true>);
  set(TensorType::Q5_K, x86::dot_q5_k_q8_k<true>);
  set(TensorType::Q6_K, x86::dot_q6_k_q8_k<true>);
  t.weights[static_cast<int>(TensorType::Q4_0)].gemm_packed = x86::PackedQ4<true>::q4_0;
  t.weights[static_cast<int>(TensorType::Q4_1)].gemm_packed = x86::PackedQ4<true>::q4_1;
  t.weights[static_cast<int>(TensorType::Q8_0)].gemm_packed = x86::PackedQ4<true>::q8_0;
  x86::set_float_helpers(t);
}

}  // namespace tokenscope::kernels::detail
