// The K-quants on AVX2 (maddubs + madd, 256-bit).
#include "kernels/kquants/kquants_x86.h"

namespace tokenscope::kernels::detail {

void install_q4_k_avx2(KernelTable& t) {
  t.for_type(TensorType::Q4_K).vec_dot = x86::dot_q4_k_q8_k<false>;
  t.for_type(TensorType::Q4_K).gemm_packed = x86::PackedKQuants<false>::q4_k;
}
void install_q5_k_avx2(KernelTable& t) {
  t.for_type(TensorType::Q5_K).vec_dot = x86::dot_q5_k_q8_k<false>;
  t.for_type(TensorType::Q5_K).gemm_packed = x86::PackedKQuants<false>::q5_k;
}
void install_q6_k_avx2(KernelTable& t) {
  t.for_type(TensorType::Q6_K).vec_dot = x86::dot_q6_k_q8_k<false>;
  t.for_type(TensorType::Q6_K).gemm_packed = x86::PackedKQuants<false>::q6_k;
}

}  // namespace tokenscope::kernels::detail
