// The K-quants family: Q4_K, Q5_K and Q6_K (super-blocks of 256 weights; formats/blocks.h), multiplied against
// activations quantized to Q8_K (one float scale per 256 and the sums of each 16 quants). kquants_scalar.cpp and
// kquants_packed.cpp are the reference; kquants_<isa>.cpp override what they speed up.
#pragma once

#include "kernels/kernels_internal.h"

namespace tokenscope::kernels::detail {

void quantize_act_q8_k(const float* x, void* y, int64_t n);

// Packed layouts (kquants_packed.cpp): group sizes, packers and the scalar reference multiplies.
size_t packed_bytes_q4_k(int64_t n);
void pack_rows_q4_k(const void* src, size_t row_bytes, int64_t n, void* dst);
void gemm_packed_q4_k_ref(int64_t n, const void* w, const void* act, size_t act_stride, const int32_t* act_sums, int nt,
                          float* y, int64_t ldy);
size_t packed_bytes_q5_k(int64_t n);
void pack_rows_q5_k(const void* src, size_t row_bytes, int64_t n, void* dst);
void gemm_packed_q5_k_ref(int64_t n, const void* w, const void* act, size_t act_stride, const int32_t* act_sums, int nt,
                          float* y, int64_t ldy);
size_t packed_bytes_q6_k(int64_t n);
void pack_rows_q6_k(const void* src, size_t row_bytes, int64_t n, void* dst);
void gemm_packed_q6_k_ref(int64_t n, const void* w, const void* act, size_t act_stride, const int32_t* act_sums, int nt,
                          float* y, int64_t ldy);
// Packed Q6_K super-block of a group: d[8] (f16), scales[16][8] (int8), the low 4 bits of each block of 32 in
// the Q4_0 packed arrangement, then per block 64 bytes of high bits: two 32-byte vectors laid out as the
// chunks, vector m holding chunk 2m in its low nibbles and chunk 2m + 1 in its high ones, each nibble the
// 2 high bits of the byte's low-nibble element then (bits 2-3) of its high-nibble element.
constexpr size_t kQ6KPackedD = 0, kQ6KPackedScales = 16, kQ6KPackedLow = 144, kQ6KPackedHigh = 144 + 8 * 128,
                 kQ6KPackedBytes = 144 + 8 * 128 + 8 * 64;
// Packed Q4_K super-block of a group (packed_bytes_q4_k(256) bytes): offsets of its parts.
constexpr size_t kQ4KPackedD = 0, kQ4KPackedDmin = 16, kQ4KPackedScales = 32, kQ4KPackedMins = 96,
                 kQ4KPackedQuants = 160, kQ4KPackedBytes = 160 + 8 * 128;
// Q5_K: the Q4_K super-block, then per sub-block of 32 one 32-byte vector of fifth bits laid out like the
// chunks: bit 2c of a byte is the fifth bit of its low-nibble element in chunk c, bit 2c + 1 that of its
// high-nibble element.
constexpr size_t kQ5KPackedHigh = kQ4KPackedBytes, kQ5KPackedBytes = kQ4KPackedBytes + 8 * 32;
// A packed Q4_K (kFifthBit false) or Q5_K super-block's size.
constexpr size_t qk_min_packed_bytes(bool fifth_bit) { return fifth_bit ? kQ5KPackedBytes : kQ4KPackedBytes; }

}  // namespace tokenscope::kernels::detail
