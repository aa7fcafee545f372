// x86 AVX2 + FMA + F16C kernels (256-bit, maddubs/madd integer dot products).
#include "kernels/kernels_internal.h"
#include "kernels/kernels_x86.h"

namespace tokenscope::kernels::detail {

void init_avx2(KernelTable& t) {
  init_scalar(t);
  t.isa = Isa::avx2;
  t.features = "fma+f16c+bmi2";
  auto set = [&](TensorType w, VecDotFn d) { t.weights[static_cast<int>(w)].vec_dot = d; };
  set(TensorType::F32, x86::dot_f32_f32);
  set(TensorType::F16, x86::dot_f16_f16);
  set(TensorType::BF16, x86::dot_bf16_bf16);
  set(TensorType::Q4_0, x86::dot_q4_0_q8_0<false>);
  set(TensorType::Q4_1, x86::dot_q4_1_q8_1<false>);
  set(TensorType::Q8_0, x86::dot_q8_0_q8_0<false>);
  set(TensorType::Q4_K, x86::dot_q4_k_q8_k<false>);
  set(TensorType::Q5_K, x86::dot_q5_k_q8_k<false>);
  set(TensorType::Q6_K, x86::dot_q6_k_q8_k<false>);
  t.weights[static_cast<int>(TensorType::Q4_0)].gemm_packed = x86::PackedQ4<false>::q4_0;
  t.weights[static_cast<int>(TensorType::Q4_1)].gemm_packed = x86::PackedQ4<false>::q4_1;
  t.weights[static_cast<int>(TensorType::Q8_0)].gemm_packed = x86::PackedQ4<false>::q8_0;
  t.weights[static_cast<int>(TensorType::Q4_K)].gemm_packed = x86::PackedQ4<false>::q4_k;
  t.weights[static_cast<int>(TensorType::Q5_K)].gemm_packed = x86::PackedQ4<false>::q5_k;
  t.weights[static_cast<int>(TensorType::Q6_K)].gemm_packed = x86::PackedQ4<false>::q6_k;
  x86::set_float_helpers(t);
  t.dot_q8_0_rows = x86::dot_q8_0_rows<false>;
}

}  // namespace tokenscope::kernels::detail
