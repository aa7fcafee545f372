// Shared between the per-ISA kernel files; not part of the kernels' public interface.
#pragma once

#include "base/fp16.h"
#include "kernels/kernels.h"

namespace tokenscope::kernels::detail {

namespace {
// The end of every f16 x f16 dot product: `chunks` (the SIMD or reference sum over the whole chunks of 32,
// elements before n32) plus the remaining elements in order, in double; x_tail holds x's elements n32..n-1
// (the start of its last, partial chunk). All variants finish alike, which keeps them bit-identical.
// Internal linkage: each ISA file compiles its own copy with its own flags.
inline float dot_f16_finish(double chunks, const uint16_t* x_tail, const uint16_t* y, int64_t n32, int64_t n) {
  for (int64_t i = n32; i < n; ++i)
    chunks += static_cast<double>(fp16_to_fp32(x_tail[i - n32]) * fp16_to_fp32(y[i]));
  return static_cast<float>(chunks);
}

// How far (in elements) from a chunked f16 row's start the chunk of kF16Chunk elements holding element i
// starts (kernels.h, F16Chunks). Callers compute it once per chunk, not per element.
inline int64_t f16_chunk_offset(F16Chunks chunks, int64_t i) {
  const int64_t c = i >> 5;
  return (chunks.map ? chunks.map[c] : c) * chunks.stride;
}
// Where the chunk holding element i of a chunked f16 row starts.
inline const uint16_t* f16_chunk_at(const uint16_t* row, F16Chunks chunks, int64_t i) {
  return row + f16_chunk_offset(chunks, i);
}
// Where the last, partial chunk of a chunked row of n elements starts (n32: n rounded down to a multiple of
// 32), for dot_f16_finish; the row itself when there is none (a map has no entry past the row's chunks).
inline const uint16_t* f16_tail_at(const uint16_t* row, F16Chunks chunks, int64_t n32, int64_t n) {
  return n32 < n ? f16_chunk_at(row, chunks, n32) : row;
}
// Whether the chunks make a plain contiguous row (element i at row + i).
inline bool f16_plain(F16Chunks chunks) { return !chunks.map && chunks.stride == kF16Chunk; }

// dot_q8_0_rows from a table's own Q8_0 x Q8_0 dot product (inlined per ISA file), so each score is exactly
// what that table's vec_dot gives.
template <float (*Dot)(int64_t, const void*, const void*)>
void vec_dot_rows(int64_t n, const void* x, size_t stride, int64_t count, const void* y, float* out) {
  const auto* row = static_cast<const uint8_t*>(x);
  for (int64_t j = 0; j < count; ++j) out[j] = Dot(n, row + static_cast<size_t>(j) * stride, y);
}
}  // namespace

// Each ISA's init (float/float_<isa>.cpp) fills a table's float helpers; the SIMD ones start from the scalar
// helpers and override what they speed up. The weight formats are installed afterwards, from the registry (registry.h).
void init_scalar(KernelTable& t);
#if defined(TS_HAVE_X86)
void init_avx2(KernelTable& t);
void init_avx512(KernelTable& t);
#endif
#if defined(TS_HAVE_ARM)
void init_neon(KernelTable& t);
#endif

// The scalar installers' steps: a format's activation layout and dot product, then its packed path.
inline void put(KernelTable& t, TensorType w, ActLayout act, VecDotFn d) {
  WeightKernels& k = t.for_type(w);
  k.supported = true;
  k.act = act;
  k.vec_dot = d;
}
inline void put_packed(KernelTable& t, TensorType w, size_t (*bytes)(int64_t), PackRowsFn pack, GemmPackedFn gemm) {
  WeightKernels& k = t.for_type(w);
  k.packed_group_bytes = bytes;
  k.pack_rows = pack;
  k.gemm_packed = gemm;
}
// Bytes of a row of n elements of a GGUF type (an ActLayout's row_bytes).
template <TensorType kType>
size_t row_bytes_of(int64_t n) {
  return row_size(kType, n);
}
// Block b of row r of a packer's source (rows row_bytes apart).
template <typename Block>
const Block* row_block(const void* src, size_t row_bytes, int r, int64_t b) {
  return reinterpret_cast<const Block*>(static_cast<const uint8_t*>(src) + static_cast<size_t>(r) * row_bytes) + b;
}

}  // namespace tokenscope::kernels::detail
