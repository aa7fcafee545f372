// The ternary formats' activation layout and scalar reference MAD dot products (ternary_kernels.h).
#include <algorithm>
#include <cmath>

#include "kernels/ternary/ternary_kernels.h"

namespace tokenscope::kernels::ternary {

void quantize_act_i8_row(const float* x, void* y, int64_t n) {
  auto* q = static_cast<int8_t*>(y);
  float amax = 0;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = amax / 127.f;
  const float id = amax != 0.f ? 127.f / amax : 0.f;
  for (int64_t i = 0; i < n; ++i) q[i] = static_cast<int8_t>(std::nearbyint(x[i] * id));
  std::memcpy(q + n, &d, sizeof d);
  int32_t* sums = reinterpret_cast<int32_t*>(q + n + 4);
  for (int64_t b = 0; b < n / kSumBlock; ++b) {
    int32_t s = 0;
    for (int64_t i = 0; i < kSumBlock; ++i) s += q[b * kSumBlock + i];
    sums[b] = s;
  }
}

ActLayout act_layout_i8_row() { return {"i8_row", std::nullopt, act_row_bytes, quantize_act_i8_row}; }

namespace {

int32_t dot_codes(const uint8_t* c, const int8_t* q, int len) {
  int32_t s = 0;
  for (int i = 0; i < len; ++i) s += c[i] * q[i];
  return s;
}

}  // namespace

float dot_tq1_0_ref(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockTQ1_0*>(w);
  const auto* q = static_cast<const int8_t*>(a);
  float acc = 0;
  uint8_t c[256];
  for (int64_t b = 0; b < n / QK_TQ; ++b) {
    tq1_0_codes(x[b], c);
    acc = tq_step(acc, x[b].d, dot_codes(c, q + b * QK_TQ, QK_TQ), a, n, b);
  }
  return tq_finish(acc, a, n);
}

float dot_tq2_0_ref(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockTQ2_0*>(w);
  const auto* q = static_cast<const int8_t*>(a);
  float acc = 0;
  uint8_t c[256];
  for (int64_t b = 0; b < n / QK_TQ; ++b) {
    tq2_0_codes(x[b], c);
    acc = tq_step(acc, x[b].d, dot_codes(c, q + b * QK_TQ, QK_TQ), a, n, b);
  }
  return tq_finish(acc, a, n);
}

float dot_i2_s_ref(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint8_t*>(w);
  const auto* q = static_cast<const int8_t*>(a);
  int32_t isum = 0;
  uint8_t c[128];
  for (int64_t b = 0; b < n / QK_I2_S; ++b) {
    i2_s_codes(x + 32 * b, c);
    isum += dot_codes(c, q + b * QK_I2_S, QK_I2_S);
  }
  return finish_i2_s(isum, a, n);
}

float dot_iq2_bn_ref(int64_t n, const void* w, const void* a) {
  const auto* x = reinterpret_cast<const BlockIQ2_BN*>(static_cast<const uint8_t*>(w) + kIQ2BNRowMeta);
  const auto* q = static_cast<const int8_t*>(a);
  int32_t isum = 0;
  uint8_t c[64];
  for (int64_t b = 0; b < n / QK_IQ2_BN; ++b) {
    iq2_bn_codes(x[b], c);
    isum += dot_codes(c, q + b * QK_IQ2_BN, QK_IQ2_BN);
  }
  return finish_iq2_bn(w, isum, a, n);
}

}  // namespace tokenscope::kernels::ternary

namespace tokenscope::kernels::detail {

namespace {
void put(KernelTable& t, TensorType type, VecDotFn dot) {
  WeightKernels& k = t.for_type(type);
  k.supported = true;
  k.act = ternary::act_layout_i8_row();
  k.vec_dot = dot;
}
}  // namespace

void install_tq1_0_scalar(KernelTable& t) { put(t, TensorType::TQ1_0, ternary::dot_tq1_0_ref); }
void install_tq2_0_scalar(KernelTable& t) { put(t, TensorType::TQ2_0, ternary::dot_tq2_0_ref); }
void install_i2_s_scalar(KernelTable& t) { put(t, TensorType::I2_S, ternary::dot_i2_s_ref); }
void install_iq2_bn_scalar(KernelTable& t) { put(t, TensorType::IQ2_BN, ternary::dot_iq2_bn_ref); }

}  // namespace tokenscope::kernels::detail
