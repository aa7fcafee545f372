// Shared between the per-ISA kernel files; not part of the kernels' public interface.
#pragma once

#include "base/fp16.h"
#include "kernels/kernels.h"

namespace tokenscope::kernels::detail {

namespace {
// The end of every f16 x f16 dot product: `chunks` (the SIMD or reference sum over the whole chunks of 32,
// elements before n32) plus the remaining elements in order, in double; x_tail holds x's elements n32..n-1
// (the start of its last, partial chunk). All variants finish alike, which keeps them bit-identical.
// Internal linkage: each ISA file compiles its own copy with its own flags.
inline float dot_f16_finish(double chunks, const uint16_t* x_tail, const uint16_t* y, int64_t n32, int64_t n) {
  for (int64_t i = n32; i < n; ++i)
    chunks += static_cast<double>(fp16_to_fp32(x_tail[i - n32]) * fp16_to_fp32(y[i]));
  return static_cast<float>(chunks);
}

// How far (in elements) from a chunked f16 row's start the chunk of kF16Chunk elements holding element i
// starts (kernels.h, F16Chunks). Callers compute it once per chunk, not per element.
inline int64_t f16_chunk_offset(F16Chunks chunks, int64_t i) {
  const int64_t c = i >> 5;
  return (chunks.map ? chunks.map[c] : c) * chunks.stride;
}
// Where the chunk holding element i of a chunked f16 row starts.
inline const uint16_t* f16_chunk_at(const uint16_t* row, F16Chunks chunks, int64_t i) {
  return row + f16_chunk_offset(chunks, i);
}
// Where the last, partial chunk of a chunked row of n elements starts (n32: n rounded down to a multiple of
// 32), for dot_f16_finish; the row itself when there is none (a map has no entry past the row's chunks).
inline const uint16_t* f16_tail_at(const uint16_t* row, F16Chunks chunks, int64_t n32, int64_t n) {
  return n32 < n ? f16_chunk_at(row, chunks, n32) : row;
}
// Whether the chunks make a plain contiguous row (element i at row + i).
inline bool f16_plain(F16Chunks chunks) { return !chunks.map && chunks.stride == kF16Chunk; }

// dot_q8_0_rows from a table's own Q8_0 x Q8_0 dot product (inlined per ISA file), so each score is exactly
// what that table's vec_dot gives.
template <float (*Dot)(int64_t, const void*, const void*)>
void vec_dot_rows(int64_t n, const void* x, size_t stride, int64_t count, const void* y, float* out) {
  const auto* row = static_cast<const uint8_t*>(x);
  for (int64_t j = 0; j < count; ++j) out[j] = Dot(n, row + static_cast<size_t>(j) * stride, y);
}
}  // namespace

// Each ISA file fills a table's float helpers; the SIMD ones start from the scalar helpers and override what they
// speed up. The weight formats are installed afterwards, from the registry (registry.h).
void init_scalar(KernelTable& t);
#if defined(TS_HAVE_X86)
void init_avx2(KernelTable& t);
void init_avx512(KernelTable& t);
#endif
#if defined(TS_HAVE_ARM)
void init_neon(KernelTable& t);
#endif

// Activation quantizers (the same on every ISA, so SIMD dot products see identical inputs).
// Q8_0 / Q8_1 follow llama.cpp's x86 rounding: scale 127/amax, round to nearest even.
void quantize_act_q8_0(const float* x, void* y, int64_t n);
void quantize_act_q8_1(const float* x, void* y, int64_t n);
void quantize_act_q8_k(const float* x, void* y, int64_t n);
void quantize_act_f16(const float* x, void* y, int64_t n);
void quantize_act_bf16(const float* x, void* y, int64_t n);
void quantize_act_f32(const float* x, void* y, int64_t n);
// The scalar activation layouts shared by several formats (a SIMD installer may swap in its own quantize).
ActLayout act_layout_q8_0();
ActLayout act_layout_q8_1();
ActLayout act_layout_q8_k();

// Packed layouts (kernels_packed.cpp): group sizes, packers and the scalar reference multiplies.
size_t packed_bytes_q4_0(int64_t n);
size_t packed_bytes_q4_1(int64_t n);
size_t packed_bytes_q8_0(int64_t n);
void pack_rows_q4_0(const void* src, size_t row_bytes, int64_t n, void* dst);
void pack_rows_q4_1(const void* src, size_t row_bytes, int64_t n, void* dst);
void pack_rows_q8_0(const void* src, size_t row_bytes, int64_t n, void* dst);
void gemm_packed_q4_0_ref(int64_t n, const void* w, const void* act, size_t act_stride, const int32_t* act_sums, int nt,
                          float* y, int64_t ldy);
void gemm_packed_q4_1_ref(int64_t n, const void* w, const void* act, size_t act_stride, const int32_t* act_sums, int nt,
                          float* y, int64_t ldy);
void gemm_packed_q8_0_ref(int64_t n, const void* w, const void* act, size_t act_stride, const int32_t* act_sums, int nt,
                          float* y, int64_t ldy);
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
