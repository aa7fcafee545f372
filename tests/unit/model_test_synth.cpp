// synth (random weights in real models' shapes) and quantize (format conversion).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "gguf/gguf.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "model/synth.h"
#include "model_builder.h"
#include "paged_cache.h"
#include "ops/ops.h"
#include "runtime/thread_pool.h"
#include "test_util.h"

using namespace tokenscope;
using namespace tokenscope::testing;

namespace {

TEST(Synth, TensorTablesMatchTheShapes) {
  const auto qwen = synth_tensor_table(model_shape("qwen1.5-0.5b"), TensorType::Q4_0);
  EXPECT_EQ(qwen.size(), 1u + 24u * 12u + 2u);  // embd, 24 x (2 norms, q/k/v + biases, o, gate/up/down), norm, output
  EXPECT_EQ(qwen.back().name, "output.weight");
  EXPECT_EQ(qwen.back().type, TensorType::Q6_K);
  EXPECT_EQ(qwen.back().dims, (std::vector<int64_t>{1024, 151936}));
  EXPECT_EQ(qwen[0].type, TensorType::Q8_0);
  const auto llama = synth_tensor_table(model_shape("llama-3.2-1b"), TensorType::Q4_K);
  EXPECT_EQ(llama.size(), 1u + 16u * 9u + 1u);  // tied: no output.weight
  int64_t params = 0;
  for (const auto& t : llama) {
    int64_t n = 1;
    for (int64_t d : t.dims) n *= d;
    params += n;
  }
  EXPECT_NEAR(static_cast<double>(params), 1.236e9, 0.01e9);  // Llama 3.2 1B: 1.24 B parameters
  for (const auto& t : llama) {
    if (t.name.find("attn_k.weight") != std::string::npos) {
      EXPECT_EQ(t.dims, (std::vector<int64_t>{2048, 512}));
    }
  }
  // SmolLM2's 576-wide rows do not fit 256-element K-quant blocks: those matrices fall back to Q8_0.
  const auto smol = synth_tensor_table(model_shape("smollm2-135m"), TensorType::Q4_K);
  for (const auto& t : smol) {
    if (t.name == "blk.0.attn_q.weight") {
      EXPECT_EQ(t.type, TensorType::Q8_0);
    } else if (t.name == "blk.0.ffn_down.weight") {
      EXPECT_EQ(t.type, TensorType::Q4_K);  // 1536 = 6 x 256
    }
  }
  EXPECT_THROW(model_shape("gpt-5"), Error);
  EXPECT_THROW(synth_tensor_table(model_shape("smollm2-135m"), TensorType::Q8_K), Error);
}

// BitNet b1.58 2B4T: its published widths, the sub-norms, ternary matrices, a Q8_0 embedding, tied output.
TEST(Synth, BitNet2BTableHasTheRealShapesAndSubNorms) {
  for (TensorType t : {TensorType::I2_S, TensorType::TQ1_0, TensorType::TQ2_0, TensorType::IQ2_BN}) {
    const auto tab = synth_tensor_table(model_shape("bitnet-b1.58-2b"), t);
    EXPECT_EQ(tab.size(), 1u + 30u * 11u + 1u);  // embd, 30 x (2 norms, 2 sub-norms, q/k/v/o, gate/up/down), norm
    int64_t ternary_params = 0;
    for (const auto& e : tab) {
      int64_t n = 1;
      for (int64_t d : e.dims) n *= d;
      if (e.type == t) ternary_params += n;
      if (e.name == "blk.0.attn_k.weight") {
        EXPECT_EQ(e.dims, (std::vector<int64_t>{2560, 640}));
      }
      if (e.name == "blk.0.ffn_sub_norm.weight") {
        EXPECT_EQ(e.dims, (std::vector<int64_t>{6912}));
      }
      if (e.name == "blk.0.attn_sub_norm.weight") {
        EXPECT_EQ(e.dims, (std::vector<int64_t>{2560}));
      }
      if (e.name == "token_embd.weight") {
        EXPECT_EQ(e.type, TensorType::Q8_0);
      }
    }
    // Every matrix of the 30 layers is ternary: 30 x (2560 x (2560 + 640 + 640 + 2560) + 3 x 2560 x 6912).
    EXPECT_EQ(ternary_params, 30LL * (2560LL * 6400 + 3LL * 2560 * 6912)) << type_name(t);
  }
}

// The BitNet shape may be written under each peer's architecture name; a name from another family is refused before
// anything is written, naming the names that fit.
TEST(Synth, ArchitectureNameMustFitTheShape) {
  EXPECT_EQ(architecture_names(model_shape("bitnet-b1.58-2b")),
            (std::vector<std::string>{"bitnet-b1.58", "bitnet-25", "bitnet"}));
  EXPECT_EQ(architecture_names(model_shape("qwen1.5-0.5b")), std::vector<std::string>{"qwen2"});
  SynthOptions o;
  o.out = temp_path("never-written.gguf");
  std::remove(o.out.c_str());
  o.shape = "smollm2-135m";
  o.arch = "bitnet";
  try {
    synth_model(o);
    ADD_FAILURE() << "smollm2-135m written as bitnet";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("it can: llama"), std::string::npos) << e.what();
  }
  o.shape = "bitnet-b1.58-2b";
  o.arch = "llama";
  EXPECT_THROW(synth_model(o), Error);
  FILE* f = std::fopen(o.out.c_str(), "rb");
  EXPECT_EQ(f, nullptr);
  if (f) std::fclose(f);
}

// quantize to each ternary format: every matrix converted (256-wide rows fit every ternary block), and the file loads
// with a per-tensor scale for I2_S only and gives finite logits.
TEST(Quantize, ToTernaryFormatsWritesFilesThatLoadAndRun) {
  TinyModelSpec spec;
  spec.arch = "bitnet-b1.58";
  spec.n_embd = 256;
  spec.n_ff = 512;
  spec.wtype = TensorType::F32;
  const std::string in = temp_path("tiny-bitnet-f32.gguf");
  build_tiny_model(spec).write(in);
  for (TensorType t : {TensorType::I2_S, TensorType::TQ1_0, TensorType::TQ2_0, TensorType::IQ2_BN}) {
    QuantizeOptions q;
    q.in = in;
    q.out = temp_path(std::string("tiny-bitnet-") + type_name(t) + ".gguf");
    q.type = t;
    const QuantizeReport r = quantize_model(q);
    EXPECT_EQ(r.converted, 2 * 7 + 1) << type_name(t);  // 7 matrices a layer, and token_embd
    EXPECT_EQ(r.fallbacks, 0) << type_name(t);
    auto m = Model::load(q.out);
    EXPECT_EQ(m->layer(0).wq.type, t);
    const ops::Weight& wq = m->layer(0).wq;
    if (t == TensorType::I2_S) EXPECT_GT(wq.scale, 0.0f);
    else EXPECT_EQ(wq.scale, 1.0f);
    ThreadPool pool(2);
    ops::Context ctx(pool, kernels::active());
    PagedCache kv(m->config(), 32);
    Forward fwd(*m);
    std::vector<float> logits(static_cast<size_t>(m->config().n_vocab));
    const int32_t toks[] = {1, 2, 3};
    kv.eval(fwd, ctx, toks, 3, 0, logits.data());
    for (float v : logits) ASSERT_TRUE(std::isfinite(v)) << type_name(t);
  }
}

TEST(Synth, SmolLM2ShapeWithTheRealTokenizerLoadsAndRuns) {
  const std::string real = model_path(kSmolLM2);
  ASSERT_FALSE(real.empty()) << "default model missing: run scripts/fetch-models.sh";
  SynthOptions o;
  o.shape = "smollm2-135m";
  o.type = TensorType::Q4_0;
  o.out = temp_path("synth-smollm2.gguf");
  o.tokenizer_from = real;
  synth_model(o);
  auto synth = Model::load(o.out);
  auto orig = Model::load(real);
  EXPECT_EQ(synth->config().n_layer, orig->config().n_layer);
  EXPECT_EQ(synth->config().n_vocab, orig->config().n_vocab);
  EXPECT_EQ(synth->config().n_head_kv, orig->config().n_head_kv);
  EXPECT_EQ(synth->file().tensors().size(), orig->file().tensors().size());
  for (const auto& t : orig->file().tensors()) EXPECT_EQ(synth->file().tensor(t.name).dims, t.dims) << t.name;
  EXPECT_EQ(synth->file().get_string_array("tokenizer.ggml.merges").size(),
            orig->file().get_string_array("tokenizer.ggml.merges").size());
  ThreadPool pool(2);
  ops::Context ctx(pool, kernels::active());
  PagedCache kv(synth->config(), 32);
  Forward f(*synth);
  std::vector<float> logits(static_cast<size_t>(synth->config().n_vocab));
  const std::vector<int32_t> ids = {1, 2, 3, 4};
  kv.eval(f, ctx, ids.data(), 4, 0, logits.data());
  for (float l : logits) ASSERT_TRUE(std::isfinite(l));
  // a vocabulary of the wrong size is refused, naming the file
  o.shape = "qwen1.5-0.5b";
  try {
    synth_model(o);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(real), std::string::npos) << e.what();
  }
}

TEST(Quantize, RealModelToQ8_0KeepsItsPredictions) {
  const std::string real = model_path(kSmolLM2);
  ASSERT_FALSE(real.empty()) << "default model missing: run scripts/fetch-models.sh";
  QuantizeOptions q;
  q.in = real;
  q.out = temp_path("smollm2-q8_0.gguf");
  q.type = TensorType::Q8_0;
  const QuantizeReport r = quantize_model(q);
  EXPECT_EQ(r.converted, 210);  // every Q4_1 matrix; token_embd is already Q8_0
  EXPECT_EQ(r.fallbacks, 0);
  auto a = Model::load(real), b = Model::load(q.out);
  for (const auto& t : b->file().tensors()) {
    if (t.dims.size() == 2) {
      EXPECT_EQ(t.type, TensorType::Q8_0) << t.name;
    }
  }
  EXPECT_EQ(b->file().get_int("general.file_type"), 7);
  ThreadPool pool(2);
  ops::Context ctx(pool, kernels::active());
  const std::vector<int32_t> ids = {504, 3575, 282, 4649, 314};  // "The capital of France is"
  std::vector<float> la(49152), lb(49152);
  for (auto [m, l] : {std::pair{a.get(), &la}, std::pair{b.get(), &lb}}) {
    PagedCache kv(m->config(), 16);
    Forward f(*m);
    kv.eval(f, ctx, ids.data(), 5, 0, l->data());
  }
  // Q4_1 -> Q8_0 re-encodes the same values almost exactly: same top token, logits correlated > 0.995 (measured 0.998).
  const auto top = [](const std::vector<float>& v) { return std::max_element(v.begin(), v.end()) - v.begin(); };
  EXPECT_EQ(top(la), top(lb));
  double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < la.size(); ++i) ma += la[i], mb += lb[i];
  ma /= la.size();
  mb /= lb.size();
  for (size_t i = 0; i < la.size(); ++i) {
    sab += (la[i] - ma) * (lb[i] - mb);
    saa += (la[i] - ma) * (la[i] - ma);
    sbb += (lb[i] - mb) * (lb[i] - mb);
  }
  EXPECT_GT(sab / std::sqrt(saa * sbb), 0.995);
}

TEST(Quantize, BadInputsAreErrors) {
  QuantizeOptions q;
  q.in = "/nonexistent.gguf";
  q.out = temp_path("x.gguf");
  EXPECT_THROW(quantize_model(q), Error);
  q.in = model_path(kSmolLM2);
  q.type = TensorType::IQ2_XXS;
  EXPECT_THROW(quantize_model(q), Error);
}

}  // namespace
