// Decoder-only transformer models (llama, qwen2) as plain C++ forward passes over ops.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/huge_buffer.h"

#include "gguf/gguf.h"
#include "ops/ops.h"
#include "profile/profiler.h"

namespace tokenscope {

struct ModelConfig {
  std::string arch;        // general.architecture
  std::string name;        // general.name (may be empty)
  int64_t n_layer = 0;
  int64_t n_embd = 0;
  int64_t n_ff = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  int64_t n_rot = 0;
  int64_t n_vocab = 0;
  int64_t n_ctx_train = 0;
  float rope_freq_base = 10000.0f;
  float norm_eps = 1e-5f;
  ops::RopeStyle rope_style = ops::RopeStyle::normal;
  bool tied_output = false;  // output projection shares token_embd.weight
};

struct LayerWeights {
  std::vector<float> attn_norm, ffn_norm;
  ops::Weight wq, wk, wv, wo;
  std::vector<float> bq, bk, bv;  // qwen2 only
  ops::Weight w_gate, w_up, w_down;
};

// The hyper-parameters in a GGUF's metadata (not n_vocab / tied_output, which come from its tensors);
// throws tokenscope::Error naming the file and the key that is missing or out of range.
ModelConfig read_model_config(const gguf::File& f);
// Throws tokenscope::Error unless a KV cache of this type fits the model: F16 always, Q8_0 when head_dim is a
// multiple of 32.
void check_kv_type(const ModelConfig& cfg, TensorType type);

class Model {
 public:
  // Opens and validates a GGUF model; throws tokenscope::Error naming the file and what is wrong.
  static std::unique_ptr<Model> load(const std::string& path);

  const ModelConfig& config() const { return cfg_; }
  const gguf::File& file() const { return *file_; }
  const ops::Weight& token_embd() const { return tok_embd_; }
  const ops::Weight& output() const { return output_; }
  const std::vector<float>& output_norm() const { return output_norm_; }
  const LayerWeights& layer(int64_t i) const { return layers_[static_cast<size_t>(i)]; }
  // Bytes of all weight tensors (what one decode step streams through, roughly).
  uint64_t weight_bytes() const { return weight_bytes_; }

 private:
  Model() = default;
  std::unique_ptr<gguf::File> file_;
  ModelConfig cfg_;
  ops::Weight tok_embd_, output_;
  std::vector<float> output_norm_;
  std::vector<LayerWeights> layers_;
  uint64_t weight_bytes_ = 0;
};

// Key/value cache for one sequence, F16 or Q8_0; the layouts per layer are below.
class KVCache {
 public:
  // type: F16 (the default) or Q8_0 (about half the bytes; needs head_dim a multiple of 32).
  KVCache(const ModelConfig& cfg, int64_t n_ctx, TensorType type = TensorType::F16);
  int64_t n_ctx() const { return n_ctx_; }
  TensorType type() const { return type_; }
  // Q8_0 cache: keys and values both head-major, [n_head_kv][v_stride()] rows of head_dim / 32 Q8_0 blocks
  // (values not transposed; see ops::attention_q8_0).
  uint8_t* k_q8_0(int64_t layer) { return bytes_at(2 * layer); }
  uint8_t* v_q8_0(int64_t layer) { return bytes_at(2 * layer + 1); }
  // Keys, head-major: [n_head_kv][v_stride()][head_dim], one head's keys contiguous (decode's score pass
  // streams them in order), a row per position.
  uint16_t* k(int64_t layer) { return reinterpret_cast<uint16_t*>(bytes_at(2 * layer)); }
  // Values are stored transposed in blocks of ops::kAttnPad positions, [n_head_kv][v_stride() / kAttnPad]
  // [head_dim][kAttnPad] (ops::value_index); v_stride() is n_ctx rounded up to a multiple of kAttnPad, which
  // ops::store_value_blocks and the attention's value products rely on.
  int64_t v_stride() const { return v_stride_; }
  uint16_t* v(int64_t layer) { return reinterpret_cast<uint16_t*>(bytes_at(2 * layer + 1)); }
  uint64_t bytes() const { return static_cast<uint64_t>(part_bytes_) * 2 * static_cast<uint64_t>(n_layer_); }
  // One past the highest position ever stored (the buffer starts zero-filled, so everything from here on
  // is zero; below it, positions past the current sequence may hold a rolled-back sequence's values).
  int64_t written_end() const { return written_end_; }
  void note_written(int64_t end) { written_end_ = std::max(written_end_, end); }

 private:
  uint8_t* bytes_at(int64_t part) { return static_cast<uint8_t*>(buf_.data()) + static_cast<size_t>(part) * part_bytes_; }
  int64_t n_ctx_;
  TensorType type_;
  int64_t v_stride_;
  int64_t n_layer_;
  size_t part_bytes_;  // bytes of one layer's K (and of its V)
  int64_t written_end_ = 0;
  HugeBuffer buf_;
};

// Runs the forward pass. Holds the activation buffers, sized for the largest batch seen.
class Forward {
 public:
  explicit Forward(const Model& model) : m_(model) {}
  // Evaluates tokens[0..T) at positions pos0.. and writes the last token's logits (n_vocab floats).
  // If all_logits is non-null it receives T x n_vocab logits instead (all_logits may equal logits_last then unused).
  void eval(ops::Context& ctx, KVCache& kv, const int32_t* tokens, int64_t T, int64_t pos0, float* logits_last,
            float* all_logits = nullptr);
  // Reports every op (kind, layer, shapes, FLOPs, bytes, time) to p; null turns it off.
  void set_profiler(profile::Profiler* p) { prof_ = p; }

 private:
  void reserve(int64_t T);
  const Model& m_;
  profile::Profiler* prof_ = nullptr;
  int64_t cap_ = 0;
  std::vector<float> x_, xb_, q_, k_, v_, att_, gate_, up_, ffn_;
  std::vector<int32_t> pos_;
  std::vector<float> rope_cs_;  // ops::rope_table of the batch's positions
};

}  // namespace tokenscope
