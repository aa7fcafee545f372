// NEON helpers shared by the formats' Arm kernels. Include only from files compiled with NEON flags
// (names ending in _neon.cpp).
#pragma once

#include <arm_neon.h>
#include <asm/hwcap.h>
#include <sys/auxv.h>

#include <cstdint>

namespace tokenscope::kernels::detail {
namespace {

inline int8x16_t low_nibbles(uint8x16_t q) { return vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))); }
inline int8x16_t high_nibbles(uint8x16_t q) { return vreinterpretq_s8_u8(vshrq_n_u8(q, 4)); }
// 8 f16 (a packed group's per-row scales) as two vectors of 4 floats.
inline void f16x8_to_f32(const uint8_t* p, float32x4_t out[2]) {
  const float16x8_t h = vreinterpretq_f16_u8(vld1q_u8(p));
  out[0] = vcvt_f32_f16(vget_low_f16(h));
  out[1] = vcvt_f32_f16(vget_high_f16(h));
}

// Whether this CPU has the Armv8.6 int8 matrix multiply (SMMLA), which the packed Q4_0 / Q4_1 / Q8_0 GEMMs use.
inline bool has_i8mm() { return (getauxval(AT_HWCAP2) & HWCAP2_I8MM) != 0; }

}  // namespace
}  // namespace tokenscope::kernels::detail
