// The packed ternary multiply's driver for the x86 ISAs (ternary_kernels.h): tokens in runs of 4, 2 and 1, each
// run's exact integer row sums from the ISA's Sums (per block of 256 for TQ1_0 / TQ2_0, else per row), then the
// format's float steps: for TQ, 8 rows at once per block (a multiply then an add per lane, as packed_tq_step
// rounds; the rows' f16 scales lie together per block), else packed_finish per row. Bit-identical to the scalar.
//
// Sums::run<kNt>(w, a, act_stride, b0, b1, out) writes out[t][r], the exact sum of c * q over the 64-element blocks
// [b0, b1) of row r of the group w, for the kNt activation rows a, a + act_stride, ... An ISA may also give
// Sums::tq_four_tokens<kType>(n, w, a, act_stride, y, ldy), four tokens of TQ1_0 / TQ2_0 whole (their sums are
// needed per 256, where a run per 256 spends as much on reducing the sums as on the multiply-adds).
#pragma once

#include <immintrin.h>

#include "kernels/ternary/ternary_kernels.h"

namespace tokenscope::kernels::ternary::x86 {

template <TensorType kType, int kNt, class Sums>
inline void packed_tokens(int64_t n, const void* w, const uint8_t* a, size_t act_stride, float* y, int64_t ldy) {
  constexpr bool kTq = kType == TensorType::TQ1_0 || kType == TensorType::TQ2_0;
  alignas(32) int32_t sums[kNt][kPackRows];
  if constexpr (kTq) {
    const auto* scales = static_cast<const uint8_t*>(w) + packed_codes_bytes(n);
    __m256 acc[kNt];
    for (int t = 0; t < kNt; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK_TQ; ++b) {
      Sums::template run<kNt>(w, a, act_stride, 4 * b, 4 * b + 4, sums);
      const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + b * kPackRows * 2)));
      for (int t = 0; t < kNt; ++t) {
        const int32_t asum = act_sum(a + static_cast<size_t>(t) * act_stride, n, b * QK_TQ, QK_TQ);
        const __m256i isum = _mm256_sub_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(sums[t])),
                                              _mm256_set1_epi32(asum));
        acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(d, _mm256_cvtepi32_ps(isum)));
      }
    }
    for (int t = 0; t < kNt; ++t)
      _mm256_storeu_ps(y + t * ldy, _mm256_mul_ps(acc[t], _mm256_set1_ps(act_scale(a + t * act_stride, n))));
  } else {
    Sums::template run<kNt>(w, a, act_stride, 0, n / 64, sums);
    for (int t = 0; t < kNt; ++t) {
      const void* at = a + static_cast<size_t>(t) * act_stride;
      const int32_t asum = act_sum(at, n, 0, n);
      for (int r = 0; r < kPackRows; ++r) y[t * ldy + r] = packed_finish(kType, n, w, r, 0, sums[t][r] - asum, at);
    }
  }
}

template <TensorType kType, class Sums>
void gemm_packed(int64_t n, const void* w, const void* act, size_t act_stride, const int32_t*, int nt, float* y,
                 int64_t ldy) {
  const auto* a = static_cast<const uint8_t*>(act);
  constexpr bool kTq = kType == TensorType::TQ1_0 || kType == TensorType::TQ2_0;
  int t = 0;
  for (; t + 4 <= nt; t += 4) {
    if constexpr (kTq && requires { Sums::template tq_four_tokens<kType>(n, w, a, act_stride, y, ldy); })
      Sums::template tq_four_tokens<kType>(n, w, a + t * act_stride, act_stride, y + t * ldy, ldy);
    else
      packed_tokens<kType, 4, Sums>(n, w, a + t * act_stride, act_stride, y + t * ldy, ldy);
  }
  if (t + 2 <= nt) {
    packed_tokens<kType, 2, Sums>(n, w, a + t * act_stride, act_stride, y + t * ldy, ldy);
    t += 2;
  }
  if (t < nt) packed_tokens<kType, 1, Sums>(n, w, a + t * act_stride, act_stride, y + t * ldy, ldy);
}

}  // namespace tokenscope::kernels::ternary::x86
