// Ternary (BitNet b1.58) weight formats: values in {-1, 0, +1} times a scale, byte-exact with the GGUF files of the
// engines that define them. These are facts of those file formats; the kernels (src/kernels/ternary) share them.
//
//   TQ1_0  (llama.cpp, id 34): blocks of 256, 54 bytes, 1.6875 bits per weight; x = d * t, t in {-1, 0, 1}.
//          qs[0..31] hold five trits each of elements m + 32 n (n = 0..4) for m < 32 (elements 0..159);
//          qs[32..47] five trits each of elements 160 + m + 16 n for m < 16 (160..239);
//          qh[0..3] four trits each of elements 240 + j + 4 n for j < 4 (240..255).
//          A byte of trits c0, c1, ... (codes t + 1, the first most significant, base 3, a four-trit byte times 3)
//          stores ceil(value * 256 / 243); trit n of byte q is ((uint8_t)(q * 3^n) * 3) >> 8.
//   TQ2_0  (llama.cpp, id 35): blocks of 256, 66 bytes, 2.0625 bits per weight; x = d * (c - 1), c in {0, 1, 2}.
//          Byte m of 32-byte chunk j (j = 0, 1) holds in bits 2l..2l+1 the code of element 128 j + 32 l + m.
//   I2_S   (microsoft/BitNet, also read by ik_llama.cpp, id 36): 2 bits per weight and one float scale for the whole
//          tensor. Blocks of 128 elements in 32 bytes: byte m holds element 32 g + m in bits 6 - 2g..7 - 2g
//          (g = 0..3), code c as TQ2_0's. The rows are contiguous; after the last row, the scale (float), then
//          padding to 32 bytes: a tensor of N elements takes N / 4 + 32 bytes. x = scale * (c - 1).
//          (The x86 layout; bitnet.cpp's Arm builds once wrote blocks of 64, which nothing here reads.)
//   IQ2_BN (ik_llama.cpp, id 135): each row starts with its scale (float), then blocks of 64 elements in 16 bytes:
//          byte j holds element j + 16 l in bits 2l..2l+1 (l = 0..3), code c as TQ2_0's. x = d_row * (c - 1).
#pragma once

#include <cstdint>

#include "base/fp16.h"

namespace tokenscope {

constexpr int QK_TQ = 256;
constexpr int QK_I2_S = 128;
constexpr int QK_IQ2_BN = 64;
constexpr int kI2STensorExtra = 32;  // the per-tensor scale and its padding, after the last row
constexpr int kIQ2BNRowMeta = 4;     // the row's float scale, before its blocks

struct BlockTQ1_0 { uint8_t qs[48]; uint8_t qh[4]; f16_t d; };
struct BlockTQ2_0 { uint8_t qs[64]; f16_t d; };
struct BlockIQ2_BN { uint8_t qs[16]; };
static_assert(sizeof(BlockTQ1_0) == 54);
static_assert(sizeof(BlockTQ2_0) == 66);
static_assert(sizeof(BlockIQ2_BN) == 16);

// The codes c = t + 1 (0, 1, 2) of one block of 256 (TQ1_0, TQ2_0), 128 (I2_S) or 64 (IQ2_BN) elements, in order.
void tq1_0_codes(const BlockTQ1_0& b, uint8_t codes[256]);
void tq2_0_codes(const BlockTQ2_0& b, uint8_t codes[256]);
void i2_s_codes(const uint8_t block[32], uint8_t codes[128]);
void iq2_bn_codes(const BlockIQ2_BN& b, uint8_t codes[64]);

// Scalar references. The quantizers take the peers' scales (TQ*: each block's largest magnitude; IQ2_BN: the row's;
// I2_S: the tensor's) and round x / scale to the nearest of -1, 0, 1, so weights that are already ternary times
// a scale come back exactly. I2_S rows dequantize without the tensor's scale (i2_s_tensor_scale gives it).
void quantize_row_tq1_0(const float* src, void* dst, int64_t n);
void quantize_row_tq2_0(const float* src, void* dst, int64_t n);
void quantize_row_iq2_bn(const float* src, void* dst, int64_t n);
void quantize_tensor_i2_s(const float* src, void* dst, int64_t rows, int64_t cols);
void dequantize_row_tq1_0(const void* src, float* dst, int64_t n);
void dequantize_row_tq2_0(const void* src, float* dst, int64_t n);
void dequantize_row_iq2_bn(const void* src, float* dst, int64_t n);
void dequantize_row_i2_s(const void* src, float* dst, int64_t n);
// The scale stored after an I2_S tensor's n_elements / 4 bytes of codes.
float i2_s_tensor_scale(const void* data, int64_t n_elements);

}  // namespace tokenscope
