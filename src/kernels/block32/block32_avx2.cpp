// The block32 family on AVX2 (maddubs + madd integer dot products, 256-bit).
#include "kernels/block32/block32_x86.h"

namespace tokenscope::kernels::detail {

void install_q4_0_avx2(KernelTable& t) {
  WeightKernels& k = t.for_type(TensorType::Q4_0);
  k.act.quantize = x86::quantize_act_q8_0;
  k.vec_dot = x86::dot_q4_0_q8_0<false>;
  k.gemm_packed = x86::PackedBlock32<false>::q4_0;
}
void install_q4_1_avx2(KernelTable& t) {
  WeightKernels& k = t.for_type(TensorType::Q4_1);
  k.act.quantize = x86::quantize_act_q8_1;
  k.vec_dot = x86::dot_q4_1_q8_1<false>;
  k.gemm_packed = x86::PackedBlock32<false>::q4_1;
}
void install_q8_0_avx2(KernelTable& t) {
  WeightKernels& k = t.for_type(TensorType::Q8_0);
  k.act.quantize = x86::quantize_act_q8_0;
  k.vec_dot = x86::dot_q8_0_q8_0<false>;
  k.gemm_packed = x86::PackedBlock32<false>::q8_0;
  t.dot_q8_0_rows = x86::dot_q8_0_rows<false>;
  t.axpy_q8_0_rows = x86::axpy_q8_0_rows;
}

}  // namespace tokenscope::kernels::detail
