// The block32 family's scalar reference: activation quantizers, dot products, the Q8_0 cache's row helpers and
// the installers every ISA starts from.
#include <cmath>
#include <cstring>

#include "base/fp16.h"
#include "formats/blocks.h"
#include "formats/quant_ref.h"
#include "kernels/block32/block32.h"

namespace tokenscope::kernels::detail {

void quantize_act_q8_0(const float* x, void* y, int64_t n) {
  auto* b = static_cast<BlockQ8_0*>(y);
  for (int64_t i = 0; i < n / QK8_0; ++i, x += QK8_0) {
    float amax = 0;
    for (int j = 0; j < QK8_0; ++j) amax = std::fabs(x[j]) > amax ? std::fabs(x[j]) : amax;
    const float d = amax / 127.f;
    const float id = amax != 0.f ? 127.f / amax : 0.f;
    b[i].d = fp32_to_fp16(d);
    for (int j = 0; j < QK8_0; ++j) b[i].qs[j] = static_cast<int8_t>(std::nearbyint(x[j] * id));
  }
}

void quantize_act_q8_1(const float* x, void* y, int64_t n) {
  auto* b = static_cast<BlockQ8_1*>(y);
  for (int64_t i = 0; i < n / QK8_1; ++i, x += QK8_1) {
    float amax = 0;
    for (int j = 0; j < QK8_1; ++j) amax = std::fabs(x[j]) > amax ? std::fabs(x[j]) : amax;
    const float d = amax / 127.f;
    const float id = amax != 0.f ? 127.f / amax : 0.f;
    b[i].d = fp32_to_fp16(d);
    int sum = 0;
    for (int j = 0; j < QK8_1; ++j) {
      b[i].qs[j] = static_cast<int8_t>(std::nearbyint(x[j] * id));
      sum += b[i].qs[j];
    }
    b[i].s = fp32_to_fp16(d * static_cast<float>(sum));
  }
}

namespace {

float dot_q4_0_q8_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  float s = 0;
  for (int64_t i = 0; i < n / QK4_0; ++i) {
    int sumi = 0;
    for (int j = 0; j < QK4_0 / 2; ++j) {
      sumi += ((x[i].qs[j] & 0xF) - 8) * y[i].qs[j];
      sumi += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + QK4_0 / 2];
    }
    s += fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d) * static_cast<float>(sumi);
  }
  return s;
}

float dot_q4_1_q8_1(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_1*>(w);
  const auto* y = static_cast<const BlockQ8_1*>(a);
  float s = 0;
  for (int64_t i = 0; i < n / QK4_1; ++i) {
    int sumi = 0;
    for (int j = 0; j < QK4_1 / 2; ++j) {
      sumi += (x[i].qs[j] & 0xF) * y[i].qs[j];
      sumi += (x[i].qs[j] >> 4) * y[i].qs[j + QK4_1 / 2];
    }
    s += fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d) * static_cast<float>(sumi) +
         fp16_to_fp32(x[i].m) * fp16_to_fp32(y[i].s);
  }
  return s;
}

float dot_q8_0_q8_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ8_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  float s = 0;
  for (int64_t i = 0; i < n / QK8_0; ++i) {
    int sumi = 0;
    for (int j = 0; j < QK8_0; ++j) sumi += x[i].qs[j] * y[i].qs[j];
    s += fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d) * static_cast<float>(sumi);
  }
  return s;
}

void f_axpy_q8_0_rows(int64_t n, const void* x, size_t stride, int64_t count, const float* p, float* out) {
  for (int64_t j = 0; j < count; ++j) {
    const auto* b = reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(x) + static_cast<size_t>(j) * stride);
    for (int64_t k = 0; k < n / QK8_0; ++k) {
      const float s = p[j] * fp16_to_fp32(b[k].d);
      for (int i = 0; i < QK8_0; ++i)
        out[k * QK8_0 + i] = std::fma(s, static_cast<float>(b[k].qs[i]), out[k * QK8_0 + i]);
    }
  }
}

// The integer sum of each block of 32 quants of a prepared Q8_0 (kQuantsAt 2) or Q8_1 (4) row.
template <typename Block, size_t kQuantsAt>
void block_sums_q8(const void* row, int64_t n, int32_t* sums) {
  const auto* b = static_cast<const uint8_t*>(row);
  for (int64_t i = 0; i < n / 32; ++i, b += sizeof(Block)) {
    const auto* q = reinterpret_cast<const int8_t*>(b + kQuantsAt);
    int32_t s = 0;
    for (int j = 0; j < 32; ++j) s += q[j];
    sums[i] = s;
  }
}

ActLayout act_layout_q8_0() {
  return {"q8_0", TensorType::Q8_0, row_bytes_of<TensorType::Q8_0>, quantize_act_q8_0, 32,
          block_sums_q8<BlockQ8_0, 2>};
}
ActLayout act_layout_q8_1() {
  return {"q8_1", TensorType::Q8_1, row_bytes_of<TensorType::Q8_1>, quantize_act_q8_1, 32,
          block_sums_q8<BlockQ8_1, 4>};
}

}  // namespace

void install_q4_0_scalar(KernelTable& t) {
  put(t, TensorType::Q4_0, act_layout_q8_0(), dot_q4_0_q8_0);
  put_packed(t, TensorType::Q4_0, packed_bytes_q4_0, pack_rows_q4_0, gemm_packed_q4_0_ref);
}
void install_q4_1_scalar(KernelTable& t) {
  put(t, TensorType::Q4_1, act_layout_q8_1(), dot_q4_1_q8_1);
  put_packed(t, TensorType::Q4_1, packed_bytes_q4_1, pack_rows_q4_1, gemm_packed_q4_1_ref);
}
void install_q8_0_scalar(KernelTable& t) {
  put(t, TensorType::Q8_0, act_layout_q8_0(), dot_q8_0_q8_0);
  put_packed(t, TensorType::Q8_0, packed_bytes_q8_0, pack_rows_q8_0, gemm_packed_q8_0_ref);
  t.dot_q8_0_rows = vec_dot_rows<dot_q8_0_q8_0>;
  t.axpy_q8_0_rows = f_axpy_q8_0_rows;
}

}  // namespace tokenscope::kernels::detail
