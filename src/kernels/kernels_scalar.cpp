// Scalar reference kernels: the definition every SIMD variant is tested against.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/fp16.h"
#include "formats/blocks.h"
#include "formats/quant_ref.h"
#include "kernels/kernels_internal.h"

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

void quantize_act_q8_k(const float* x, void* y, int64_t n) { quantize_row_q8_k(x, y, n); }
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

// The f16 dot product's summation order is part of its definition (see kernels_x86.h): four groups of
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

template <TensorType kType>
size_t row_bytes_of(int64_t n) {
  return row_size(kType, n);
}

void put(KernelTable& t, TensorType w, ActLayout act, VecDotFn d) {
  WeightKernels& k = t.for_type(w);
  k.supported = true;
  k.act = act;
  k.vec_dot = d;
}
void put_packed(KernelTable& t, TensorType w, size_t (*bytes)(int64_t), PackRowsFn pack, GemmPackedFn gemm) {
  WeightKernels& k = t.for_type(w);
  k.packed_group_bytes = bytes;
  k.pack_rows = pack;
  k.gemm_packed = gemm;
}

}  // namespace

ActLayout act_layout_q8_0() {
  return {"q8_0", TensorType::Q8_0, row_bytes_of<TensorType::Q8_0>, quantize_act_q8_0, 32,
          block_sums_q8<BlockQ8_0, 2>};
}
ActLayout act_layout_q8_1() {
  return {"q8_1", TensorType::Q8_1, row_bytes_of<TensorType::Q8_1>, quantize_act_q8_1, 32,
          block_sums_q8<BlockQ8_1, 4>};
}
ActLayout act_layout_q8_k() { return {"q8_k", TensorType::Q8_K, row_bytes_of<TensorType::Q8_K>, quantize_act_q8_k}; }

void install_f32_scalar(KernelTable& t) {
  put(t, TensorType::F32, {"f32", TensorType::F32, row_bytes_of<TensorType::F32>, quantize_act_f32}, dot_f32_f32);
}
void install_f16_scalar(KernelTable& t) {
  put(t, TensorType::F16, {"f16", TensorType::F16, row_bytes_of<TensorType::F16>, quantize_act_f16}, dot_f16_f16);
}
void install_bf16_scalar(KernelTable& t) {
  put(t, TensorType::BF16, {"bf16", TensorType::BF16, row_bytes_of<TensorType::BF16>, quantize_act_bf16}, dot_bf16_bf16);
}
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
}
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

// The float helpers every table starts from; the weight formats come from the registry (registry.h).
void init_scalar(KernelTable& t) {
  t = KernelTable{};
  t.isa = Isa::scalar;
  t.dot_f32 = f_dot_f32;
  t.dot_f16 = f_dot_f16;
  t.axpy_f16 = f_axpy_f16;
  t.f32_to_f16 = f_f32_to_f16;
  t.f16_to_f32 = f_f16_to_f32;
  t.dot_f16_rows = f_dot_f16_rows;
  t.dot_q8_0_rows = vec_dot_rows<dot_q8_0_q8_0>;
  t.axpy_q8_0_rows = f_axpy_q8_0_rows;
  t.exp_sum_f32 = f_exp_sum_f32;
  t.max_f32 = f_max_f32;
  t.softmax_f16r = f_softmax_f16r;
  t.rmsnorm_f32 = f_rmsnorm_f32;
  t.silu_mul_f32 = f_silu_mul_f32;
  t.relu_sqr_mul_f32 = f_relu_sqr_mul_f32;
  t.gemm_f32_f16t = f_gemm_f32_f16t;
}

}  // namespace tokenscope::kernels::detail
