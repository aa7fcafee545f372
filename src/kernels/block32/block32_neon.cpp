// The block32 family on Arm NEON (Armv8.2-A dot product; the packed multiplies also with i8mm where the CPU has
// it). Integer dot products use vdotq_s32 (four int8 x int8 products summed into each int32 lane); the packed
// multiply uses the by-lane form, so one instruction multiplies four packed weight rows by four activation
// bytes. Tested against block32_scalar.cpp / block32_packed.cpp under qemu-aarch64.
#include <arm_neon.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "base/fp16.h"
#include "formats/blocks.h"
#include "formats/quant_ref.h"
#include "kernels/kernels_internal.h"
#include "kernels/simd/neon.h"
#include "kernels/block32/block32.h"

namespace tokenscope::kernels::detail {
namespace {

// ---- Activation quantization (bit-identical to the scalar neon_quantize_q8_0 / _q8_1). ----

// Quantizes 32 floats: returns d's float value, writes 32 int8 and (if sum) the sum of the quants.
// vcvtnq rounds to nearest even, as nearbyint does in the default rounding mode.
inline float quantize_block_q8(const float* x, int8_t* q, int* sum) {
  float32x4_t v[8];
  float32x4_t mx = vdupq_n_f32(0.0f);
  for (int k = 0; k < 8; ++k) {
    v[k] = vld1q_f32(x + 4 * k);
    mx = vmaxq_f32(mx, vabsq_f32(v[k]));
  }
  const float amax = vmaxvq_f32(mx);
  const float id = amax != 0.f ? 127.f / amax : 0.f;
  int32x4_t s = vdupq_n_s32(0);
  for (int k = 0; k < 8; k += 2) {
    const int32x4_t i0 = vcvtnq_s32_f32(vmulq_n_f32(v[k], id));
    const int32x4_t i1 = vcvtnq_s32_f32(vmulq_n_f32(v[k + 1], id));
    s = vaddq_s32(s, vaddq_s32(i0, i1));
    const int16x8_t h = vcombine_s16(vmovn_s32(i0), vmovn_s32(i1));
    vst1_s8(q + 4 * k, vmovn_s16(h));
  }
  if (sum) *sum = vaddvq_s32(s);
  return amax / 127.f;
}

void neon_quantize_q8_0(const float* x, void* y, int64_t n) {
  auto* b = static_cast<BlockQ8_0*>(y);
  for (int64_t i = 0; i < n / QK8_0; ++i) b[i].d = fp32_to_fp16(quantize_block_q8(x + i * QK8_0, b[i].qs, nullptr));
}

void neon_quantize_q8_1(const float* x, void* y, int64_t n) {
  auto* b = static_cast<BlockQ8_1*>(y);
  for (int64_t i = 0; i < n / QK8_1; ++i) {
    int sum = 0;
    const float d = quantize_block_q8(x + i * QK8_1, b[i].qs, &sum);
    b[i].d = fp32_to_fp16(d);
    b[i].s = fp32_to_fp16(d * static_cast<float>(sum));
  }
}


float dot_q4_0_q8_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  const int8x16_t eight = vdupq_n_s8(8);
  float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
  const int64_t nb = n / QK4_0;
  int64_t i = 0;
  for (; i + 1 < nb; i += 2) {
    const uint8x16_t q0 = vld1q_u8(x[i].qs), q1 = vld1q_u8(x[i + 1].qs);
    int32x4_t s0 = vdotq_s32(vdupq_n_s32(0), vsubq_s8(low_nibbles(q0), eight), vld1q_s8(y[i].qs));
    s0 = vdotq_s32(s0, vsubq_s8(high_nibbles(q0), eight), vld1q_s8(y[i].qs + 16));
    int32x4_t s1 = vdotq_s32(vdupq_n_s32(0), vsubq_s8(low_nibbles(q1), eight), vld1q_s8(y[i + 1].qs));
    s1 = vdotq_s32(s1, vsubq_s8(high_nibbles(q1), eight), vld1q_s8(y[i + 1].qs + 16));
    acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(s0), fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d));
    acc1 = vfmaq_n_f32(acc1, vcvtq_f32_s32(s1), fp16_to_fp32(x[i + 1].d) * fp16_to_fp32(y[i + 1].d));
  }
  for (; i < nb; ++i) {
    const uint8x16_t q = vld1q_u8(x[i].qs);
    int32x4_t s = vdotq_s32(vdupq_n_s32(0), vsubq_s8(low_nibbles(q), eight), vld1q_s8(y[i].qs));
    s = vdotq_s32(s, vsubq_s8(high_nibbles(q), eight), vld1q_s8(y[i].qs + 16));
    acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(s), fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d));
  }
  return vaddvq_f32(vaddq_f32(acc0, acc1));
}

float dot_q4_1_q8_1(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_1*>(w);
  const auto* y = static_cast<const BlockQ8_1*>(a);
  float32x4_t acc = vdupq_n_f32(0.0f);
  float summ = 0;
  for (int64_t i = 0; i < n / QK4_1; ++i) {
    const uint8x16_t q = vld1q_u8(x[i].qs);  // nibbles 0..15 are valid int8 values
    int32x4_t s = vdotq_s32(vdupq_n_s32(0), low_nibbles(q), vld1q_s8(y[i].qs));
    s = vdotq_s32(s, high_nibbles(q), vld1q_s8(y[i].qs + 16));
    acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d));
    summ += fp16_to_fp32(x[i].m) * fp16_to_fp32(y[i].s);
  }
  return vaddvq_f32(acc) + summ;
}

float dot_q8_0_q8_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ8_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
  const int64_t nb = n / QK8_0;
  int64_t i = 0;
  for (; i + 1 < nb; i += 2) {
    int32x4_t s0 = vdotq_s32(vdupq_n_s32(0), vld1q_s8(x[i].qs), vld1q_s8(y[i].qs));
    s0 = vdotq_s32(s0, vld1q_s8(x[i].qs + 16), vld1q_s8(y[i].qs + 16));
    int32x4_t s1 = vdotq_s32(vdupq_n_s32(0), vld1q_s8(x[i + 1].qs), vld1q_s8(y[i + 1].qs));
    s1 = vdotq_s32(s1, vld1q_s8(x[i + 1].qs + 16), vld1q_s8(y[i + 1].qs + 16));
    acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(s0), fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d));
    acc1 = vfmaq_n_f32(acc1, vcvtq_f32_s32(s1), fp16_to_fp32(x[i + 1].d) * fp16_to_fp32(y[i + 1].d));
  }
  for (; i < nb; ++i) {
    int32x4_t s = vdotq_s32(vdupq_n_s32(0), vld1q_s8(x[i].qs), vld1q_s8(y[i].qs));
    s = vdotq_s32(s, vld1q_s8(x[i].qs + 16), vld1q_s8(y[i].qs + 16));
    acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(s), fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d));
  }
  return vaddvq_f32(vaddq_f32(acc0, acc1));
}

// Per block of 32 elements, eight 4-lane accumulators held across all rows; vfmaq_f32 fuses as std::fma.
void axpy_q8_0_rows(int64_t n, const void* x, size_t stride, int64_t count, const float* p, float* out) {
  const auto* base = static_cast<const uint8_t*>(x);
  for (int64_t k = 0; k < n / QK8_0; ++k) {
    float* o = out + k * QK8_0;
    float32x4_t a[8];
    for (int i = 0; i < 8; ++i) a[i] = vld1q_f32(o + 4 * i);
    for (int64_t j = 0; j < count; ++j) {
      const auto* b = reinterpret_cast<const BlockQ8_0*>(base + static_cast<size_t>(j) * stride) + k;
      const float32x4_t s = vdupq_n_f32(p[j] * fp16_to_fp32(b->d));
      for (int h = 0; h < 2; ++h) {
        const int8x16_t q = vld1q_s8(b->qs + 16 * h);
        const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_s8(vget_high_s8(q));
        a[4 * h + 0] = vfmaq_f32(a[4 * h + 0], s, vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))));
        a[4 * h + 1] = vfmaq_f32(a[4 * h + 1], s, vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo))));
        a[4 * h + 2] = vfmaq_f32(a[4 * h + 2], s, vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))));
        a[4 * h + 3] = vfmaq_f32(a[4 * h + 3], s, vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi))));
      }
    }
    for (int i = 0; i < 8; ++i) vst1q_f32(o + 4 * i, a[i]);
  }
}

// ---- Packed (row-interleaved) weights, layouts in block32.h. Each 32-byte chunk of a group is two
// vectors: rows 0..3 and rows 4..7, four bytes per row; vdotq_laneq_s32 multiplies them by four
// activation bytes (one 32-bit lane of the activation vector) and leaves row r's sum in lane r. ----

template <bool kQ4_1, int NT>
void gemm_packed_q4_nt(int64_t n, const uint8_t* g, const uint8_t* act, size_t act_stride, const int32_t* act_sums,
                       float* y, int64_t ldy) {
  const int64_t nb = n / 32;
  const size_t group_block = kQ4_1 ? 8 * 4 + 128 : 8 * 2 + 128;
  float32x4_t acc[NT][2];
  for (int t = 0; t < NT; ++t) acc[t][0] = acc[t][1] = vdupq_n_f32(0.0f);
  for (int64_t b = 0; b < nb; ++b, g += group_block) {
    float32x4_t dw[2], mw[2] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
    f16x8_to_f32(g, dw);
    if constexpr (kQ4_1) f16x8_to_f32(g + 16, mw);
    const uint8_t* q = g + (kQ4_1 ? 32 : 16);
    int8x16_t lo[4][2], hi[4][2];
    for (int c = 0; c < 4; ++c)
      for (int h = 0; h < 2; ++h) {
        const uint8x16_t v = vld1q_u8(q + 32 * c + 16 * h);
        lo[c][h] = low_nibbles(v);
        hi[c][h] = high_nibbles(v);
      }
    for (int t = 0; t < NT; ++t) {
      const uint8_t* ab = act + t * act_stride + b * (kQ4_1 ? sizeof(BlockQ8_1) : sizeof(BlockQ8_0));
      const int8_t* aq = reinterpret_cast<const int8_t*>(ab + (kQ4_1 ? 4 : 2));
      const int8x16_t a0 = vld1q_s8(aq), a1 = vld1q_s8(aq + 16);
      int32x4_t s[2];
      for (int h = 0; h < 2; ++h) {
        int32x4_t v = vdupq_n_s32(0);
        v = vdotq_laneq_s32(v, lo[0][h], a0, 0);
        v = vdotq_laneq_s32(v, lo[1][h], a0, 1);
        v = vdotq_laneq_s32(v, lo[2][h], a0, 2);
        v = vdotq_laneq_s32(v, lo[3][h], a0, 3);
        v = vdotq_laneq_s32(v, hi[0][h], a1, 0);
        v = vdotq_laneq_s32(v, hi[1][h], a1, 1);
        v = vdotq_laneq_s32(v, hi[2][h], a1, 2);
        v = vdotq_laneq_s32(v, hi[3][h], a1, 3);
        if constexpr (!kQ4_1) v = vsubq_s32(v, vdupq_n_s32(8 * act_sums[t * nb + b]));
        s[h] = v;
      }
      f16_t dab;
      std::memcpy(&dab, ab, 2);
      const float da = fp16_to_fp32(dab);
      for (int h = 0; h < 2; ++h) acc[t][h] = vfmaq_f32(acc[t][h], vmulq_n_f32(dw[h], da), vcvtq_f32_s32(s[h]));
      if constexpr (kQ4_1) {
        f16_t sab;
        std::memcpy(&sab, ab + 2, 2);
        const float sa = fp16_to_fp32(sab);
        for (int h = 0; h < 2; ++h) acc[t][h] = vfmaq_n_f32(acc[t][h], mw[h], sa);
      }
    }
  }
  for (int t = 0; t < NT; ++t) {
    vst1q_f32(y + t * ldy, acc[t][0]);
    vst1q_f32(y + t * ldy + 4, acc[t][1]);
  }
}

template <int NT>
void gemm_packed_q8_0_nt(int64_t n, const uint8_t* g, const uint8_t* act, size_t act_stride, float* y, int64_t ldy) {
  const int64_t nb = n / 32;
  float32x4_t acc[NT][2];
  for (int t = 0; t < NT; ++t) acc[t][0] = acc[t][1] = vdupq_n_f32(0.0f);
  for (int64_t b = 0; b < nb; ++b, g += 8 * 2 + 256) {
    float32x4_t dw[2];
    f16x8_to_f32(g, dw);
    const int8_t* q = reinterpret_cast<const int8_t*>(g + 16);
    for (int t = 0; t < NT; ++t) {
      const auto* a = reinterpret_cast<const BlockQ8_0*>(act + t * act_stride) + b;
      const int8x16_t a0 = vld1q_s8(a->qs), a1 = vld1q_s8(a->qs + 16);
      for (int h = 0; h < 2; ++h) {
        const int8_t* qh = q + 16 * h;
        int32x4_t v = vdupq_n_s32(0);
        v = vdotq_laneq_s32(v, vld1q_s8(qh + 0 * 32), a0, 0);
        v = vdotq_laneq_s32(v, vld1q_s8(qh + 1 * 32), a0, 1);
        v = vdotq_laneq_s32(v, vld1q_s8(qh + 2 * 32), a0, 2);
        v = vdotq_laneq_s32(v, vld1q_s8(qh + 3 * 32), a0, 3);
        v = vdotq_laneq_s32(v, vld1q_s8(qh + 4 * 32), a1, 0);
        v = vdotq_laneq_s32(v, vld1q_s8(qh + 5 * 32), a1, 1);
        v = vdotq_laneq_s32(v, vld1q_s8(qh + 6 * 32), a1, 2);
        v = vdotq_laneq_s32(v, vld1q_s8(qh + 7 * 32), a1, 3);
        acc[t][h] = vfmaq_f32(acc[t][h], vmulq_n_f32(dw[h], fp16_to_fp32(a->d)), vcvtq_f32_s32(v));
      }
    }
  }
  for (int t = 0; t < NT; ++t) {
    vst1q_f32(y + t * ldy, acc[t][0]);
    vst1q_f32(y + t * ldy + 4, acc[t][1]);
  }
}

template <bool kQ4_1>
void gemm_packed_q4(int64_t n, const void* w, const void* act, size_t as, const int32_t* sums, int nt, float* y,
                    int64_t ldy) {
  const auto* g = static_cast<const uint8_t*>(w);
  const auto* a = static_cast<const uint8_t*>(act);
  switch (nt) {
    case 1: gemm_packed_q4_nt<kQ4_1, 1>(n, g, a, as, sums, y, ldy); break;
    case 2: gemm_packed_q4_nt<kQ4_1, 2>(n, g, a, as, sums, y, ldy); break;
    case 3: gemm_packed_q4_nt<kQ4_1, 3>(n, g, a, as, sums, y, ldy); break;
    default: gemm_packed_q4_nt<kQ4_1, 4>(n, g, a, as, sums, y, ldy); break;
  }
}

void gemm_packed_q8_0(int64_t n, const void* w, const void* act, size_t as, const int32_t*, int nt, float* y,
                      int64_t ldy) {
  const auto* g = static_cast<const uint8_t*>(w);
  const auto* a = static_cast<const uint8_t*>(act);
  switch (nt) {
    case 1: gemm_packed_q8_0_nt<1>(n, g, a, as, y, ldy); break;
    case 2: gemm_packed_q8_0_nt<2>(n, g, a, as, y, ldy); break;
    case 3: gemm_packed_q8_0_nt<3>(n, g, a, as, y, ldy); break;
    default: gemm_packed_q8_0_nt<4>(n, g, a, as, y, ldy); break;
  }
}

// ---- i8mm (SMMLA): a 2 x 8 by 8 x 2 int8 matrix multiply per instruction, 32 multiply-adds. Two packed
// chunk vectors (c, c + 1) of rows 0..3 zipped by 32-bit lanes hold rows (0, 1) and rows (2, 3) with 8
// consecutive elements each: the weight operands. Two tokens' 8 activation bytes side by side are the
// other. The 2 x 2 result lanes are (t, r), (t, r + 1), (t + 1, r), (t + 1, r + 1). Used for pairs of
// tokens (prefill); a single token goes to the sdot kernels above. Same layouts, same integer sums. ----

#define TS_I8MM __attribute__((target("arch=armv8.2-a+fp16+dotprod+i8mm")))

// Two tokens' bytes [off, off + 8) side by side.
TS_I8MM inline int8x16_t token_pair(const int8_t* a0, const int8_t* a1, int off) {
  return vcombine_s8(vld1_s8(a0 + off), vld1_s8(a1 + off));
}

// Scales in the result lanes' order: weight scales of rows (r, r + 1) twice; activation scale per token pair.
TS_I8MM inline float32x4_t rows_twice(float32x4_t d4, int pair) {  // d4 = scales of rows 4h..4h+3; pair 0 or 1
  const float32x2_t two = pair == 0 ? vget_low_f32(d4) : vget_high_f32(d4);
  return vcombine_f32(two, two);
}

template <int kType>  // 0: Q4_0, 1: Q4_1, 2: Q8_0
TS_I8MM void gemm_packed_i8mm_2t(int64_t n, const uint8_t* g, const uint8_t* act0, const uint8_t* act1,
                                 const int32_t* sums0, const int32_t* sums1, float* y0, float* y1) {
  const int64_t nb = n / 32;
  const size_t ablock = kType == 1 ? sizeof(BlockQ8_1) : sizeof(BlockQ8_0);
  const size_t aoff = kType == 1 ? 4 : 2;
  const size_t gblock = kType == 0 ? 8 * 2 + 128 : kType == 1 ? 8 * 4 + 128 : 8 * 2 + 256;
  // acc[h][p]: rows 4h + 2p, 4h + 2p + 1 for the two tokens.
  float32x4_t acc[2][2];
  for (auto& a : acc) a[0] = a[1] = vdupq_n_f32(0.0f);
  for (int64_t b = 0; b < nb; ++b, g += gblock) {
    const int8_t* q0 = reinterpret_cast<const int8_t*>(act0 + b * ablock + aoff);
    const int8_t* q1 = reinterpret_cast<const int8_t*>(act1 + b * ablock + aoff);
    int32x4_t s[2][2];
    for (auto& x : s) x[0] = x[1] = vdupq_n_s32(0);
    if constexpr (kType == 2) {
      const int8_t* w = reinterpret_cast<const int8_t*>(g + 16);
      for (int c = 0; c < 8; c += 2) {
        const int8x16_t a = token_pair(q0, q1, 4 * c);
        for (int h = 0; h < 2; ++h) {
          const int32x4_t lo = vreinterpretq_s32_s8(vld1q_s8(w + 32 * c + 16 * h));
          const int32x4_t hi = vreinterpretq_s32_s8(vld1q_s8(w + 32 * (c + 1) + 16 * h));
          s[h][0] = vmmlaq_s32(s[h][0], a, vreinterpretq_s8_s32(vzip1q_s32(lo, hi)));
          s[h][1] = vmmlaq_s32(s[h][1], a, vreinterpretq_s8_s32(vzip2q_s32(lo, hi)));
        }
      }
    } else {
      const uint8_t* w = g + (kType == 1 ? 32 : 16);
      for (int c = 0; c < 4; c += 2) {
        const int8x16_t alo = token_pair(q0, q1, 4 * c), ahi = token_pair(q0, q1, 16 + 4 * c);
        for (int h = 0; h < 2; ++h) {
          const uint8x16_t v0 = vld1q_u8(w + 32 * c + 16 * h), v1 = vld1q_u8(w + 32 * (c + 1) + 16 * h);
          const int32x4_t l0 = vreinterpretq_s32_s8(low_nibbles(v0)), l1 = vreinterpretq_s32_s8(low_nibbles(v1));
          const int32x4_t h0 = vreinterpretq_s32_s8(high_nibbles(v0)), h1 = vreinterpretq_s32_s8(high_nibbles(v1));
          s[h][0] = vmmlaq_s32(s[h][0], alo, vreinterpretq_s8_s32(vzip1q_s32(l0, l1)));
          s[h][1] = vmmlaq_s32(s[h][1], alo, vreinterpretq_s8_s32(vzip2q_s32(l0, l1)));
          s[h][0] = vmmlaq_s32(s[h][0], ahi, vreinterpretq_s8_s32(vzip1q_s32(h0, h1)));
          s[h][1] = vmmlaq_s32(s[h][1], ahi, vreinterpretq_s8_s32(vzip2q_s32(h0, h1)));
        }
      }
      if constexpr (kType == 0) {  // the -8 offset: 8 x each token's block sum, per result lane
        const int32x4_t off = vcombine_s32(vdup_n_s32(8 * sums0[b]), vdup_n_s32(8 * sums1[b]));
        for (auto& x : s) x[0] = vsubq_s32(x[0], off), x[1] = vsubq_s32(x[1], off);
      }
    }
    f16_t d0h, d1h;
    std::memcpy(&d0h, act0 + b * ablock, 2);
    std::memcpy(&d1h, act1 + b * ablock, 2);
    const float32x4_t da = vcombine_f32(vdup_n_f32(fp16_to_fp32(d0h)), vdup_n_f32(fp16_to_fp32(d1h)));
    float32x4_t dw[2], mw[2] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)}, sa = vdupq_n_f32(0.0f);
    f16x8_to_f32(g, dw);
    if constexpr (kType == 1) {
      f16x8_to_f32(g + 16, mw);
      f16_t s0h, s1h;
      std::memcpy(&s0h, act0 + b * ablock + 2, 2);
      std::memcpy(&s1h, act1 + b * ablock + 2, 2);
      sa = vcombine_f32(vdup_n_f32(fp16_to_fp32(s0h)), vdup_n_f32(fp16_to_fp32(s1h)));
    }
    for (int h = 0; h < 2; ++h)
      for (int p = 0; p < 2; ++p) {
        acc[h][p] = vfmaq_f32(acc[h][p], vmulq_f32(rows_twice(dw[h], p), da), vcvtq_f32_s32(s[h][p]));
        if constexpr (kType == 1) acc[h][p] = vfmaq_f32(acc[h][p], rows_twice(mw[h], p), sa);
      }
  }
  for (int h = 0; h < 2; ++h)
    for (int p = 0; p < 2; ++p) {
      const int r = 4 * h + 2 * p;
      y0[r] = vgetq_lane_f32(acc[h][p], 0);
      y0[r + 1] = vgetq_lane_f32(acc[h][p], 1);
      y1[r] = vgetq_lane_f32(acc[h][p], 2);
      y1[r + 1] = vgetq_lane_f32(acc[h][p], 3);
    }
}

// Token pairs through SMMLA, an odd last token through the sdot kernel.
template <int kType>
void gemm_packed_i8mm(int64_t n, const void* w, const void* act, size_t as, const int32_t* sums, int nt, float* y,
                      int64_t ldy) {
  const auto* g = static_cast<const uint8_t*>(w);
  const auto* a = static_cast<const uint8_t*>(act);
  const int64_t nb = n / 32;
  int t = 0;
  for (; t + 2 <= nt; t += 2)
    gemm_packed_i8mm_2t<kType>(n, g, a + t * as, a + (t + 1) * as, sums + t * nb, sums + (t + 1) * nb, y + t * ldy,
                               y + (t + 1) * ldy);
  if (t < nt) {
    if constexpr (kType == 2) gemm_packed_q8_0_nt<1>(n, g, a + t * as, as, y + t * ldy, ldy);
    else gemm_packed_q4_nt<kType == 1, 1>(n, g, a + t * as, as, sums + t * nb, y + t * ldy, ldy);
  }
}

}  // namespace

void install_q4_0_neon(KernelTable& t) {
  WeightKernels& k = t.for_type(TensorType::Q4_0);
  k.act.quantize = neon_quantize_q8_0;
  k.vec_dot = dot_q4_0_q8_0;
  k.gemm_packed = has_i8mm() ? gemm_packed_i8mm<0> : gemm_packed_q4<false>;
}
void install_q4_1_neon(KernelTable& t) {
  WeightKernels& k = t.for_type(TensorType::Q4_1);
  k.act.quantize = neon_quantize_q8_1;
  k.vec_dot = dot_q4_1_q8_1;
  k.gemm_packed = has_i8mm() ? gemm_packed_i8mm<1> : gemm_packed_q4<true>;
}
void install_q8_0_neon(KernelTable& t) {
  WeightKernels& k = t.for_type(TensorType::Q8_0);
  k.act.quantize = neon_quantize_q8_0;
  k.vec_dot = dot_q8_0_q8_0;
  k.gemm_packed = has_i8mm() ? gemm_packed_i8mm<2> : gemm_packed_q8_0;
  t.dot_q8_0_rows = detail::vec_dot_rows<dot_q8_0_q8_0>;
  t.axpy_q8_0_rows = axpy_q8_0_rows;
}

}  // namespace tokenscope::kernels::detail
