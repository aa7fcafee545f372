// The float family: the F32, F16 and BF16 weight formats and the float helpers of every KernelTable (attention's
// f16 dot products and small GEMM, exp / softmax / rmsnorm / gated activations), which share the f16 dot product.
// float_scalar.cpp is the reference; each ISA's init_<isa> (kernels_internal.h) sets the table's float helpers.
#pragma once

#include "kernels/kernels_internal.h"

namespace tokenscope::kernels::detail {

// Activation preparation for float weights: rows converted to the weight's own type.
void quantize_act_f16(const float* x, void* y, int64_t n);
void quantize_act_bf16(const float* x, void* y, int64_t n);
void quantize_act_f32(const float* x, void* y, int64_t n);

}  // namespace tokenscope::kernels::detail
