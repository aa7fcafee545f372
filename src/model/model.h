// Decoder-only transformer models (llama, qwen2, BitNet b1.58) as plain C++ forward passes over ops.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/huge_buffer.h"

#include "base/file_load.h"
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
  // BitNet b1.58 (architectures bitnet, bitnet-25, bitnet-b1.58): an RMSNorm of the attention's output before its
  // projection and of the FFN's hidden state before the down projection (attn_sub_norm, ffn_sub_norm); bitnet-25
  // and bitnet-b1.58 also gate the FFN with squared ReLU instead of SiLU.
  bool sub_norms = false;
  bool relu_sqr_ffn = false;
};

struct LayerWeights {
  std::vector<float> attn_norm, ffn_norm;
  ops::Weight wq, wk, wv, wo;
  std::vector<float> bq, bk, bv;  // qwen2 only
  std::vector<float> attn_sub_norm, ffn_sub_norm;  // BitNet only
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
  // Opens and validates a GGUF model, reading the file as `load` says; throws tokenscope::Error naming the file
  // and what is wrong.
  static std::unique_ptr<Model> load(const std::string& path, const LoadOptions& load = {});

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

// One step's tokens as the forward pass sees them: each row's token and position, the sequences' runs of rows
// (ops::AttnSeq: consecutive rows at consecutive positions, with the sequence's page table), and the rows whose
// logits are wanted. Rows of one sequence are one run; the runs cover the rows in order.
struct StepInput {
  const int32_t* tokens = nullptr;
  const int32_t* positions = nullptr;
  int64_t n_tokens = 0;
  std::vector<ops::AttnSeq> seqs;
  std::vector<int64_t> logit_rows;  // ascending
};

// Runs the forward pass over a batch of tokens from any number of sequences: the matmuls over all the
// step's rows at once (each weight streamed once per step), attention per sequence over its own pages.
// Holds the activation buffers, sized for the largest step seen.
class Forward {
 public:
  explicit Forward(const Model& model) : m_(model) {}
  // Evaluates the step and writes the logits of in.logit_rows, [logit_rows.size()][n_vocab], to logits.
  // Throws tokenscope::Error for a token id outside the vocabulary.
  void eval(ops::Context& ctx, const ops::KVStore& kv, const StepInput& in, float* logits);
  // Reports every op (kind, layer, shapes, FLOPs, bytes, time) to p; null turns it off.
  void set_profiler(profile::Profiler* p) { prof_ = p; }
  int64_t n_vocab() const { return m_.config().n_vocab; }

 private:
  void reserve(int64_t T);
  const Model& m_;
  profile::Profiler* prof_ = nullptr;
  int64_t cap_ = 0;
  std::vector<float> x_, xb_, q_, k_, v_, att_, gate_, up_, ffn_;
  std::vector<float> rope_cs_;  // ops::rope_table of the step's positions
};

}  // namespace tokenscope
