// The float family on Arm NEON (Armv8.2-A with fp16): f16 dot products and rows in the reference's order,
// exp-based helpers, the attention GEMM. Tested against float_scalar.cpp under qemu-aarch64.
#include <arm_neon.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "base/fp16.h"
#include "formats/blocks.h"
#include "formats/quant_ref.h"
#include "kernels/kernels_internal.h"
#include "kernels/simd/neon.h"

namespace tokenscope::kernels::detail {
namespace {

inline float32x4_t load_f16x4(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

// The f16 dot product in the order the scalar reference defines (float_scalar.cpp): four groups of
// eight lanes (here two float32x4 each) with fused multiply-adds over chunks of 32, folded
// (g0 + g2) + (g1 + g3), lanes reduced ((l0+l4)+(l1+l5)) + ((l2+l6)+(l3+l7)), tail in double.
// The fold of the f16 dot product's accumulators (lanes 0-3 of each group in lo, 4-7 in hi).
inline float f16_acc_sum(const float32x4_t* lo, const float32x4_t* hi) {
  const float32x4_t vlo = vaddq_f32(vaddq_f32(lo[0], lo[2]), vaddq_f32(lo[1], lo[3]));
  const float32x4_t vhi = vaddq_f32(vaddq_f32(hi[0], hi[2]), vaddq_f32(hi[1], hi[3]));
  const float32x4_t t0 = vaddq_f32(vlo, vhi);  // l + (l + 4)
  const float32x4_t t1 = vpaddq_f32(t0, t0);    // (t0 + t1), (t2 + t3), ...
  return vgetq_lane_f32(t1, 0) + vgetq_lane_f32(t1, 1);
}

// x in chunks of 32 elements placed as `chunks` says (kernels.h, F16Chunks); F16Chunks{} is a plain row.
float dot_f16_chunked(int64_t n, const uint16_t* x, F16Chunks chunks, const uint16_t* y) {
  const int64_t n32 = n & ~int64_t{31};
  double sum = 0.0;
  if (n32 > 0) {
    float32x4_t lo[4], hi[4];
    for (int r = 0; r < 4; ++r) lo[r] = hi[r] = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < n32; i += 32) {
      const uint16_t* xc = detail::f16_chunk_at(x, chunks, i);
      for (int r = 0; r < 4; ++r) {
        lo[r] = vfmaq_f32(lo[r], load_f16x4(xc + 8 * r), load_f16x4(y + i + 8 * r));
        hi[r] = vfmaq_f32(hi[r], load_f16x4(xc + 8 * r + 4), load_f16x4(y + i + 8 * r + 4));
      }
    }
    sum = f16_acc_sum(lo, hi);
  }
  return detail::dot_f16_finish(sum, detail::f16_tail_at(x, chunks, n32, n), y, n32, n);
}

float dot_f16_f16(int64_t n, const void* w, const void* a) {
  return dot_f16_chunked(n, static_cast<const uint16_t*>(w), F16Chunks{}, static_cast<const uint16_t*>(a));
}

// Four accumulators, so the FMA latency does not cap a thread's read rate (sysinfo measures with this).
float dot_f32_plain(int64_t n, const float* x, const float* y) {
  float32x4_t acc[4];
  for (auto& v : acc) v = vdupq_n_f32(0.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int r = 0; r < 4; ++r) acc[r] = vfmaq_f32(acc[r], vld1q_f32(x + i + 4 * r), vld1q_f32(y + i + 4 * r));
  for (; i + 4 <= n; i += 4) acc[0] = vfmaq_f32(acc[0], vld1q_f32(x + i), vld1q_f32(y + i));
  float s = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
  for (; i < n; ++i) s += x[i] * y[i];
  return s;
}

float dot_f32_f32(int64_t n, const void* w, const void* a) {
  return dot_f32_plain(n, static_cast<const float*>(w), static_cast<const float*>(a));
}

float dot_f16_pair(int64_t n, const uint16_t* a, const uint16_t* b) { return dot_f16_f16(n, a, b); }

// bf16 -> f32: the 16 bits moved to the top of the word (exact).
inline float32x4_t load_bf16x4(const uint16_t* p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }

// BF16 weights x BF16 activations: exact f32 products, FMAs into four accumulators (the scalar reference
// sums in double; the difference is the f32 sum's rounding).
float dot_bf16_bf16(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  float32x4_t acc[4];
  for (auto& v : acc) v = vdupq_n_f32(0.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int r = 0; r < 4; ++r) acc[r] = vfmaq_f32(acc[r], load_bf16x4(x + i + 4 * r), load_bf16x4(y + i + 4 * r));
  for (; i + 4 <= n; i += 4) acc[0] = vfmaq_f32(acc[0], load_bf16x4(x + i), load_bf16x4(y + i));
  float s = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
  for (; i < n; ++i) s += bf16_to_fp32(x[i]) * bf16_to_fp32(y[i]);
  return s;
}

void axpy_f16(int64_t n, float alpha, const uint16_t* x, float* y) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), load_f16x4(x + i), alpha));
  for (; i < n; ++i) y[i] += alpha * fp16_to_fp32(x[i]);
}

// vcvt_f16_f32 rounds to nearest even (the default FPCR mode), as fp32_to_fp16 does.
void f32_to_f16(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
  for (; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}

void f16_to_f32(const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, load_f16x4(x + i));
  for (; i < n; ++i) y[i] = fp16_to_fp32(x[i]);
}

void dot_f16_rows(int64_t n, const uint16_t* x, int64_t stride, F16Chunks chunks, int64_t count, const uint16_t* y,
                  float* out) {
  const int64_t n32 = n & ~int64_t{31};
  if (detail::f16_plain(chunks) || n32 == 0) {
    for (int64_t j = 0; j < count; ++j) out[j] = dot_f16_chunked(n, x + j * stride, chunks, y);
    return;
  }
  // Rows in chunks (the value cache's blocks, a paged cache's pages): the chunks walked in turn, each for all
  // rows of a panel of up to 64, each row's accumulators (dot_f16_chunked's, in the same order) kept in L1
  // between chunks, so the results are those of dot_f16_chunked.
  constexpr int64_t kPanel = 64;
  float32x4_t accs[kPanel][8];  // per row: lo[0..3], hi[0..3]
  for (int64_t j0 = 0; j0 < count; j0 += kPanel) {
    const int64_t rows = std::min(kPanel, count - j0);
    for (int64_t q = 0; q < rows; ++q)
      for (int r = 0; r < 8; ++r) accs[q][r] = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < n32; i += 32) {
      float32x4_t yv[8];
      for (int r = 0; r < 4; ++r) {
        yv[r] = load_f16x4(y + i + 8 * r);
        yv[4 + r] = load_f16x4(y + i + 8 * r + 4);
      }
      const uint16_t* xc = detail::f16_chunk_at(x + j0 * stride, chunks, i);
      for (int64_t q = 0; q < rows; ++q) {
        const uint16_t* xq = xc + q * stride;
        for (int r = 0; r < 4; ++r) {
          accs[q][r] = vfmaq_f32(accs[q][r], load_f16x4(xq + 8 * r), yv[r]);
          accs[q][4 + r] = vfmaq_f32(accs[q][4 + r], load_f16x4(xq + 8 * r + 4), yv[4 + r]);
        }
      }
    }
    for (int64_t q = 0; q < rows; ++q) {
      const uint16_t* row = x + (j0 + q) * stride;
      out[j0 + q] = detail::dot_f16_finish(f16_acc_sum(accs[q], accs[q] + 4), detail::f16_tail_at(row, chunks, n32, n),
                                           y, n32, n);
    }
  }
}

// exp on 4 floats, as the x86 exp8: x = k * ln2 + r, degree-6 polynomial, 2^k in two halves; below -87.3
// gives 0, above 88.7 gives +inf.
inline float32x4_t exp4(float32x4_t x) {
  const float32x4_t hi = vdupq_n_f32(88.7228f), lo = vdupq_n_f32(-87.3365f);
  const uint32x4_t too_small = vcltq_f32(x, lo), too_big = vcgtq_f32(x, hi);
  const float32x4_t xc = vminq_f32(vmaxq_f32(x, lo), hi);
  const float32x4_t k = vrndnq_f32(vmulq_n_f32(xc, 1.44269504f));
  float32x4_t r = vfmsq_n_f32(xc, k, 0.693145752f);
  r = vfmsq_n_f32(r, k, 1.42860677e-6f);
  float32x4_t p = vdupq_n_f32(1.0f / 720);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 120), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 24), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 6), p, r);
  p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
  const int32x4_t ki = vcvtq_s32_f32(k);
  const int32x4_t k1 = vshrq_n_s32(ki, 1), k2 = vsubq_s32(ki, k1);
  const float32x4_t s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(k1, vdupq_n_s32(127)), 23));
  const float32x4_t s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(k2, vdupq_n_s32(127)), 23));
  float32x4_t res = vmulq_f32(vmulq_f32(p, s1), s2);
  res = vbslq_f32(too_small, vdupq_n_f32(0.0f), res);
  return vbslq_f32(too_big, vdupq_n_f32(INFINITY), res);
}

double exp_sum_f32(float* x, int64_t n, float sub) {
  const float32x4_t vs = vdupq_n_f32(sub);
  float64x2_t acc0 = vdupq_n_f64(0.0), acc1 = vdupq_n_f64(0.0);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t e = exp4(vsubq_f32(vld1q_f32(x + i), vs));
    vst1q_f32(x + i, e);
    acc0 = vaddq_f64(acc0, vcvt_f64_f32(vget_low_f32(e)));
    acc1 = vaddq_f64(acc1, vcvt_high_f64_f32(e));
  }
  double sum = vaddvq_f64(vaddq_f64(acc0, acc1));
  for (; i < n; ++i) {
    float t[4] = {x[i] - sub, 0, 0, 0};
    x[i] = vgetq_lane_f32(exp4(vld1q_f32(t)), 0);
    sum += static_cast<double>(x[i]);
  }
  return sum;
}

float max_f32(const float* x, int64_t n) {
  float32x4_t v0 = vdupq_n_f32(-INFINITY), v1 = v0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    v0 = vmaxq_f32(v0, vld1q_f32(x + i));
    v1 = vmaxq_f32(v1, vld1q_f32(x + i + 4));
  }
  float mx = vmaxvq_f32(vmaxq_f32(v0, v1));
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  return mx;
}

void softmax_f16r(float* x, int64_t n, float scale) {
  const float32x4_t vs = vdupq_n_f32(scale);
  float32x4_t vmx = vdupq_n_f32(-INFINITY);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t v = vmulq_f32(vld1q_f32(x + i), vs);
    vst1q_f32(x + i, v);
    vmx = vmaxq_f32(vmx, v);
  }
  float mx = vmaxvq_f32(vmx);
  for (; i < n; ++i) {
    x[i] *= scale;
    mx = std::max(mx, x[i]);
  }
  const float inv = static_cast<float>(1.0 / exp_sum_f32(x, n, mx));
  for (i = 0; i + 4 <= n; i += 4) vst1q_f32(x + i, vcvt_f32_f16(vcvt_f16_f32(vmulq_n_f32(vld1q_f32(x + i), inv))));
  for (; i < n; ++i) x[i] = fp16_to_fp32(fp32_to_fp16(x[i] * inv));
}

void silu_mul_f32(const float* g, const float* u, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t vg = vld1q_f32(g + i);
    const float32x4_t e = exp4(vnegq_f32(vg));
    vst1q_f32(out + i, vmulq_f32(vdivq_f32(vg, vaddq_f32(vdupq_n_f32(1.0f), e)), vld1q_f32(u + i)));
  }
  for (; i < n; ++i) out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void relu_sqr_mul_f32(const float* g, const float* u, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t r = vmaxq_f32(vld1q_f32(g + i), vdupq_n_f32(0.0f));
    vst1q_f32(out + i, vmulq_f32(vmulq_f32(r, r), vld1q_f32(u + i)));
  }
  for (; i < n; ++i) {
    const float r = g[i] > 0.0f ? g[i] : 0.0f;
    out[i] = r * r * u[i];
  }
}

// c (+)= a x b^T with b in f16: 8 b rows at a time converted and transposed into bt[l][8] (scalar gather,
// then reused by every a row), 4 a rows x 8 columns per step (8 accumulators of 4 lanes).
void gemm_f32_f16t(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const uint16_t* b, int64_t ldb,
                   F16Chunks b_chunks, float* c, int64_t ldc, bool accumulate) {
  constexpr int64_t kKc = 128;  // a multiple of 32: each k block starts a chunk, 4 values never straddle one
  alignas(16) float bt[kKc * 8];
  for (int64_t j0 = 0; j0 < n; j0 += 8) {
    const int64_t nj = std::min<int64_t>(8, n - j0);
    for (int64_t l0 = 0; l0 < k; l0 += kKc) {
      const int64_t kl = std::min(kKc, k - l0);
      for (int64_t jj = 0; jj < 8; ++jj) {
        if (jj < nj) {
          const uint16_t* row = b + (j0 + jj) * ldb;
          for (int64_t lc = 0; lc < kl; lc += kF16Chunk) {  // chunk by chunk, its address found once
            const uint16_t* src = detail::f16_chunk_at(row, b_chunks, l0 + lc);
            const int64_t le = std::min(kF16Chunk, kl - lc);
            float* dst = bt + lc * 8 + jj;
            int64_t l = 0;
            for (; l + 4 <= le; l += 4) {
              const float32x4_t v = load_f16x4(src + l);
              dst[(l + 0) * 8] = vgetq_lane_f32(v, 0);
              dst[(l + 1) * 8] = vgetq_lane_f32(v, 1);
              dst[(l + 2) * 8] = vgetq_lane_f32(v, 2);
              dst[(l + 3) * 8] = vgetq_lane_f32(v, 3);
            }
            for (; l < le; ++l) dst[l * 8] = fp16_to_fp32(src[l]);
          }
        } else {
          for (int64_t l = 0; l < kl; ++l) bt[l * 8 + jj] = 0.0f;
        }
      }
      const bool add = accumulate || l0 > 0;
      auto finish = [&](int64_t i, float32x4_t lo, float32x4_t hi) {
        float t[8];
        vst1q_f32(t, lo);
        vst1q_f32(t + 4, hi);
        float* ci = c + i * ldc + j0;
        for (int64_t jj = 0; jj < nj; ++jj) ci[jj] = add ? ci[jj] + t[jj] : t[jj];
      };
      int64_t i = 0;
      for (; i + 4 <= m; i += 4) {
        const float* a0 = a + i * lda + l0;
        float32x4_t acc[4][2];
        for (auto& x : acc) x[0] = x[1] = vdupq_n_f32(0.0f);
        for (int64_t q = 0; q < kl; ++q) {
          const float32x4_t b0 = vld1q_f32(bt + q * 8), b1 = vld1q_f32(bt + q * 8 + 4);
          for (int r = 0; r < 4; ++r) {
            const float av = a0[r * lda + q];
            acc[r][0] = vfmaq_n_f32(acc[r][0], b0, av);
            acc[r][1] = vfmaq_n_f32(acc[r][1], b1, av);
          }
        }
        for (int r = 0; r < 4; ++r) finish(i + r, acc[r][0], acc[r][1]);
      }
      for (; i < m; ++i) {
        const float* ai = a + i * lda + l0;
        float32x4_t lo = vdupq_n_f32(0.0f), hi = vdupq_n_f32(0.0f);
        for (int64_t q = 0; q < kl; ++q) {
          lo = vfmaq_n_f32(lo, vld1q_f32(bt + q * 8), ai[q]);
          hi = vfmaq_n_f32(hi, vld1q_f32(bt + q * 8 + 4), ai[q]);
        }
        finish(i, lo, hi);
      }
    }
  }
}

}  // namespace

void init_neon(KernelTable& t) {
  init_scalar(t);
  t.isa = Isa::neon;
  t.features = has_i8mm() ? "dotprod+i8mm" : "dotprod";
  t.dot_f32 = dot_f32_plain;
  t.dot_f16 = dot_f16_pair;
  t.axpy_f16 = axpy_f16;
  t.f32_to_f16 = f32_to_f16;
  t.f16_to_f32 = f16_to_f32;
  t.dot_f16_rows = dot_f16_rows;
  t.exp_sum_f32 = exp_sum_f32;
  t.silu_mul_f32 = silu_mul_f32;
  t.relu_sqr_mul_f32 = relu_sqr_mul_f32;
  t.softmax_f16r = softmax_f16r;
  t.max_f32 = max_f32;
  t.gemm_f32_f16t = gemm_f32_f16t;
}

void install_f32_neon(KernelTable& t) { t.for_type(TensorType::F32).vec_dot = dot_f32_f32; }
void install_f16_neon(KernelTable& t) { t.for_type(TensorType::F16).vec_dot = dot_f16_f16; }
void install_bf16_neon(KernelTable& t) { t.for_type(TensorType::BF16).vec_dot = dot_bf16_bf16; }

}  // namespace tokenscope::kernels::detail
