// The K-quants on Arm NEON (Armv8.2-A dot product). Tested against kquants_scalar.cpp / kquants_packed.cpp under
// qemu-aarch64.
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
#include "kernels/kquants/kquants.h"

namespace tokenscope::kernels::detail {
namespace {

// Q5_K's fifth bits: q with bit k (0-7) of each byte of hb in bit 4 (q's bit 4 is zero): a shift and a bit select.
inline uint8x16_t or_fifth_bit(uint8x16_t q, uint8x16_t hb, int k) {
  return vbslq_u8(vdupq_n_u8(0x10), vshlq_u8(hb, vdupq_n_s8(static_cast<int8_t>(4 - k))), q);
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

// K-quants over their packed layouts (kquants_packed.cpp), as the x86 versions: Q4_K / Q5_K per sub-block of
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

}  // namespace

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
