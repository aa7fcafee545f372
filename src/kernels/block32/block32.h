// The block32 family: Q4_0, Q4_1 and Q8_0 (blocks of 32 weights with an f16 scale, Q4_1 also an f16 min;
// formats/blocks.h), multiplied against activations quantized to Q8_0 (Q4_1: Q8_1, which carries each block's
// scaled sum). The Q8_0 KV cache's row helpers (KernelTable::dot_q8_0_rows, axpy_q8_0_rows) come with Q8_0.
// block32_scalar.cpp and block32_packed.cpp are the reference; block32_<isa>.cpp override what they speed up.
//
// Row-interleaved ("packed") layout of a group of kPackRows rows (kernels.h), per block column b:
//   Q4_0: 8 x f16 d, then 4 chunks of 32 bytes; chunk c holds bytes qs[4c..4c+3] of rows 0..7 in turn
//         (low nibbles: elements 4c..4c+3, high nibbles: elements 16+4c..16+4c+3)           -> 144 bytes
//   Q4_1: 8 x f16 d, 8 x f16 m, then the same 4 chunks                                    -> 160 bytes
//   Q8_0: 8 x f16 d, then 8 chunks of 32 bytes; chunk c holds qs[4c..4c+3] of rows 0..7     -> 272 bytes
#pragma once

#include "kernels/kernels_internal.h"

namespace tokenscope::kernels::detail {

// Activation quantizers (the same on every ISA, so SIMD dot products see identical inputs), following
// llama.cpp's x86 rounding: scale 127/amax, round to nearest even.
void quantize_act_q8_0(const float* x, void* y, int64_t n);
void quantize_act_q8_1(const float* x, void* y, int64_t n);

// Packed layouts (block32_packed.cpp): group sizes, packers and the scalar reference multiplies.
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

}  // namespace tokenscope::kernels::detail
