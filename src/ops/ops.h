// Operators: shape logic over the kernels, split across the thread pool.
// Activations are row-major float matrices [T][n] (T tokens). Weights are GGUF tensors whose rows
// (ne[0] elements each) are contiguous: y[t][o] = dot(W row o, x[t]).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/file_load.h"
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
  // The per-tensor scale of a format that has one (I2_S; TypeTraits::tensor_scale), else 1: matmul multiplies
  // each output by it, as the kernels leave it out.
  float scale = 1.0f;
  // Row-interleaved copy for the packed GEMM (see kernels.h), groups of kernels::kPackRows rows; rows
  // past the last full group stay in `data` only. Null when the type has no packed kernels. Points into
  // packed_owner, a huge-page buffer shared by the weights packed together (pack_weights), which may also
  // hold the copy `data` points at.
  const uint8_t* packed = nullptr;
  size_t packed_group_bytes = 0;
  std::shared_ptr<const HugeBuffer> packed_owner;
  // `data` points into the model file's image (a read-only mapping, or its bytes read into memory), and once
  // pack_weights has copied these rows nothing reads those bytes again: pack_weights then drops the image's
  // pages of the rows it copied from the process as it goes (release_file_pages: a mapping's pages stay in the
  // page cache, a copy's are freed), so the model is resident once, as its copy, not twice. Model::load sets it
  // for every matrix that does not share bytes with the embedding table. Never set for rows anything reads
  // later, which dropping would zero.
  bool release_source = false;
  // Ternary formats under --ternary-kernel lut or auto: the rows repacked for the lookup-table multiply, in groups
  // of kernels::ternary::lut::kLutRows rows (rows past the last full group use the MAD kernel on `data`); null
  // otherwise. Its own huge-page buffer, lut_owner.
  const uint8_t* lut = nullptr;
  size_t lut_group_bytes = 0;
  std::shared_ptr<const HugeBuffer> lut_owner;
  bool empty() const { return data == nullptr; }
};

// Moves each weight onto transparent huge pages, once at model load: a packed copy (w.packed) where its type
// has a packed layout, else a plain copy of its rows (w.data then points at the copy). Decode streams
// every weight once per token, and 2 MiB pages keep the walk through ~100 MB of weights out of the TLB's way
// (the file mapping has 4 KiB pages). The rows of a packed weight past its last full group stay in the file.
// Where a weight's release_source is set, the file's pages lying wholly inside the rows copied are released
// a megabyte at a time as the copying proceeds (the pages holding the rows left in the file, and every byte
// of the weights without the flag, are kept), so that the peak stays near the copies' size. progress, when set,
// hears "packing" with the source bytes done so far (on the calling thread, which packs pieces too).
void pack_weights(const std::vector<Weight*>& ws, const ProgressFn& progress = {});
inline void pack_weight(Weight& w) { pack_weights({&w}); }
// The LUT copies of the ternary weights among ws with a full group of rows (pack_weights calls it when
// kernels::ternary_kernel() is not mad; w.lut then set).
void pack_lut(const std::vector<Weight*>& ws);

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
  // The LUT multiply's per-token tables (kernels/ternary/ternary_lut.h); separate from the buffers above.
  uint8_t* table_scratch(size_t bytes);
  // How matmul_multi splits one output into work units (counts of each kind; `first`: the number of its
  // first unit in the list over all outputs).
  struct MatmulUnits {
    int64_t first = 0, pairs = 0, singles = 0, luts = 0, plains = 0;
  };
  std::vector<MatmulUnits>& units_scratch() { return units_; }

 private:
  ThreadPool& pool_;
  const kernels::KernelTable& k_;
  std::vector<uint8_t> act_, tables_;
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

// ---- The paged KV cache, as attention writes and reads it.
// The cache is a pool of pages of kAttnPad positions (the engine's KV pool owns the memory and hands pages out;
// a sequence's page table maps its logical page i, positions i * kAttnPad .. + kAttnPad - 1, to a physical
// page). Per layer there is a key region and a value region, each [n_head_kv][n_pages][one head's page], so a
// head's physical pages are contiguous in page order: a sequence whose pages are consecutive reads each head's
// keys as one stream, as decode's score pass wants. One head's page holds, for its kAttnPad positions:
//   F16 keys:   [kAttnPad][head_dim] f16, a row per position;
//   F16 values: [head_dim][kAttnPad] f16, a row per dimension (the value products read each dimension's values
//               over the positions as rows in chunks of kernels::kF16Chunk, a page apart);
//   Q8_0 keys and values: kAttnPad rows of head_dim / 32 Q8_0 blocks (head_dim a multiple of 32).
// Invariant the engine keeps: in an F16 cache, the value slots of the positions of a sequence's last page past
// its end are zero (pages are zeroed when handed out), so the one-query attention multiplies whole pages.
constexpr int64_t kAttnPad = kernels::kF16Chunk;

struct KVLayout {
  TensorType type = TensorType::F16;  // F16 or Q8_0
  int64_t n_layer = 0, n_head_kv = 0, head_dim = 0;
  int64_t n_pages = 0;  // physical pages in the pool
  // Bytes of one head's page of keys (values take the same).
  size_t page_bytes() const { return row_size(type, head_dim) * static_cast<size_t>(kAttnPad); }
  // Bytes of one layer's key region (values the same).
  size_t region_bytes() const { return page_bytes() * static_cast<size_t>(n_pages * n_head_kv); }
  size_t bytes() const { return region_bytes() * 2 * static_cast<size_t>(n_layer); }
};

// The pool's memory with its layout: `base` holds bytes() bytes, per layer the key region then the value region.
struct KVStore {
  KVLayout layout;
  uint8_t* base = nullptr;
  // Start of head h's pages (physical page 0) in layer il's keys or values.
  uint8_t* keys(int64_t il, int64_t h) const { return region(2 * il) + static_cast<size_t>(h * layout.n_pages) * layout.page_bytes(); }
  uint8_t* values(int64_t il, int64_t h) const { return region(2 * il + 1) + static_cast<size_t>(h * layout.n_pages) * layout.page_bytes(); }
  // Head h's physical page p of layer il.
  uint8_t* key_page(int64_t il, int64_t h, int64_t p) const { return keys(il, h) + static_cast<size_t>(p) * layout.page_bytes(); }
  uint8_t* value_page(int64_t il, int64_t h, int64_t p) const { return values(il, h) + static_cast<size_t>(p) * layout.page_bytes(); }

 private:
  uint8_t* region(int64_t i) const { return base + static_cast<size_t>(i) * layout.region_bytes(); }
};

// Where value dimension i of position p sits in an F16 value page, from the page's start.
inline int64_t value_index(int64_t i, int64_t p) { return i * kAttnPad + p % kAttnPad; }

// One sequence's rows in a batch: rows row0 .. row0 + n - 1 of the activations (q, k, v, out), at consecutive
// positions pos0 .., and its page table, which covers positions 0 .. pos0 + n - 1.
struct AttnSeq {
  int64_t row0 = 0, n = 0, pos0 = 0;
  const int32_t* pages = nullptr;
};

// One layer's causal attention with grouped KV heads for a batch of sequences, over the paged cache.
// q: [T][n_head * head_dim], k_new / v_new: [T][n_head_kv * head_dim] (the batch's new keys and values), out like q;
// cs: rope_table's angles per batch row. For each sequence this rotates its queries and new keys (the first n_rot
// dims of each head), stores its new keys and values into its pages at pos0 .., and attends: the query at
// position p sees the keys 0..p of its own sequence. q and k_new are rotated in place.
// - A sequence with one row (decode) follows llama.cpp's non-flash path: f16 scores, f32 softmax with a double
//   sum, probabilities rounded to f16, f16 dot products over positions (so greedy outputs agree). Over an F16
//   cache the rotation and the stores run inside the attention's parallel jobs (the first job of a KV head
//   stores its rows, the others wait for it). Over a Q8_0 cache the query is quantized to Q8_0 and scored with
//   the Q8_0 dot product, softmax in f32, the value rows summed in f32 (axpy_q8_0_rows).
// - A sequence with two rows or more (prefill, a prompt chunk) is flash-attention style: tiles of query rows walk
//   the keys in blocks with an online softmax (over a Q8_0 cache: on an f16 copy of the sequence's positions).
// The kind depends only on the sequence's own row count, never on the rest of the batch, and a row's result
// does not depend on the other sequences: a sequence gets the same result alone or in any batch.
void attention(Context& ctx, const KVStore& kv, int64_t layer, const std::vector<AttnSeq>& seqs, float* q,
               float* k_new, const float* v_new, float* out, int64_t n_head, float scale, const float* cs,
               int64_t n_rot, RopeStyle style);

// out[t][i] = silu(gate[t][i]) * up[t][i]
void swiglu(Context& ctx, const float* gate, const float* up, float* out, int64_t T, int64_t n);

// out[t][i] = relu(gate[t][i])^2 * up[t][i] (BitNet b1.58's squared-ReLU gated FFN; out may alias gate)
void relu_sqr_mul(Context& ctx, const float* gate, const float* up, float* out, int64_t T, int64_t n);

// y += x, elementwise over n (split across the pool for prefill-sized rows).
void add_inplace(Context& ctx, float* y, const float* x, int64_t n);

// Dequantizes row `id` of an embedding table into out[cols].
void embedding_row(const Weight& table, int64_t id, float* out);

}  // namespace tokenscope::ops
