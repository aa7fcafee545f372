// Model files tokenscope writes itself: random-weight GGUFs with the exact tensor names, shapes and
// hyper-parameters of real models (`tokenscope synth`), and format conversion (`tokenscope quantize`).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "formats/tensor_type.h"

namespace tokenscope {

struct ModelShape {
  std::string name;        // "smollm2-135m"
  std::string arch;        // "llama", "qwen2" or "bitnet-b1.58"
  std::string hf_name;     // the model it copies, for general.name
  int64_t n_layer, n_embd, n_ff, n_head, n_head_kv, n_vocab, n_ctx;
  float rope_base, norm_eps;
  bool tied;               // output projection shares token_embd
  bool qkv_bias;           // qwen2
};

const std::vector<ModelShape>& model_shapes();
// Throws Error listing the known shapes.
const ModelShape& model_shape(const std::string& name);
// The architecture names a file of this shape may carry (the shape's own first): for the BitNet shape, the three
// names the peers use for one tensor layout (bitnet.cpp's and ik_llama.cpp's "bitnet-b1.58" and "bitnet-25" run a
// squared-ReLU FFN; llama.cpp's "bitnet", which its converter writes for BitNet b1.58 2B4T too, runs SiLU).
std::vector<std::string> architecture_names(const ModelShape& s);

struct SynthTensor {
  std::string name;
  std::vector<int64_t> dims;  // ne[0] first
  TensorType type;
};
// The tensor table `synth` writes for a shape and matrix type (matrices whose rows do not fit the type's
// block fall back to Q8_0; token_embd is Q8_0 for quantized types, as in llama.cpp's files; the untied
// output is Q6_K for quantized types when its rows allow it).
std::vector<SynthTensor> synth_tensor_table(const ModelShape& s, TensorType matrix_type);

struct SynthOptions {
  std::string shape;
  TensorType type = TensorType::Q4_0;
  std::string out;
  std::string tokenizer_from;  // GGUF to copy tokenizer.* from; empty: a minimal byte-level vocabulary
  std::string arch;            // general.architecture; empty: the shape's own (one of architecture_names)
  uint32_t seed = 1;
};
// Writes the file; returns the bytes written. Throws Error naming the problem.
uint64_t synth_model(const SynthOptions& o);

struct QuantizeOptions {
  std::string in, out;
  TensorType type = TensorType::Q8_0;
  bool keep_embd = false;  // leave token_embd.weight as it is
};
struct QuantizeReport {
  int64_t converted = 0, copied = 0, fallbacks = 0;
  uint64_t bytes_in = 0, bytes_out = 0;
  std::map<TensorType, int64_t> fallback_types;  // per type used instead of o.type: how many tensors
};
// Converts every 2-D weight matrix to o.type (where its row length does not fit the type's block, to the type
// quantize_fallback gives), keeps the other tensors and all metadata. Refuses (Error) to write over its input:
// the same path, or another name of the same file.
QuantizeReport quantize_model(const QuantizeOptions& o);

// The type a matrix with rows of `row` elements gets when `want` is asked for: want itself if the row is a whole
// number of its blocks, else the nearest type tokenscope can write and multiply whose block fits, as
// llama-quantize chooses: the K-quants (256-element blocks) fall back to a 32-element type of at least their
// precision (Q4_K -> Q4_1, as llama.cpp's Q5_0 is not available here; Q5_K, Q6_K -> Q8_0), and a row that fits no
// 32-element block gets F16.
TensorType quantize_fallback(TensorType want, int64_t row);

// llama.cpp's general.file_type number for a whole-model type (for the metadata), or -1.
int file_type_for(TensorType t);

}  // namespace tokenscope
