// The LUT kernels' packing, tables and scalar reference (ternary_lut.h).
#include "kernels/ternary/ternary_lut.h"

#include <cstddef>
#include <cstring>

#include "base/error.h"
#include "kernels/ternary/ternary_kernels.h"

namespace tokenscope::kernels::ternary::lut {

namespace {

size_t index_bytes(int64_t n) { return static_cast<size_t>(n) * 4; }

// The codes (0, 1, 2) of block b of a ternary row (the type's own block: 256, 128 or 64 elements).
void block_codes(TensorType t, const uint8_t* row, int64_t b, uint8_t* c) {
  switch (t) {
    case TensorType::TQ1_0: tq1_0_codes(reinterpret_cast<const BlockTQ1_0*>(row)[b], c); break;
    case TensorType::TQ2_0: tq2_0_codes(reinterpret_cast<const BlockTQ2_0*>(row)[b], c); break;
    case TensorType::I2_S: i2_s_codes(row + 32 * b, c); break;
    case TensorType::IQ2_BN: iq2_bn_codes(reinterpret_cast<const BlockIQ2_BN*>(row + kIQ2BNRowMeta)[b], c); break;
    default: TS_CHECK_MSG(false, "%s is not a ternary type", type_name(t));
  }
}

}  // namespace

size_t group_bytes(TensorType t, int64_t n) {
  size_t scales = 0;
  if (per_block_scale(t)) scales = static_cast<size_t>(n / QK_TQ) * kLutRows * 2;
  if (t == TensorType::IQ2_BN) scales = kLutRows * 4;
  return index_bytes(n) + scales;
}

void pack_group(TensorType t, const void* src, size_t row_bytes, int64_t n, void* dst) {
  auto* out = static_cast<uint8_t*>(dst);
  std::memset(out, 0, group_bytes(t, n));
  const int64_t bs = type_traits(t).block_size;
  uint8_t c[256];
  for (int r = 0; r < kLutRows; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(src) + static_cast<size_t>(r) * row_bytes;
    for (int64_t b = 0; b < n / bs; ++b) {
      block_codes(t, row, b, c);
      for (int64_t i = 0; i < bs / 2; ++i) {
        const int64_t p = b * bs / 2 + i;
        const auto idx = static_cast<uint8_t>(3 * c[2 * i] + c[2 * i + 1]);
        const int64_t q = p / 4, k = p % 4;  // k: 0 -> low nibble of byte r, 1 -> of byte 16 + r, 2, 3: high nibbles
        out[q * 32 + (k % 2) * 16 + r] |= static_cast<uint8_t>(idx << (k / 2 * 4));
      }
    }
    uint8_t* scales = out + index_bytes(n);
    if (per_block_scale(t)) {
      const size_t bb = t == TensorType::TQ1_0 ? sizeof(BlockTQ1_0) : sizeof(BlockTQ2_0);
      const size_t d_at = t == TensorType::TQ1_0 ? offsetof(BlockTQ1_0, d) : offsetof(BlockTQ2_0, d);
      for (int64_t b = 0; b < n / QK_TQ; ++b) std::memcpy(scales + (b * kLutRows + r) * 2, row + b * bb + d_at, 2);
    } else if (t == TensorType::IQ2_BN) {
      std::memcpy(scales + 4 * r, row, 4);
    }
  }
}

void build_tables(const void* act, int64_t n, void* tables) {
  const auto* q = static_cast<const int8_t*>(act);
  auto* out = static_cast<uint8_t*>(tables);
  for (int64_t p = 0; p < n / 2; ++p) {
    const int64_t qd = p / 4, k = p % 4;
    // Quad layout: [lo 4q][lo 4q+1][hi 4q][hi 4q+1][lo 4q+2][lo 4q+3][hi 4q+2][hi 4q+3].
    uint8_t* lo = out + qd * 128 + (k / 2) * 64 + (k % 2) * 16;
    uint8_t* hi = lo + 32;
    for (int idx = 0; idx < 16; ++idx) {
      int v = 0;
      if (idx < 9) v = (idx / 3 - 1) * q[2 * p] + (idx % 3 - 1) * q[2 * p + 1];
      const auto u = static_cast<uint16_t>(static_cast<int16_t>(v));
      lo[idx] = static_cast<uint8_t>(u & 0xFF);
      hi[idx] = static_cast<uint8_t>(u >> 8);
    }
  }
}

float tq_block(float acc, int64_t n, const void* group, int r, int64_t b, int32_t isum_b) {
  f16_t db;
  std::memcpy(&db, static_cast<const uint8_t*>(group) + index_bytes(n) + (b * kLutRows + r) * 2, 2);
  return acc + fp16_to_fp32(db) * static_cast<float>(isum_b);
}

float finish_row(TensorType t, int64_t n, const void* group, int r, float tq_acc, int32_t isum, const void* act) {
  const float d = act_scale(act, n);
  if (per_block_scale(t)) return tq_acc * d;
  if (t == TensorType::IQ2_BN) {
    float d_row;
    std::memcpy(&d_row, static_cast<const uint8_t*>(group) + index_bytes(n) + 4 * r, 4);
    return static_cast<float>(isum) * (d_row * d);
  }
  return static_cast<float>(isum) * d;
}

void gemv_ref(TensorType t, int64_t n, const void* group, const void* tables, const void* act, float* y) {
  const auto* g = static_cast<const uint8_t*>(group);
  const auto* tb = static_cast<const uint8_t*>(tables);
  for (int r = 0; r < kLutRows; ++r) {
    float acc = 0;
    int32_t isum = 0;
    for (int64_t p = 0; p < n / 2; ++p) {
      const int64_t qd = p / 4, k = p % 4;
      const int idx = (g[qd * 32 + (k % 2) * 16 + r] >> (k / 2 * 4)) & 0xF;
      const uint8_t* lo = tb + qd * 128 + (k / 2) * 64 + (k % 2) * 16;
      isum += static_cast<int16_t>(static_cast<uint16_t>(lo[idx] | (lo[32 + idx] << 8)));
      if (per_block_scale(t) && (p + 1) % (QK_TQ / 2) == 0) {  // the end of a block of 256
        acc = tq_block(acc, n, group, r, p / (QK_TQ / 2), isum);
        isum = 0;
      }
    }
    y[r] = finish_row(t, n, group, r, acc, isum, act);
  }
}

LutRowTotals::LutRowTotals(TensorType t, int64_t n, const void* group) : t_(t), n_(n), group_(group) {
  for (int r = 0; r < kLutRows; ++r) acc_[r] = 0, tot_[r] = 0;
}

void LutRowTotals::add_block(int64_t b, const int32_t* sums) {
  for (int r = 0; r < kLutRows; ++r) {
    if (per_block_scale(t_)) acc_[r] = tq_block(acc_[r], n_, group_, r, b, sums[r]);
    else tot_[r] += sums[r];
  }
}

void LutRowTotals::finish(const void* act, float* y) const {
  for (int r = 0; r < kLutRows; ++r) y[r] = finish_row(t_, n_, group_, r, acc_[r], tot_[r], act);
}

LutGemvFn gemv_for(Isa isa) {
#if defined(TS_HAVE_X86)
  if (isa == Isa::avx2) return gemv_avx2;
  if (isa == Isa::avx512) return gemv_avx512;
#endif
#if defined(TS_HAVE_ARM)
  if (isa == Isa::neon) return gemv_neon;
#endif
  return gemv_ref;
}

}  // namespace tokenscope::kernels::ternary::lut
