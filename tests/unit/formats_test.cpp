// Tensor formats: traits, known block values, quantize/dequantize round trips.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "base/error.h"
#include "base/fp16.h"
#include "formats/blocks.h"
#include "formats/quant_ref.h"
#include "formats/tensor_type.h"

using namespace tokenscope;

namespace {

std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

TEST(Formats, TraitsMatchGgufFacts) {
  EXPECT_EQ(type_traits(TensorType::Q4_0).type_size, 18u);
  EXPECT_EQ(type_traits(TensorType::Q4_K).block_size, 256);
  EXPECT_EQ(type_traits(TensorType::Q6_K).type_size, 210u);
  EXPECT_EQ(row_size(TensorType::Q8_0, 576), 18u * 34u);
  EXPECT_EQ(row_size(TensorType::BF16, 10), 20u);
  EXPECT_EQ(type_from_name("q4_k"), TensorType::Q4_K);
  EXPECT_EQ(type_from_name("BF16"), TensorType::BF16);
  EXPECT_FALSE(type_from_name("q4_9").has_value());
  EXPECT_FALSE(type_traits_for_id(4).has_value());
  EXPECT_STREQ(retired_type_name(4), "Q4_2");
  EXPECT_FALSE(type_traits_for_id(1000).has_value());
  EXPECT_EQ(type_traits_for_id(12)->type, TensorType::Q4_K);
}

TEST(Formats, KnownBlockValues) {
  // Q4_0: d = 0.5, nibble 3 in the low half, 12 in the high half: (3-8)*0.5 and (12-8)*0.5.
  BlockQ4_0 q40{};
  q40.d = fp32_to_fp16(0.5f);
  std::memset(q40.qs, 0xC3, sizeof(q40.qs));
  float out[256];
  dequantize_row(TensorType::Q4_0, &q40, out, 32);
  EXPECT_EQ(out[0], -2.5f);
  EXPECT_EQ(out[16], 2.0f);
  // Q4_1: x = d*q + m.
  BlockQ4_1 q41{};
  q41.d = fp32_to_fp16(0.25f);
  q41.m = fp32_to_fp16(-1.0f);
  std::memset(q41.qs, 0xF0, sizeof(q41.qs));
  dequantize_row(TensorType::Q4_1, &q41, out, 32);
  EXPECT_EQ(out[3], -1.0f);
  EXPECT_EQ(out[20], 2.75f);
  // Q8_0.
  BlockQ8_0 q80{};
  q80.d = fp32_to_fp16(0.125f);
  for (int i = 0; i < 32; ++i) q80.qs[i] = static_cast<int8_t>(i - 16);
  dequantize_row(TensorType::Q8_0, &q80, out, 32);
  EXPECT_EQ(out[0], -2.0f);
  EXPECT_EQ(out[31], 1.875f);
  // Q4_K: sub-block 1 has scale 2, min 3 (6-bit fields), d = 1, dmin = 0.5: x = 2*q - 1.5.
  BlockQ4_K q4k{};
  q4k.d = fp32_to_fp16(1.0f);
  q4k.dmin = fp32_to_fp16(0.5f);
  uint8_t sc[8] = {1, 2, 0, 0, 0, 0, 0, 40}, mn[8] = {0, 3, 0, 0, 0, 0, 0, 50};
  pack_scale_min_k4(sc, mn, q4k.scales);
  for (int j = 0; j < 8; ++j) {
    uint8_t s, m;
    get_scale_min_k4(j, q4k.scales, &s, &m);
    EXPECT_EQ(s, sc[j]);
    EXPECT_EQ(m, mn[j]);
  }
  std::memset(q4k.qs, 0x75, sizeof(q4k.qs));  // low nibble 5 (sub-block 0), high nibble 7 (sub-block 1)
  dequantize_row(TensorType::Q4_K, &q4k, out, 256);
  EXPECT_EQ(out[0], 5.0f);          // 1*1*5 - 0
  EXPECT_EQ(out[32], 2 * 7 - 1.5f);  // sub-block 1
  EXPECT_EQ(out[255], 40 * 7 - 25.0f);
  // Q6_K: all levels 32 + 5 with scale 3 and d = 0.5: x = 0.5*3*5 = 7.5 everywhere.
  BlockQ6_K q6k{};
  q6k.d = fp32_to_fp16(0.5f);
  for (auto& s : q6k.scales) s = 3;
  std::memset(q6k.ql, 0x55, sizeof(q6k.ql));  // low 4 bits of 37 = 5 in both nibbles
  std::memset(q6k.qh, 0xAA, sizeof(q6k.qh));  // high 2 bits of 37 = 2 in every 2-bit field
  dequantize_row(TensorType::Q6_K, &q6k, out, 256);
  for (int i = 0; i < 256; ++i) ASSERT_EQ(out[i], 7.5f) << i;
}

// Round trip error relative to the block's range; bound per format.
TEST(Formats, RoundTripsWithinFormatPrecision) {
  struct Case { TensorType t; double max_rel; };
  const Case cases[] = {{TensorType::F32, 0},        {TensorType::F16, 1e-3},     {TensorType::BF16, 8e-3},
                        {TensorType::Q8_0, 1.0 / 127}, {TensorType::Q4_0, 1.0 / 8}, {TensorType::Q4_1, 1.0 / 15},
                        {TensorType::Q4_K, 0.1},      {TensorType::Q5_K, 0.05},    {TensorType::Q6_K, 0.03},
                        {TensorType::Q8_K, 1.0 / 127}};
  for (const Case& c : cases) {
    const int64_t n = 1024;
    const auto x = randn(n, 3);
    std::vector<uint8_t> q(row_size(c.t, n));
    std::vector<float> y(n);
    quantize_row(c.t, x.data(), q.data(), n);
    dequantize_row(c.t, q.data(), y.data(), n);
    double amax = 0, worst = 0, err2 = 0, sig2 = 0;
    for (int64_t i = 0; i < n; ++i) {
      amax = std::max(amax, std::fabs(static_cast<double>(x[i])));
      worst = std::max(worst, std::fabs(static_cast<double>(x[i]) - y[i]));
      err2 += (x[i] - y[i]) * (x[i] - y[i]);
      sig2 += x[i] * x[i];
    }
    EXPECT_LE(worst, c.max_rel * amax + 1e-7) << type_name(c.t);
    // Requantizing the dequantized values reproduces them (the stored block is self-consistent).
    std::vector<uint8_t> q2(q.size());
    std::vector<float> y2(n);
    quantize_row(c.t, y.data(), q2.data(), n);
    dequantize_row(c.t, q2.data(), y2.data(), n);
    double drift = 0;
    for (int64_t i = 0; i < n; ++i) drift = std::max(drift, std::fabs(static_cast<double>(y[i]) - y2[i]));
    EXPECT_LE(drift, c.max_rel * amax + 1e-7) << type_name(c.t);
    std::printf("%-5s rmse/rms %.5f\n", type_name(c.t), std::sqrt(err2 / sig2));
  }
}

TEST(Formats, Q8_0MatchesGgmlReferenceRounding) {
  // amax 12.7 -> d = 0.1; 0.05 * 10 = 0.5 rounds away from zero (roundf) to 1.
  std::vector<float> x(32, 0.0f);
  x[0] = 12.7f;
  x[1] = -6.35f;
  x[2] = 0.26f;
  BlockQ8_0 b{};
  quantize_row(TensorType::Q8_0, x.data(), &b, 32);
  EXPECT_EQ(b.qs[0], 127);
  EXPECT_EQ(b.qs[1], -64);  // -63.5 -> -64
  EXPECT_EQ(b.qs[2], 3);
  EXPECT_EQ(fp16_to_fp32(b.d), fp16_to_fp32(fp32_to_fp16(12.7f / 127)));
}

TEST(Formats, BadRowLengthsAndUnsupportedTypesAreErrors) {
  std::vector<float> x(48);
  std::vector<uint8_t> q(64);
  EXPECT_THROW(quantize_row(TensorType::Q4_0, x.data(), q.data(), 48), Error);
  EXPECT_THROW(dequantize_row(TensorType::IQ2_XXS, q.data(), x.data(), 256), Error);
  try {
    dequantize_row(TensorType::IQ2_XXS, q.data(), x.data(), 256);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("IQ2_XXS"), std::string::npos);
  }
}

TEST(Formats, HalfAndBfloatConversions) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_fp32(static_cast<f16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(fp32_to_fp16(f), h) << h;  // every half survives a round trip
  }
  EXPECT_EQ(fp32_to_fp16(65520.f), 0x7C00);  // rounds to inf
  EXPECT_EQ(bf16_to_fp32(fp32_to_bf16(1.00390625f)), 1.0f);  // tie to even
  EXPECT_EQ(bf16_to_fp32(fp32_to_bf16(3.0f)), 3.0f);
}

}  // namespace
