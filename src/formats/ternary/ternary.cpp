#include "formats/ternary/ternary.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/error.h"

namespace tokenscope {

namespace {

// x / scale rounded to the nearest of -1, 0, 1, as the code c = t + 1: ties away from zero, as lroundf then a clamp
// would give, by two comparisons (cheaper than lroundf on every weight); NaN gives 0.
uint8_t ternary_code(float x, float inv_scale) {
  const float y = x * inv_scale;
  return static_cast<uint8_t>(y >= 0.5f ? 2 : y <= -0.5f ? 0 : 1);
}

// Five (or four) base-3 codes, the first most significant, as TQ1_0 stores them: ceil(v * 256 / 243).
uint8_t pack_trits(const uint8_t* c, int count) {
  unsigned v = 0;
  for (int i = 0; i < count; ++i) v = v * 3 + c[i];
  if (count == 4) v *= 3;
  return static_cast<uint8_t>((v * 256 + 242) / 243);
}
uint8_t trit(uint8_t q, int n) {
  static constexpr uint8_t kPow3[5] = {1, 3, 9, 27, 81};
  const auto shifted = static_cast<uint8_t>(q * kPow3[n]);
  return static_cast<uint8_t>((static_cast<unsigned>(shifted) * 3) >> 8);
}

float block_amax(const float* x, int n) {
  float m = 0;
  for (int i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

}  // namespace

void tq1_0_codes(const BlockTQ1_0& b, uint8_t c[256]) {
  for (int n = 0; n < 5; ++n)
    for (int m = 0; m < 32; ++m) c[32 * n + m] = trit(b.qs[m], n);
  for (int n = 0; n < 5; ++n)
    for (int m = 0; m < 16; ++m) c[160 + 16 * n + m] = trit(b.qs[32 + m], n);
  for (int n = 0; n < 4; ++n)
    for (int j = 0; j < 4; ++j) c[240 + 4 * n + j] = trit(b.qh[j], n);
}

void tq2_0_codes(const BlockTQ2_0& b, uint8_t c[256]) {
  for (int j = 0; j < 2; ++j)
    for (int l = 0; l < 4; ++l)
      for (int m = 0; m < 32; ++m) c[128 * j + 32 * l + m] = (b.qs[32 * j + m] >> (2 * l)) & 3;
}

void i2_s_codes(const uint8_t block[32], uint8_t c[128]) {
  for (int g = 0; g < 4; ++g)
    for (int m = 0; m < 32; ++m) c[32 * g + m] = (block[m] >> (6 - 2 * g)) & 3;
}

void iq2_bn_codes(const BlockIQ2_BN& b, uint8_t c[64]) {
  for (int l = 0; l < 4; ++l)
    for (int j = 0; j < 16; ++j) c[16 * l + j] = (b.qs[j] >> (2 * l)) & 3;
}

void quantize_row_tq1_0(const float* x, void* dst, int64_t n) {
  TS_CHECK(n % QK_TQ == 0);
  auto* y = static_cast<BlockTQ1_0*>(dst);
  for (int64_t i = 0; i < n / QK_TQ; ++i, x += QK_TQ) {
    const float d = block_amax(x, QK_TQ);
    const float id = d != 0.f ? 1.f / d : 0.f;
    y[i].d = fp32_to_fp16(d);
    uint8_t c[256];
    for (int k = 0; k < QK_TQ; ++k) c[k] = ternary_code(x[k], id);
    uint8_t t[5];
    for (int m = 0; m < 32; ++m) {
      for (int k = 0; k < 5; ++k) t[k] = c[m + 32 * k];
      y[i].qs[m] = pack_trits(t, 5);
    }
    for (int m = 0; m < 16; ++m) {
      for (int k = 0; k < 5; ++k) t[k] = c[160 + m + 16 * k];
      y[i].qs[32 + m] = pack_trits(t, 5);
    }
    for (int j = 0; j < 4; ++j) {
      for (int k = 0; k < 4; ++k) t[k] = c[240 + j + 4 * k];
      y[i].qh[j] = pack_trits(t, 4);
    }
  }
}

void quantize_row_tq2_0(const float* x, void* dst, int64_t n) {
  TS_CHECK(n % QK_TQ == 0);
  auto* y = static_cast<BlockTQ2_0*>(dst);
  for (int64_t i = 0; i < n / QK_TQ; ++i, x += QK_TQ) {
    const float d = block_amax(x, QK_TQ);
    const float id = d != 0.f ? 1.f / d : 0.f;
    y[i].d = fp32_to_fp16(d);
    std::memset(y[i].qs, 0, sizeof(y[i].qs));
    for (int j = 0; j < 2; ++j)
      for (int l = 0; l < 4; ++l)
        for (int m = 0; m < 32; ++m)
          y[i].qs[32 * j + m] |= static_cast<uint8_t>(ternary_code(x[128 * j + 32 * l + m], id) << (2 * l));
  }
}

void quantize_row_iq2_bn(const float* x, void* dst, int64_t n) {
  TS_CHECK(n % QK_IQ2_BN == 0);
  const float d = block_amax(x, static_cast<int>(n));
  const float id = d != 0.f ? 1.f / d : 0.f;
  std::memcpy(dst, &d, sizeof d);
  auto* y = reinterpret_cast<BlockIQ2_BN*>(static_cast<uint8_t*>(dst) + kIQ2BNRowMeta);
  for (int64_t i = 0; i < n / QK_IQ2_BN; ++i, x += QK_IQ2_BN) {
    std::memset(y[i].qs, 0, sizeof(y[i].qs));
    for (int l = 0; l < 4; ++l)
      for (int j = 0; j < 16; ++j) y[i].qs[j] |= static_cast<uint8_t>(ternary_code(x[16 * l + j], id) << (2 * l));
  }
}

void quantize_tensor_i2_s(const float* x, void* dst, int64_t rows, int64_t cols) {
  TS_CHECK(cols % QK_I2_S == 0);
  const int64_t n = rows * cols;
  float scale = 0;
  for (int64_t i = 0; i < n; ++i) scale = std::max(scale, std::fabs(x[i]));
  const float id = scale != 0.f ? 1.f / scale : 0.f;
  auto* q = static_cast<uint8_t*>(dst);
  std::memset(q, 0, static_cast<size_t>(n / 4) + kI2STensorExtra);
  for (int64_t b = 0; b < n / QK_I2_S; ++b)
    for (int g = 0; g < 4; ++g)
      for (int m = 0; m < 32; ++m)
        q[32 * b + m] |= static_cast<uint8_t>(ternary_code(x[QK_I2_S * b + 32 * g + m], id) << (6 - 2 * g));
  std::memcpy(q + n / 4, &scale, sizeof scale);
}

void dequantize_row_tq1_0(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockTQ1_0*>(src);
  for (int64_t i = 0; i < n / QK_TQ; ++i, y += QK_TQ) {
    uint8_t c[256];
    tq1_0_codes(x[i], c);
    const float d = fp16_to_fp32(x[i].d);
    for (int k = 0; k < QK_TQ; ++k) y[k] = static_cast<float>(c[k] - 1) * d;
  }
}

void dequantize_row_tq2_0(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockTQ2_0*>(src);
  for (int64_t i = 0; i < n / QK_TQ; ++i, y += QK_TQ) {
    uint8_t c[256];
    tq2_0_codes(x[i], c);
    const float d = fp16_to_fp32(x[i].d);
    for (int k = 0; k < QK_TQ; ++k) y[k] = static_cast<float>(c[k] - 1) * d;
  }
}

void dequantize_row_iq2_bn(const void* src, float* y, int64_t n) {
  float d;
  std::memcpy(&d, src, sizeof d);
  const auto* x = reinterpret_cast<const BlockIQ2_BN*>(static_cast<const uint8_t*>(src) + kIQ2BNRowMeta);
  for (int64_t i = 0; i < n / QK_IQ2_BN; ++i, y += QK_IQ2_BN) {
    uint8_t c[64];
    iq2_bn_codes(x[i], c);
    for (int k = 0; k < QK_IQ2_BN; ++k) y[k] = static_cast<float>(c[k] - 1) * d;
  }
}

void dequantize_row_i2_s(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / QK_I2_S; ++b, y += QK_I2_S) {
    uint8_t c[128];
    i2_s_codes(x + 32 * b, c);
    for (int k = 0; k < QK_I2_S; ++k) y[k] = static_cast<float>(c[k] - 1);
  }
}

float i2_s_tensor_scale(const void* data, int64_t n_elements) {
  float s;
  std::memcpy(&s, static_cast<const uint8_t*>(data) + n_elements / 4, sizeof s);
  return s;
}

}  // namespace tokenscope
