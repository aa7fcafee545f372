// The ternary formats' layouts (as the peers store them in GGUF), sizes, type ids and round trips.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "base/error.h"
#include "formats/tensor_type.h"
#include "formats/ternary/ternary.h"

using namespace tokenscope;

namespace {

// rows x n values in {-s, 0, s}, one s per tensor.
std::vector<float> ternary(int64_t count, float s, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> t(-1, 1);
  std::vector<float> v(static_cast<size_t>(count));
  for (auto& x : v) x = static_cast<float>(t(rng)) * s;
  return v;
}

TEST(Ternary, TypeIdsNamesAndSizes) {
  ASSERT_TRUE(type_traits_for_id(34) && type_traits_for_id(35) && type_traits_for_id(36) && type_traits_for_id(135));
  EXPECT_STREQ(type_traits_for_id(34)->name, "TQ1_0");
  EXPECT_STREQ(type_traits_for_id(35)->name, "TQ2_0");
  EXPECT_STREQ(type_traits_for_id(36)->name, "I2_S");  // not llama.cpp's retired IQ4_NL_4_4
  EXPECT_EQ(retired_type_name(36), nullptr);
  EXPECT_STREQ(type_traits_for_id(135)->name, "IQ2_BN");
  EXPECT_EQ(type_from_name("i2_s"), TensorType::I2_S);
  EXPECT_EQ(type_from_name("iq2_bn"), TensorType::IQ2_BN);
  EXPECT_EQ(row_size(TensorType::TQ1_0, 512), 108u);
  EXPECT_EQ(row_size(TensorType::TQ2_0, 512), 132u);
  EXPECT_EQ(row_size(TensorType::IQ2_BN, 128), 4u + 32u);        // the row's float scale, then 2 blocks
  EXPECT_EQ(tensor_bytes(TensorType::I2_S, 256, 3), 3u * 64u + 32u);  // N / 4 + 32, as bitnet.cpp sizes it
  EXPECT_EQ(tensor_bytes(TensorType::IQ2_BN, 128, 3), 3u * 36u);
}

// Where each element's code sits, checked one element at a time against the layouts in ternary.h.
TEST(Ternary, CodesSitWhereThePeersPutThem) {
  for (int e = 0; e < 256; e += 37) {
    std::vector<float> x(256, 0.0f);
    x[e] = 1.0f;  // code 2 at e, code 1 elsewhere
    BlockTQ2_0 b2;
    quantize_row(TensorType::TQ2_0, x.data(), &b2, 256);
    for (int i = 0; i < 64; ++i) {
      // Byte m of chunk j: element 128 j + 32 l + m in bits 2l; code 1 everywhere = 0x55, element e's pair is 2.
      uint8_t want = 0x55;
      for (int l = 0; l < 4; ++l)
        if (128 * (i / 32) + 32 * l + i % 32 == e) want = static_cast<uint8_t>((want & ~(3 << (2 * l))) | (2 << (2 * l)));
      EXPECT_EQ(b2.qs[i], want) << "TQ2_0 element " << e << " byte " << i;
    }
    EXPECT_EQ(fp16_to_fp32(b2.d), 1.0f);
    std::vector<uint8_t> i2(tensor_bytes(TensorType::I2_S, 256, 1));
    quantize_tensor(TensorType::I2_S, x.data(), i2.data(), 1, 256);
    for (int i = 0; i < 64; ++i) {
      uint8_t want = 0x55;
      for (int g = 0; g < 4; ++g)
        if (128 * (i / 32) + 32 * g + i % 32 == e) want = static_cast<uint8_t>((want & ~(3 << (6 - 2 * g))) | (2 << (6 - 2 * g)));
      EXPECT_EQ(i2[i], want) << "I2_S element " << e << " byte " << i;
    }
    float scale;
    std::memcpy(&scale, i2.data() + 64, 4);
    EXPECT_EQ(scale, 1.0f);
    std::vector<uint8_t> bn(row_size(TensorType::IQ2_BN, 256));
    quantize_row(TensorType::IQ2_BN, x.data(), bn.data(), 256);
    for (int i = 0; i < 64; ++i) {
      uint8_t want = 0x55;
      for (int l = 0; l < 4; ++l)
        if (64 * (i / 16) + 16 * l + i % 16 == e) want = static_cast<uint8_t>((want & ~(3 << (2 * l))) | (2 << (2 * l)));
      EXPECT_EQ(bn[4 + i], want) << "IQ2_BN element " << e << " byte " << i;
    }
  }
}

// TQ1_0's base-3 bytes: code digits c0..c4 (c0 most significant) stored as ceil(v * 256 / 243); llama.cpp's
// decoder (uint8(q * 3^n) * 3) >> 8 gives the digits back. All 243 five-digit values, and the 81 four-digit ones.
TEST(Ternary, Tq1_0BytesAreTheBase3ValuesScaled) {
  std::vector<float> x(256, 0.0f);
  for (int v = 0; v < 243; ++v) {
    int d[5], r = v;
    for (int k = 4; k >= 0; --k) d[k] = r % 3, r /= 3;
    for (int k = 0; k < 5; ++k) x[static_cast<size_t>(32 * k)] = static_cast<float>(d[k] - 1);  // byte qs[0]
    x[1] = 1.0f;  // keep the block's scale at 1
    BlockTQ1_0 b;
    quantize_row(TensorType::TQ1_0, x.data(), &b, 256);
    ASSERT_EQ(b.qs[0], static_cast<uint8_t>((v * 256 + 242) / 243)) << "value " << v;
    std::vector<float> y(256);
    dequantize_row(TensorType::TQ1_0, &b, y.data(), 256);
    for (int k = 0; k < 5; ++k) ASSERT_EQ(y[static_cast<size_t>(32 * k)], static_cast<float>(d[k] - 1)) << v;
  }
}

TEST(Ternary, RoundTripsAreExact) {
  for (TensorType t : {TensorType::TQ1_0, TensorType::TQ2_0, TensorType::I2_S, TensorType::IQ2_BN}) {
    for (int64_t n : {256, 768, 2560}) {
      const int64_t rows = 4;
      const float s = 0.0625f;  // exact in f16
      auto x = ternary(rows * n, s, static_cast<uint32_t>(n));
      for (int64_t r = 0; r < rows; ++r) x[static_cast<size_t>(r * n)] = s;  // every row (and block of 256) has a +s
      for (int64_t i = 0; i < rows * n; i += 256) x[static_cast<size_t>(i)] = s;
      std::vector<uint8_t> q(tensor_bytes(t, n, rows));
      quantize_tensor(t, x.data(), q.data(), rows, n);
      const float ts = tensor_scale(t, q.data(), rows * n);
      EXPECT_EQ(ts, t == TensorType::I2_S ? s : 1.0f);
      std::vector<float> y(static_cast<size_t>(n));
      for (int64_t r = 0; r < rows; ++r) {
        dequantize_row(t, q.data() + static_cast<size_t>(r) * row_size(t, n), y.data(), n);
        for (int64_t i = 0; i < n; ++i)
          ASSERT_EQ(y[static_cast<size_t>(i)] * ts, x[static_cast<size_t>(r * n + i)])
              << type_name(t) << " n=" << n << " row " << r << " element " << i;
      }
    }
  }
}

TEST(Ternary, PerTensorFormatRefusesRowQuantizationWithAClearError) {
  std::vector<float> x(128, 1.0f);
  std::vector<uint8_t> q(64);
  try {
    quantize_row(TensorType::I2_S, x.data(), q.data(), 128);
    FAIL() << "quantize_row(I2_S) should refuse";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("I2_S has one scale per tensor"), std::string::npos) << e.what();
  }
}

}  // namespace
