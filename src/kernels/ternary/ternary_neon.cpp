// NEON (dot product) MAD kernels for the ternary formats: codes unpacked to bytes with shifts and masks (TQ1_0:
// base-3 digits by byte multiplies), multiplied with the int8 activations by sdot (codes at most 2, so signed
// bytes hold them).
#include <arm_neon.h>

#include "kernels/ternary/ternary_kernels.h"

namespace tokenscope::kernels::ternary::neon {

namespace {

inline int8x16_t codes_at(uint8x16_t v, int shift) {
  return vreinterpretq_s8_u8(vandq_u8(vshlq_u8(v, vdupq_n_s8(static_cast<int8_t>(-shift))), vdupq_n_u8(3)));
}
// Byte-wise the base-3 digit ((v * p mod 256) * 3) >> 8.
inline int8x16_t trit(uint8x16_t v, uint8_t p) {
  const uint8x16_t m = vmulq_u8(v, vdupq_n_u8(p));
  const uint16x8_t lo = vmull_u8(vget_low_u8(m), vdup_n_u8(3)), hi = vmull_high_u8(m, vdupq_n_u8(3));
  return vreinterpretq_s8_u8(vcombine_u8(vshrn_n_u16(lo, 8), vshrn_n_u16(hi, 8)));
}
inline int8x16_t load(const int8_t* p) { return vld1q_s8(p); }

}  // namespace

float dot_tq2_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockTQ2_0*>(w);
  const auto* q = static_cast<const int8_t*>(a);
  float acc = 0;
  for (int64_t b = 0; b < n / QK_TQ; ++b) {
    const int8_t* qa = q + b * QK_TQ;
    int32x4_t s = vdupq_n_s32(0);
    for (int j = 0; j < 2; ++j)
      for (int h = 0; h < 2; ++h) {
        const uint8x16_t v = vld1q_u8(x[b].qs + 32 * j + 16 * h);
        for (int l = 0; l < 4; ++l) s = vdotq_s32(s, codes_at(v, 2 * l), load(qa + 128 * j + 32 * l + 16 * h));
      }
    acc = tq_step(acc, x[b].d, vaddvq_s32(s), a, n, b);
  }
  return tq_finish(acc, a, n);
}

float dot_tq1_0(int64_t n, const void* w, const void* a) {
  static constexpr uint8_t kPow3[5] = {1, 3, 9, 27, 81};
  const auto* x = static_cast<const BlockTQ1_0*>(w);
  const auto* q = static_cast<const int8_t*>(a);
  float acc = 0;
  for (int64_t b = 0; b < n / QK_TQ; ++b) {
    const int8_t* qa = q + b * QK_TQ;
    int32x4_t s = vdupq_n_s32(0);
    const uint8x16_t v0 = vld1q_u8(x[b].qs), v1 = vld1q_u8(x[b].qs + 16), v2 = vld1q_u8(x[b].qs + 32);
    for (int k = 0; k < 5; ++k) {
      s = vdotq_s32(s, trit(v0, kPow3[k]), load(qa + 32 * k));
      s = vdotq_s32(s, trit(v1, kPow3[k]), load(qa + 32 * k + 16));
      s = vdotq_s32(s, trit(v2, kPow3[k]), load(qa + 160 + 16 * k));
    }
    // The last 16 elements: element 240 + 4k + j is trit k of qh[j]; the 4 bytes repeated across the vector.
    uint32_t qh;
    std::memcpy(&qh, x[b].qh, 4);
    const uint8x16_t vh = vreinterpretq_u8_u32(vdupq_n_u32(qh));
    const uint8x16_t ph = {1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27};
    const uint8x16_t m = vmulq_u8(vh, ph);
    const uint16x8_t lo = vmull_u8(vget_low_u8(m), vdup_n_u8(3)), hi = vmull_high_u8(m, vdupq_n_u8(3));
    const int8x16_t th = vreinterpretq_s8_u8(vcombine_u8(vshrn_n_u16(lo, 8), vshrn_n_u16(hi, 8)));
    s = vdotq_s32(s, th, load(qa + 240));
    acc = tq_step(acc, x[b].d, vaddvq_s32(s), a, n, b);
  }
  return tq_finish(acc, a, n);
}

float dot_i2_s(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint8_t*>(w);
  const auto* q = static_cast<const int8_t*>(a);
  int32x4_t s = vdupq_n_s32(0);
  for (int64_t b = 0; b < n / QK_I2_S; ++b) {
    const int8_t* qa = q + b * QK_I2_S;
    for (int h = 0; h < 2; ++h) {
      const uint8x16_t v = vld1q_u8(x + 32 * b + 16 * h);
      for (int g = 0; g < 4; ++g) s = vdotq_s32(s, codes_at(v, 6 - 2 * g), load(qa + 32 * g + 16 * h));
    }
  }
  return finish_i2_s(vaddvq_s32(s), a, n);
}

float dot_iq2_bn(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint8_t*>(w) + kIQ2BNRowMeta;
  const auto* q = static_cast<const int8_t*>(a);
  int32x4_t s = vdupq_n_s32(0);
  for (int64_t b = 0; b < n / QK_IQ2_BN; ++b) {
    const uint8x16_t v = vld1q_u8(x + 16 * b);
    const int8_t* qa = q + b * QK_IQ2_BN;
    for (int l = 0; l < 4; ++l) s = vdotq_s32(s, codes_at(v, 2 * l), load(qa + 16 * l));
  }
  return finish_iq2_bn(w, vaddvq_s32(s), a, n);
}

// The packed multiply (ternary_kernels.h): per row, each 64-element block's codes unpacked once (four shifts of its
// 16 bytes) and multiplied with every token's activations by sdot, one accumulator per (token, 16 elements), so the
// four dot products of a block do not wait on each other.
template <TensorType kType>
void gemm_packed(int64_t n, const void* w, const void* act, size_t act_stride, const int32_t*, int nt, float* y,
                 int64_t ldy) {
  constexpr bool kTq = kType == TensorType::TQ1_0 || kType == TensorType::TQ2_0;
  const auto* a = static_cast<const uint8_t*>(act);
  auto total = [](const int32x4_t* s) { return vaddvq_s32(vaddq_s32(vaddq_s32(s[0], s[1]), vaddq_s32(s[2], s[3]))); };
  for (int r = 0; r < kPackRows; ++r) {
    int32x4_t s[4][4];
    for (auto& st : s)
      for (auto& x : st) x = vdupq_n_s32(0);
    float acc[4] = {0, 0, 0, 0};
    for (int64_t b64 = 0; b64 < n / 64; ++b64) {
      const uint8x16_t v = vld1q_u8(packed_codes(w, b64) + 16 * r);
      const int8x16_t c[4] = {codes_at(v, 0), codes_at(v, 2), codes_at(v, 4), codes_at(v, 6)};
      for (int t = 0; t < nt; ++t) {
        const auto* qa = reinterpret_cast<const int8_t*>(a + static_cast<size_t>(t) * act_stride + 64 * b64);
        for (int l = 0; l < 4; ++l) s[t][l] = vdotq_s32(s[t][l], c[l], vld1q_s8(qa + 16 * l));
      }
      if (kTq && (b64 + 1) % 4 == 0)
        for (int t = 0; t < nt; ++t) {
          const void* at = a + static_cast<size_t>(t) * act_stride;
          acc[t] = packed_tq_step(acc[t], n, w, r, b64 / 4, total(s[t]) - act_sum(at, n, (b64 - 3) * 64, 256));
          for (auto& x : s[t]) x = vdupq_n_s32(0);
        }
    }
    for (int t = 0; t < nt; ++t) {
      const void* at = a + static_cast<size_t>(t) * act_stride;
      const int32_t isum = kTq ? 0 : total(s[t]) - act_sum(at, n, 0, n);
      y[t * ldy + r] = packed_finish(kType, n, w, r, acc[t], isum, at);
    }
  }
}

}  // namespace tokenscope::kernels::ternary::neon

namespace tokenscope::kernels::detail {

void install_tq1_0_neon(KernelTable& t) {
  t.for_type(TensorType::TQ1_0).vec_dot = ternary::neon::dot_tq1_0;
  t.for_type(TensorType::TQ1_0).gemm_packed = ternary::neon::gemm_packed<TensorType::TQ1_0>;
}
void install_tq2_0_neon(KernelTable& t) {
  t.for_type(TensorType::TQ2_0).vec_dot = ternary::neon::dot_tq2_0;
  t.for_type(TensorType::TQ2_0).gemm_packed = ternary::neon::gemm_packed<TensorType::TQ2_0>;
}
void install_i2_s_neon(KernelTable& t) {
  t.for_type(TensorType::I2_S).vec_dot = ternary::neon::dot_i2_s;
  t.for_type(TensorType::I2_S).gemm_packed = ternary::neon::gemm_packed<TensorType::I2_S>;
}
void install_iq2_bn_neon(KernelTable& t) {
  t.for_type(TensorType::IQ2_BN).vec_dot = ternary::neon::dot_iq2_bn;
  t.for_type(TensorType::IQ2_BN).gemm_packed = ternary::neon::gemm_packed<TensorType::IQ2_BN>;
}

}  // namespace tokenscope::kernels::detail
