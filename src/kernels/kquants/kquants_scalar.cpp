// The K-quants family's scalar reference: dot products against Q8_K activations and the installers every ISA
// starts from.
#include <cmath>
#include <cstring>

#include "base/fp16.h"
#include "formats/blocks.h"
#include "formats/quant_ref.h"
#include "kernels/kquants/kquants.h"

namespace tokenscope::kernels::detail {

void quantize_act_q8_k(const float* x, void* y, int64_t n) { quantize_row_q8_k(x, y, n); }

namespace {

// Q4_K and Q5_K share the super-block layout (8 sub-blocks of 32 with 6-bit scales and mins); Q5_K adds a
// fifth bit per element from qh.
template <typename Block, bool kFifthBit>
float dot_qk_min_q8_k(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const Block*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  float s = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    int sumi = 0, summ = 0;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      get_scale_min_k4(j, x[i].scales, &sc, &m);
      const uint8_t* q = x[i].qs + 32 * (j / 2);
      const int8_t* q8 = y[i].qs + 32 * j;
      int sub = 0;
      for (int l = 0; l < 32; ++l) {
        int v = (j & 1) ? (q[l] >> 4) : (q[l] & 0xF);
        if constexpr (kFifthBit) v |= ((x[i].qh[l] >> j) & 1) << 4;
        sub += v * q8[l];
      }
      sumi += sc * sub;
      summ += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
    }
    s += y[i].d * (fp16_to_fp32(x[i].d) * static_cast<float>(sumi) - fp16_to_fp32(x[i].dmin) * static_cast<float>(summ));
  }
  return s;
}

float dot_q4_k_q8_k(int64_t n, const void* w, const void* a) { return dot_qk_min_q8_k<BlockQ4_K, false>(n, w, a); }
float dot_q5_k_q8_k(int64_t n, const void* w, const void* a) { return dot_qk_min_q8_k<BlockQ5_K, true>(n, w, a); }

float dot_q6_k_q8_k(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ6_K*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  float s = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    int sumi = 0;
    for (int e = 0; e < QK_K; e += 16) {  // sub-block of 16 elements, scale index e / 16
      int sub = 0;
      for (int l = 0; l < 16; ++l) {
        const int idx = e + l;
        const int c = idx / 128, r = idx % 128, k = r / 32, ll = r % 32;
        const uint8_t* ql = x[i].ql + 64 * c;
        const uint8_t* qh = x[i].qh + 32 * c;
        const int low = (k == 0) ? (ql[ll] & 0xF) : (k == 1) ? (ql[ll + 32] & 0xF) : (k == 2) ? (ql[ll] >> 4) : (ql[ll + 32] >> 4);
        const int high = (qh[ll] >> (2 * k)) & 3;
        sub += ((low | (high << 4)) - 32) * y[i].qs[idx];
      }
      sumi += x[i].scales[e / 16] * sub;
    }
    s += fp16_to_fp32(x[i].d) * y[i].d * static_cast<float>(sumi);
  }
  return s;
}

ActLayout act_layout_q8_k() { return {"q8_k", TensorType::Q8_K, row_bytes_of<TensorType::Q8_K>, quantize_act_q8_k}; }

}  // namespace

void install_q4_k_scalar(KernelTable& t) {
  put(t, TensorType::Q4_K, act_layout_q8_k(), dot_q4_k_q8_k);
  put_packed(t, TensorType::Q4_K, packed_bytes_q4_k, pack_rows_q4_k, gemm_packed_q4_k_ref);
}
void install_q5_k_scalar(KernelTable& t) {
  put(t, TensorType::Q5_K, act_layout_q8_k(), dot_q5_k_q8_k);
  put_packed(t, TensorType::Q5_K, packed_bytes_q5_k, pack_rows_q5_k, gemm_packed_q5_k_ref);
}
void install_q6_k_scalar(KernelTable& t) {
  put(t, TensorType::Q6_K, act_layout_q8_k(), dot_q6_k_q8_k);
  put_packed(t, TensorType::Q6_K, packed_bytes_q6_k, pack_rows_q6_k, gemm_packed_q6_k_ref);
}

}  // namespace tokenscope::kernels::detail
