// The ternary MAD kernels (kernels/ternary) on every ISA against the scalar reference, bit for bit, and the
// reference against an exact evaluation, on ragged row lengths.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "formats/tensor_type.h"
#include "formats/ternary/ternary.h"
#include "isa_param.h"
#include "kernels/kernels.h"
#include "kernels/ternary/ternary_kernels.h"
#include "kernels/ternary/ternary_lut.h"

using namespace tokenscope;
using namespace tokenscope::kernels;
namespace lut = tokenscope::kernels::ternary::lut;

namespace {

const TensorType kTernary[] = {TensorType::TQ1_0, TensorType::TQ2_0, TensorType::I2_S, TensorType::IQ2_BN};

// rows x n ternary weights times a scale per block of 256 (so TQ1_0 / TQ2_0's block scales differ), in floats.
std::vector<float> ternary_weights(int64_t rows, int64_t n, uint32_t seed, bool one_scale) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> t(-1, 1);
  std::uniform_real_distribution<float> sc(0.01f, 0.1f);
  std::vector<float> w(static_cast<size_t>(rows * n));
  const float s0 = sc(rng);
  float s = s0;
  for (int64_t i = 0; i < rows * n; ++i) {
    if (i % 256 == 0 && !one_scale) s = sc(rng);
    w[static_cast<size_t>(i)] = static_cast<float>(t(rng)) * s;
  }
  return w;
}

std::vector<float> activations(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = nd(rng);
  for (int64_t i = 0; i < n; i += 61) x[static_cast<size_t>(i)] *= 6.f;  // outliers
  return x;
}

// Row lengths: one block, odd block counts (the two-block SIMD loops' tails) and BitNet-2B-like widths.
std::vector<int64_t> lengths(TensorType t) {
  const int64_t bs = type_traits(t).block_size;
  std::vector<int64_t> out;
  for (int64_t k : {1, 2, 3, 5, 9}) out.push_back(k * bs);
  for (int64_t n : {2560, 6912})
    if (n % bs == 0) out.push_back(n);
  return out;
}

class TernaryIsa : public tokenscope::testing::IsaTest {};

// Each ISA's i8_row quantizer writes exactly the scalar's bytes (quants, scale, block sums): on random rows with
// outliers, rows whose largest magnitude sits in the last lane or is negative, values exactly halfway between two
// quants (ties round to even), all zeros, and tiny values.
TEST_P(TernaryIsa, ActivationQuantizationIsExactlyTheScalars) {
  const ActLayout& ref = table(Isa::scalar).for_type(TensorType::I2_S).act;
  const ActLayout& act = table(GetParam()).for_type(TensorType::I2_S).act;
  int cases = 0;
  for (int64_t n : {64, 128, 192, 2560, 6912}) {
    for (int variant = 0; variant < 5; ++variant) {
      auto x = activations(n, static_cast<uint32_t>(n * 3 + variant));
      if (variant == 1) x[static_cast<size_t>(n - 1)] = -40.0f;  // the largest, negative, in the last lane
      if (variant == 2) {  // amax 127: x * 127 / amax is x itself, so halves are exact ties
        for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] = static_cast<float>(i % 255 - 127) / 2.0f;
        x[0] = 127.0f;
      }
      if (variant == 3) std::fill(x.begin(), x.end(), 0.0f);
      if (variant == 4)
        for (auto& v : x) v *= 1e-30f;
      std::vector<uint8_t> want(ref.row_bytes(n)), got(act.row_bytes(n), 0xAB);
      ref.quantize(x.data(), want.data(), n);
      act.quantize(x.data(), got.data(), n);
      ASSERT_EQ(got, want) << "n=" << n << " variant " << variant;
      ++cases;
    }
  }
  EXPECT_EQ(cases, 25);
}

TEST_P(TernaryIsa, VecDotMatchesScalarReferenceExactly) {
  const KernelTable& ref = table(Isa::scalar);
  const KernelTable& k = table(GetParam());
  int cases = 0;
  for (TensorType wt : kTernary) {
    const WeightKernels& rk = ref.for_type(wt);
    const WeightKernels& kk = k.for_type(wt);
    ASSERT_TRUE(kk.supported && kk.vec_dot) << type_name(wt);
    ASSERT_STREQ(kk.act.name, "i8_row") << type_name(wt);
    for (int64_t n : lengths(wt)) {
      const int64_t rows = 3;
      const auto wf = ternary_weights(rows, n, static_cast<uint32_t>(n) * 7 + static_cast<uint32_t>(wt), false);
      std::vector<uint8_t> w(tensor_bytes(wt, n, rows));
      quantize_tensor(wt, wf.data(), w.data(), rows, n);
      const size_t rb = row_size(wt, n);
      const auto x = activations(n, static_cast<uint32_t>(n) + 11);
      std::vector<uint8_t> a(rk.act.row_bytes(n)), a2(kk.act.row_bytes(n));
      rk.act.quantize(x.data(), a.data(), n);
      kk.act.quantize(x.data(), a2.data(), n);
      ASSERT_EQ(a, a2) << type_name(wt) << " n=" << n << ": the activation layouts differ";
      for (int64_t r = 0; r < rows; ++r) {
        const uint8_t* row = w.data() + static_cast<size_t>(r) * rb;
        const float want = rk.vec_dot(n, row, a.data());
        const float got = kk.vec_dot(n, row, a.data());
        EXPECT_EQ(std::memcmp(&want, &got, sizeof want), 0)
            << type_name(wt) << " n=" << n << " row " << r << ": " << got << " vs reference " << want;
        // The reference against the exact sum of dequantized weight times dequantized activation.
        std::vector<float> fw(static_cast<size_t>(n));
        dequantize_row(wt, row, fw.data(), n);
        float da;
        std::memcpy(&da, a.data() + n, sizeof da);
        double exact = 0, mag = 0;
        for (int64_t i = 0; i < n; ++i) {
          const double p = static_cast<double>(fw[i]) * static_cast<int8_t>(a[i]) * da;
          exact += p;
          mag += std::fabs(p);
        }
        EXPECT_NEAR(want, exact, 1e-5 * mag + 1e-6) << type_name(wt) << " n=" << n << " row " << r;
        ++cases;
      }
    }
  }
  EXPECT_GT(cases, 40);
}

// A ternary dot product with the activation sums left out would be off by the sum of the quants: a check that the
// layout's sums are what the kernels subtract (all weights +1 gives exactly sum(q) * d).
TEST_P(TernaryIsa, AllPlusOneWeightsGiveTheActivationSum) {
  const KernelTable& k = table(GetParam());
  for (TensorType wt : kTernary) {
    const int64_t n = 768;
    std::vector<float> wf(static_cast<size_t>(n), 0.5f);
    std::vector<uint8_t> w(tensor_bytes(wt, n, 1));
    quantize_tensor(wt, wf.data(), w.data(), 1, n);
    const auto x = activations(n, 5);
    std::vector<uint8_t> a(k.for_type(wt).act.row_bytes(n));
    k.for_type(wt).act.quantize(x.data(), a.data(), n);
    int64_t sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += static_cast<int8_t>(a[i]);
    float da;
    std::memcpy(&da, a.data() + n, sizeof da);
    const float scale = wt == TensorType::I2_S ? 1.0f : 0.5f;  // I2_S's scale is applied by the op
    EXPECT_FLOAT_EQ(k.for_type(wt).vec_dot(n, w.data(), a.data()), static_cast<float>(sum) * da * scale)
        << type_name(wt);
  }
}

// The packed (row-interleaved, 8 rows) multiply of 1 to 4 tokens (GemmPackedFn's limit) gives each row and token
// exactly the format's vec_dot, on every ISA, written at a row stride wider than the group.
TEST_P(TernaryIsa, PackedGemmMatchesTheDotExactly) {
  const KernelTable& ref = table(Isa::scalar);
  const KernelTable& k = table(GetParam());
  int cases = 0;
  for (TensorType wt : kTernary) {
    const WeightKernels& kk = k.for_type(wt);
    ASSERT_TRUE(kk.pack_rows && kk.gemm_packed && kk.packed_group_bytes) << type_name(wt);
    for (int64_t n : lengths(wt)) {
      const int64_t rows = kPackRows;
      const auto wf = ternary_weights(rows, n, static_cast<uint32_t>(n) * 5 + static_cast<uint32_t>(wt), false);
      std::vector<uint8_t> w(tensor_bytes(wt, n, rows));
      quantize_tensor(wt, wf.data(), w.data(), rows, n);
      const size_t rb = row_size(wt, n);
      std::vector<uint8_t> group(kk.packed_group_bytes(n));
      kk.pack_rows(w.data(), rb, n, group.data());
      const size_t ab = kk.act.row_bytes(n);
      constexpr int kMaxTokens = 4;
      constexpr int64_t ldy = kPackRows + 5;
      std::vector<uint8_t> act(kMaxTokens * ab);
      for (int t = 0; t < kMaxTokens; ++t) {
        const auto x = activations(n, static_cast<uint32_t>(n + 17 * t));
        kk.act.quantize(x.data(), act.data() + t * ab, n);
      }
      for (int nt = 1; nt <= kMaxTokens; ++nt) {
        std::vector<float> y(static_cast<size_t>(nt * ldy), -1.0f);
        kk.gemm_packed(n, group.data(), act.data(), ab, nullptr, nt, y.data(), ldy);
        for (int t = 0; t < nt; ++t)
          for (int r = 0; r < kPackRows; ++r) {
            const float want = ref.for_type(wt).vec_dot(n, w.data() + static_cast<size_t>(r) * rb, act.data() + t * ab);
            const float got = y[static_cast<size_t>(t * ldy + r)];
            EXPECT_EQ(std::memcmp(&want, &got, sizeof want), 0)
                << type_name(wt) << " n=" << n << " nt=" << nt << " token " << t << " row " << r << ": " << got
                << " vs " << want;
            ++cases;
          }
      }
    }
  }
  EXPECT_GT(cases, 1000);
}

// Large exact sums with scales of many mantissa bits (every weight +1 times a row's scale near 0.0111, activations
// between half and all of the largest quant): each block's d * isum does not fit a float exactly, so a multiply and
// add fused into one rounding (an FMA the compiler may form) would differ from the scalar; every ISA's dot and packed
// multiply must not.
TEST_P(TernaryIsa, LargeSumsRoundAsTheScalarDoes) {
  const KernelTable& ref = table(Isa::scalar);
  const KernelTable& k = table(GetParam());
  for (TensorType wt : kTernary) {
    const WeightKernels& kk = k.for_type(wt);
    const int64_t n = 2560, rows = kPackRows;
    std::vector<float> wf(static_cast<size_t>(rows * n)), x(static_cast<size_t>(n));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < n; ++i) wf[static_cast<size_t>(r * n + i)] = 0.0111f * (1.0f + static_cast<float>(r) / 17.0f);
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> big(0.5f, 1.0f);
    for (auto& v : x) v = big(rng);
    std::vector<uint8_t> w(tensor_bytes(wt, n, rows));
    quantize_tensor(wt, wf.data(), w.data(), rows, n);
    const size_t rb = row_size(wt, n);
    std::vector<uint8_t> act(kk.act.row_bytes(n));
    kk.act.quantize(x.data(), act.data(), n);
    std::vector<uint8_t> group(kk.packed_group_bytes(n));
    kk.pack_rows(w.data(), rb, n, group.data());
    std::vector<float> y(kPackRows);
    kk.gemm_packed(n, group.data(), act.data(), kk.act.row_bytes(n), nullptr, 1, y.data(), kPackRows);
    for (int r = 0; r < kPackRows; ++r) {
      const float want = ref.for_type(wt).vec_dot(n, w.data() + static_cast<size_t>(r) * rb, act.data());
      const float dot = kk.vec_dot(n, w.data() + static_cast<size_t>(r) * rb, act.data());
      EXPECT_EQ(std::memcmp(&want, &dot, sizeof want), 0) << type_name(wt) << " dot " << dot << " vs " << want;
      EXPECT_EQ(std::memcmp(&want, &y[static_cast<size_t>(r)], sizeof want), 0)
          << type_name(wt) << " packed " << y[static_cast<size_t>(r)] << " vs " << want;
    }
  }
}

// The LUT multiply (groups of 16 rows repacked into pair indices, per-token tables) gives each row exactly what the
// format's MAD dot product gives, on every ISA.
TEST_P(TernaryIsa, LutGemvMatchesTheMadDotExactly) {
  const KernelTable& ref = table(Isa::scalar);
  const lut::LutGemvFn gemv = lut::gemv_for(GetParam());
  int cases = 0;
  for (TensorType wt : kTernary) {
    for (int64_t n : lengths(wt)) {
      const int64_t rows = lut::kLutRows;
      const auto wf = ternary_weights(rows, n, static_cast<uint32_t>(n) * 3 + static_cast<uint32_t>(wt), false);
      std::vector<uint8_t> w(tensor_bytes(wt, n, rows));
      quantize_tensor(wt, wf.data(), w.data(), rows, n);
      const size_t rb = row_size(wt, n);
      std::vector<uint8_t> group(lut::group_bytes(wt, n));
      lut::pack_group(wt, w.data(), rb, n, group.data());
      const auto x = activations(n, static_cast<uint32_t>(n) + 5);
      std::vector<uint8_t> a(ref.for_type(wt).act.row_bytes(n)), tables(lut::table_bytes(n));
      ref.for_type(wt).act.quantize(x.data(), a.data(), n);
      lut::build_tables(a.data(), n, tables.data());
      float y[lut::kLutRows];
      gemv(wt, n, group.data(), tables.data(), a.data(), y);
      for (int64_t r = 0; r < rows; ++r) {
        const float want = ref.for_type(wt).vec_dot(n, w.data() + static_cast<size_t>(r) * rb, a.data());
        EXPECT_EQ(std::memcmp(&want, &y[r], sizeof want), 0)
            << type_name(wt) << " n=" << n << " row " << r << ": LUT " << y[r] << " vs MAD " << want;
        ++cases;
      }
    }
  }
  EXPECT_GT(cases, 200);
}

TS_INSTANTIATE_FOR_ISAS(TernaryIsa);

}  // namespace
