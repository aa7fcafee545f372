// Operators: shape logic over the kernels, split across the thread pool.
// Activations are row-major float matrices [T][n] (T tokens). Weights are GGUF tensors whose rows
// (ne[0] elements each) are contiguous: y[t][o] = dot(W row o, x[t]).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/huge_buffer.h"
#include "formats/tensor_type.h"
#include "kernels/kernels.h"
#include "runtime/thread_pool.h"

#include <memory>
#include <vector>

namespace tokenscope::ops {

// A weight matrix of `rows` rows of `cols` elements (GGUF dims [cols, rows]).
struct Weight {
  std::string name;
  TensorType type = TensorType::F32;
  const uint8_t* data = nullptr;
  int64_t cols = 0;  // ne[0], the dot-product length
  int64_t rows = 0;  // ne[1], the number of outputs
  size_t row_bytes = 0;
  // Row-interleaved copy for the packed GEMM (see kernels.h), groups of kernels::kPackRows rows; rows
  // past the last full group stay in `data` only. Null when the type has no packed kernels. Points into
  // packed_owner, a huge-page buffer shared by the weights packed together (pack_weights), which may also
  // hold the copy `data` points at.
  const uint8_t* packed = nullptr;
  size_t packed_group_bytes = 0;
  std::shared_ptr<const HugeBuffer> packed_owner;
  bool empty() const { return data == nullptr; }
};

// Moves each weight onto transparent huge pages, once at model load: a packed copy (w.packed) where its type
// has a packed layout, else a plain copy of its rows (w.data then points at the copy). Decode streams
// every weight once per token, and 2 MiB pages keep the walk through ~100 MB of weights out of the TLB's way
// (the file mapping has 4 KiB pages). The rows of a packed weight past its last full group stay in the file.
void pack_weights(const std::vector<Weight*>& ws);
inline void pack_weight(Weight& w) { pack_weights({&w}); }

// Everything an op needs to run: the pool, the kernel table and reusable scratch memory.
// Ops may grow the scratch buffers; kernels never allocate.
class Context {
 public:
  Context(ThreadPool& pool, const kernels::KernelTable& k) : pool_(pool), k_(k) {}
  ThreadPool& pool() { return pool_; }
  const kernels::KernelTable& k() const { return k_; }
  // Scratch bytes for quantized activations; valid until the next call.
  uint8_t* act_scratch(size_t bytes);
  float* float_scratch(size_t n);
  // f16 staging (attention over a Q8_0 cache in prefill); separate from the buffers above.
  uint16_t* half_scratch(size_t n);
  int32_t* int_scratch(size_t n);
  // How matmul_multi splits one output into work units (counts of each kind; `first`: the number of its
  // first unit in the list over all outputs).
  struct MatmulUnits {
    int64_t first = 0, pairs = 0, singles = 0, plains = 0;
  };
  std::vector<MatmulUnits>& units_scratch() { return units_; }

 private:
  ThreadPool& pool_;
  const kernels::KernelTable& k_;
  std::vector<uint8_t> act_;
  std::vector<float> f32_;
  std::vector<int32_t> i32_;
  std::vector<uint16_t> f16_;
  std::vector<MatmulUnits> units_;
};

// y[T][W.rows] = x[T][W.cols] * W^T (+ bias[W.rows] if given).
void matmul(Context& ctx, const Weight& w, const float* x, int64_t T, float* y, const float* bias = nullptr);

// Several matmuls of the same input (e.g. Q, K and V; gate and up): the activations are quantized once and
// all outputs are computed in one parallel region (one barrier instead of one per weight). The weights
// must share the type's activation format and the input length.
struct MatmulOut {
  const Weight* w;
  float* y;
  const float* bias = nullptr;
};
void matmul_multi(Context& ctx, const std::vector<MatmulOut>& outs, const float* x, int64_t T);

// y = x / sqrt(mean(x^2) + eps) * weight, per row of n (in place allowed).
void rmsnorm(Context& ctx, const float* x, const float* weight, float* y, int64_t T, int64_t n, float eps);

enum class RopeStyle { normal, neox };  // normal: adjacent pairs (llama); neox: halves (qwen2, gemma)
// cos and sin of every rotated pair i < n_rot / 2 at positions pos[t], interleaved: cs[t * n_rot + 2i] = cos,
// cs[t * n_rot + 2i + 1] = sin, the angle pos * freq_base^(-2i/n_rot) advanced by repeated multiplication
// (as ggml does, for identical rounding). Computed once per batch; every layer's rope reads it.
void rope_table(Context& ctx, const int32_t* pos, int64_t T, int64_t n_rot, float freq_base, float* cs);
// Rotates the first n_rot dims of each head in x[T][n_heads*head_dim] by the angles of rope_table.
void rope(Context& ctx, float* x, int64_t T, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cs,
          RopeStyle style);

// Positions per block of the f16 value cache. The values are stored transposed in blocks:
// [n_head_kv][n_ctx / kAttnPad][hd][kAttnPad] (value_index), so a block holds every dimension's values of
// kAttnPad consecutive positions, one KV head's blocks are contiguous (decode reads them as one stream and
// writes a new position into one block), and each dimension's values over the positions are a row in chunks
// of kernels::kF16Chunk that the f16 kernels read directly. n_ctx is a multiple of kAttnPad, and
// store_value_blocks keeps the unused tail of the last block zero, so the one-query attention multiplies
// whole blocks (no ragged tail in its f16 dot products).
constexpr int64_t kAttnPad = kernels::kF16Chunk;
// Where value dimension i of position p of a KV head sits, from the head's start (hd * n_ctx apart).
inline int64_t value_index(int64_t head_dim, int64_t i, int64_t p) {
  return (p / kAttnPad) * head_dim * kAttnPad + i * kAttnPad + p % kAttnPad;
}

// Causal multi-head attention with grouped KV heads over an F16 cache.
// q: [T][n_head*hd]; k_cache: [n_head_kv][n_ctx][hd] f16 (head-major: one head's keys are contiguous, a row
// per position); v_cache: the values in blocks of kAttnPad positions (above), both already holding positions
// 0 .. pos0+T-1; query t sits at position pos0+t and sees keys 0..pos0+t. out: [T][n_head*hd].
// Decode (T < 8, one query at a time) follows llama.cpp's non-flash path (f16 scores, f32 softmax with a
// double sum, probabilities rounded to f16, f16 dot products over positions) so that greedy outputs agree;
// the value products run over zero-padded blocks of kAttnPad positions (n_ctx, the rows' length, is a
// multiple of it). Prefill (T >= 8) is flash-attention style: tiles of query rows walk the keys in blocks
// with an online softmax, so no score matrix longer than one block of keys is ever held.
void attention(Context& ctx, const float* q, const uint16_t* k_cache, const uint16_t* v_cache, float* out,
               int64_t T, int64_t pos0, int64_t n_ctx, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
               float scale);

// Decode (T < 8) with its prologue fused in, equal bit for bit to rope(q), rope(k_new), store_heads(F16, k_new),
// store_value_blocks(v_new, stale_end) and attention(): each job (token, head) first makes sure its KV head's
// new rows are rotated and stored (the first job of a KV head does it; the others wait for it) and rotates its
// own query head. The rotation and the stores, done by the calling thread alone before, are split across the
// pool; the writes into the value cache's last block then overlap the other thread's attention.
// q and k_new are rotated in place; cs: rope_table's angles for the T tokens.
void attention_decode(Context& ctx, float* q, float* k_new, const float* v_new, uint16_t* k_cache, uint16_t* v_cache,
                      float* out, int64_t T, int64_t pos0, int64_t n_ctx, int64_t n_head, int64_t n_head_kv,
                      int64_t head_dim, float scale, const float* cs, int64_t n_rot, RopeStyle style,
                      int64_t stale_end = INT64_MAX);

// Attention as above over a Q8_0 cache: keys and values both head-major, [n_head_kv][n_ctx] rows of
// head_dim / 32 Q8_0 blocks (values not transposed); head_dim must be a multiple of 32.
// Decode (T < 8): each query is quantized to Q8_0 and scored against the key rows with the Q8_0 dot product
// (as llama.cpp does with a q8_0 key cache), softmax in f32 (sum in double), then the probability-weighted
// sum of the value rows in f32 (axpy_q8_0_rows). Prefill (T >= 8): the cache positions 0..pos0+T-1 are
// dequantized into an f16 copy in the F16 layout and the flash path above runs on it.
void attention_q8_0(Context& ctx, const float* q, const uint8_t* k_cache, const uint8_t* v_cache, float* out,
                    int64_t T, int64_t pos0, int64_t n_ctx, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                    float scale);

// Stores rows [T][n_heads*head_dim] into a head-major cache [n_heads][n_ctx] of rows of head_dim values in
// `type`: F16 (the keys of the f16 cache) or Q8_0 (keys and values of the q8_0 cache; head_dim a multiple of
// 32), positions pos0..pos0+T-1 of each head.
void store_heads(Context& ctx, TensorType type, const float* x, void* cache, int64_t T, int64_t n_heads,
                 int64_t head_dim, int64_t pos0, int64_t n_ctx);
// Stores value rows [T][n_heads*head_dim] as f16 into the blocked value cache (kAttnPad, value_index),
// positions pos0..pos0+T-1 of each head, and zeros the positions after them up to the end of their block
// (n_ctx must be a multiple of kAttnPad). stale_end: positions at or past it are known to be zero already
// (never written since the cache was zero-filled), so only those before it are cleared; in steady decode
// (pos0 + T past everything stored before) nothing is, where clearing the block's tail wrote up to 31
// positions x head_dim values per head and token.
void store_value_blocks(Context& ctx, const float* x, uint16_t* v_cache, int64_t T, int64_t n_heads, int64_t head_dim,
                        int64_t pos0, int64_t n_ctx, int64_t stale_end = INT64_MAX);

// out[t][i] = silu(gate[t][i]) * up[t][i]
void swiglu(Context& ctx, const float* gate, const float* up, float* out, int64_t T, int64_t n);

// y += x, elementwise over n (split across the pool for prefill-sized rows).
void add_inplace(Context& ctx, float* y, const float* x, int64_t n);

// Dequantizes row `id` of an embedding table into out[cols].
void embedding_row(const Weight& table, int64_t id, float* out);

}  // namespace tokenscope::ops
