// Scalar reference quantizers and dequantizers, one pair per supported tensor type.
//
// n is the number of elements and must be a multiple of the type's block size (callers check it
// with a user-facing error; these functions only TS_CHECK it). The quantizers of Q4_0, Q4_1, Q8_0,
// Q8_1 and Q8_K produce the same bytes as ggml's reference quantizers; the K-quant weight
// quantizers (Q4_K, Q5_K, Q6_K) use their own simpler scale search. Every dequantizer is exact.
#pragma once

#include <cstdint>

namespace tokenscope {

// Round to nearest, ties to even, for |x| < 2^22 (ggml's nearest_int).
int nearest_int(float x);

void dequantize_row_f32(const void* src, float* dst, int64_t n);
void dequantize_row_f16(const void* src, float* dst, int64_t n);
void dequantize_row_bf16(const void* src, float* dst, int64_t n);
void dequantize_row_q4_0(const void* src, float* dst, int64_t n);
void dequantize_row_q4_1(const void* src, float* dst, int64_t n);
void dequantize_row_q5_0(const void* src, float* dst, int64_t n);
void dequantize_row_q5_1(const void* src, float* dst, int64_t n);
void dequantize_row_q8_0(const void* src, float* dst, int64_t n);
void dequantize_row_q8_1(const void* src, float* dst, int64_t n);
void dequantize_row_q2_k(const void* src, float* dst, int64_t n);
void dequantize_row_q3_k(const void* src, float* dst, int64_t n);
void dequantize_row_q4_k(const void* src, float* dst, int64_t n);
void dequantize_row_q5_k(const void* src, float* dst, int64_t n);
void dequantize_row_q6_k(const void* src, float* dst, int64_t n);
void dequantize_row_q8_k(const void* src, float* dst, int64_t n);

void quantize_row_f32(const float* src, void* dst, int64_t n);
void quantize_row_f16(const float* src, void* dst, int64_t n);
void quantize_row_bf16(const float* src, void* dst, int64_t n);
void quantize_row_q4_0(const float* src, void* dst, int64_t n);
void quantize_row_q4_1(const float* src, void* dst, int64_t n);
void quantize_row_q8_0(const float* src, void* dst, int64_t n);
void quantize_row_q8_1(const float* src, void* dst, int64_t n);
void quantize_row_q4_k(const float* src, void* dst, int64_t n);
void quantize_row_q5_k(const float* src, void* dst, int64_t n);
void quantize_row_q6_k(const float* src, void* dst, int64_t n);
void quantize_row_q8_k(const float* src, void* dst, int64_t n);

// The 6-bit scale j and min j (j in 0..7) of a Q4_K / Q5_K block's 12-byte scales field.
inline void get_scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}
// All 8 scales of a Q4_K / Q5_K block into sc, and the sum over sub-blocks of min j times the activation's
// sum over sub-block j (two Q8_K bsums of 16 each): the term the mins contribute, in integer units.
inline int scales_and_min_sum_k4(const uint8_t* scales, const int16_t* bsums, uint8_t sc[8]) {
  int summ = 0;
  for (int j = 0; j < 8; ++j) {
    uint8_t m;
    get_scale_min_k4(j, scales, &sc[j], &m);
    summ += m * (bsums[2 * j] + bsums[2 * j + 1]);
  }
  return summ;
}
// Inverse of get_scale_min_k4: packs 8 six-bit scales and mins into 12 bytes.
void pack_scale_min_k4(const uint8_t sc[8], const uint8_t m[8], uint8_t out[12]);

}  // namespace tokenscope
