// The float family on AVX-512: 512-bit attention GEMM, exp-based helpers, BF16 dot and f16 rows; the rest is
// float_x86.h's 256-bit code compiled with this ISA's flags.
#include "kernels/float/float_x86.h"

namespace tokenscope::kernels::detail {

namespace {

// Mask of the first `rest` of 16 lanes (none for rest <= 0).
inline __mmask16 tail_mask(int64_t rest) {
  return static_cast<__mmask16>(rest >= 16 ? 0xFFFF : rest <= 0 ? 0 : (1u << rest) - 1);
}

// ---- f32 x f16^T small GEMM (attention tiles), 512-bit: panels of 32 b rows are converted and
// transposed into bt[l][32] (8 x 8 transposes, as the 256-bit version), then an MR x 32 micro-kernel
// (MR <= 8 a rows, two zmm per row: 16 FMAs per 8 broadcasts and 2 loads). ----

template <int MR>
inline void f16t_micro(const float* a, int64_t lda, const float* bt, int64_t kl, float* c, int64_t ldc, int64_t nj,
                       bool add) {
  constexpr int64_t kNb = 32;
  __m512 acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t q = 0; q < kl; ++q) {
    const __m512 b0 = _mm512_load_ps(bt + q * kNb), b1 = _mm512_load_ps(bt + q * kNb + 16);
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(a[i * lda + q]);
      acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
    }
  }
  const __mmask16 m0 = tail_mask(nj), m1 = tail_mask(nj - 16);
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    __m512 lo = acc[i][0], hi = acc[i][1];
    if (add) {
      lo = _mm512_add_ps(lo, _mm512_maskz_loadu_ps(m0, ci));
      hi = _mm512_add_ps(hi, _mm512_maskz_loadu_ps(m1, ci + 16));
    }
    _mm512_mask_storeu_ps(ci, m0, lo);
    _mm512_mask_storeu_ps(ci + 16, m1, hi);
  }
}

void gemm_f32_f16t(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const uint16_t* b, int64_t ldb,
                   F16Chunks b_chunks, float* c, int64_t ldc, bool accumulate) {
  constexpr int64_t kKc = 128, kNb = 32;  // kKc: a multiple of 32, so each k block starts a chunk
  alignas(64) float bt[kKc * kNb];
  for (int64_t j0 = 0; j0 < n; j0 += kNb) {
    const int64_t nj = std::min<int64_t>(kNb, n - j0);
    for (int64_t l0 = 0; l0 < k; l0 += kKc) {
      const int64_t kl = std::min(kKc, k - l0);
      x86::pack_f16t_panel<kNb>(b + j0 * ldb, ldb, b_chunks, l0, nj, kl, bt);
      const bool add = accumulate || l0 > 0;
      int64_t i = 0;
      for (; i + 8 <= m; i += 8) f16t_micro<8>(a + i * lda + l0, lda, bt, kl, c + i * ldc + j0, ldc, nj, add);
      switch (m - i) {
        case 7: f16t_micro<7>(a + i * lda + l0, lda, bt, kl, c + i * ldc + j0, ldc, nj, add); break;
        case 6: f16t_micro<6>(a + i * lda + l0, lda, bt, kl, c + i * ldc + j0, ldc, nj, add); break;
        case 5: f16t_micro<5>(a + i * lda + l0, lda, bt, kl, c + i * ldc + j0, ldc, nj, add); break;
        case 4: f16t_micro<4>(a + i * lda + l0, lda, bt, kl, c + i * ldc + j0, ldc, nj, add); break;
        case 3: f16t_micro<3>(a + i * lda + l0, lda, bt, kl, c + i * ldc + j0, ldc, nj, add); break;
        case 2: f16t_micro<2>(a + i * lda + l0, lda, bt, kl, c + i * ldc + j0, ldc, nj, add); break;
        case 1: f16t_micro<1>(a + i * lda + l0, lda, bt, kl, c + i * ldc + j0, ldc, nj, add); break;
        default: break;
      }
    }
  }
}

// ---- 512-bit exp (the same range reduction and polynomial as x86::exp8) and the helpers built on it. ----

inline __m512 exp16(__m512 x) {
  const __m512 hi = _mm512_set1_ps(88.7228f), lo = _mm512_set1_ps(-87.3365f);
  const __mmask16 too_small = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
  const __mmask16 too_big = _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ);
  const __m512 xc = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693145752f), xc);
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(1.42860677e-6f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  const __m512i ki = _mm512_cvtps_epi32(k);
  const __m512i k1 = _mm512_srai_epi32(ki, 1), k2 = _mm512_sub_epi32(ki, k1);
  const __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(k1, _mm512_set1_epi32(127)), 23));
  const __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(k2, _mm512_set1_epi32(127)), 23));
  __m512 res = _mm512_mul_ps(_mm512_mul_ps(p, s1), s2);
  res = _mm512_mask_mov_ps(res, too_small, _mm512_setzero_ps());
  return _mm512_mask_mov_ps(res, too_big, _mm512_set1_ps(INFINITY));
}

double exp_sum_f32(float* x, int64_t n, float sub) {
  const __m512 vs = _mm512_set1_ps(sub);
  __m512d acc0 = _mm512_setzero_pd(), acc1 = _mm512_setzero_pd();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vs)));
    _mm512_mask_storeu_ps(x + i, m, e);
    acc0 = _mm512_add_pd(acc0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    acc1 = _mm512_add_pd(acc1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(acc0, acc1));
}

float max_f32(const float* x, int64_t n) {
  __m512 v0 = _mm512_set1_ps(-INFINITY), v1 = v0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    v0 = _mm512_max_ps(v0, _mm512_loadu_ps(x + i));
    v1 = _mm512_max_ps(v1, _mm512_loadu_ps(x + i + 16));
  }
  for (; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    v0 = _mm512_mask_max_ps(v0, m, v0, _mm512_maskz_loadu_ps(m, x + i));
  }
  return _mm512_reduce_max_ps(_mm512_max_ps(v0, v1));
}

void softmax_f16r(float* x, int64_t n, float scale) {
  const __m512 vs = _mm512_set1_ps(scale);
  __m512 vmx = _mm512_set1_ps(-INFINITY);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vs);
    _mm512_mask_storeu_ps(x + i, m, v);
    vmx = _mm512_mask_max_ps(vmx, m, vmx, v);
  }
  const float mx = _mm512_reduce_max_ps(vmx);
  const __m512 inv = _mm512_set1_ps(static_cast<float>(1.0 / exp_sum_f32(x, n, mx)));
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m256i h = _mm512_cvtps_ph(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv), _MM_FROUND_TO_NEAREST_INT);
    _mm512_mask_storeu_ps(x + i, m, _mm512_cvtph_ps(h));
  }
}

void silu_mul_f32(const float* g, const float* u, float* out, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 vg = _mm512_maskz_loadu_ps(m, g + i);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), vg));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_div_ps(vg, _mm512_add_ps(one, e)), _mm512_maskz_loadu_ps(m, u + i)));
  }
}

void relu_sqr_mul_f32(const float* g, const float* u, float* out, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 r = _mm512_max_ps(_mm512_maskz_loadu_ps(m, g + i), _mm512_setzero_ps());
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_mul_ps(r, r), _mm512_maskz_loadu_ps(m, u + i)));
  }
}

// The BF16 dot product on 512-bit registers (as x86::dot_bf16_bf16: exact products, f32 FMA accumulators);
// the last partial vector masked.
inline __m512 load_bf16x16(const uint16_t* p, __mmask16 m) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}
float dot_bf16_bf16(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64)
    for (int r = 0; r < 4; ++r)
      acc[r] = _mm512_fmadd_ps(load_bf16x16(x + i + 16 * r, 0xFFFF), load_bf16x16(y + i + 16 * r, 0xFFFF), acc[r]);
  for (; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    acc[0] = _mm512_fmadd_ps(load_bf16x16(x + i, m), load_bf16x16(y + i, m), acc[0]);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

// dot_f16_rows on 512-bit registers, 8 rows per step. Each lane sees the same FMA chain as in x86::dot_f16_rows
// (four accumulators of 8 lanes over chunks of 32): a row's accumulators 0 and 1 share one register (lanes 0-7
// and 8-15), 2 and 3 another, so each conversion reads 16 consecutive halves of the row straight from memory,
// with no 128-bit insert per conversion (which two rows sharing a register would need).
// The reduction keeps dot_f16's order: (a0 + a2) + (a1 + a3), then low + high 128 bits, then two rounds of
// hadd; bit-identical to dot_f16. acc[2 * q], acc[2 * q + 1]: row q of a group of 8 rows starting at xr[0].

// One chunk of 32 elements of a group of 8 rows (row q at xg + q * stride) into its accumulators; yv: the
// chunk of y in f32, elements 0-15 and 16-31.
inline void f16_rows_chunk8(const uint16_t* xg, int64_t stride, const __m512* yv, __m512* acc) {
  for (int q = 0; q < 8; ++q) {
    const uint16_t* xr = xg + q * stride;
    acc[2 * q] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr))), yv[0],
                                 acc[2 * q]);
    acc[2 * q + 1] = _mm512_fmadd_ps(
        _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + 16))), yv[1], acc[2 * q + 1]);
  }
}

// The 8 rows' results from their accumulators (rows j..j+7 at x + j * stride), the tails added if n > n32.
inline void f16_rows_finish8(const __m512* acc, const uint16_t* x, int64_t stride, F16Chunks chunks, int64_t j,
                             const uint16_t* y, int64_t n32, int64_t n, float* out) {
  __m256 t0[4];  // per p: rows p (low 128 bits) and p + 4 (high), each low + high half of its 8 lanes
  for (int p = 0; p < 4; ++p) {
    const __m512 sp = _mm512_add_ps(acc[2 * p], acc[2 * p + 1]);  // row p: lanes 0-7 a0 + a2, 8-15 a1 + a3
    const __m512 sq = _mm512_add_ps(acc[2 * p + 8], acc[2 * p + 9]);  // row p + 4
    const __m512 v = _mm512_add_ps(_mm512_shuffle_f32x4(sp, sq, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_f32x4(sp, sq, _MM_SHUFFLE(3, 2, 3, 2)));  // rows p | p + 4
    const __m512 s = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
    t0[p] = _mm512_castps512_ps256(_mm512_shuffle_f32x4(s, s, 0x08));  // 128-bit lanes 0 and 2
  }
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(t0[0], t0[1]), _mm256_hadd_ps(t0[2], t0[3]));
  if (n32 == n) {
    _mm256_storeu_ps(out + j, h);
    return;
  }
  alignas(32) float sums[8];
  _mm256_store_ps(sums, h);
  for (int q = 0; q < 8; ++q)
    out[j + q] = dot_f16_finish(sums[q], f16_tail_at(x + (j + q) * stride, chunks, n32, n), y, n32, n);
}

void dot_f16_rows(int64_t n, const uint16_t* x, int64_t stride, F16Chunks chunks, int64_t count, const uint16_t* y,
                  float* out) {
  constexpr int64_t kDotRowsMax = 4096;
  const int64_t n32 = n & ~int64_t{31};
  if (n32 == 0 || n32 > kDotRowsMax || count < 8) {
    x86::dot_f16_rows(n, x, stride, chunks, count, y, out);
    return;
  }
  alignas(64) float yf[kDotRowsMax];
  for (int64_t i = 0; i < n32; i += 8) _mm256_store_ps(yf + i, x86::load_f16x8(y + i));
  int64_t j = 0;
  if (!f16_plain(chunks)) {
    // Rows in chunks (the value cache's blocks, a paged cache's pages): the chunks are walked in turn, each for
    // all rows of a panel of up to 64, the accumulators kept in L1 from one chunk to the next, so the blocks are
    // read in order rather than with a stride (as a group of 8 rows at a time over all chunks would).
    // Every row's accumulators see the same chunks in the same order: the results are the same.
    constexpr int64_t kPanelGroups = 8;
    __m512 accs[kPanelGroups][16];
    while (j + 8 <= count) {
      const int64_t groups = std::min<int64_t>(kPanelGroups, (count - j) / 8);
      for (int64_t g = 0; g < groups; ++g)
        for (int q = 0; q < 16; ++q) accs[g][q] = _mm512_setzero_ps();
      for (int64_t i = 0; i < n32; i += 32) {
        const __m512 yv[2] = {_mm512_load_ps(yf + i), _mm512_load_ps(yf + i + 16)};
        const uint16_t* xc = f16_chunk_at(x + j * stride, chunks, i);
        for (int64_t g = 0; g < groups; ++g) f16_rows_chunk8(xc + 8 * g * stride, stride, yv, accs[g]);
      }
      for (int64_t g = 0; g < groups; ++g) f16_rows_finish8(accs[g], x, stride, chunks, j + 8 * g, y, n32, n, out);
      j += 8 * groups;
    }
  } else {
    for (; j + 8 <= count; j += 8) {
      if (j + 16 <= count) x86::prefetch_f16_rows(x, stride, n, j + 8, j + 16);  // the next group's rows (plain rows)
      __m512 acc[16];
      for (auto& a : acc) a = _mm512_setzero_ps();
      for (int64_t i = 0; i < n32; i += 32) {
        const __m512 yv[2] = {_mm512_load_ps(yf + i), _mm512_load_ps(yf + i + 16)};
        f16_rows_chunk8(x + j * stride + i, stride, yv, acc);  // plain rows: chunk i / 32 at i
      }
      f16_rows_finish8(acc, x, stride, chunks, j, y, n32, n, out);
    }
  }
  if (j < count) x86::dot_f16_rows(n, x + j * stride, stride, chunks, count - j, y, out + j);
}

}  // namespace

void init_avx512(KernelTable& t) {
  init_scalar(t);
  t.isa = Isa::avx512;
  t.features = "avx512bw+vnni";
  x86::set_float_helpers(t);
  t.gemm_f32_f16t = gemm_f32_f16t;
  t.exp_sum_f32 = exp_sum_f32;
  t.softmax_f16r = softmax_f16r;
  t.max_f32 = max_f32;
  t.dot_f16_rows = dot_f16_rows;
  t.silu_mul_f32 = silu_mul_f32;
  t.relu_sqr_mul_f32 = relu_sqr_mul_f32;
}

// Applied after the AVX2 installers (registry.h), so each sets what this ISA does differently.
void install_f32_avx512(KernelTable& t) { t.for_type(TensorType::F32).vec_dot = x86::dot_f32_f32; }
void install_f16_avx512(KernelTable& t) { t.for_type(TensorType::F16).vec_dot = x86::dot_f16_f16; }
void install_bf16_avx512(KernelTable& t) { t.for_type(TensorType::BF16).vec_dot = dot_bf16_bf16; }

}  // namespace tokenscope::kernels::detail
