// The float family on AVX2 + FMA + F16C (256-bit).
#include "kernels/float/float_x86.h"

namespace tokenscope::kernels::detail {

void init_avx2(KernelTable& t) {
  init_scalar(t);
  t.isa = Isa::avx2;
  t.features = "fma+f16c+bmi2";
  x86::set_float_helpers(t);
}

void install_f32_avx2(KernelTable& t) { t.for_type(TensorType::F32).vec_dot = x86::dot_f32_f32; }
void install_f16_avx2(KernelTable& t) { t.for_type(TensorType::F16).vec_dot = x86::dot_f16_f16; }
void install_bf16_avx2(KernelTable& t) { t.for_type(TensorType::BF16).vec_dot = x86::dot_bf16_bf16; }

}  // namespace tokenscope::kernels::detail
