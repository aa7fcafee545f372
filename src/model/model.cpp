#include "model/model.h"

#include <cmath>
#include <cstring>

#include "base/error.h"

namespace tokenscope {

namespace {

struct Loader {
  const gguf::File& f;
  const std::string& arch;

  std::string key(const char* suffix) const { return arch + "." + suffix; }

  int64_t positive(const char* suffix) const {
    const std::string k = key(suffix);
    const int64_t v = f.get_int(k);
    if (v <= 0 || v > (int64_t{1} << 31))
      fail("%s: metadata %s = %lld is out of range", f.path().c_str(), k.c_str(), static_cast<long long>(v));
    return v;
  }

  // A 2-D weight with ne[0] == cols, ne[1] == rows.
  ops::Weight matrix(const std::string& name, int64_t cols, int64_t rows) const {
    const gguf::TensorInfo& t = f.tensor(name);
    if (t.dims.size() != 2 || t.dims[0] != cols || t.dims[1] != rows)
      fail("%s: tensor %s has shape %s, expected [%lld, %lld]", f.path().c_str(), name.c_str(),
           shape_str(t).c_str(), static_cast<long long>(cols), static_cast<long long>(rows));
    ops::Weight w;
    w.name = name;
    w.type = t.type;
    w.data = f.tensor_data(t);
    w.cols = cols;
    w.rows = rows;
    w.row_bytes = row_size(t.type, cols);
    w.scale = tensor_scale(t.type, w.data, t.n_elements);
    return w;
  }

  // A 1-D tensor of n elements, converted to float.
  std::vector<float> vector(const std::string& name, int64_t n) const {
    const gguf::TensorInfo& t = f.tensor(name);
    if (t.n_elements != n || t.dims.size() != 1)
      fail("%s: tensor %s has shape %s, expected [%lld]", f.path().c_str(), name.c_str(), shape_str(t).c_str(),
           static_cast<long long>(n));
    std::vector<float> out(static_cast<size_t>(n));
    dequantize_row(t.type, f.tensor_data(t), out.data(), n);
    return out;
  }

  static std::string shape_str(const gguf::TensorInfo& t) {
    std::string s = "[";
    for (size_t i = 0; i < t.dims.size(); ++i) s += (i ? ", " : "") + std::to_string(t.dims[i]);
    return s + "]";
  }
};

}  // namespace

ModelConfig read_model_config(const gguf::File& f) {
  const std::string& path = f.path();
  ModelConfig c;
  c.arch = f.get_string("general.architecture");
  c.name = f.opt_string("general.name").value_or("");
  const bool bitnet = c.arch == "bitnet" || c.arch == "bitnet-25" || c.arch == "bitnet-b1.58";
  if (c.arch != "llama" && c.arch != "qwen2" && !bitnet)
    fail("%s: architecture '%s' is not supported (supported: llama, qwen2, bitnet, bitnet-25, bitnet-b1.58)",
         path.c_str(), c.arch.c_str());
  // llama.cpp's bitnet (the BitNet b1.58 3B conversions) gates with SiLU; bitnet-25 / bitnet-b1.58 (BitNet b1.58
  // 2B4T, as bitnet.cpp and ik_llama.cpp name it) with squared ReLU. All have the sub-norms.
  c.sub_norms = bitnet;
  c.relu_sqr_ffn = bitnet && c.arch != "bitnet";
  Loader L{f, c.arch};
  c.n_layer = L.positive("block_count");
  c.n_embd = L.positive("embedding_length");
  c.n_ff = L.positive("feed_forward_length");
  c.n_head = L.positive("attention.head_count");
  c.n_head_kv = f.find(L.key("attention.head_count_kv")) ? L.positive("attention.head_count_kv") : c.n_head;
  c.n_ctx_train = f.find(L.key("context_length")) ? L.positive("context_length") : 2048;
  if (c.n_embd % c.n_head != 0)
    fail("%s: embedding_length %lld is not a multiple of attention.head_count %lld", path.c_str(),
         static_cast<long long>(c.n_embd), static_cast<long long>(c.n_head));
  c.head_dim = f.find(L.key("attention.key_length")) ? L.positive("attention.key_length") : c.n_embd / c.n_head;
  if (c.n_head % c.n_head_kv != 0)
    fail("%s: attention.head_count %lld is not a multiple of attention.head_count_kv %lld", path.c_str(),
         static_cast<long long>(c.n_head), static_cast<long long>(c.n_head_kv));
  c.n_rot = f.find(L.key("rope.dimension_count")) ? L.positive("rope.dimension_count") : c.head_dim;
  if (c.n_rot > c.head_dim || c.n_rot % 2 != 0)
    fail("%s: rope.dimension_count %lld does not fit head dimension %lld", path.c_str(),
         static_cast<long long>(c.n_rot), static_cast<long long>(c.head_dim));
  c.rope_freq_base = static_cast<float>(f.opt_float(L.key("rope.freq_base")).value_or(10000.0));
  c.norm_eps = static_cast<float>(f.get_float(L.key("attention.layer_norm_rms_epsilon")));
  // RoPE on the halves of each head (NeoX) for qwen2, and for the BitNet architectures as llama.cpp, ik_llama.cpp and
  // bitnet.cpp run them (their converters keep the checkpoints' query and key rows in order); adjacent pairs for llama.
  c.rope_style = c.arch == "qwen2" || bitnet ? ops::RopeStyle::neox : ops::RopeStyle::normal;
  return c;
}

void check_kv_type(const ModelConfig& cfg, TensorType type) {
  if (type == TensorType::F16) return;
  if (type != TensorType::Q8_0) fail("KV cache type %s is not supported (use f16 or q8_0)", type_name(type));
  if (cfg.head_dim % 32 != 0)
    fail("a q8_0 KV cache needs a head size that is a multiple of 32; this model's is %lld (use f16)",
         static_cast<long long>(cfg.head_dim));
}

std::unique_ptr<Model> Model::load(const std::string& path, const LoadOptions& load) {
  std::unique_ptr<Model> m(new Model());
  m->file_ = gguf::File::open(path, load);
  const gguf::File& f = *m->file_;
  m->cfg_ = read_model_config(f);
  ModelConfig& c = m->cfg_;
  Loader L{f, c.arch};

  const gguf::TensorInfo& te = f.tensor("token_embd.weight");
  if (te.dims.size() != 2 || te.dims[0] != c.n_embd)
    fail("%s: tensor token_embd.weight has shape %s, expected [%lld, n_vocab]", path.c_str(),
         Loader::shape_str(te).c_str(), static_cast<long long>(c.n_embd));
  c.n_vocab = te.dims[1];
  m->tok_embd_ = L.matrix("token_embd.weight", c.n_embd, c.n_vocab);
  c.tied_output = f.find_tensor("output.weight") == nullptr;
  m->output_ = c.tied_output ? m->tok_embd_ : L.matrix("output.weight", c.n_embd, c.n_vocab);
  m->output_norm_ = L.vector("output_norm.weight", c.n_embd);

  const int64_t D = c.n_embd, hd = c.head_dim;
  const int64_t q_dim = c.n_head * hd, kv_dim = c.n_head_kv * hd;
  m->layers_.resize(static_cast<size_t>(c.n_layer));
  for (int64_t i = 0; i < c.n_layer; ++i) {
    LayerWeights& l = m->layers_[static_cast<size_t>(i)];
    const std::string p = "blk." + std::to_string(i) + ".";
    l.attn_norm = L.vector(p + "attn_norm.weight", D);
    l.ffn_norm = L.vector(p + "ffn_norm.weight", D);
    l.wq = L.matrix(p + "attn_q.weight", D, q_dim);
    l.wk = L.matrix(p + "attn_k.weight", D, kv_dim);
    l.wv = L.matrix(p + "attn_v.weight", D, kv_dim);
    l.wo = L.matrix(p + "attn_output.weight", q_dim, D);
    l.w_gate = L.matrix(p + "ffn_gate.weight", D, c.n_ff);
    l.w_up = L.matrix(p + "ffn_up.weight", D, c.n_ff);
    l.w_down = L.matrix(p + "ffn_down.weight", c.n_ff, D);
    if (c.sub_norms) {
      l.attn_sub_norm = L.vector(p + "attn_sub_norm.weight", q_dim);
      l.ffn_sub_norm = L.vector(p + "ffn_sub_norm.weight", c.n_ff);
      // llama.cpp's bitnet files may carry a one-element scale per matrix (blk.N.attn_q.scale), which multiplies
      // its outputs; it joins the format's own per-tensor scale.
      for (auto [w, name] : {std::pair{&l.wq, "attn_q"}, {&l.wk, "attn_k"}, {&l.wv, "attn_v"}, {&l.wo, "attn_output"},
                             {&l.w_gate, "ffn_gate"}, {&l.w_up, "ffn_up"}, {&l.w_down, "ffn_down"}})
        if (f.find_tensor(p + name + ".scale")) w->scale *= L.vector(p + name + ".scale", 1)[0];
    }
    if (c.arch == "qwen2") {
      l.bq = L.vector(p + "attn_q.bias", q_dim);
      l.bk = L.vector(p + "attn_k.bias", kv_dim);
      l.bv = L.vector(p + "attn_v.bias", kv_dim);
    }
  }
  // The matrices a token multiplies, in the order it visits them (the embedding table is read by rows; only
  // the output projection multiplies): their bytes per token, and their packed copies in one huge-page buffer.
  std::vector<ops::Weight*> matrices;
  for (LayerWeights& l : m->layers_)
    for (ops::Weight* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) matrices.push_back(w);
  matrices.push_back(&m->output_);
  for (const ops::Weight* w : matrices) m->weight_bytes_ += w->row_bytes * static_cast<uint64_t>(w->rows);
  // Once copied, a matrix is read from its copy: its pages of the file's image (a read-only mapping, or a copy
  // in memory with --load read/uring/direct, which nothing reads again either) can leave the process as they are
  // copied, except where they are also the embedding table's (a tied output projection), which decode reads by
  // rows from the image.
  const uint8_t* embd_begin = m->tok_embd_.data;
  const uint8_t* embd_end = embd_begin + m->tok_embd_.row_bytes * static_cast<size_t>(m->tok_embd_.rows);
  for (ops::Weight* w : matrices)
    w->release_source = w->data + w->row_bytes * static_cast<size_t>(w->rows) <= embd_begin || w->data >= embd_end;
  ops::pack_weights(matrices, load.progress);
  prefault_read(m->tok_embd_.data, m->tok_embd_.row_bytes * static_cast<size_t>(m->tok_embd_.rows));
  return m;
}

void Forward::reserve(int64_t T) {
  if (T <= cap_) return;
  const ModelConfig& c = m_.config();
  const auto n = [T](int64_t w) { return static_cast<size_t>(T * w); };
  x_.resize(n(c.n_embd));
  xb_.resize(n(c.n_embd));
  q_.resize(n(c.n_head * c.head_dim));
  k_.resize(n(c.n_head_kv * c.head_dim));
  v_.resize(n(c.n_head_kv * c.head_dim));
  att_.resize(n(c.n_head * c.head_dim));
  gate_.resize(n(c.n_ff));
  up_.resize(n(c.n_ff));
  rope_cs_.resize(n(c.n_rot));
  cap_ = T;
}

void Forward::eval(ops::Context& ctx, const ops::KVStore& kv, const StepInput& in, float* logits) {
  const ModelConfig& c = m_.config();
  const int64_t T = in.n_tokens;
  if (T <= 0) fail("nothing to evaluate: empty token batch");
  for (int64_t t = 0; t < T; ++t)
    if (in.tokens[t] < 0 || in.tokens[t] >= c.n_vocab)
      fail("token id %d is outside the vocabulary (0..%lld)", in.tokens[t], static_cast<long long>(c.n_vocab - 1));
  TS_CHECK(kv.layout.n_layer == c.n_layer && kv.layout.n_head_kv == c.n_head_kv && kv.layout.head_dim == c.head_dim);
  int64_t covered = 0;
  for (const ops::AttnSeq& s : in.seqs) {
    TS_CHECK_MSG(s.row0 == covered && s.n >= 1, "the sequences' rows must cover the step in order");
    for (int64_t t = 0; t < s.n; ++t) TS_CHECK(in.positions[s.row0 + t] == s.pos0 + t);
    covered += s.n;
  }
  TS_CHECK_MSG(covered == T, "the sequences' rows must cover the step");
  reserve(T);
  const int64_t D = c.n_embd, hd = c.head_dim;
  float* x = x_.data();
  float* xb = xb_.data();
  using profile::OpKind;
  profile::Profiler* const P = prof_;
  // Runs one op; with a profiler, also records its span with the cost computed from shapes and formats.
  auto op = [P](OpKind kind, int64_t layer, const char* name, const profile::Cost& cost, auto&& body, int64_t m = 0,
                int64_t n = 0, int64_t k = 0, const char* format = "") {
    if (!P) {
      body();
      return;
    }
    const double t0 = P->now_us();
    body();
    P->add_op(kind, static_cast<int>(layer), name, t0, P->now_us(), cost, m, n, k, format);
  };
  auto mm_cost = [&](const ops::Weight& w, int64_t rows_T) {
    return profile::matmul_cost(rows_T, w.rows, w.cols, static_cast<double>(w.row_bytes));
  };
  auto sum = [](profile::Cost a, const profile::Cost& b) {
    a.flops += b.flops;
    a.bytes += b.bytes;
    return a;
  };

  op(OpKind::embedding, -1, "token_embd", profile::Cost{0, static_cast<double>(T) * (m_.token_embd().row_bytes + 4.0 * D)},
     [&] {
       for (int64_t t = 0; t < T; ++t) ops::embedding_row(m_.token_embd(), in.tokens[t], x + t * D);
     });
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const profile::Cost norm_cost = profile::elementwise_cost(T * D, 4, 1, 1);
  const profile::Cost add_cost = profile::elementwise_cost(T * D, 1, 2, 1);

  op(OpKind::rope, -1, "rope_table", profile::Cost{3.0 * static_cast<double>(T * c.n_rot), 4.0 * static_cast<double>(T * c.n_rot)},
     [&] { ops::rope_table(ctx, in.positions, T, c.n_rot, c.rope_freq_base, rope_cs_.data()); });

  // Attention's cost: each sequence's queries over its own cache (the rotation and cache stores run inside it).
  const double kv_elem_bytes = static_cast<double>(row_size(kv.layout.type, 32)) / 32;  // 2 for f16, 34/32 for q8_0
  profile::Cost attn_cost;
  int64_t n_kv_max = 0;
  for (const ops::AttnSeq& s : in.seqs) {
    attn_cost = sum(attn_cost, profile::attention_cost(s.n, s.pos0, c.n_head, c.n_head_kv, hd, kv_elem_bytes));
    n_kv_max = std::max(n_kv_max, s.pos0 + s.n);
  }
  for (int64_t il = 0; il < c.n_layer; ++il) {
    const LayerWeights& l = m_.layer(il);
    const char* fmt = type_name(l.wq.type);
    op(OpKind::rmsnorm, il, "attn_norm", norm_cost, [&] { ops::rmsnorm(ctx, x, l.attn_norm.data(), xb, T, D, c.norm_eps); });
    op(OpKind::matmul, il, "attn_qkv", sum(sum(mm_cost(l.wq, T), mm_cost(l.wk, T)), mm_cost(l.wv, T)),
       [&] {
         ops::matmul_multi(ctx,
                           {{&l.wq, q_.data(), l.bq.empty() ? nullptr : l.bq.data()},
                            {&l.wk, k_.data(), l.bk.empty() ? nullptr : l.bk.data()},
                            {&l.wv, v_.data(), l.bv.empty() ? nullptr : l.bv.data()}},
                           xb, T);
       },
       T, l.wq.rows + l.wk.rows + l.wv.rows, D, fmt);
    op(OpKind::attention, il, "attention", attn_cost, [&] {
      ops::attention(ctx, kv, il, in.seqs, q_.data(), k_.data(), v_.data(), att_.data(), c.n_head, scale,
                     rope_cs_.data(), c.n_rot, c.rope_style);
    }, T, n_kv_max, hd);
    if (c.sub_norms)
      op(OpKind::rmsnorm, il, "attn_sub_norm", profile::elementwise_cost(T * l.wo.cols, 4, 1, 1), [&] {
        ops::rmsnorm(ctx, att_.data(), l.attn_sub_norm.data(), att_.data(), T, l.wo.cols, c.norm_eps);
      });
    op(OpKind::matmul, il, "attn_output", mm_cost(l.wo, T), [&] { ops::matmul(ctx, l.wo, att_.data(), T, xb); }, T,
       l.wo.rows, l.wo.cols, type_name(l.wo.type));
    op(OpKind::add, il, "residual", add_cost, [&] { ops::add_inplace(ctx, x, xb, T * D); });

    op(OpKind::rmsnorm, il, "ffn_norm", norm_cost, [&] { ops::rmsnorm(ctx, x, l.ffn_norm.data(), xb, T, D, c.norm_eps); });
    op(OpKind::matmul, il, "ffn_gate_up", sum(mm_cost(l.w_gate, T), mm_cost(l.w_up, T)),
       [&] { ops::matmul_multi(ctx, {{&l.w_gate, gate_.data()}, {&l.w_up, up_.data()}}, xb, T); }, T,
       l.w_gate.rows + l.w_up.rows, D, type_name(l.w_gate.type));
    if (c.relu_sqr_ffn)
      op(OpKind::activation, il, "relu_sqr", profile::elementwise_cost(T * c.n_ff, 3, 2, 1),
         [&] { ops::relu_sqr_mul(ctx, gate_.data(), up_.data(), gate_.data(), T, c.n_ff); });
    else
      op(OpKind::activation, il, "swiglu", profile::elementwise_cost(T * c.n_ff, 6, 2, 1),
         [&] { ops::swiglu(ctx, gate_.data(), up_.data(), gate_.data(), T, c.n_ff); });
    if (c.sub_norms)
      op(OpKind::rmsnorm, il, "ffn_sub_norm", profile::elementwise_cost(T * c.n_ff, 4, 1, 1), [&] {
        ops::rmsnorm(ctx, gate_.data(), l.ffn_sub_norm.data(), gate_.data(), T, c.n_ff, c.norm_eps);
      });
    op(OpKind::matmul, il, "ffn_down", mm_cost(l.w_down, T), [&] { ops::matmul(ctx, l.w_down, gate_.data(), T, xb); },
       T, l.w_down.rows, l.w_down.cols, type_name(l.w_down.type));
    op(OpKind::add, il, "residual", add_cost, [&] { ops::add_inplace(ctx, x, xb, T * D); });
  }

  // The rows that want logits, gathered (in place: logit_rows ascend), normed and projected together.
  const int64_t n_out = static_cast<int64_t>(in.logit_rows.size());
  if (n_out == 0) return;
  for (int64_t i = 0; i < n_out; ++i) {
    const int64_t r = in.logit_rows[static_cast<size_t>(i)];
    TS_CHECK(r >= i && r < T && (i == 0 || r > in.logit_rows[static_cast<size_t>(i - 1)]));
    if (r != i) std::memcpy(x + i * D, x + r * D, static_cast<size_t>(D) * sizeof(float));
  }
  const ops::Weight& out = m_.output();
  op(OpKind::rmsnorm, -1, "output_norm", profile::elementwise_cost(n_out * D, 4, 1, 1),
     [&] { ops::rmsnorm(ctx, x, m_.output_norm().data(), xb, n_out, D, c.norm_eps); });
  op(OpKind::output, -1, "output", mm_cost(out, n_out), [&] { ops::matmul(ctx, out, xb, n_out, logits); }, n_out,
     out.rows, out.cols, type_name(out.type));
}

}  // namespace tokenscope
