// Lookup-table (LUT) kernels for the ternary formats, as T-MAC describes them: the weights repacked once into
// indices of pairs of weights, per token a table of every pair's 9 possible partial sums, and a multiply that is
// only byte shuffles (vpshufb, tbl) and adds.
//
// A pair of weights (t0, t1) = (c0 - 1, c1 - 1) has the index 3 c0 + c1 (0..8). For activation quants (a0, a1) of
// an i8_row (ternary_kernels.h), the pair's table holds T[3 c0 + c1] = t0 a0 + t1 a1 (int16, |T| <= 254) for the
// 9 indices, 0 for 9..15, stored as two 16-byte tables: low bytes, high bytes. One 16-byte shuffle looks a pair's
// table up for 16 rows at once, so the weights go in groups of kLutRows rows:
//   indices, per quad of pairs (4q .. 4q + 3): 32 bytes; byte j < 16: row j's index of pair 4q (low nibble) and of
//   pair 4q + 2 (high nibble); byte 16 + j: row j's of pairs 4q + 1 and 4q + 3. 4 n bytes a group (2 bits a weight);
//   then the rows' scales: TQ1_0 / TQ2_0: each block's f16 d, [block][row]; IQ2_BN: each row's float; I2_S: none.
//   tables, per token and quad: 128 bytes: low bytes of pairs 4q | 4q + 1, high bytes of 4q | 4q + 1, low bytes of
//   4q + 2 | 4q + 3, high bytes of 4q + 2 | 4q + 3 (16 bytes each). 16 n bytes per token.
// The sums are the exact integers sum(t * q), so each row finishes with the MAD kernels' float steps and the result
// is bit-identical to the format's vec_dot.
#pragma once

#include <cstddef>
#include <cstdint>

#include "formats/tensor_type.h"
#include "kernels/kernels.h"

namespace tokenscope::kernels::ternary::lut {

constexpr int kLutRows = 16;

// Bytes of one packed group of kLutRows rows of n elements of type t.
size_t group_bytes(TensorType t, int64_t n);
// Packs kLutRows rows (row_bytes apart in src) of n elements of ternary type t into one group.
void pack_group(TensorType t, const void* src, size_t row_bytes, int64_t n, void* dst);
// Bytes of one token's tables, and the tables of one prepared i8_row activation row of n elements.
inline size_t table_bytes(int64_t n) { return static_cast<size_t>(n) * 16; }
void build_tables(const void* act, int64_t n, void* tables);

// y[r] = row r of the group times the activation row (act: the i8_row the tables were built from), r < kLutRows.
using LutGemvFn = void (*)(TensorType t, int64_t n, const void* group, const void* tables, const void* act, float* y);
void gemv_ref(TensorType t, int64_t n, const void* group, const void* tables, const void* act, float* y);
#if defined(TS_HAVE_X86)
void gemv_avx2(TensorType t, int64_t n, const void* group, const void* tables, const void* act, float* y);
void gemv_avx512(TensorType t, int64_t n, const void* group, const void* tables, const void* act, float* y);
#endif
#if defined(TS_HAVE_ARM)
void gemv_neon(TensorType t, int64_t n, const void* group, const void* tables, const void* act, float* y);
#endif

// The multiply for an ISA's table (AVX2, AVX-512, NEON), else the reference.
LutGemvFn gemv_for(Isa isa);

// The MAD kernels' float steps, from exact integer sums, shared by every ISA. TQ1_0 / TQ2_0, per block b of 256 in
// order: acc = tq_block(acc, ...) with the block's sum, then acc * the activation scale; the others: finish_row with
// the row's sum.
float tq_block(float acc, int64_t n, const void* group, int r, int64_t b, int32_t isum_b);
float finish_row(TensorType t, int64_t n, const void* group, int r, float tq_acc, int32_t isum, const void* act);
inline bool per_block_scale(TensorType t) { return t == TensorType::TQ1_0 || t == TensorType::TQ2_0; }

// The SIMD multiplies' row totals: every 128 pairs (one TQ block of 256, the last perhaps shorter) a multiply hands
// over its kLutRows rows' exact sums; TQ1_0 / TQ2_0 take their per-block float step there, the others add up to the
// end; finish writes y. Out of line on purpose: its code is compiled once, for every ISA, not in each ISA's file.
class LutRowTotals {
 public:
  LutRowTotals(TensorType t, int64_t n, const void* group);
  void add_block(int64_t b, const int32_t* sums);  // sums[r]: row r's sum over pairs [128 b, 128 b + 128)
  void finish(const void* act, float* y) const;

 private:
  TensorType t_;
  int64_t n_;
  const void* group_;
  float acc_[kLutRows];
  int32_t tot_[kLutRows];
};

}  // namespace tokenscope::kernels::ternary::lut
