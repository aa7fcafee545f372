// Shared between the per-ISA kernel files; not part of the kernels' public interface.
#pragma once

#include "kernels/kernels.h"

namespace tokenscope::kernels::detail {

// Each ISA file fills a table; the SIMD ones start from the scalar table and override what they speed up.
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

}  // namespace tokenscope::kernels::detail
