// The float family's scalar reference: F32 / F16 / BF16 dot products and the float helpers every table starts
// from. Every SIMD variant is tested against these.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/fp16.h"
#include "formats/quant_ref.h"
#include "kernels/float/float_kernels.h"

namespace tokenscope::kernels::detail {

void quantize_act_f16(const float* x, void* y, int64_t n) { quantize_row_f16(x, y, n); }
void quantize_act_bf16(const float* x, void* y, int64_t n) { quantize_row_bf16(x, y, n); }
void quantize_act_f32(const float* x, void* y, int64_t n) { std::memcpy(y, x, static_cast<size_t>(n) * 4); }

namespace {

float dot_f32_f32(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const float*>(w);
  const auto* y = static_cast<const float*>(a);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * y[i];
  return static_cast<float>(s);
}

// The f16 dot product's summation order is part of its definition (see float_x86.h): four groups of
// eight lanes with fused multiply-adds over chunks of 32, folded (g0 + g2) + (g1 + g3), lanes reduced
// pairwise ((l0+l4)+(l1+l5)) + ((l2+l6)+(l3+l7)), tail in double. Every ISA computes exactly this.
// x in chunks of 32 elements placed as `chunks` says (kernels.h, F16Chunks); F16Chunks{} is a plain row.
float dot_f16_chunked(int64_t n, const f16_t* x, F16Chunks chunks, const f16_t* y) {
  const int64_t n32 = n & ~int64_t{31};
  double sum = 0.0;
  if (n32 > 0) {
    float acc[4][8] = {};
    for (int64_t i = 0; i < n32; i += 32) {
      const f16_t* xc = f16_chunk_at(x, chunks, i);
      for (int r = 0; r < 4; ++r)
        for (int l = 0; l < 8; ++l)
          acc[r][l] = std::fma(fp16_to_fp32(xc[8 * r + l]), fp16_to_fp32(y[i + 8 * r + l]), acc[r][l]);
    }
    float v[8];
    for (int l = 0; l < 8; ++l) v[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    const float t0[4] = {v[0] + v[4], v[1] + v[5], v[2] + v[6], v[3] + v[7]};
    sum = (t0[0] + t0[1]) + (t0[2] + t0[3]);
  }
  return dot_f16_finish(sum, f16_tail_at(x, chunks, n32, n), y, n32, n);
}

float dot_f16_f16(int64_t n, const void* w, const void* a) {
  return dot_f16_chunked(n, static_cast<const f16_t*>(w), F16Chunks{}, static_cast<const f16_t*>(a));
}

float dot_bf16_bf16(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const bf16_t*>(w);
  const auto* y = static_cast<const bf16_t*>(a);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(bf16_to_fp32(x[i])) * bf16_to_fp32(y[i]);
  return static_cast<float>(s);
}

float f_dot_f32(int64_t n, const float* a, const float* b) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}
float f_dot_f16(int64_t n, const uint16_t* a, const uint16_t* b) { return dot_f16_f16(n, a, b); }
void f_axpy_f16(int64_t n, float alpha, const uint16_t* x, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * fp16_to_fp32(x[i]);
}
void f_f32_to_f16(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}
void f_f16_to_f32(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = fp16_to_fp32(x[i]);
}

void f_dot_f16_rows(int64_t n, const uint16_t* x, int64_t stride, F16Chunks chunks, int64_t count, const uint16_t* y,
                    float* out) {
  for (int64_t j = 0; j < count; ++j) out[j] = dot_f16_chunked(n, x + j * stride, chunks, y);
}
double f_exp_sum_f32(float* x, int64_t n, float sub) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - sub);
    sum += static_cast<double>(x[i]);
  }
  return sum;
}
float f_max_f32(const float* x, int64_t n) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  return mx;
}
void f_softmax_f16r(float* x, int64_t n, float scale) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) {
    x[i] *= scale;
    mx = std::max(mx, x[i]);
  }
  const float inv = static_cast<float>(1.0 / f_exp_sum_f32(x, n, mx));
  for (int64_t i = 0; i < n; ++i) x[i] = fp16_to_fp32(fp32_to_fp16(x[i] * inv));
}
void f_rmsnorm_f32(const float* x, const float* w, float* y, int64_t n, float eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float scale = 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(n)) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] * scale) * w[i];
}
void f_silu_mul_f32(const float* g, const float* u, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}
void f_relu_sqr_mul_f32(const float* g, const float* u, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float r = g[i] > 0.0f ? g[i] : 0.0f;
    out[i] = r * r * u[i];
  }
}
void f_gemm_f32_f16t(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const uint16_t* b, int64_t ldb,
                     F16Chunks b_chunks, float* c, int64_t ldc, bool accumulate) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float s = accumulate ? c[i * ldc + j] : 0.0f;
      for (int64_t l = 0; l < k; ++l) s += a[i * lda + l] * fp16_to_fp32(f16_chunk_at(b + j * ldb, b_chunks, l)[l & 31]);
      c[i * ldc + j] = s;
    }
}

}  // namespace

void install_f32_scalar(KernelTable& t) {
  put(t, TensorType::F32, {"f32", TensorType::F32, row_bytes_of<TensorType::F32>, quantize_act_f32}, dot_f32_f32);
}
void install_f16_scalar(KernelTable& t) {
  put(t, TensorType::F16, {"f16", TensorType::F16, row_bytes_of<TensorType::F16>, quantize_act_f16}, dot_f16_f16);
}
void install_bf16_scalar(KernelTable& t) {
  put(t, TensorType::BF16, {"bf16", TensorType::BF16, row_bytes_of<TensorType::BF16>, quantize_act_bf16}, dot_bf16_bf16);
}

// The float helpers every table starts from; the weight formats come from the registry (registry.h), the Q8_0
// KV cache's row helpers with the Q8_0 format (block32/).
void init_scalar(KernelTable& t) {
  t = KernelTable{};
  t.isa = Isa::scalar;
  t.dot_f32 = f_dot_f32;
  t.dot_f16 = f_dot_f16;
  t.axpy_f16 = f_axpy_f16;
  t.f32_to_f16 = f_f32_to_f16;
  t.f16_to_f32 = f_f16_to_f32;
  t.dot_f16_rows = f_dot_f16_rows;
  t.exp_sum_f32 = f_exp_sum_f32;
  t.max_f32 = f_max_f32;
  t.softmax_f16r = f_softmax_f16r;
  t.rmsnorm_f32 = f_rmsnorm_f32;
  t.silu_mul_f32 = f_silu_mul_f32;
  t.relu_sqr_mul_f32 = f_relu_sqr_mul_f32;
  t.gemm_f32_f16t = f_gemm_f32_f16t;
}

}  // namespace tokenscope::kernels::detail
