// NEON LUT multiply (ternary_lut.h): per pair, two tbl lookups (low and high bytes) give 16 rows' partial sums,
// zipped to int16 and added; int16 sums are widened every 128 pairs (at most 4 x 254 a quad each: 32 quads stay
// below 2^15).
#include <arm_neon.h>

#include <algorithm>

#include "kernels/ternary/ternary_kernels.h"
#include "kernels/ternary/ternary_lut.h"

namespace tokenscope::kernels::ternary::lut {

void gemv_neon(TensorType t, int64_t n, const void* group, const void* tables, const void* act, float* y) {
  const auto* g = static_cast<const uint8_t*>(group);
  const auto* tb = static_cast<const uint8_t*>(tables);
  const int64_t quads = n / 8, quads_per_flush = 32;  // 32 quads = 128 pairs = one TQ block
  const uint8x16_t mask = vdupq_n_u8(0x0F);
  LutRowTotals totals(t, n, group);
  for (int64_t q0 = 0; q0 < quads; q0 += quads_per_flush) {
    int16x8_t a0 = vdupq_n_s16(0), a1 = vdupq_n_s16(0);  // rows 0-7, 8-15
    const int64_t q1 = std::min(quads, q0 + quads_per_flush);
    for (int64_t q = q0; q < q1; ++q) {
      const uint8x16_t v02 = vld1q_u8(g + q * 32), v13 = vld1q_u8(g + q * 32 + 16);
      const uint8x16_t idx[4] = {vandq_u8(v02, mask), vandq_u8(v13, mask), vshrq_n_u8(v02, 4), vshrq_n_u8(v13, 4)};
      const uint8_t* tq = tb + q * 128;
      for (int k = 0; k < 4; ++k) {
        const uint8_t* lo = tq + (k / 2) * 64 + (k % 2) * 16;
        const uint8x16_t l = vqtbl1q_u8(vld1q_u8(lo), idx[k]), h = vqtbl1q_u8(vld1q_u8(lo + 32), idx[k]);
        a0 = vaddq_s16(a0, vreinterpretq_s16_u8(vzip1q_u8(l, h)));
        a1 = vaddq_s16(a1, vreinterpretq_s16_u8(vzip2q_u8(l, h)));
      }
    }
    int32_t r[kLutRows];
    vst1q_s32(r, vmovl_s16(vget_low_s16(a0)));
    vst1q_s32(r + 4, vmovl_high_s16(a0));
    vst1q_s32(r + 8, vmovl_s16(vget_low_s16(a1)));
    vst1q_s32(r + 12, vmovl_high_s16(a1));
    totals.add_block(q0 / quads_per_flush, r);
  }
  totals.finish(act, y);
}

}  // namespace tokenscope::kernels::ternary::lut
