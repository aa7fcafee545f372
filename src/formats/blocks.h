// Block layouts of the quantized tensor formats, byte-exact with the GGUF/ggml on-disk formats.
// These are facts of the file format; the kernels and the reference (de)quantizers share them.
#pragma once

#include <cstdint>

#include "base/fp16.h"

namespace tokenscope {

constexpr int QK4_0 = 32;
constexpr int QK4_1 = 32;
constexpr int QK8_0 = 32;
constexpr int QK8_1 = 32;
constexpr int QK_K = 256;
constexpr int K_SCALE_SIZE = 12;

// Q4_0: x = d * (q - 8), q in [0, 15]; element j in low nibble of qs[j], element j+16 in the high nibble.
struct BlockQ4_0 { f16_t d; uint8_t qs[QK4_0 / 2]; };
// Q4_1: x = d * q + m, same nibble order as Q4_0.
struct BlockQ4_1 { f16_t d; f16_t m; uint8_t qs[QK4_1 / 2]; };
// Q8_0: x = d * q.
struct BlockQ8_0 { f16_t d; int8_t qs[QK8_0]; };
// Q8_1: x = d * q, s = d * sum(q) (activation format paired with Q4_1).
struct BlockQ8_1 { f16_t d; f16_t s; int8_t qs[QK8_1]; };

// Q4_K: super-block of 256 = 8 sub-blocks of 32; 6-bit scales and mins packed into 12 bytes.
// x = d * sc[j] * q - dmin * m[j].
struct BlockQ4_K { f16_t d; f16_t dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; };
// Q5_K: as Q4_K plus one high bit per element in qh.
struct BlockQ5_K { f16_t d; f16_t dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; };
// Q6_K: 16 sub-blocks of 16 with int8 scales; low 4 bits in ql, high 2 bits in qh; x = d * sc * (q - 32).
struct BlockQ6_K { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; f16_t d; };
// Q8_K: activation format paired with the K-quants; bsums are the sums of each group of 16.
struct BlockQ8_K { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; };

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);

}  // namespace tokenscope
