// Multiply-add (MAD) kernels for the ternary formats (formats/ternary/ternary.h): int8 activations times the
// weights' codes c = t + 1 in {0, 1, 2}, unpacked into bytes, with the activations' sum subtracted, so an unsigned
// x signed byte multiply-add (maddubs, vpdpbusd, sdot) does the work: sum(t * a) = sum(c * a) - sum(a).
//
// Activation layout "i8_row" (one scale per row, not blocks of 32): n int8 quants q = nearbyint(x * 127 / amax),
// then the row's scale d = amax / 127 (float), then the int32 sum of each 64 quants (n / 64 of them); n a multiple
// of 64 (every ternary format's block is). Each format's dot product, per block b of its own: the exact integer
// isum_b = sum(c * q) - (the block's quant sums), then, in float and in block order:
//   TQ1_0, TQ2_0: (sum over b of d_b * isum_b) * d;   I2_S: isum * d (the op applies the tensor scale);
//   IQ2_BN: isum * (d_row * d).
// Every ISA computes the integers exactly and finishes with the same float steps, so all match the scalar bit for bit.
#pragma once

#include <cstdint>
#include <cstring>

#include "base/fp16.h"
#include "formats/ternary/ternary.h"
#include "kernels/kernels.h"

namespace tokenscope::kernels::ternary {

constexpr int64_t kSumBlock = 64;

inline size_t act_row_bytes(int64_t n) { return static_cast<size_t>(n) + 4 + 4 * static_cast<size_t>(n / kSumBlock); }
inline float act_scale(const void* a, int64_t n) {
  float d;
  std::memcpy(&d, static_cast<const uint8_t*>(a) + n, sizeof d);
  return d;
}
inline const int32_t* act_sums(const void* a, int64_t n) {
  return reinterpret_cast<const int32_t*>(static_cast<const uint8_t*>(a) + n + 4);
}
// The sum of the quant sums of elements [b0, b0 + len) (both multiples of 64).
inline int32_t act_sum(const void* a, int64_t n, int64_t b0, int64_t len) {
  const int32_t* s = act_sums(a, n);
  int32_t r = 0;
  for (int64_t i = b0 / kSumBlock; i < (b0 + len) / kSumBlock; ++i) r += s[i];
  return r;
}

// The float steps every ISA takes (see above). For TQ1_0 / TQ2_0, per block b in order: acc = tq_step(acc, ...)
// with the block's f16 scale and exact sum(c * q); then tq_finish.
inline float tq_step(float acc, f16_t d_b, int32_t cq_b, const void* a, int64_t n, int64_t b) {
  return acc + fp16_to_fp32(d_b) * static_cast<float>(cq_b - act_sum(a, n, b * QK_TQ, QK_TQ));
}
inline float tq_finish(float acc, const void* a, int64_t n) { return acc * act_scale(a, n); }
inline float finish_i2_s(int32_t isum, const void* a, int64_t n) {
  return static_cast<float>(isum - act_sum(a, n, 0, n)) * act_scale(a, n);
}
inline float finish_iq2_bn(const void* w, int32_t isum, const void* a, int64_t n) {
  float d_row;
  std::memcpy(&d_row, w, sizeof d_row);
  return static_cast<float>(isum - act_sum(a, n, 0, n)) * (d_row * act_scale(a, n));
}

// Packed (row-interleaved) groups of kPackRows rows, one layout for all four formats, for the multi-token multiply
// (prefill): per block of 64 elements, the 8 rows' 16 bytes of codes (row r at 16 r; byte j holds the codes of
// elements j, 16 + j, 32 + j, 48 + j in bits 0-1, 2-3, 4-5, 6-7, as IQ2_BN); after the last block, the rows' scales:
// TQ1_0 / TQ2_0: each block of 256's f16 d, [block][row]; IQ2_BN: each row's float; I2_S: none. The multiply computes
// each row's exact integer sums and finishes with the format's float steps, so it equals vec_dot bit for bit.
size_t packed_group_bytes(TensorType t, int64_t n);
void pack_group(TensorType t, const void* src, size_t row_bytes, int64_t n, void* dst);
inline const uint8_t* packed_codes(const void* group, int64_t block64) {
  return static_cast<const uint8_t*>(group) + block64 * 128;
}
// The bytes of a packed group's codes (its scales follow).
inline size_t packed_codes_bytes(int64_t n) { return static_cast<size_t>(n / 64) * 128; }
// The float steps of row r of a packed group from its exact sums of t * q (per block of 256 for TQ, else per row).
// Inline: the multiplies call them per row and token.
inline float packed_tq_step(float acc, int64_t n, const void* group, int r, int64_t b, int32_t isum_b) {
  f16_t d;
  std::memcpy(&d, static_cast<const uint8_t*>(group) + packed_codes_bytes(n) + (b * kPackRows + r) * 2, 2);
  return acc + fp16_to_fp32(d) * static_cast<float>(isum_b);
}
inline float packed_finish(TensorType t, int64_t n, const void* group, int r, float tq_acc, int32_t isum,
                           const void* act) {
  const float d = act_scale(act, n);
  if (t == TensorType::TQ1_0 || t == TensorType::TQ2_0) return tq_acc * d;
  if (t == TensorType::IQ2_BN) {
    float d_row;
    std::memcpy(&d_row, static_cast<const uint8_t*>(group) + packed_codes_bytes(n) + 4 * r, 4);
    return static_cast<float>(isum) * (d_row * d);
  }
  return static_cast<float>(isum) * d;
}

// The "i8_row" layout with the scalar quantizer (SIMD installers may swap in their own, bit-identical).
ActLayout act_layout_i8_row();
void quantize_act_i8_row(const float* x, void* y, int64_t n);

// Scalar reference dot products.
float dot_tq1_0_ref(int64_t n, const void* w, const void* a);
float dot_tq2_0_ref(int64_t n, const void* w, const void* a);
float dot_i2_s_ref(int64_t n, const void* w, const void* a);
float dot_iq2_bn_ref(int64_t n, const void* w, const void* a);

}  // namespace tokenscope::kernels::ternary
