// Arm NEON kernels: Armv8.2-A with the dot-product (sdot) and half-precision extensions, 128-bit vectors.
// Integer dot products use vdotq_s32 (four int8 x int8 products summed into each int32 lane); the packed
// multiply uses the by-lane form, so one instruction multiplies four packed weight rows by four
// activation bytes. Every kernel here has its scalar reference in kernels_scalar.cpp / kernels_packed.cpp
// and is tested against it (tests/unit/kernels_test.cpp, cross-built and run under qemu-aarch64).
#include <arm_neon.h>
#include <asm/hwcap.h>
#include <sys/auxv.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "base/fp16.h"
#include "formats/blocks.h"
#include "formats/quant_ref.h"
#include "kernels/kernels_internal.h"

namespace tokenscope::kernels::detail {
namespace {

inline int8x16_t low_nibbles(uint8x16_t q) { return vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))); }
inline int8x16_t high_nibbles(uint8x16_t q) { return vreinterpretq_s8_u8(vshrq_n_u8(q, 4)); }
// Q5_K's fifth bits: q with bit k (0-7) of each byte of hb in bit 4 (q's bit 4 is zero): a shift and a bit select.
inline uint8x16_t or_fifth_bit(uint8x16_t q, uint8x16_t hb, int k) {
  return vbslq_u8(vdupq_n_u8(0x10), vshlq_u8(hb, vdupq_n_s8(static_cast<int8_t>(4 - k))), q);
}

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

// ---- Dot products of one weight row and one quantized activation row. ----

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

// Q4_K / Q5_K: 8 sub-blocks of 32 with 6-bit scales and mins; the mins enter through the activation's
// block sums, each sub-block's integer dot is multiplied by its scale. Q5_K adds a fifth bit from qh.
template <typename Block, bool kFifthBit>
float dot_qk_min_q8_k(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const Block*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  float sum = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    uint8_t sc[8];
    const int summ = scales_and_min_sum_k4(x[i].scales, y[i].bsums, sc);
    uint8x16_t qh0 = vdupq_n_u8(0), qh1 = vdupq_n_u8(0);
    if constexpr (kFifthBit) {
      qh0 = vld1q_u8(x[i].qh);
      qh1 = vld1q_u8(x[i].qh + 16);
    }
    int sumi = 0;
    for (int c = 0; c < 4; ++c) {
      const uint8x16_t q0 = vld1q_u8(x[i].qs + 32 * c), q1 = vld1q_u8(x[i].qs + 32 * c + 16);
      uint8x16_t lo0 = vandq_u8(q0, vdupq_n_u8(0x0F)), lo1 = vandq_u8(q1, vdupq_n_u8(0x0F));
      uint8x16_t hi0 = vshrq_n_u8(q0, 4), hi1 = vshrq_n_u8(q1, 4);
      if constexpr (kFifthBit) {
        lo0 = or_fifth_bit(lo0, qh0, 2 * c);
        lo1 = or_fifth_bit(lo1, qh1, 2 * c);
        hi0 = or_fifth_bit(hi0, qh0, 2 * c + 1);
        hi1 = or_fifth_bit(hi1, qh1, 2 * c + 1);
      }
      const int8_t* q8 = y[i].qs + 64 * c;
      int32x4_t d0 = vdotq_s32(vdupq_n_s32(0), vreinterpretq_s8_u8(lo0), vld1q_s8(q8));
      d0 = vdotq_s32(d0, vreinterpretq_s8_u8(lo1), vld1q_s8(q8 + 16));
      int32x4_t d1 = vdotq_s32(vdupq_n_s32(0), vreinterpretq_s8_u8(hi0), vld1q_s8(q8 + 32));
      d1 = vdotq_s32(d1, vreinterpretq_s8_u8(hi1), vld1q_s8(q8 + 48));
      sumi += sc[2 * c] * vaddvq_s32(d0) + sc[2 * c + 1] * vaddvq_s32(d1);
    }
    const float d = fp16_to_fp32(x[i].d) * y[i].d;
    const float dmin = fp16_to_fp32(x[i].dmin) * y[i].d;
    sum += d * static_cast<float>(sumi) - dmin * static_cast<float>(summ);
  }
  return sum;
}

float dot_q4_k_q8_k(int64_t n, const void* w, const void* a) { return dot_qk_min_q8_k<BlockQ4_K, false>(n, w, a); }
float dot_q5_k_q8_k(int64_t n, const void* w, const void* a) { return dot_qk_min_q8_k<BlockQ5_K, true>(n, w, a); }

// Q6_K: 16 sub-blocks of 16 with int8 scales; 4 low bits in ql, 2 high bits in qh; the -32 offset is
// folded in through the activation block sums.
float dot_q6_k_q8_k(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ6_K*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  const uint8x16_t m4 = vdupq_n_u8(0x0F), m3 = vdupq_n_u8(0x03);
  float sum = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    int offset = 0;
    for (int k = 0; k < 16; ++k) offset += x[i].scales[k] * y[i].bsums[k];
    int sumi = 0;
    for (int c = 0; c < 2; ++c) {
      const uint8_t* ql = x[i].ql + 64 * c;
      const uint8_t* qh = x[i].qh + 32 * c;
      for (int half = 0; half < 2; ++half) {  // elements ll = 16 * half .. 16 * half + 15 of each run of 32
        const uint8x16_t l0 = vld1q_u8(ql + 16 * half), l1 = vld1q_u8(ql + 32 + 16 * half);
        const uint8x16_t h = vld1q_u8(qh + 16 * half);
        uint8x16_t q[4];
        q[0] = vorrq_u8(vandq_u8(l0, m4), vshlq_n_u8(vandq_u8(h, m3), 4));
        q[1] = vorrq_u8(vandq_u8(l1, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 2), m3), 4));
        q[2] = vorrq_u8(vshrq_n_u8(l0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 4), m3), 4));
        q[3] = vorrq_u8(vshrq_n_u8(l1, 4), vshlq_n_u8(vshrq_n_u8(h, 6), 4));
        for (int k = 0; k < 4; ++k) {
          const int e = 128 * c + 32 * k + 16 * half;  // first element of this sub-block of 16
          const int32x4_t d = vdotq_s32(vdupq_n_s32(0), vreinterpretq_s8_u8(q[k]), vld1q_s8(y[i].qs + e));
          sumi += x[i].scales[e / 16] * vaddvq_s32(d);
        }
      }
    }
    sum += fp16_to_fp32(x[i].d) * y[i].d * static_cast<float>(sumi - 32 * offset);
  }
  return sum;
}

// ---- Float helpers. ----

inline float32x4_t load_f16x4(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
// 8 f16 (a packed group's per-row scales) as two vectors of 4 floats.
inline void f16x8_to_f32(const uint8_t* p, float32x4_t out[2]) {
  const float16x8_t h = vreinterpretq_f16_u8(vld1q_u8(p));
  out[0] = vcvt_f32_f16(vget_low_f16(h));
  out[1] = vcvt_f32_f16(vget_high_f16(h));
}

// The f16 dot product in the order the scalar reference defines (kernels_scalar.cpp): four groups of
// eight lanes (here two float32x4 each) with fused multiply-adds over chunks of 32, folded
// (g0 + g2) + (g1 + g3), lanes reduced ((l0+l4)+(l1+l5)) + ((l2+l6)+(l3+l7)), tail in double.
// The fold of the f16 dot product's accumulators (lanes 0-3 of each group in lo, 4-7 in hi).
inline float f16_acc_sum(const float32x4_t* lo, const float32x4_t* hi) {
  const float32x4_t vlo = vaddq_f32(vaddq_f32(lo[0], lo[2]), vaddq_f32(lo[1], lo[3]));
  const float32x4_t vhi = vaddq_f32(vaddq_f32(hi[0], hi[2]), vaddq_f32(hi[1], hi[3]));
  const float32x4_t t0 = vaddq_f32(vlo, vhi);  // l + (l + 4)
  const float32x4_t t1 = vpaddq_f32(t0, t0);    // (t0 + t1), (t2 + t3), ...
  return vgetq_lane_f32(t1, 0) + vgetq_lane_f32(t1, 1);
}

// x in chunks of 32 elements placed as `chunks` says (kernels.h, F16Chunks); F16Chunks{} is a plain row.
float dot_f16_chunked(int64_t n, const uint16_t* x, F16Chunks chunks, const uint16_t* y) {
  const int64_t n32 = n & ~int64_t{31};
  double sum = 0.0;
  if (n32 > 0) {
    float32x4_t lo[4], hi[4];
    for (int r = 0; r < 4; ++r) lo[r] = hi[r] = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < n32; i += 32) {
      const uint16_t* xc = detail::f16_chunk_at(x, chunks, i);
      for (int r = 0; r < 4; ++r) {
        lo[r] = vfmaq_f32(lo[r], load_f16x4(xc + 8 * r), load_f16x4(y + i + 8 * r));
        hi[r] = vfmaq_f32(hi[r], load_f16x4(xc + 8 * r + 4), load_f16x4(y + i + 8 * r + 4));
      }
    }
    sum = f16_acc_sum(lo, hi);
  }
  return detail::dot_f16_finish(sum, detail::f16_tail_at(x, chunks, n32, n), y, n32, n);
}

float dot_f16_f16(int64_t n, const void* w, const void* a) {
  return dot_f16_chunked(n, static_cast<const uint16_t*>(w), F16Chunks{}, static_cast<const uint16_t*>(a));
}

// Four accumulators, so the FMA latency does not cap a thread's read rate (sysinfo measures with this).
float dot_f32_plain(int64_t n, const float* x, const float* y) {
  float32x4_t acc[4];
  for (auto& v : acc) v = vdupq_n_f32(0.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int r = 0; r < 4; ++r) acc[r] = vfmaq_f32(acc[r], vld1q_f32(x + i + 4 * r), vld1q_f32(y + i + 4 * r));
  for (; i + 4 <= n; i += 4) acc[0] = vfmaq_f32(acc[0], vld1q_f32(x + i), vld1q_f32(y + i));
  float s = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
  for (; i < n; ++i) s += x[i] * y[i];
  return s;
}

float dot_f32_f32(int64_t n, const void* w, const void* a) {
  return dot_f32_plain(n, static_cast<const float*>(w), static_cast<const float*>(a));
}

float dot_f16_pair(int64_t n, const uint16_t* a, const uint16_t* b) { return dot_f16_f16(n, a, b); }

// bf16 -> f32: the 16 bits moved to the top of the word (exact).
inline float32x4_t load_bf16x4(const uint16_t* p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }

// BF16 weights x BF16 activations: exact f32 products, FMAs into four accumulators (the scalar reference
// sums in double; the difference is the f32 sum's rounding).
float dot_bf16_bf16(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  float32x4_t acc[4];
  for (auto& v : acc) v = vdupq_n_f32(0.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int r = 0; r < 4; ++r) acc[r] = vfmaq_f32(acc[r], load_bf16x4(x + i + 4 * r), load_bf16x4(y + i + 4 * r));
  for (; i + 4 <= n; i += 4) acc[0] = vfmaq_f32(acc[0], load_bf16x4(x + i), load_bf16x4(y + i));
  float s = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
  for (; i < n; ++i) s += bf16_to_fp32(x[i]) * bf16_to_fp32(y[i]);
  return s;
}

void axpy_f16(int64_t n, float alpha, const uint16_t* x, float* y) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), load_f16x4(x + i), alpha));
  for (; i < n; ++i) y[i] += alpha * fp16_to_fp32(x[i]);
}

// vcvt_f16_f32 rounds to nearest even (the default FPCR mode), as fp32_to_fp16 does.
void f32_to_f16(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
  for (; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}

void f16_to_f32(const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, load_f16x4(x + i));
  for (; i < n; ++i) y[i] = fp16_to_fp32(x[i]);
}

void dot_f16_rows(int64_t n, const uint16_t* x, int64_t stride, F16Chunks chunks, int64_t count, const uint16_t* y,
                  float* out) {
  const int64_t n32 = n & ~int64_t{31};
  if (detail::f16_plain(chunks) || n32 == 0) {
    for (int64_t j = 0; j < count; ++j) out[j] = dot_f16_chunked(n, x + j * stride, chunks, y);
    return;
  }
  // Rows in chunks (the value cache's blocks, a paged cache's pages): the chunks walked in turn, each for all
  // rows of a panel of up to 64, each row's accumulators (dot_f16_chunked's, in the same order) kept in L1
  // between chunks, so the results are those of dot_f16_chunked.
  constexpr int64_t kPanel = 64;
  float32x4_t accs[kPanel][8];  // per row: lo[0..3], hi[0..3]
  for (int64_t j0 = 0; j0 < count; j0 += kPanel) {
    const int64_t rows = std::min(kPanel, count - j0);
    for (int64_t q = 0; q < rows; ++q)
      for (int r = 0; r < 8; ++r) accs[q][r] = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < n32; i += 32) {
      float32x4_t yv[8];
      for (int r = 0; r < 4; ++r) {
        yv[r] = load_f16x4(y + i + 8 * r);
        yv[4 + r] = load_f16x4(y + i + 8 * r + 4);
      }
      const uint16_t* xc = detail::f16_chunk_at(x + j0 * stride, chunks, i);
      for (int64_t q = 0; q < rows; ++q) {
        const uint16_t* xq = xc + q * stride;
        for (int r = 0; r < 4; ++r) {
          accs[q][r] = vfmaq_f32(accs[q][r], load_f16x4(xq + 8 * r), yv[r]);
          accs[q][4 + r] = vfmaq_f32(accs[q][4 + r], load_f16x4(xq + 8 * r + 4), yv[4 + r]);
        }
      }
    }
    for (int64_t q = 0; q < rows; ++q) {
      const uint16_t* row = x + (j0 + q) * stride;
      out[j0 + q] = detail::dot_f16_finish(f16_acc_sum(accs[q], accs[q] + 4), detail::f16_tail_at(row, chunks, n32, n),
                                           y, n32, n);
    }
  }
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

// exp on 4 floats, as the x86 exp8: x = k * ln2 + r, degree-6 polynomial, 2^k in two halves; below -87.3
// gives 0, above 88.7 gives +inf.
inline float32x4_t exp4(float32x4_t x) {
  const float32x4_t hi = vdupq_n_f32(88.7228f), lo = vdupq_n_f32(-87.3365f);
  const uint32x4_t too_small = vcltq_f32(x, lo), too_big = vcgtq_f32(x, hi);
  const float32x4_t xc = vminq_f32(vmaxq_f32(x, lo), hi);
  const float32x4_t k = vrndnq_f32(vmulq_n_f32(xc, 1.44269504f));
  float32x4_t r = vfmsq_n_f32(xc, k, 0.693145752f);
  r = vfmsq_n_f32(r, k, 1.42860677e-6f);
  float32x4_t p = vdupq_n_f32(1.0f / 720);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 120), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 24), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 6), p, r);
  p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
  const int32x4_t ki = vcvtq_s32_f32(k);
  const int32x4_t k1 = vshrq_n_s32(ki, 1), k2 = vsubq_s32(ki, k1);
  const float32x4_t s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(k1, vdupq_n_s32(127)), 23));
  const float32x4_t s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(k2, vdupq_n_s32(127)), 23));
  float32x4_t res = vmulq_f32(vmulq_f32(p, s1), s2);
  res = vbslq_f32(too_small, vdupq_n_f32(0.0f), res);
  return vbslq_f32(too_big, vdupq_n_f32(INFINITY), res);
}

double exp_sum_f32(float* x, int64_t n, float sub) {
  const float32x4_t vs = vdupq_n_f32(sub);
  float64x2_t acc0 = vdupq_n_f64(0.0), acc1 = vdupq_n_f64(0.0);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t e = exp4(vsubq_f32(vld1q_f32(x + i), vs));
    vst1q_f32(x + i, e);
    acc0 = vaddq_f64(acc0, vcvt_f64_f32(vget_low_f32(e)));
    acc1 = vaddq_f64(acc1, vcvt_high_f64_f32(e));
  }
  double sum = vaddvq_f64(vaddq_f64(acc0, acc1));
  for (; i < n; ++i) {
    float t[4] = {x[i] - sub, 0, 0, 0};
    x[i] = vgetq_lane_f32(exp4(vld1q_f32(t)), 0);
    sum += static_cast<double>(x[i]);
  }
  return sum;
}

float max_f32(const float* x, int64_t n) {
  float32x4_t v0 = vdupq_n_f32(-INFINITY), v1 = v0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    v0 = vmaxq_f32(v0, vld1q_f32(x + i));
    v1 = vmaxq_f32(v1, vld1q_f32(x + i + 4));
  }
  float mx = vmaxvq_f32(vmaxq_f32(v0, v1));
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  return mx;
}

void softmax_f16r(float* x, int64_t n, float scale) {
  const float32x4_t vs = vdupq_n_f32(scale);
  float32x4_t vmx = vdupq_n_f32(-INFINITY);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t v = vmulq_f32(vld1q_f32(x + i), vs);
    vst1q_f32(x + i, v);
    vmx = vmaxq_f32(vmx, v);
  }
  float mx = vmaxvq_f32(vmx);
  for (; i < n; ++i) {
    x[i] *= scale;
    mx = std::max(mx, x[i]);
  }
  const float inv = static_cast<float>(1.0 / exp_sum_f32(x, n, mx));
  for (i = 0; i + 4 <= n; i += 4) vst1q_f32(x + i, vcvt_f32_f16(vcvt_f16_f32(vmulq_n_f32(vld1q_f32(x + i), inv))));
  for (; i < n; ++i) x[i] = fp16_to_fp32(fp32_to_fp16(x[i] * inv));
}

void silu_mul_f32(const float* g, const float* u, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t vg = vld1q_f32(g + i);
    const float32x4_t e = exp4(vnegq_f32(vg));
    vst1q_f32(out + i, vmulq_f32(vdivq_f32(vg, vaddq_f32(vdupq_n_f32(1.0f), e)), vld1q_f32(u + i)));
  }
  for (; i < n; ++i) out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void relu_sqr_mul_f32(const float* g, const float* u, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t r = vmaxq_f32(vld1q_f32(g + i), vdupq_n_f32(0.0f));
    vst1q_f32(out + i, vmulq_f32(vmulq_f32(r, r), vld1q_f32(u + i)));
  }
  for (; i < n; ++i) {
    const float r = g[i] > 0.0f ? g[i] : 0.0f;
    out[i] = r * r * u[i];
  }
}

// c (+)= a x b^T with b in f16: 8 b rows at a time converted and transposed into bt[l][8] (scalar gather,
// then reused by every a row), 4 a rows x 8 columns per step (8 accumulators of 4 lanes).
void gemm_f32_f16t(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const uint16_t* b, int64_t ldb,
                   F16Chunks b_chunks, float* c, int64_t ldc, bool accumulate) {
  constexpr int64_t kKc = 128;  // a multiple of 32: each k block starts a chunk, 4 values never straddle one
  alignas(16) float bt[kKc * 8];
  for (int64_t j0 = 0; j0 < n; j0 += 8) {
    const int64_t nj = std::min<int64_t>(8, n - j0);
    for (int64_t l0 = 0; l0 < k; l0 += kKc) {
      const int64_t kl = std::min(kKc, k - l0);
      for (int64_t jj = 0; jj < 8; ++jj) {
        if (jj < nj) {
          const uint16_t* row = b + (j0 + jj) * ldb;
          for (int64_t lc = 0; lc < kl; lc += kF16Chunk) {  // chunk by chunk, its address found once
            const uint16_t* src = detail::f16_chunk_at(row, b_chunks, l0 + lc);
            const int64_t le = std::min(kF16Chunk, kl - lc);
            float* dst = bt + lc * 8 + jj;
            int64_t l = 0;
            for (; l + 4 <= le; l += 4) {
              const float32x4_t v = load_f16x4(src + l);
              dst[(l + 0) * 8] = vgetq_lane_f32(v, 0);
              dst[(l + 1) * 8] = vgetq_lane_f32(v, 1);
              dst[(l + 2) * 8] = vgetq_lane_f32(v, 2);
              dst[(l + 3) * 8] = vgetq_lane_f32(v, 3);
            }
            for (; l < le; ++l) dst[l * 8] = fp16_to_fp32(src[l]);
          }
        } else {
          for (int64_t l = 0; l < kl; ++l) bt[l * 8 + jj] = 0.0f;
        }
      }
      const bool add = accumulate || l0 > 0;
      auto finish = [&](int64_t i, float32x4_t lo, float32x4_t hi) {
        float t[8];
        vst1q_f32(t, lo);
        vst1q_f32(t + 4, hi);
        float* ci = c + i * ldc + j0;
        for (int64_t jj = 0; jj < nj; ++jj) ci[jj] = add ? ci[jj] + t[jj] : t[jj];
      };
      int64_t i = 0;
      for (; i + 4 <= m; i += 4) {
        const float* a0 = a + i * lda + l0;
        float32x4_t acc[4][2];
        for (auto& x : acc) x[0] = x[1] = vdupq_n_f32(0.0f);
        for (int64_t q = 0; q < kl; ++q) {
          const float32x4_t b0 = vld1q_f32(bt + q * 8), b1 = vld1q_f32(bt + q * 8 + 4);
          for (int r = 0; r < 4; ++r) {
            const float av = a0[r * lda + q];
            acc[r][0] = vfmaq_n_f32(acc[r][0], b0, av);
            acc[r][1] = vfmaq_n_f32(acc[r][1], b1, av);
          }
        }
        for (int r = 0; r < 4; ++r) finish(i + r, acc[r][0], acc[r][1]);
      }
      for (; i < m; ++i) {
        const float* ai = a + i * lda + l0;
        float32x4_t lo = vdupq_n_f32(0.0f), hi = vdupq_n_f32(0.0f);
        for (int64_t q = 0; q < kl; ++q) {
          lo = vfmaq_n_f32(lo, vld1q_f32(bt + q * 8), ai[q]);
          hi = vfmaq_n_f32(hi, vld1q_f32(bt + q * 8 + 4), ai[q]);
        }
        finish(i, lo, hi);
      }
    }
  }
}

// ---- Packed (row-interleaved) weights, layouts in kernels.h. Each 32-byte chunk of a group is two
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

// K-quants over their packed layouts (kernels_packed.cpp), as the x86 versions: Q4_K / Q5_K per sub-block of
// 32 the rows' sums of quant x activation (sdot by lane; Q5_K's fifth bits ORed in at bit 4 first) times each
// row's scale, the mins through the activation's sub-block sums; Q6_K per sub-block of 16 with its -32
// offset from the activation's sums and int8 scales. Then per super-block y += d_w * d_a * sums (- dmin_w *
// d_a * mins).
// Four chunks (rows' 4 bytes each) against lanes 0..3 of a: v + the rows' sums over 16 elements.
inline int32x4_t sdot_chunks4(const int8x16_t q[4], int8x16_t a, int32x4_t v) {
  v = vdotq_laneq_s32(v, q[0], a, 0);
  v = vdotq_laneq_s32(v, q[1], a, 1);
  v = vdotq_laneq_s32(v, q[2], a, 2);
  return vdotq_laneq_s32(v, q[3], a, 3);
}
inline int32x4_t sdot_block(const int8x16_t lo[4], const int8x16_t hi[4], int8x16_t a0, int8x16_t a1, int32x4_t v) {
  return sdot_chunks4(hi, a1, sdot_chunks4(lo, a0, v));
}
// 8 bytes (one per row) as two vectors of 4 int32.
inline void widen_u8x8(const uint8_t* p, int32x4_t out[2]) {
  const uint16x8_t w = vmovl_u8(vld1_u8(p));
  out[0] = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(w)));
  out[1] = vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(w)));
}
inline void widen_s8x8(const uint8_t* p, int32x4_t out[2]) {
  const int16x8_t w = vmovl_s8(vreinterpret_s8_u8(vld1_u8(p)));
  out[0] = vmovl_s16(vget_low_s16(w));
  out[1] = vmovl_s16(vget_high_s16(w));
}

template <bool kFifthBit, int NT>
void gemm_packed_qk_min_nt(int64_t n, const uint8_t* g, const uint8_t* act, size_t act_stride, float* y, int64_t ldy) {
  constexpr size_t kBytes = detail::qk_min_packed_bytes(kFifthBit);
  const int64_t nsb = n / QK_K;
  float32x4_t acc[NT][2];
  for (int t = 0; t < NT; ++t) acc[t][0] = acc[t][1] = vdupq_n_f32(0.0f);
  for (int64_t sb = 0; sb < nsb; ++sb, g += kBytes) {
    const BlockQ8_K* a[NT];
    int32x4_t isum[NT][2], msum[NT][2];
    for (int t = 0; t < NT; ++t) {
      a[t] = reinterpret_cast<const BlockQ8_K*>(act + t * act_stride) + sb;
      isum[t][0] = isum[t][1] = msum[t][0] = msum[t][1] = vdupq_n_s32(0);
    }
    for (int j = 0; j < 8; ++j) {
      const uint8_t* q = g + detail::kQ4KPackedQuants + 128 * j;
      int8x16_t lo[2][4], hi[2][4];  // [rows 0-3 / 4-7][chunk]
      for (int c = 0; c < 4; ++c)
        for (int h = 0; h < 2; ++h) {
          const uint8x16_t v = vld1q_u8(q + 32 * c + 16 * h);
          lo[h][c] = low_nibbles(v);
          hi[h][c] = high_nibbles(v);
        }
      if constexpr (kFifthBit) {
        for (int h = 0; h < 2; ++h) {
          const uint8x16_t hb = vld1q_u8(g + detail::kQ5KPackedHigh + 32 * j + 16 * h);
          for (int c = 0; c < 4; ++c) {
            lo[h][c] = vreinterpretq_s8_u8(or_fifth_bit(vreinterpretq_u8_s8(lo[h][c]), hb, 2 * c));
            hi[h][c] = vreinterpretq_s8_u8(or_fifth_bit(vreinterpretq_u8_s8(hi[h][c]), hb, 2 * c + 1));
          }
        }
      }
      int32x4_t sc[2], mn[2];
      widen_u8x8(g + detail::kQ4KPackedScales + 8 * j, sc);
      widen_u8x8(g + detail::kQ4KPackedMins + 8 * j, mn);
      for (int t = 0; t < NT; ++t) {
        const int8_t* aq = a[t]->qs + 32 * j;
        const int8x16_t a0 = vld1q_s8(aq), a1 = vld1q_s8(aq + 16);
        const int32_t bs = a[t]->bsums[2 * j] + a[t]->bsums[2 * j + 1];
        for (int h = 0; h < 2; ++h) {
          isum[t][h] = vmlaq_s32(isum[t][h], sdot_block(lo[h], hi[h], a0, a1, vdupq_n_s32(0)), sc[h]);
          msum[t][h] = vmlaq_n_s32(msum[t][h], mn[h], bs);
        }
      }
    }
    float32x4_t dw[2], mw[2];
    f16x8_to_f32(g + detail::kQ4KPackedD, dw);
    f16x8_to_f32(g + detail::kQ4KPackedDmin, mw);
    for (int t = 0; t < NT; ++t)
      for (int h = 0; h < 2; ++h) {
        acc[t][h] = vfmaq_f32(acc[t][h], vmulq_n_f32(dw[h], a[t]->d), vcvtq_f32_s32(isum[t][h]));
        acc[t][h] = vfmsq_f32(acc[t][h], vmulq_n_f32(mw[h], a[t]->d), vcvtq_f32_s32(msum[t][h]));
      }
  }
  for (int t = 0; t < NT; ++t) {
    vst1q_f32(y + t * ldy, acc[t][0]);
    vst1q_f32(y + t * ldy + 4, acc[t][1]);
  }
}

template <int NT>
void gemm_packed_q6_k_nt(int64_t n, const uint8_t* g, const uint8_t* act, size_t act_stride, float* y, int64_t ldy) {
  const int64_t nsb = n / QK_K;
  float32x4_t acc[NT][2];
  for (int t = 0; t < NT; ++t) acc[t][0] = acc[t][1] = vdupq_n_f32(0.0f);
  for (int64_t sb = 0; sb < nsb; ++sb, g += detail::kQ6KPackedBytes) {
    const BlockQ8_K* a[NT];
    int32x4_t isum[NT][2];
    for (int t = 0; t < NT; ++t) {
      a[t] = reinterpret_cast<const BlockQ8_K*>(act + t * act_stride) + sb;
      isum[t][0] = isum[t][1] = vdupq_n_s32(0);
    }
    for (int blk = 0; blk < 8; ++blk) {
      const uint8_t* low = g + detail::kQ6KPackedLow + 128 * blk;
      const uint8_t* high = g + detail::kQ6KPackedHigh + 64 * blk;
      int8x16_t lo[2][4], hi[2][4];
      for (int c = 0; c < 4; ++c)
        for (int h = 0; h < 2; ++h) {
          const uint8x16_t v = vld1q_u8(low + 32 * c + 16 * h);
          uint8x16_t bits = vld1q_u8(high + 32 * (c / 2) + 16 * h);  // chunk c's nibble of the high-bit vector
          if (c % 2) bits = vshrq_n_u8(bits, 4);
          lo[h][c] = vreinterpretq_s8_u8(
              vorrq_u8(vandq_u8(v, vdupq_n_u8(0x0F)), vshlq_n_u8(vandq_u8(bits, vdupq_n_u8(0x03)), 4)));
          hi[h][c] = vreinterpretq_s8_u8(
              vorrq_u8(vshrq_n_u8(v, 4), vshlq_n_u8(vandq_u8(bits, vdupq_n_u8(0x0C)), 2)));
        }
      int32x4_t sc_a[2], sc_b[2];
      widen_s8x8(g + detail::kQ6KPackedScales + (2 * blk) * 8, sc_a);
      widen_s8x8(g + detail::kQ6KPackedScales + (2 * blk + 1) * 8, sc_b);
      for (int t = 0; t < NT; ++t) {
        const int8_t* aq = a[t]->qs + 32 * blk;
        const int8x16_t a0 = vld1q_s8(aq), a1 = vld1q_s8(aq + 16);
        const int32x4_t off_a = vdupq_n_s32(-32 * a[t]->bsums[2 * blk]);
        const int32x4_t off_b = vdupq_n_s32(-32 * a[t]->bsums[2 * blk + 1]);
        for (int h = 0; h < 2; ++h) {
          const int32x4_t da = sdot_chunks4(lo[h], a0, off_a), db = sdot_chunks4(hi[h], a1, off_b);
          isum[t][h] = vmlaq_s32(vmlaq_s32(isum[t][h], da, sc_a[h]), db, sc_b[h]);
        }
      }
    }
    float32x4_t dw[2];
    f16x8_to_f32(g + detail::kQ6KPackedD, dw);
    for (int t = 0; t < NT; ++t)
      for (int h = 0; h < 2; ++h)
        acc[t][h] = vfmaq_f32(acc[t][h], vmulq_n_f32(dw[h], a[t]->d), vcvtq_f32_s32(isum[t][h]));
  }
  for (int t = 0; t < NT; ++t) {
    vst1q_f32(y + t * ldy, acc[t][0]);
    vst1q_f32(y + t * ldy + 4, acc[t][1]);
  }
}

template <int kType>  // 0: Q4_K, 1: Q5_K, 2: Q6_K
void gemm_packed_kquant(int64_t n, const void* w, const void* act, size_t as, const int32_t*, int nt, float* y,
                        int64_t ldy) {
  const auto* g = static_cast<const uint8_t*>(w);
  const auto* a = static_cast<const uint8_t*>(act);
  assert(nt >= 1 && nt <= 4);
  auto run = [&](auto nt_const) {
    constexpr int NT = decltype(nt_const)::value;
    if constexpr (kType == 2) gemm_packed_q6_k_nt<NT>(n, g, a, as, y, ldy);
    else gemm_packed_qk_min_nt<kType == 1, NT>(n, g, a, as, y, ldy);
  };
  switch (nt) {
    case 1: run(std::integral_constant<int, 1>{}); break;
    case 2: run(std::integral_constant<int, 2>{}); break;
    case 3: run(std::integral_constant<int, 3>{}); break;
    default: run(std::integral_constant<int, 4>{}); break;
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

// Whether this CPU has the Armv8.6 int8 matrix multiply (SMMLA), which the packed Q4_0 / Q4_1 / Q8_0 GEMMs use.
bool has_i8mm() { return (getauxval(AT_HWCAP2) & HWCAP2_I8MM) != 0; }

}  // namespace

void init_neon(KernelTable& t) {
  init_scalar(t);
  t.isa = Isa::neon;
  t.features = has_i8mm() ? "dotprod+i8mm" : "dotprod";
  t.dot_f32 = dot_f32_plain;
  t.dot_f16 = dot_f16_pair;
  t.axpy_f16 = axpy_f16;
  t.f32_to_f16 = f32_to_f16;
  t.f16_to_f32 = f16_to_f32;
  t.dot_f16_rows = dot_f16_rows;
  t.dot_q8_0_rows = detail::vec_dot_rows<dot_q8_0_q8_0>;
  t.axpy_q8_0_rows = axpy_q8_0_rows;
  t.exp_sum_f32 = exp_sum_f32;
  t.silu_mul_f32 = silu_mul_f32;
  t.relu_sqr_mul_f32 = relu_sqr_mul_f32;
  t.softmax_f16r = softmax_f16r;
  t.max_f32 = max_f32;
  t.gemm_f32_f16t = gemm_f32_f16t;
}

void install_f32_neon(KernelTable& t) { t.for_type(TensorType::F32).vec_dot = dot_f32_f32; }
void install_f16_neon(KernelTable& t) { t.for_type(TensorType::F16).vec_dot = dot_f16_f16; }
void install_bf16_neon(KernelTable& t) { t.for_type(TensorType::BF16).vec_dot = dot_bf16_bf16; }
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
}
void install_q4_k_neon(KernelTable& t) {
  t.for_type(TensorType::Q4_K).vec_dot = dot_q4_k_q8_k;
  t.for_type(TensorType::Q4_K).gemm_packed = gemm_packed_kquant<0>;
}
void install_q5_k_neon(KernelTable& t) {
  t.for_type(TensorType::Q5_K).vec_dot = dot_q5_k_q8_k;
  t.for_type(TensorType::Q5_K).gemm_packed = gemm_packed_kquant<1>;
}
void install_q6_k_neon(KernelTable& t) {
  t.for_type(TensorType::Q6_K).vec_dot = dot_q6_k_q8_k;
  t.for_type(TensorType::Q6_K).gemm_packed = gemm_packed_kquant<2>;
}

}  // namespace tokenscope::kernels::detail
