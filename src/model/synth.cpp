#include "model/synth.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "base/error.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace tokenscope {

// Hyper-parameters from the models' published configurations (config.json): layers, widths, heads,
// vocabulary, RoPE base, RMSNorm epsilon, training context, tied embeddings.
const std::vector<ModelShape>& model_shapes() {
  static const std::vector<ModelShape> shapes = {
      {"smollm2-135m", "llama", "SmolLM2-135M (synthetic weights)", 30, 576, 1536, 9, 3, 49152, 8192, 100000.f, 1e-5f,
       true, false},
      {"qwen1.5-0.5b", "qwen2", "Qwen1.5-0.5B (synthetic weights)", 24, 1024, 2816, 16, 16, 151936, 32768, 1000000.f,
       1e-6f, false, true},
      {"llama-3.2-1b", "llama", "Llama-3.2-1B (synthetic weights)", 16, 2048, 8192, 32, 8, 128256, 131072, 500000.f,
       1e-5f, true, false},
      // microsoft/bitnet-b1.58-2B-4T: hidden 2560, intermediate 6912, 30 layers, 20 heads, 5 KV heads, vocabulary
      // 128256, 4096 positions, RoPE theta 500000, RMSNorm eps 1e-5, tied embeddings; the architecture as
      // bitnet.cpp and ik_llama.cpp name it in GGUF.
      {"bitnet-b1.58-2b", "bitnet-b1.58", "BitNet-b1.58-2B-4T (synthetic weights)", 30, 2560, 6912, 20, 5, 128256, 4096,
       500000.f, 1e-5f, true, false},
  };
  return shapes;
}

const ModelShape& model_shape(const std::string& name) {
  std::string known;
  for (const ModelShape& s : model_shapes()) {
    if (s.name == name) return s;
    known += (known.empty() ? "" : ", ") + s.name;
  }
  fail("unknown model shape '%s' (known: %s)", name.c_str(), known.c_str());
}

std::vector<std::string> architecture_names(const ModelShape& s) {
  if (s.arch == "bitnet-b1.58") return {s.arch, "bitnet-25", "bitnet"};
  return {s.arch};
}

int file_type_for(TensorType t) {
  switch (t) {
    case TensorType::F32: return 0;
    case TensorType::F16: return 1;
    case TensorType::Q4_0: return 2;
    case TensorType::Q4_1: return 3;
    case TensorType::Q8_0: return 7;
    case TensorType::Q4_K: return 15;  // Q4_K_M
    case TensorType::Q5_K: return 17;  // Q5_K_M
    case TensorType::Q6_K: return 18;
    case TensorType::BF16: return 32;
    case TensorType::TQ1_0: return 36;
    case TensorType::TQ2_0: return 37;
    case TensorType::IQ2_BN: return 137;  // ik_llama.cpp's
    default: return -1;
  }
}

namespace {

bool is_quantized(TensorType t) { return type_traits(t).block_size > 1; }

TensorType fit(TensorType want, int64_t row) {
  return row % type_traits(want).block_size == 0 ? want : TensorType::Q8_0;
}

void check_matrix_type(TensorType t) {
  const TypeTraits& tr = type_traits(t);
  if (!(tr.quantize_row || tr.quantize_tensor) || !tr.dequantize_row || t == TensorType::Q8_1 || t == TensorType::Q8_K)
    fail("type %s cannot be used for weights here (use F32, F16, BF16, Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, Q6_K, TQ1_0, TQ2_0, "
         "I2_S or IQ2_BN)", tr.name);
}

}  // namespace

std::vector<SynthTensor> synth_tensor_table(const ModelShape& s, TensorType mt) {
  check_matrix_type(mt);
  const int64_t hd = s.n_embd / s.n_head;
  const int64_t q = s.n_head * hd, kv = s.n_head_kv * hd;
  const TensorType embd = is_quantized(mt) ? TensorType::Q8_0 : mt;
  const bool bitnet = s.arch.rfind("bitnet", 0) == 0;
  std::vector<SynthTensor> t;
  t.push_back({"token_embd.weight", {s.n_embd, s.n_vocab}, fit(embd, s.n_embd)});
  for (int64_t l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    t.push_back({p + "attn_norm.weight", {s.n_embd}, TensorType::F32});
    t.push_back({p + "attn_q.weight", {s.n_embd, q}, fit(mt, s.n_embd)});
    t.push_back({p + "attn_k.weight", {s.n_embd, kv}, fit(mt, s.n_embd)});
    t.push_back({p + "attn_v.weight", {s.n_embd, kv}, fit(mt, s.n_embd)});
    if (s.qkv_bias) {
      t.push_back({p + "attn_q.bias", {q}, TensorType::F32});
      t.push_back({p + "attn_k.bias", {kv}, TensorType::F32});
      t.push_back({p + "attn_v.bias", {kv}, TensorType::F32});
    }
    t.push_back({p + "attn_output.weight", {q, s.n_embd}, fit(mt, q)});
    if (bitnet) t.push_back({p + "attn_sub_norm.weight", {q}, TensorType::F32});
    t.push_back({p + "ffn_norm.weight", {s.n_embd}, TensorType::F32});
    t.push_back({p + "ffn_gate.weight", {s.n_embd, s.n_ff}, fit(mt, s.n_embd)});
    t.push_back({p + "ffn_up.weight", {s.n_embd, s.n_ff}, fit(mt, s.n_embd)});
    t.push_back({p + "ffn_down.weight", {s.n_ff, s.n_embd}, fit(mt, s.n_ff)});
    if (bitnet) t.push_back({p + "ffn_sub_norm.weight", {s.n_ff}, TensorType::F32});
  }
  t.push_back({"output_norm.weight", {s.n_embd}, TensorType::F32});
  if (!s.tied) t.push_back({"output.weight", {s.n_embd, s.n_vocab}, is_quantized(mt) ? fit(TensorType::Q6_K, s.n_embd) : mt});
  return t;
}

namespace {

// A minimal byte-level vocabulary of n tokens: the 256 GPT-2 byte tokens, <|endoftext|>, then fillers.
void minimal_vocab(gguf::Writer& w, int64_t n, const std::string& pre) {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(gpt2_byte_token(static_cast<uint8_t>(b)));
    types.push_back(1);
  }
  tokens.push_back("<|endoftext|>");
  types.push_back(3);
  for (int64_t i = static_cast<int64_t>(tokens.size()); i < n; ++i) {
    tokens.push_back("<|synth_" + std::to_string(i) + "|>");
    types.push_back(5);  // unused
  }
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", pre);
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_string_array("tokenizer.ggml.merges", {});
  w.set_u32("tokenizer.ggml.bos_token_id", 256);
  w.set_u32("tokenizer.ggml.eos_token_id", 256);
  w.set_bool("tokenizer.ggml.add_bos_token", false);
}

}  // namespace

// The scale of synthetic ternary weights: about BitNet b1.58 2B4T's mean |w|, and exact in f16.
constexpr float kTernaryScale = 1.0f / 32;

uint64_t synth_model(const SynthOptions& o) {
  const ModelShape& s = model_shape(o.shape);
  const std::vector<SynthTensor> table = synth_tensor_table(s, o.type);
  if (o.out.empty()) fail("synth: no output file given (-o FILE)");
  const std::vector<std::string> archs = architecture_names(s);
  const std::string a = o.arch.empty() ? s.arch : o.arch;
  if (std::find(archs.begin(), archs.end(), a) == archs.end()) {
    std::string known;
    for (const std::string& n : archs) known += (known.empty() ? "" : ", ") + n;
    fail("synth: shape %s cannot be written as architecture '%s' (it can: %s)", s.name.c_str(), a.c_str(),
         known.c_str());
  }
  gguf::Writer w;
  w.set_string("general.architecture", a);
  w.set_string("general.name", s.hf_name);
  if (file_type_for(o.type) >= 0) w.set_u32("general.file_type", static_cast<uint32_t>(file_type_for(o.type)));
  w.set_u32(a + ".block_count", static_cast<uint32_t>(s.n_layer));
  w.set_u32(a + ".embedding_length", static_cast<uint32_t>(s.n_embd));
  w.set_u32(a + ".feed_forward_length", static_cast<uint32_t>(s.n_ff));
  w.set_u32(a + ".attention.head_count", static_cast<uint32_t>(s.n_head));
  w.set_u32(a + ".attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
  w.set_u32(a + ".context_length", static_cast<uint32_t>(s.n_ctx));
  w.set_u32(a + ".rope.dimension_count", static_cast<uint32_t>(s.n_embd / s.n_head));
  w.set_f32(a + ".rope.freq_base", s.rope_base);
  w.set_f32(a + ".attention.layer_norm_rms_epsilon", s.norm_eps);
  if (!o.tokenizer_from.empty()) {
    auto src = gguf::File::open(o.tokenizer_from);
    const auto toks = src->get_string_array("tokenizer.ggml.tokens");
    if (static_cast<int64_t>(toks.size()) != s.n_vocab)
      fail("%s: its vocabulary has %zu tokens, shape %s needs %lld", o.tokenizer_from.c_str(), toks.size(),
           s.name.c_str(), static_cast<long long>(s.n_vocab));
    for (const gguf::KeyValue& kv : src->metadata())
      if (kv.key.rfind("tokenizer.", 0) == 0) w.set_value(kv.key, kv.value);
  } else {
    // The model's own pre-tokenizer name, so other engines (llama.cpp) load the file too.
    minimal_vocab(w, s.n_vocab, s.arch == "qwen2" ? "qwen2" : s.name == "smollm2-135m" ? "smollm" : "llama-bpe");
  }
  std::mt19937 rng(o.seed);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> row;
  std::vector<uint8_t> bytes;
  for (const SynthTensor& t : table) {
    const int64_t cols = t.dims[0];
    const int64_t rows = t.dims.size() > 1 ? t.dims[1] : 1;
    const size_t rb = row_size(t.type, cols);
    bytes.assign(tensor_bytes(t.type, cols, rows), 0);
    const bool norm = t.name.find("norm") != std::string::npos;
    // A format with one scale per tensor (I2_S) is quantized whole; the others row by row.
    const bool whole = type_traits(t.type).quantize_tensor != nullptr;
    row.resize(static_cast<size_t>(cols * (whole ? rows : 1)));
    // Ternary matrices get ternary values times one power-of-two scale per model, drawn the same way whatever the
    // ternary format, so one seed gives the same weights (and, the scale being exact, the same products) in each.
    const bool tern = is_ternary(t.type);
    for (int64_t r = 0; r < rows; ++r) {
      float* v = row.data() + (whole ? r * cols : 0);
      for (int64_t i = 0; i < cols; ++i)
        v[i] = tern ? static_cast<float>(static_cast<int>(rng() % 3) - 1) * kTernaryScale : norm ? 1.0f + nd(rng) : nd(rng);
      if (!whole) quantize_row(t.type, v, bytes.data() + static_cast<size_t>(r) * rb, cols);
    }
    if (whole) quantize_tensor(t.type, row.data(), bytes.data(), rows, cols);
    w.add_tensor(t.name, t.dims, t.type, bytes.data(), bytes.size());
  }
  w.write(o.out);
  return std::filesystem::file_size(o.out);
}

TensorType quantize_fallback(TensorType want, int64_t row) {
  const auto fits = [row](TensorType t) { return row % type_traits(t).block_size == 0; };
  if (fits(want)) return want;
  for (TensorType t : {want == TensorType::Q4_K ? TensorType::Q4_1 : TensorType::Q8_0, TensorType::Q8_0})
    if (fits(t)) return t;
  return TensorType::F16;
}

QuantizeReport quantize_model(const QuantizeOptions& o) {
  check_matrix_type(o.type);
  if (o.out.empty()) fail("quantize: no output file given");
  {
    // Writing over the input would destroy it while it is read (and lose the original): refuse, whether the two
    // names are the same path or two names (a link, a relative path) of one file.
    namespace fs = std::filesystem;
    std::error_code e1, e2, e3;
    const fs::path a = fs::weakly_canonical(o.in, e1), b = fs::weakly_canonical(o.out, e2);
    const bool same = (!e1 && !e2 && a == b) || fs::equivalent(o.in, o.out, e3);
    if (same) fail("quantize: the output %s is the input file: give another output name", o.out.c_str());
  }
  auto in = gguf::File::open(o.in);
  QuantizeReport rep;
  gguf::Writer w;
  for (const gguf::KeyValue& kv : in->metadata())
    if (kv.key != "general.alignment") w.set_value(kv.key, kv.value);
  if (file_type_for(o.type) >= 0 && in->find("general.file_type"))
    w.set_u32("general.file_type", static_cast<uint32_t>(file_type_for(o.type)));
  std::vector<float> f;
  std::vector<uint8_t> out;
  for (const gguf::TensorInfo& t : in->tensors()) {
    rep.bytes_in += t.size_bytes;
    const bool matrix = t.dims.size() == 2 && t.name.size() > 7 && t.name.compare(t.name.size() - 7, 7, ".weight") == 0 &&
                        t.name.find("norm") == std::string::npos && !(o.keep_embd && t.name == "token_embd.weight");
    if (!matrix || t.type == o.type) {
      w.add_tensor(t.name, t.dims, t.type, in->tensor_data(t), t.size_bytes);
      rep.bytes_out += t.size_bytes;
      ++rep.copied;
      continue;
    }
    const TypeTraits& src = type_traits(t.type);
    if (!src.dequantize_row) fail("%s: tensor '%s' has type %s, which tokenscope cannot convert", o.in.c_str(), t.name.c_str(), src.name);
    const TensorType dst = quantize_fallback(o.type, t.dims[0]);
    if (dst != o.type) {
      ++rep.fallbacks;
      ++rep.fallback_types[dst];
    }
    const int64_t cols = t.dims[0], rows = t.dims[1];
    const size_t rb_in = row_size(t.type, cols), rb_out = row_size(dst, cols);
    const float scale_in = tensor_scale(t.type, in->tensor_data(t), t.n_elements);
    // A target with one scale per tensor (I2_S) needs every row before it quantizes; the others go row by row.
    const bool whole = type_traits(dst).quantize_tensor != nullptr;
    f.resize(static_cast<size_t>(cols * (whole ? rows : 1)));
    out.assign(tensor_bytes(dst, cols, rows), 0);
    for (int64_t r = 0; r < rows; ++r) {
      float* v = f.data() + (whole ? r * cols : 0);
      dequantize_row(t.type, in->tensor_data(t) + static_cast<size_t>(r) * rb_in, v, cols);
      if (scale_in != 1.0f)
        for (int64_t i = 0; i < cols; ++i) v[i] *= scale_in;
      if (!whole) quantize_row(dst, v, out.data() + static_cast<size_t>(r) * rb_out, cols);
    }
    if (whole) quantize_tensor(dst, f.data(), out.data(), rows, cols);
    w.add_tensor(t.name, t.dims, dst, out.data(), out.size());
    rep.bytes_out += out.size();
    ++rep.converted;
  }
  w.write(o.out);
  return rep;
}

}  // namespace tokenscope
