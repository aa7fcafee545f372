// Micro-kernels per tensor format x ISA.
//
// A kernel never allocates, never spawns threads and never logs. Code is grouped by format family, one folder each
// (float/, block32/, kquants/, ternary/; README.md lists which formats each holds), and inside a folder by ISA: a
// file per ISA (<family>_<isa>.cpp) compiled with that ISA's flags. Each ISA's KernelTable gets its float helpers
// from float/float_<isa>.cpp and its weight formats from the registry (registry.h). The table for the running
// machine is chosen once at start-up (select_isa); tests fetch every available table and compare it with the
// scalar reference.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "formats/tensor_type.h"

namespace tokenscope::kernels {

enum class Isa { scalar = 0, avx2, avx512, neon };
const char* isa_name(Isa isa);
std::optional<Isa> isa_from_name(std::string_view name);

// Prepares n activations (n a multiple of the paired format's block) in the weight format's activation layout.
using QuantizeActFn = void (*)(const float* x, void* y, int64_t n);
// Dot product of one weight row and one activation row (already in the activation layout), n elements. A format
// with a per-tensor scale (formats/tensor_type.h, TypeTraits::tensor_scale) leaves it out: the op multiplies by it.
using VecDotFn = float (*)(int64_t n, const void* w, const void* a);

// How a weight format wants its input rows prepared. Weights whose layouts share a name share one prepared input
// (matmul_multi quantizes once for Q, K and V).
struct ActLayout {
  const char* name = "f32";
  // The GGUF tensor type a prepared row is, where it is one (Q8_0, Q8_1, Q8_K, F16, BF16, F32); the ternary
  // formats' int8 rows with one scale per row are none.
  std::optional<TensorType> type;
  size_t (*row_bytes)(int64_t n) = nullptr;  // bytes of a prepared row of n elements
  QuantizeActFn quantize = nullptr;
  // The packed multiplies of some formats take the integer sum of each block of sum_block quants of a prepared
  // row (GemmPackedFn's act_sums); block_sums computes them. 0 / null: the format needs none.
  int64_t sum_block = 0;
  void (*block_sums)(const void* row, int64_t n, int32_t* sums) = nullptr;
};

// The f16 attention kernels (dot_f16_rows, gemm_f32_f16t) read rows in chunks of this many elements, each
// chunk contiguous, the chunks placed as an F16Chunks says.
constexpr int64_t kF16Chunk = 32;

// Where the chunks of kF16Chunk elements of an f16 row lie: chunk c of a row starting at `row` begins at
// row + (map ? map[c] : c) * stride elements. stride = kF16Chunk, no map: a plain row. A map follows a
// paged KV cache's page table (logical page c -> physical page map[c], pages `stride` elements apart).
struct F16Chunks {
  int64_t stride = kF16Chunk;
  const int32_t* map = nullptr;
};

// Row-interleaved ("packed") weights: groups of kPackRows rows stored so that one vector load holds a
// few bytes of every row of the group, and an integer dot product leaves row r's sum in lane r: no
// horizontal sums, and the per-row scales apply as one vector. Each format's group layout is described in its
// family's header (e.g. block32/block32.h).
constexpr int kPackRows = 8;
// Packs kPackRows rows (each row_bytes apart in src) of n elements into one group at dst.
using PackRowsFn = void (*)(const void* src, size_t row_bytes, int64_t n, void* dst);
// y[t * ldy + r] = dot(row r of the group, activation row t) for r < kPackRows, t < nt (nt <= 4).
// act rows are act_stride bytes apart, in the weight type's activation layout; act_sums holds, per
// activation row, the layout's block sums (ActLayout::block_sums: n / sum_block values per row, row-major; null
// when the layout has none).
using GemmPackedFn = void (*)(int64_t n, const void* w_group, const void* act, size_t act_stride,
                              const int32_t* act_sums, int nt, float* y, int64_t ldy);

// Optional wider multiply of two adjacent groups at once (rows 0..2*kPackRows-1; the second group starts
// group_bytes after the first), for ISAs whose vectors hold 16 int32 lanes: y[t * ldy + r] for
// r < 2 * kPackRows, t < nt (nt <= kPacked2MaxTokens). Bit-identical to the same table's gemm_packed on each
// group, so a row's result does not depend on which of the two computed it.
using GemmPacked2Fn = void (*)(int64_t n, const void* w_group, size_t group_bytes, const void* act,
                               size_t act_stride, const int32_t* act_sums, int nt, float* y, int64_t ldy);
constexpr int kPacked2MaxTokens = 16;

struct WeightKernels {
  bool supported = false;
  ActLayout act;  // the activation layout the weight type is paired with
  VecDotFn vec_dot = nullptr;
  // Packed path (null if the type has none): bytes per packed group for n elements, pack, multiply.
  size_t (*packed_group_bytes)(int64_t n) = nullptr;
  PackRowsFn pack_rows = nullptr;
  GemmPackedFn gemm_packed = nullptr;
  GemmPacked2Fn gemm_packed2 = nullptr;  // null: use gemm_packed per group
};

struct KernelTable {
  Isa isa = Isa::scalar;
  const char* features = "";  // sub-features the table uses beyond its ISA's baseline, e.g. "dotprod+i8mm"

  WeightKernels weights[kMaxTypeId];  // indexed by static_cast<int>(TensorType); filled by the registry (registry.h)

  // Float helpers used by attention and the elementwise ops.
  float (*dot_f32)(int64_t n, const float* a, const float* b) = nullptr;
  float (*dot_f16)(int64_t n, const uint16_t* a, const uint16_t* b) = nullptr;  // f16 x f16, f32 accumulate
  void (*axpy_f16)(int64_t n, float a, const uint16_t* x, float* y) = nullptr;  // y += a * x
  void (*f32_to_f16)(const float* x, uint16_t* y, int64_t n) = nullptr;
  void (*f16_to_f32)(const uint16_t* x, float* y, int64_t n) = nullptr;
  // out[j] = dot_f16(n, row j, y) for j < count, each bit-identical to dot_f16 of the row's values in order
  // (one call for many rows: the attention scores of one query, or its value rows against the probabilities).
  // Rows are read in chunks of kF16Chunk elements placed as `chunks` says: element i of row j is
  // x[j * stride + c' * chunks.stride + i % 32], c' = chunks.map ? chunks.map[i / 32] : i / 32.
  // F16Chunks{} gives plain rows `stride` apart; a larger chunks.stride reads rows interleaved in blocks, as the
  // value cache stores them (a block of 32 positions holds every dimension's 32 values, ops.h), and a map
  // takes the blocks from a paged cache's pages.
  void (*dot_f16_rows)(int64_t n, const uint16_t* x, int64_t stride, F16Chunks chunks, int64_t count,
                       const uint16_t* y, float* out) = nullptr;
  // Over a Q8_0 cache (rows of n elements as n / 32 Q8_0 blocks, `stride` bytes apart; n a multiple of 32):
  // out[j] = dot(row j, y) with y in Q8_0 too (the attention scores of one query against a Q8_0 key cache):
  // integer block sums exact, their float combination within the Q8_0 vec_dot's bound of the scalar version.
  void (*dot_q8_0_rows)(int64_t n, const void* x, size_t stride, int64_t count, const void* y, float* out) = nullptr;
  // out[i] += sum over rows j < count, in order, of (p[j] * d) * q[i], one fused multiply-add per term, where d
  // and q are row j's block scale and quant for element i (the probability-weighted sum of Q8_0 value rows).
  // Every ISA matches the scalar version bit for bit.
  void (*axpy_q8_0_rows)(int64_t n, const void* x, size_t stride, int64_t count, const float* p, float* out) = nullptr;
  // x[i] = exp(x[i] - sub) in place; returns the sum of the results (in double). SIMD variants use a
  // polynomial exp with a relative error of a few float ulps; results below ~1e-38 may be flushed to 0.
  double (*exp_sum_f32)(float* x, int64_t n, float sub) = nullptr;
  // The largest of x[0..n) (-inf for n == 0; NaNs are not expected). Exact on every ISA.
  float (*max_f32)(const float* x, int64_t n) = nullptr;
  // One attention row's softmax in place, with llama.cpp's non-flash rounding points: x[i] *= scale,
  // m = max, e[i] = exp(x[i] - m) (as exp_sum_f32, summed in double), x[i] = f16(e[i] * float(1 / sum))
  // read back as f32. Elementwise steps match the scalar version exactly; only exp and the sum's order may
  // differ (as exp_sum_f32).
  void (*softmax_f16r)(float* x, int64_t n, float scale) = nullptr;
  // y[i] = (x[i] * s) * w[i] with s = 1 / sqrt(mean(x^2) + eps), the squares (float) summed in double
  // (in place allowed). Only the sum's order may differ from the scalar version.
  void (*rmsnorm_f32)(const float* x, const float* w, float* y, int64_t n, float eps) = nullptr;
  // out[i] = silu(g[i]) * u[i] = g[i] / (1 + exp(-g[i])) * u[i] (out may alias g).
  void (*silu_mul_f32)(const float* g, const float* u, float* out, int64_t n) = nullptr;
  // out[i] = relu(g[i])^2 * u[i] = (r * r) * u[i], r = max(g[i], 0) (BitNet's squared-ReLU gate; out may alias g).
  // Exactly the scalar version on every ISA.
  void (*relu_sqr_mul_f32)(const float* g, const float* u, float* out, int64_t n) = nullptr;
  // c[i * ldc + j] (+)= sum over l < k of a[i * lda + l] * f16(b_jl), i < m, j < n, where b_jl =
  // b[j * ldb + c' * b_chunks.stride + l % 32], c' = b_chunks.map ? b_chunks.map[l / 32] : l / 32 (b's rows in
  // chunks of kF16Chunk, as dot_f16_rows reads them; F16Chunks{}: plain rows): a small GEMM with f32 rows on
  // the left and f16 rows on the right (attention tiles: queries x keys, probabilities x value rows).
  // accumulate false overwrites c. Summation order unspecified (f32 accumulation).
  void (*gemm_f32_f16t)(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const uint16_t* b, int64_t ldb,
                        F16Chunks b_chunks, float* c, int64_t ldc, bool accumulate) = nullptr;

  const WeightKernels& for_type(TensorType t) const { return weights[static_cast<int>(t)]; }
  WeightKernels& for_type(TensorType t) { return weights[static_cast<int>(t)]; }
};

// How matmul multiplies the ternary formats (TQ1_0, TQ2_0, I2_S, IQ2_BN): multiply-add on unpacked codes (mad),
// lookup tables of activation sums (lut: kernels/ternary/ternary_lut.h; the weights also get a repacked copy at load),
// or auto: MAD for steps of more than kLutAutoMaxTokens rows (prompts: each token's tables cost more than they save),
// and for shorter ones (decode) whichever of the two a short measurement at load found faster for the weight's type
// and row length (ops::pack_lut). Process-wide, set before a model loads (the repacking happens at load).
enum class TernaryKernel { mad, lut, automatic };
constexpr int64_t kLutAutoMaxTokens = 4;
const char* ternary_kernel_name(TernaryKernel k);
std::optional<TernaryKernel> ternary_kernel_from_name(std::string_view name);
void select_ternary_kernel(TernaryKernel k);
TernaryKernel ternary_kernel();

// Whether this machine can run the ISA (cpuid / HWCAP).
bool isa_available(Isa isa);
// All ISAs compiled into this binary and runnable here, scalar first.
std::vector<Isa> available_isas();
// All ISAs compiled into this binary, whether this CPU runs them or not, scalar first.
std::vector<Isa> compiled_isas();
// The table of one ISA (must be available).
const KernelTable& table(Isa isa);

// The process-wide active table: the best available ISA unless forced (e.g. --isa scalar).
const KernelTable& active();
Isa active_isa();
// Throws tokenscope::Error if the ISA is not available on this machine or not built in.
void select_isa(Isa isa);

}  // namespace tokenscope::kernels
