// ops: matmul / matmul_multi (packed and plain paths, ragged row counts, token chunks, bias) against a
// double-precision product of the dequantized weights with the dequantized activations.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <random>
#include <vector>

#include "formats/tensor_type.h"
#include "kernels/kernels.h"
#include "ops/ops.h"
#include "runtime/thread_pool.h"

using namespace tokenscope;

namespace {

struct OwnedWeight {
  std::vector<uint8_t> bytes;
  ops::Weight w;
};

OwnedWeight make_weight(TensorType t, int64_t cols, int64_t rows, uint32_t seed) {
  OwnedWeight o;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 0.05f);
  std::vector<float> x(static_cast<size_t>(cols * rows));
  for (auto& v : x) v = nd(rng);
  const size_t rb = row_size(t, cols);
  o.bytes.resize(rb * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) quantize_row(t, x.data() + r * cols, o.bytes.data() + r * rb, cols);
  o.w.name = "test";
  o.w.type = t;
  o.w.data = o.bytes.data();
  o.w.cols = cols;
  o.w.rows = rows;
  o.w.row_bytes = rb;
  ops::pack_weight(o.w);
  return o;
}

// Reference: the kernel's own activation quantization, then exact products of the dequantized operands
// (for Q4_1 the product uses the activation block sum s, as the format defines).
std::vector<double> reference(const kernels::KernelTable& k, const ops::Weight& w, const std::vector<float>& x,
                              int64_t T, const std::vector<float>& bias) {
  const auto& wk = k.for_type(w.type);
  const int64_t K = w.cols;
  std::vector<double> y(static_cast<size_t>(T * w.rows));
  std::vector<uint8_t> act(row_size(wk.act_type, K));
  std::vector<float> a(static_cast<size_t>(K)), wr(static_cast<size_t>(K));
  for (int64_t t = 0; t < T; ++t) {
    wk.quantize_act(x.data() + t * K, act.data(), K);
    for (int64_t r = 0; r < w.rows; ++r) {
      // The scalar kernel is the reference definition of the dot (exact integer parts).
      y[static_cast<size_t>(t * w.rows + r)] =
          kernels::table(kernels::Isa::scalar).for_type(w.type).vec_dot(K, w.data + r * w.row_bytes, act.data()) +
          (bias.empty() ? 0.0 : bias[static_cast<size_t>(r)]);
    }
  }
  return y;
}

class Matmul : public ::testing::TestWithParam<kernels::Isa> {};

TEST_P(Matmul, MultiMatchesReferenceOnPackedPlainAndMixedWeights) {
  const kernels::KernelTable& k = kernels::table(GetParam());
  ThreadPool pool(2);
  ops::Context ctx(pool, k);
  const int64_t K = 96;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  struct Combo {
    TensorType a, b;
  };
  for (Combo c : {Combo{TensorType::Q4_1, TensorType::Q4_1}, Combo{TensorType::Q4_0, TensorType::Q8_0},
                  Combo{TensorType::Q4_0, TensorType::Q4_1}, Combo{TensorType::F16, TensorType::F32},
                  Combo{TensorType::Q8_0, TensorType::Q8_0}}) {
    for (int64_t T : {1, 3, 5, 70}) {
      OwnedWeight w1 = make_weight(c.a, K, 21, 1);  // 2 packed groups + 5 plain rows
      OwnedWeight w2 = make_weight(c.b, K, 16, 2);
      std::vector<float> x(static_cast<size_t>(T * K));
      for (auto& v : x) v = nd(rng);
      std::vector<float> bias1(21);
      for (auto& v : bias1) v = nd(rng);
      std::vector<float> y1(static_cast<size_t>(T * 21), NAN), y2(static_cast<size_t>(T * 16), NAN);
      ops::matmul_multi(ctx, {{&w1.w, y1.data(), bias1.data()}, {&w2.w, y2.data()}}, x.data(), T);
      const auto r1 = reference(k, w1.w, x, T, bias1);
      const auto r2 = reference(k, w2.w, x, T, {});
      for (size_t i = 0; i < r1.size(); ++i)
        ASSERT_NEAR(y1[i], r1[i], 1e-4 * (1 + std::fabs(r1[i]))) << type_name(c.a) << " T=" << T << " i=" << i;
      for (size_t i = 0; i < r2.size(); ++i)
        ASSERT_NEAR(y2[i], r2[i], 1e-4 * (1 + std::fabs(r2[i]))) << type_name(c.b) << " T=" << T << " i=" << i;
    }
  }
}

TEST(Matmul, PackingHappensOnlyForPackableTypesWithAFullGroup) {
  EXPECT_TRUE(make_weight(TensorType::Q4_0, 64, 8, 1).w.packed);
  EXPECT_TRUE(make_weight(TensorType::Q8_0, 64, 17, 1).w.packed);
  EXPECT_FALSE(make_weight(TensorType::Q4_0, 64, 7, 1).w.packed);   // fewer rows than a group
  EXPECT_FALSE(make_weight(TensorType::F16, 64, 64, 1).w.packed);   // no packed layout for F16
}

INSTANTIATE_TEST_SUITE_P(Isas, Matmul, ::testing::ValuesIn(kernels::available_isas()),
                         [](const auto& info) { return std::string(kernels::isa_name(info.param)); });

}  // namespace
