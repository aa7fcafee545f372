// x86 AVX2 + FMA + F16C kernels (256-bit, maddubs/madd integer dot products).
#include "kernels/kernels_internal.h"
#include "kernels/kernels_x86.h"

namespace tokenscope::kernels::detail {

void init_avx2(KernelTable& t) {
  init_scalar(t);
  t.isa = Isa::avx2;
  t.features = "fma+f16c+bmi2";
  x86::set_float_helpers(t);
  t.dot_q8_0_rows = x86::dot_q8_0_rows<false>;
}

void install_f32_avx2(KernelTable& t) { t.for_type(TensorType::F32).vec_dot = x86::dot_f32_f32; }
void install_f16_avx2(KernelTable& t) { t.for_type(TensorType::F16).vec_dot = x86::dot_f16_f16; }
void install_bf16_avx2(KernelTable& t) { t.for_type(TensorType::BF16).vec_dot = x86::dot_bf16_bf16; }
void install_q4_0_avx2(KernelTable& t) {
  t.for_type(TensorType::Q4_0).act.quantize = x86::quantize_act_q8_0;
  t.for_type(TensorType::Q4_0).vec_dot = x86::dot_q4_0_q8_0<false>;
  t.for_type(TensorType::Q4_0).gemm_packed = x86::PackedQ4<false>::q4_0;
}
void install_q4_1_avx2(KernelTable& t) {
  t.for_type(TensorType::Q4_1).act.quantize = x86::quantize_act_q8_1;
  t.for_type(TensorType::Q4_1).vec_dot = x86::dot_q4_1_q8_1<false>;
  t.for_type(TensorType::Q4_1).gemm_packed = x86::PackedQ4<false>::q4_1;
}
void install_q8_0_avx2(KernelTable& t) {
  t.for_type(TensorType::Q8_0).act.quantize = x86::quantize_act_q8_0;
  t.for_type(TensorType::Q8_0).vec_dot = x86::dot_q8_0_q8_0<false>;
  t.for_type(TensorType::Q8_0).gemm_packed = x86::PackedQ4<false>::q8_0;
}
void install_q4_k_avx2(KernelTable& t) {
  t.for_type(TensorType::Q4_K).vec_dot = x86::dot_q4_k_q8_k<false>;
  t.for_type(TensorType::Q4_K).gemm_packed = x86::PackedQ4<false>::q4_k;
}
void install_q5_k_avx2(KernelTable& t) {
  t.for_type(TensorType::Q5_K).vec_dot = x86::dot_q5_k_q8_k<false>;
  t.for_type(TensorType::Q5_K).gemm_packed = x86::PackedQ4<false>::q5_k;
}
void install_q6_k_avx2(KernelTable& t) {
  t.for_type(TensorType::Q6_K).vec_dot = x86::dot_q6_k_q8_k<false>;
  t.for_type(TensorType::Q6_K).gemm_packed = x86::PackedQ4<false>::q6_k;
}

}  // namespace tokenscope::kernels::detail
