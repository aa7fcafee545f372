// The K-quants' packed (row-interleaved) layouts (kquants.h) and their scalar reference multiplies. Every ISA
// shares these packers and only brings its own multiply. Sizes first, then the packers, then the references.
#include <cstring>

#include "base/fp16.h"
#include "formats/blocks.h"
#include "formats/quant_ref.h"
#include "kernels/kquants/kquants.h"

namespace tokenscope::kernels::detail {

namespace {
constexpr int R = kPackRows;
}  // namespace

size_t packed_bytes_q4_k(int64_t n) { return static_cast<size_t>(n / QK_K) * kQ4KPackedBytes; }
size_t packed_bytes_q5_k(int64_t n) { return static_cast<size_t>(n / QK_K) * kQ5KPackedBytes; }
size_t packed_bytes_q6_k(int64_t n) { return static_cast<size_t>(n / QK_K) * kQ6KPackedBytes; }

namespace {

// Q4_K, per super-block: the 8 rows' d and dmin, their 6-bit scales and mins unpacked to bytes ([sub-block]
// [row]), then each sub-block of 32 in the Q4_0 packed arrangement (its byte i: low nibble element i, high
// nibble element i + 16; chunk c holds bytes 4c..4c+3 of rows 0..7), so the Q4_0 block sums apply as they are.
// Q5_K adds its fifth bits after that (kQ5KPackedHigh).
template <typename Block, bool kFifthBit>
void pack_rows_qk_min(const void* src, size_t row_bytes, int64_t n, void* dst) {
  constexpr size_t kBytes = qk_min_packed_bytes(kFifthBit);
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < n / QK_K; ++b, out += kBytes) {
    if constexpr (kFifthBit) std::memset(out + kQ5KPackedHigh, 0, 8 * 32);
    for (int r = 0; r < R; ++r) {
      const Block* x = row_block<Block>(src, row_bytes, r, b);
      std::memcpy(out + kQ4KPackedD + 2 * r, &x->d, 2);
      std::memcpy(out + kQ4KPackedDmin + 2 * r, &x->dmin, 2);
      for (int j = 0; j < 8; ++j)
        get_scale_min_k4(j, x->scales, out + kQ4KPackedScales + j * R + r, out + kQ4KPackedMins + j * R + r);
      for (int j = 0; j < 8; ++j) {
        // Sub-block j: elements 32j..32j+31, the low (j even) or high (j odd) nibbles of qs[32 (j / 2) ..];
        // Q5_K's fifth bit of element i is bit j of qh[i].
        uint8_t q[32], h[32] = {};
        for (int i = 0; i < 32; ++i) {
          const uint8_t byte = x->qs[32 * (j / 2) + i];
          q[i] = (j % 2 == 0) ? (byte & 0xF) : (byte >> 4);
          if constexpr (kFifthBit) h[i] = (x->qh[i] >> j) & 1;
        }
        uint8_t* blk = out + kQ4KPackedQuants + 128 * j;
        for (int c = 0; c < 4; ++c)
          for (int k = 0; k < 4; ++k) {
            blk[(c * R + r) * 4 + k] = static_cast<uint8_t>(q[4 * c + k] | (q[16 + 4 * c + k] << 4));
            if constexpr (kFifthBit)
              out[kQ5KPackedHigh + 32 * j + r * 4 + k] |=
                  static_cast<uint8_t>((h[4 * c + k] << (2 * c)) | (h[16 + 4 * c + k] << (2 * c + 1)));
          }
      }
    }
  }
}

}  // namespace

void pack_rows_q4_k(const void* src, size_t row_bytes, int64_t n, void* dst) {
  pack_rows_qk_min<BlockQ4_K, false>(src, row_bytes, n, dst);
}
void pack_rows_q5_k(const void* src, size_t row_bytes, int64_t n, void* dst) {
  pack_rows_qk_min<BlockQ5_K, true>(src, row_bytes, n, dst);
}
namespace {
// Element e (0..255) of a Q6_K super-block as its unsigned 6-bit value (0..63).
int q6_k_value(const BlockQ6_K& x, int e) {
  const int h = e / 128, l = e % 32, part = (e % 128) / 32;  // part: which quarter of the half
  const uint8_t low = x.ql[64 * h + l + (part % 2) * 32];
  const int lo4 = part < 2 ? (low & 0xF) : (low >> 4);
  const int hi2 = (x.qh[32 * h + l] >> (2 * part)) & 3;
  return lo4 | (hi2 << 4);
}
}  // namespace

void pack_rows_q6_k(const void* src, size_t row_bytes, int64_t n, void* dst) {
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < n / QK_K; ++b, out += kQ6KPackedBytes) {
    std::memset(out + kQ6KPackedHigh, 0, 8 * 64);
    for (int r = 0; r < R; ++r) {
      const BlockQ6_K* x = row_block<BlockQ6_K>(src, row_bytes, r, b);
      std::memcpy(out + kQ6KPackedD + 2 * r, &x->d, 2);
      for (int s = 0; s < 16; ++s) out[kQ6KPackedScales + s * R + r] = static_cast<uint8_t>(x->scales[s]);
      for (int blk = 0; blk < 8; ++blk)
        for (int c = 0; c < 4; ++c)
          for (int k = 0; k < 4; ++k) {
            const int e_lo = 32 * blk + 4 * c + k, e_hi = e_lo + 16;
            const int v_lo = q6_k_value(*x, e_lo), v_hi = q6_k_value(*x, e_hi);
            const int p = r * 4 + k;  // the byte's place within a chunk
            out[kQ6KPackedLow + 128 * blk + c * 32 + p] = static_cast<uint8_t>((v_lo & 0xF) | ((v_hi & 0xF) << 4));
            const int bits = (v_lo >> 4) | ((v_hi >> 4) << 2);
            out[kQ6KPackedHigh + 64 * blk + 32 * (c / 2) + p] |= static_cast<uint8_t>(bits << (4 * (c % 2)));
          }
    }
  }
}

namespace {

// Q4_K / Q5_K: per row and super-block the integer sums over sub-blocks of scale x (quants . activations)
// and of min x the activation's sub-block sum, then y += d_w * d_a * sums - dmin_w * d_a * mins.
template <bool kFifthBit>
void gemm_packed_qk_min_ref(int64_t n, const void* w, const void* act, size_t act_stride, int nt, float* y,
                            int64_t ldy) {
  const int64_t nsb = n / QK_K;
  for (int t = 0; t < nt; ++t) {
    const auto* a = reinterpret_cast<const BlockQ8_K*>(static_cast<const uint8_t*>(act) + t * act_stride);
    float acc[R] = {};
    const uint8_t* g = static_cast<const uint8_t*>(w);
    for (int64_t b = 0; b < nsb; ++b, g += qk_min_packed_bytes(kFifthBit)) {
      f16_t d[R], dmin[R];
      std::memcpy(d, g + kQ4KPackedD, sizeof d);
      std::memcpy(dmin, g + kQ4KPackedDmin, sizeof dmin);
      for (int r = 0; r < R; ++r) {
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; ++j) {
          const uint8_t* q = g + kQ4KPackedQuants + 128 * j;
          const int8_t* aq = a[b].qs + 32 * j;
          int dot = 0;
          for (int c = 0; c < 4; ++c)
            for (int k = 0; k < 4; ++k) {
              const uint8_t byte = q[(c * R + r) * 4 + k];
              int lo = byte & 0xF, hi = byte >> 4;
              if constexpr (kFifthBit) {
                const uint8_t hb = g[kQ5KPackedHigh + 32 * j + r * 4 + k];
                lo |= ((hb >> (2 * c)) & 1) << 4;
                hi |= ((hb >> (2 * c + 1)) & 1) << 4;
              }
              dot += lo * aq[4 * c + k] + hi * aq[16 + 4 * c + k];
            }
          sumi += g[kQ4KPackedScales + j * R + r] * dot;
          summ += g[kQ4KPackedMins + j * R + r] * (a[b].bsums[2 * j] + a[b].bsums[2 * j + 1]);
        }
        acc[r] += fp16_to_fp32(d[r]) * a[b].d * static_cast<float>(sumi) -
                  fp16_to_fp32(dmin[r]) * a[b].d * static_cast<float>(summ);
      }
    }
    for (int r = 0; r < R; ++r) y[t * ldy + r] = acc[r];
  }
}

}  // namespace

void gemm_packed_q4_k_ref(int64_t n, const void* w, const void* act, size_t act_stride, const int32_t*, int nt,
                          float* y, int64_t ldy) {
  gemm_packed_qk_min_ref<false>(n, w, act, act_stride, nt, y, ldy);
}
void gemm_packed_q5_k_ref(int64_t n, const void* w, const void* act, size_t act_stride, const int32_t*, int nt,
                          float* y, int64_t ldy) {
  gemm_packed_qk_min_ref<true>(n, w, act, act_stride, nt, y, ldy);
}

// Q6_K: per row and super-block the integer sum over sub-blocks of 16 of scale x ((q - 32) . activations),
// then y += d_w * d_a * sum.
void gemm_packed_q6_k_ref(int64_t n, const void* w, const void* act, size_t act_stride, const int32_t*, int nt,
                          float* y, int64_t ldy) {
  const int64_t nsb = n / QK_K;
  for (int t = 0; t < nt; ++t) {
    const auto* a = reinterpret_cast<const BlockQ8_K*>(static_cast<const uint8_t*>(act) + t * act_stride);
    float acc[R] = {};
    const uint8_t* g = static_cast<const uint8_t*>(w);
    for (int64_t b = 0; b < nsb; ++b, g += kQ6KPackedBytes) {
      f16_t d[R];
      std::memcpy(d, g + kQ6KPackedD, sizeof d);
      for (int r = 0; r < R; ++r) {
        int sumi = 0;
        for (int blk = 0; blk < 8; ++blk) {
          int dot[2] = {0, 0};  // sub-blocks 2 blk (elements 0..15 of the block) and 2 blk + 1
          for (int c = 0; c < 4; ++c)
            for (int k = 0; k < 4; ++k) {
              const int p = r * 4 + k;
              const uint8_t low = g[kQ6KPackedLow + 128 * blk + c * 32 + p];
              const int bits = (g[kQ6KPackedHigh + 64 * blk + 32 * (c / 2) + p] >> (4 * (c % 2))) & 0xF;
              const int v_lo = (low & 0xF) | ((bits & 3) << 4), v_hi = (low >> 4) | ((bits >> 2) << 4);
              dot[0] += (v_lo - 32) * a[b].qs[32 * blk + 4 * c + k];
              dot[1] += (v_hi - 32) * a[b].qs[32 * blk + 16 + 4 * c + k];
            }
          sumi += static_cast<int8_t>(g[kQ6KPackedScales + (2 * blk) * R + r]) * dot[0] +
                  static_cast<int8_t>(g[kQ6KPackedScales + (2 * blk + 1) * R + r]) * dot[1];
        }
        acc[r] += fp16_to_fp32(d[r]) * a[b].d * static_cast<float>(sumi);
      }
    }
    for (int r = 0; r < R; ++r) y[t * ldy + r] = acc[r];
  }
}

}  // namespace tokenscope::kernels::detail
