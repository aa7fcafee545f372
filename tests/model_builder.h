// Builds small GGUF models with random weights for tests: the exact tensor names and metadata the
// llama / qwen2 / bitnet loaders expect, plus a byte-level BPE vocabulary (256 byte tokens + <|endoftext|>).
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "formats/tensor_type.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace tokenscope::testing {

struct TinyModelSpec {
  std::string arch = "llama";  // llama, qwen2, bitnet, bitnet-25 or bitnet-b1.58
  int64_t n_layer = 2, n_embd = 64, n_ff = 96, n_head = 4, n_head_kv = 2, n_ctx = 128;
  TensorType wtype = TensorType::F32;  // type of the 2-D weights
  bool tied = true;
  uint32_t seed = 1;
  // bitnet: one-element blk.N.<matrix>.scale tensors (llama.cpp's BitNet conversions) on some matrices.
  bool matrix_scales = false;
};

inline bool tiny_is_bitnet(const TinyModelSpec& s) { return s.arch.rfind("bitnet", 0) == 0; }

// GPT-2 byte-to-unicode mapping: byte b -> its vocabulary entry (UTF-8).
inline std::string byte_token(int b) { return gpt2_byte_token(static_cast<uint8_t>(b)); }

inline void add_tiny_vocab(gguf::Writer& w) {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(byte_token(b));
    types.push_back(1);
  }
  tokens.push_back("<|endoftext|>");
  types.push_back(3);
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", "gpt2");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_string_array("tokenizer.ggml.merges", {});
  w.set_u32("tokenizer.ggml.bos_token_id", 256);
  w.set_u32("tokenizer.ggml.eos_token_id", 256);
  w.set_bool("tokenizer.ggml.add_bos_token", false);
}

inline int64_t tiny_vocab_size() { return 257; }

// Random weights, quantized to spec.wtype for the matrices; norms near 1.
inline gguf::Writer build_tiny_model(const TinyModelSpec& s) {
  gguf::Writer w;
  const std::string& a = s.arch;
  w.set_string("general.architecture", a);
  w.set_string("general.name", "tiny-" + a);
  w.set_u32(a + ".block_count", static_cast<uint32_t>(s.n_layer));
  w.set_u32(a + ".embedding_length", static_cast<uint32_t>(s.n_embd));
  w.set_u32(a + ".feed_forward_length", static_cast<uint32_t>(s.n_ff));
  w.set_u32(a + ".attention.head_count", static_cast<uint32_t>(s.n_head));
  w.set_u32(a + ".attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
  w.set_u32(a + ".context_length", static_cast<uint32_t>(s.n_ctx));
  w.set_f32(a + ".rope.freq_base", 10000.0f);
  w.set_f32(a + ".attention.layer_norm_rms_epsilon", 1e-5f);
  add_tiny_vocab(w);

  std::mt19937 rng(s.seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  // Ternary types get values in {-1, 0, 1} times the power of two nearest `scale`, drawn the same way for each
  // ternary type (the same seed gives the same weights in every ternary format).
  auto matrix = [&](const std::string& name, int64_t cols, int64_t rows, float scale, TensorType t) {
    std::vector<float> f(static_cast<size_t>(cols * rows));
    const float p2 = std::exp2(std::round(std::log2(scale)));
    for (float& v : f) v = is_ternary(t) ? static_cast<float>(static_cast<int>(rng() % 3) - 1) * p2 : nd(rng) * scale;
    std::vector<uint8_t> q(tensor_bytes(t, cols, rows));
    quantize_tensor(t, f.data(), q.data(), rows, cols);
    w.add_tensor(name, {cols, rows}, t, q.data(), q.size());
  };
  auto vec = [&](const std::string& name, int64_t n, float mean, float scale) {
    std::vector<float> f(static_cast<size_t>(n));
    for (float& v : f) v = mean + nd(rng) * scale;
    w.add_tensor(name, {n}, TensorType::F32, f.data(), f.size() * 4);
  };
  const int64_t D = s.n_embd, hd = s.n_embd / s.n_head, kvd = hd * s.n_head_kv;
  const int64_t V = tiny_vocab_size();
  // token_embd in Q8_0 when the others are quantized (as SmolLM2 does), else F32
  matrix("token_embd.weight", D, V, 1.0f, s.wtype == TensorType::F32 ? TensorType::F32 : TensorType::Q8_0);
  if (!s.tied) matrix("output.weight", D, V, 0.5f, s.wtype);
  vec("output_norm.weight", D, 1.0f, 0.1f);
  for (int64_t i = 0; i < s.n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    vec(p + "attn_norm.weight", D, 1.0f, 0.1f);
    vec(p + "ffn_norm.weight", D, 1.0f, 0.1f);
    const float sc = 1.0f / std::sqrt(static_cast<float>(D));
    matrix(p + "attn_q.weight", D, D, sc * 2, s.wtype);
    matrix(p + "attn_k.weight", D, kvd, sc * 2, s.wtype);
    matrix(p + "attn_v.weight", D, kvd, sc, s.wtype);
    matrix(p + "attn_output.weight", D, D, sc, s.wtype);
    matrix(p + "ffn_gate.weight", D, s.n_ff, sc, s.wtype);
    matrix(p + "ffn_up.weight", D, s.n_ff, sc, s.wtype);
    matrix(p + "ffn_down.weight", s.n_ff, D, 1.0f / std::sqrt(static_cast<float>(s.n_ff)), s.wtype);
    if (tiny_is_bitnet(s)) {
      vec(p + "attn_sub_norm.weight", D, 1.0f, 0.1f);
      vec(p + "ffn_sub_norm.weight", s.n_ff, 1.0f, 0.1f);
      if (s.matrix_scales) {
        const float half = 0.5f, twice = 2.0f;
        w.add_tensor(p + "attn_v.scale", {1}, TensorType::F32, &half, 4);
        w.add_tensor(p + "ffn_down.scale", {1}, TensorType::F32, &twice, 4);
      }
    }
    if (a == "qwen2") {
      vec(p + "attn_q.bias", D, 0.0f, 0.5f);
      vec(p + "attn_k.bias", kvd, 0.0f, 0.5f);
      vec(p + "attn_v.bias", kvd, 0.0f, 0.5f);
    }
  }
  return w;
}

}  // namespace tokenscope::testing
