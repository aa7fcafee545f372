// IEEE half precision and bfloat16 <-> float conversions (scalar reference, round to nearest even).
#pragma once

#include <cstdint>
#include <cstring>

namespace tokenscope {

using f16_t = uint16_t;   // raw IEEE binary16 bits
using bf16_t = uint16_t;  // raw bfloat16 bits

// Table of all 65536 half values as float, filled once at start-up.
extern const float* const kF16ToF32Table;

inline float f32_from_bits(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline uint32_t f32_to_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

float fp16_to_fp32_compute(f16_t h);  // bit-exact conversion without the table
f16_t fp32_to_fp16(float f);          // round to nearest even, overflow to inf, NaN kept NaN

inline float fp16_to_fp32(f16_t h) { return kF16ToF32Table[h]; }

inline float bf16_to_fp32(bf16_t h) { return f32_from_bits(static_cast<uint32_t>(h) << 16); }
inline bf16_t fp32_to_bf16(float f) {
  uint32_t u = f32_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<bf16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<bf16_t>(u >> 16);
}

}  // namespace tokenscope
