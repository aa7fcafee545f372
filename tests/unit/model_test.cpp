// The forward pass against a plain double-precision reference on small random models (llama, qwen2 and
// BitNet wiring: GQA, RoPE styles, biases, tied/untied output, sub-norms, squared ReLU, per-tensor scales), and
// KV-cache consistency.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "base/error.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "paged_cache.h"
#include "model_builder.h"
#include "test_util.h"

using namespace tokenscope;
using namespace tokenscope::testing;

namespace {

float fp32_of(const gguf::File& f, const std::string& name) {
  float v;
  std::memcpy(&v, f.tensor_data(f.tensor(name)), 4);
  return v;
}

std::vector<double> tensor_f64(const gguf::File& f, const std::string& name) {
  const gguf::TensorInfo& t = f.tensor(name);
  std::vector<float> tmp(static_cast<size_t>(t.n_elements));
  const int64_t cols = t.dims[0];
  const size_t rb = row_size(t.type, cols);
  for (int64_t r = 0; r < t.n_elements / cols; ++r)
    dequantize_row(t.type, f.tensor_data(t) + static_cast<size_t>(r) * rb, tmp.data() + r * cols, cols);
  // The format's per-tensor scale (I2_S) and llama.cpp's bitnet one-element .scale tensors.
  double scale = tensor_scale(t.type, f.tensor_data(t), t.n_elements);
  const std::string base = name.size() > 7 ? name.substr(0, name.size() - 7) : name;  // minus ".weight"
  if (name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0 && f.find_tensor(base + ".scale"))
    scale *= fp32_of(f, base + ".scale");
  std::vector<double> out(tmp.begin(), tmp.end());
  for (double& v : out) v *= scale;
  return out;
}

// y[rows] = W[rows][cols] x
std::vector<double> mv(const std::vector<double>& W, const std::vector<double>& x, int64_t rows, int64_t cols) {
  std::vector<double> y(static_cast<size_t>(rows), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) y[static_cast<size_t>(r)] += W[static_cast<size_t>(r * cols + c)] * x[static_cast<size_t>(c)];
  return y;
}

std::vector<double> rms(const std::vector<double>& x, const std::vector<double>& w, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double sc = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * sc * w[i];
  return y;
}

void rope_ref(std::vector<double>& v, int64_t n_heads, int64_t hd, int64_t pos, double base, bool neox) {
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t i = 0; i < hd / 2; ++i) {
      const double theta = static_cast<double>(pos) * std::pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(hd));
      const int64_t a = h * hd + (neox ? i : 2 * i), b = h * hd + (neox ? i + hd / 2 : 2 * i + 1);
      const double x0 = v[static_cast<size_t>(a)], x1 = v[static_cast<size_t>(b)];
      v[static_cast<size_t>(a)] = x0 * std::cos(theta) - x1 * std::sin(theta);
      v[static_cast<size_t>(b)] = x0 * std::sin(theta) + x1 * std::cos(theta);
    }
}

// Logits of every position of `tokens`, in double precision with no quantized activations.
std::vector<std::vector<double>> reference_logits(const gguf::File& f, const ModelConfig& c,
                                                  const std::vector<int32_t>& tokens) {
  const int64_t D = c.n_embd, hd = c.head_dim, H = c.n_head, Hkv = c.n_head_kv, kvd = Hkv * hd, F = c.n_ff;
  const bool qwen = c.arch == "qwen2";
  const bool bitnet = c.arch.rfind("bitnet", 0) == 0, relu_sqr = bitnet && c.arch != "bitnet";
  const bool neox = qwen || bitnet;  // RoPE on each head's halves, as llama.cpp runs these architectures
  auto emb = tensor_f64(f, "token_embd.weight");
  auto out_w = f.find_tensor("output.weight") ? tensor_f64(f, "output.weight") : emb;
  auto out_norm = tensor_f64(f, "output_norm.weight");
  std::vector<std::vector<std::vector<double>>> Kc(static_cast<size_t>(c.n_layer)), Vc(static_cast<size_t>(c.n_layer));
  std::vector<std::vector<double>> result;
  for (size_t t = 0; t < tokens.size(); ++t) {
    std::vector<double> x(emb.begin() + tokens[t] * D, emb.begin() + (tokens[t] + 1) * D);
    for (int64_t il = 0; il < c.n_layer; ++il) {
      const std::string p = "blk." + std::to_string(il) + ".";
      auto h = rms(x, tensor_f64(f, p + "attn_norm.weight"), c.norm_eps);
      auto q = mv(tensor_f64(f, p + "attn_q.weight"), h, H * hd, D);
      auto k = mv(tensor_f64(f, p + "attn_k.weight"), h, kvd, D);
      auto v = mv(tensor_f64(f, p + "attn_v.weight"), h, kvd, D);
      if (qwen) {
        auto bq = tensor_f64(f, p + "attn_q.bias"), bk = tensor_f64(f, p + "attn_k.bias"), bv = tensor_f64(f, p + "attn_v.bias");
        for (size_t i = 0; i < q.size(); ++i) q[i] += bq[i];
        for (size_t i = 0; i < k.size(); ++i) { k[i] += bk[i]; v[i] += bv[i]; }
      }
      rope_ref(q, H, hd, static_cast<int64_t>(t), c.rope_freq_base, neox);
      rope_ref(k, Hkv, hd, static_cast<int64_t>(t), c.rope_freq_base, neox);
      Kc[static_cast<size_t>(il)].push_back(k);
      Vc[static_cast<size_t>(il)].push_back(v);
      std::vector<double> att(static_cast<size_t>(H * hd), 0.0);
      for (int64_t hh = 0; hh < H; ++hh) {
        const int64_t kvh = hh / (H / Hkv);
        std::vector<double> s(t + 1);
        double mx = -1e300;
        for (size_t j = 0; j <= t; ++j) {
          double d = 0;
          for (int64_t i = 0; i < hd; ++i) d += q[static_cast<size_t>(hh * hd + i)] * Kc[static_cast<size_t>(il)][j][static_cast<size_t>(kvh * hd + i)];
          s[j] = d / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (double& e : s) { e = std::exp(e - mx); sum += e; }
        for (size_t j = 0; j <= t; ++j)
          for (int64_t i = 0; i < hd; ++i)
            att[static_cast<size_t>(hh * hd + i)] += s[j] / sum * Vc[static_cast<size_t>(il)][j][static_cast<size_t>(kvh * hd + i)];
      }
      if (bitnet) att = rms(att, tensor_f64(f, p + "attn_sub_norm.weight"), c.norm_eps);
      auto o = mv(tensor_f64(f, p + "attn_output.weight"), att, D, H * hd);
      for (int64_t i = 0; i < D; ++i) x[static_cast<size_t>(i)] += o[static_cast<size_t>(i)];
      auto h2 = rms(x, tensor_f64(f, p + "ffn_norm.weight"), c.norm_eps);
      auto g = mv(tensor_f64(f, p + "ffn_gate.weight"), h2, F, D);
      auto u = mv(tensor_f64(f, p + "ffn_up.weight"), h2, F, D);
      for (int64_t i = 0; i < F; ++i) {
        double& gi = g[static_cast<size_t>(i)];
        gi = relu_sqr ? std::max(gi, 0.0) * std::max(gi, 0.0) * u[static_cast<size_t>(i)]
                      : gi / (1 + std::exp(-gi)) * u[static_cast<size_t>(i)];
      }
      if (bitnet) g = rms(g, tensor_f64(f, p + "ffn_sub_norm.weight"), c.norm_eps);
      auto d = mv(tensor_f64(f, p + "ffn_down.weight"), g, D, F);
      for (int64_t i = 0; i < D; ++i) x[static_cast<size_t>(i)] += d[static_cast<size_t>(i)];
    }
    result.push_back(mv(out_w, rms(x, out_norm, c.norm_eps), c.n_vocab, D));
  }
  return result;
}

struct Case {
  const char* arch;
  TensorType wtype;
  bool tied;
  double tol;  // max |engine - reference| relative to the logits' max magnitude
  bool matrix_scales = false;
};

class TinyModel : public ::testing::TestWithParam<Case> {};

TEST_P(TinyModel, MatchesDoublePrecisionReferenceAtEveryPosition) {
  const Case cs = GetParam();
  TinyModelSpec spec;
  spec.arch = cs.arch;
  spec.wtype = cs.wtype;
  spec.tied = cs.tied;
  spec.matrix_scales = cs.matrix_scales;
  if (tiny_is_bitnet(spec)) {  // rows that fit every ternary format's blocks (256)
    spec.n_embd = 256;
    spec.n_ff = 512;
  }
  const std::string path = temp_path(std::string("tiny-") + cs.arch + "-" + type_name(cs.wtype) + ".gguf");
  build_tiny_model(spec).write(path);
  auto model = Model::load(path);
  const ModelConfig& c = model->config();
  EXPECT_EQ(c.rope_style, std::string(cs.arch) == "qwen2" || tiny_is_bitnet(spec) ? ops::RopeStyle::neox : ops::RopeStyle::normal);
  EXPECT_EQ(c.sub_norms, tiny_is_bitnet(spec));
  EXPECT_EQ(c.relu_sqr_ffn, tiny_is_bitnet(spec) && spec.arch != "bitnet");
  const std::vector<int32_t> tokens = {72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100, 33};
  auto ref = reference_logits(model->file(), c, tokens);

  for (kernels::Isa isa : kernels::available_isas()) {
    ThreadPool pool(2);
    ops::Context ctx(pool, kernels::table(isa));
    PagedCache kv(c, 64, TensorType::F16, /*shuffled=*/true);
    Forward fwd(*model);
    // prefill 9 tokens with all logits (the flash-style prefill attention), then decode the rest one at a time
    constexpr size_t kPrefill = 9;
    std::vector<float> all(kPrefill * static_cast<size_t>(c.n_vocab)), last(static_cast<size_t>(c.n_vocab));
    kv.eval(fwd, ctx, tokens.data(), kPrefill, 0, last.data(), all.data());
    auto check = [&](const float* got, size_t pos) {
      double mag = 0, err = 0;
      for (int64_t i = 0; i < c.n_vocab; ++i) {
        mag = std::max(mag, std::fabs(ref[pos][static_cast<size_t>(i)]));
        err = std::max(err, std::fabs(got[i] - ref[pos][static_cast<size_t>(i)]));
      }
      EXPECT_LT(err / mag, cs.tol) << "isa " << kernels::isa_name(isa) << " position " << pos;
    };
    for (size_t p = 0; p < kPrefill; ++p) check(all.data() + p * static_cast<size_t>(c.n_vocab), p);
    for (size_t p = kPrefill; p < tokens.size(); ++p) {
      kv.eval(fwd, ctx, tokens.data() + p, 1, static_cast<int64_t>(p), last.data());
      check(last.data(), p);
    }
  }
}

// F32 weights: only the F16 KV cache and f16 attention probabilities differ from the reference (~1e-3).
// Q8_0/Q4_0/Q4_1 weights: the reference dequantizes the same weights, so the remaining error is the
// 8-bit activation quantization (~1% of each dot product's scale, partly averaging out).
INSTANTIATE_TEST_SUITE_P(Archs, TinyModel,
                         ::testing::Values(Case{"llama", TensorType::F32, true, 5e-3},
                                           Case{"qwen2", TensorType::F32, false, 5e-3},
                                           Case{"llama", TensorType::Q8_0, true, 3e-2},
                                           Case{"llama", TensorType::Q4_1, false, 3e-2},
                                           Case{"qwen2", TensorType::Q4_0, true, 3e-2},
                                           // The ternary weights are exact in both; the int8 activations (one
                                           // scale per row) are the error, as for the 8-bit formats above.
                                           Case{"bitnet-b1.58", TensorType::I2_S, true, 3e-2},
                                           Case{"bitnet-b1.58", TensorType::TQ2_0, false, 3e-2},
                                           Case{"bitnet-25", TensorType::IQ2_BN, true, 3e-2},
                                           Case{"bitnet", TensorType::TQ1_0, true, 3e-2, true}),
                         [](const auto& info) {
                           std::string arch = info.param.arch;
                           for (char& ch : arch)
                             if (ch == '-' || ch == '.') ch = '_';
                           return arch + "_" + type_name(info.param.wtype) +
                                  (info.param.tied ? "_tied" : "_untied");
                         });

// The prefill (flash-style attention, f32 probabilities) against token-by-token decode (llama.cpp's
// non-flash rounding points: f16 probabilities): F32 weights, so no int8 activation rounding amplifies
// the difference (with Q4_1 weights one flipped rounding moved logits by 0.1 of 18).
// The same ternary weights (one seed, one power-of-two scale) in I2_S, TQ2_0, IQ2_BN and TQ1_0, through the MAD and
// the LUT kernels: every format and kernel computes the same integer sums and, the scale being exact, the same
// floats, so greedy decoding gives the same tokens and the logits agree bit for bit, on every ISA.
TEST(Forward, TernaryFormatsOfTheSameWeightsDecodeIdentically) {
  const std::vector<int32_t> prompt = {72, 101, 108, 108, 111};
  constexpr int kGen = 12;
  struct ModeReset {
    ~ModeReset() { kernels::select_ternary_kernel(kernels::TernaryKernel::mad); }
  } reset;
  for (kernels::Isa isa : kernels::available_isas()) {
    std::vector<int32_t> first_tokens;
    std::vector<float> first_logits;
    for (auto [t, mode] : {std::pair{TensorType::I2_S, kernels::TernaryKernel::mad}, {TensorType::TQ2_0, kernels::TernaryKernel::mad},
                           {TensorType::IQ2_BN, kernels::TernaryKernel::mad}, {TensorType::TQ1_0, kernels::TernaryKernel::mad},
                           {TensorType::I2_S, kernels::TernaryKernel::lut}, {TensorType::TQ2_0, kernels::TernaryKernel::lut},
                           {TensorType::IQ2_BN, kernels::TernaryKernel::automatic},
                           {TensorType::TQ1_0, kernels::TernaryKernel::automatic}}) {
      kernels::select_ternary_kernel(mode);
      TinyModelSpec spec;
      spec.arch = "bitnet-b1.58";
      spec.wtype = t;
      spec.n_embd = 256;
      spec.n_ff = 512;
      spec.seed = 7;
      spec.tied = false;  // a tied output mostly repeats the input token in a random tiny model
      const std::string path = temp_path(std::string("tiny-bitnet-") + type_name(t) + ".gguf");
      build_tiny_model(spec).write(path);
      auto model = Model::load(path);
      if (mode != kernels::TernaryKernel::automatic) {  // auto keeps a LUT copy only where it measured faster
        EXPECT_EQ(model->layer(0).wq.lut != nullptr, mode == kernels::TernaryKernel::lut);
      }
      const int64_t V = model->config().n_vocab;
      ThreadPool pool(2);
      ops::Context ctx(pool, kernels::table(isa));
      PagedCache kv(model->config(), 64);
      Forward fwd(*model);
      std::vector<float> last(static_cast<size_t>(V)), logits;
      std::vector<int32_t> tokens;
      kv.eval(fwd, ctx, prompt.data(), static_cast<int64_t>(prompt.size()), 0, last.data());
      for (int i = 0; i < kGen; ++i) {
        logits.insert(logits.end(), last.begin(), last.end());
        const auto next = static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin());
        tokens.push_back(next);
        kv.eval(fwd, ctx, &next, 1, static_cast<int64_t>(prompt.size()) + i, last.data());
      }
      if (first_tokens.empty()) {
        first_tokens = tokens;
        first_logits = logits;
        // Not a degenerate model: the greedy tokens are not all one token.
        EXPECT_NE(std::count(tokens.begin(), tokens.end(), tokens[0]), kGen) << "isa " << kernels::isa_name(isa);
        continue;
      }
      const std::string what = std::string(type_name(t)) + " " + kernels::ternary_kernel_name(mode) +
                               " vs I2_S mad, isa " + kernels::isa_name(isa);
      EXPECT_EQ(tokens, first_tokens) << what;
      EXPECT_EQ(std::memcmp(logits.data(), first_logits.data(), logits.size() * sizeof(float)), 0) << what << " (logits)";
    }
  }
}

TEST(Forward, PrefillInOneCallEqualsTokenByToken) {
  TinyModelSpec spec;
  spec.wtype = TensorType::F32;
  const std::string path = temp_path("tiny-kv.gguf");
  build_tiny_model(spec).write(path);
  auto model = Model::load(path);
  const int64_t V = model->config().n_vocab;
  const std::vector<int32_t> tokens = {1, 50, 99, 120, 7, 200, 3, 88, 64, 10};
  ThreadPool pool(2);
  ops::Context ctx(pool, kernels::active());
  PagedCache kv1(model->config(), 32), kv2(model->config(), 32);
  Forward f1(*model), f2(*model);
  std::vector<float> a(static_cast<size_t>(V)), b(static_cast<size_t>(V));
  kv1.eval(f1, ctx, tokens.data(), static_cast<int64_t>(tokens.size()), 0, a.data());
  for (size_t i = 0; i < tokens.size(); ++i) kv2.eval(f2, ctx, &tokens[i], 1, static_cast<int64_t>(i), b.data());
  double mag = 0, err = 0;
  for (int64_t i = 0; i < V; ++i) {
    mag = std::max(mag, std::fabs(double{b[static_cast<size_t>(i)]}));
    err = std::max(err, std::fabs(double{a[static_cast<size_t>(i)]} - b[static_cast<size_t>(i)]));
  }
  EXPECT_LT(err / mag, 1e-3) << "largest logit difference " << err << " of " << mag;  // measured 1.7e-4
}

// The same with a Q8_0 cache: the prompt goes through the f16 staging copy and the flash path, the tokens one
// at a time through the Q8_0 decode path (query quantized to Q8_0, integer scores), so the two agree only to
// the query's 8-bit rounding; and both stay close to the f16 cache's logits.
TEST(Forward, Q8_0CachePrefillAndDecodeAgree) {
  TinyModelSpec spec;
  spec.wtype = TensorType::F32;
  spec.n_head = 2;  // heads of 32: one Q8_0 block
  spec.n_head_kv = 1;
  const std::string path = temp_path("tiny-kv-q8.gguf");
  build_tiny_model(spec).write(path);
  auto model = Model::load(path);
  const int64_t V = model->config().n_vocab;
  const std::vector<int32_t> tokens = {1, 50, 99, 120, 7, 200, 3, 88, 64, 10, 33, 150};
  ThreadPool pool(2);
  ops::Context ctx(pool, kernels::active());
  PagedCache kv1(model->config(), 32, TensorType::Q8_0), kv2(model->config(), 32, TensorType::Q8_0, true),
      kv3(model->config(), 32);
  Forward f1(*model), f2(*model), f3(*model);
  std::vector<float> a(static_cast<size_t>(V)), b(static_cast<size_t>(V)), c(static_cast<size_t>(V));
  kv1.eval(f1, ctx, tokens.data(), static_cast<int64_t>(tokens.size()), 0, a.data());
  for (size_t i = 0; i < tokens.size(); ++i) kv2.eval(f2, ctx, &tokens[i], 1, static_cast<int64_t>(i), b.data());
  kv3.eval(f3, ctx, tokens.data(), static_cast<int64_t>(tokens.size()), 0, c.data());
  double mag = 0, err_ab = 0, err_ac = 0;
  for (int64_t i = 0; i < V; ++i) {
    const auto k = static_cast<size_t>(i);
    mag = std::max(mag, std::fabs(double{c[k]}));
    err_ab = std::max(err_ab, std::fabs(double{a[k]} - b[k]));
    err_ac = std::max(err_ac, std::fabs(double{a[k]} - c[k]));
  }
  // Measured 3.9e-3 and 3.1e-3.
  EXPECT_LT(err_ab / mag, 2e-2) << "prefill vs decode, q8_0 cache: " << err_ab << " of " << mag;
  EXPECT_LT(err_ac / mag, 2e-2) << "q8_0 vs f16 cache: " << err_ac << " of " << mag;
  EXPECT_GT(err_ac, 0.0) << "the q8_0 cache rounds the keys and values: some difference is expected";
  std::printf("q8_0 cache: prefill vs decode %.2e, vs f16 cache %.2e (relative to the largest logit)\n", err_ab / mag,
              err_ac / mag);
}

// A cache rolled back to position 0 (a new sequence after a longer one, in the same pages) decodes exactly like
// a fresh cache: the stale keys and values past the new sequence never reach an output.
TEST(Forward, RolledBackCacheDecodesLikeAFreshOne) {
  TinyModelSpec spec;
  spec.wtype = TensorType::Q4_1;
  const std::string path = temp_path("tiny-rollback.gguf");
  build_tiny_model(spec).write(path);
  auto model = Model::load(path);
  const int64_t V = model->config().n_vocab;
  ThreadPool pool(2);
  ops::Context ctx(pool, kernels::active());
  PagedCache used(model->config(), 64), fresh(model->config(), 64);
  Forward f1(*model), f2(*model);
  std::vector<float> a(static_cast<size_t>(V)), b(static_cast<size_t>(V));
  std::vector<int32_t> longer(40);
  for (size_t i = 0; i < longer.size(); ++i) longer[i] = static_cast<int32_t>((i * 37 + 5) % 250);
  used.eval(f1, ctx, longer.data(), 30, 0, a.data());
  for (int64_t p = 30; p < 40; ++p) used.eval(f1, ctx, &longer[static_cast<size_t>(p)], 1, p, a.data());
  const std::vector<int32_t> tokens = {3, 141, 59, 26, 53};
  for (size_t i = 0; i < tokens.size(); ++i) {
    used.eval(f1, ctx, &tokens[i], 1, static_cast<int64_t>(i), a.data());
    fresh.eval(f2, ctx, &tokens[i], 1, static_cast<int64_t>(i), b.data());
    ASSERT_EQ(a, b) << "step " << i;
  }
}

TEST(Forward, RejectsOutOfRangeTokens) {
  TinyModelSpec spec;
  const std::string path = temp_path("tiny-bad.gguf");
  build_tiny_model(spec).write(path);
  auto model = Model::load(path);
  ThreadPool pool(1);
  ops::Context ctx(pool, kernels::active());
  PagedCache kv(model->config(), 4);
  Forward f(*model);
  std::vector<float> out(static_cast<size_t>(model->config().n_vocab));
  for (const int32_t bad : {100000, -1}) {
    try {
      kv.eval(f, ctx, &bad, 1, 0, out.data());
      FAIL() << "expected an error for token " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("outside the vocabulary"), std::string::npos) << e.what();
    }
  }
}

TEST(ModelLoad, NamesTheProblem) {
  auto expect_error = [](gguf::Writer w, const std::string& needle) {
    const std::string path = temp_path("tiny-broken.gguf");
    w.write(path);
    try {
      Model::load(path);
      FAIL() << "expected an error mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  };
  TinyModelSpec spec;
  gguf::Writer w = build_tiny_model(spec);
  w.set_string("general.architecture", "gpt9");
  expect_error(w, "gpt9");

  gguf::Writer missing;
  missing.set_string("general.architecture", "llama");
  expect_error(missing, "llama.block_count");

  TinyModelSpec bad_heads;
  bad_heads.n_head = 4;
  bad_heads.n_head_kv = 3;
  expect_error(build_tiny_model(bad_heads), "head_count");
}

TEST(ModelLoad, RealModelConfig) {
  const std::string p = model_path(kSmolLM2);
  ASSERT_FALSE(p.empty()) << "default model missing: run scripts/fetch-models.sh";
  auto m = Model::load(p);
  const ModelConfig& c = m->config();
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.n_layer, 30);
  EXPECT_EQ(c.n_embd, 576);
  EXPECT_EQ(c.n_ff, 1536);
  EXPECT_EQ(c.n_head, 9);
  EXPECT_EQ(c.n_head_kv, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.n_vocab, 49152);
  EXPECT_TRUE(c.tied_output);
  EXPECT_EQ(m->output().type, TensorType::Q8_0);
}

}  // namespace
