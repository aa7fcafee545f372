// The ternary formats' activation layout and scalar reference MAD dot products (ternary_kernels.h).
#include <algorithm>
#include <cmath>
#include <cstddef>

#include "kernels/ternary/ternary_kernels.h"

namespace tokenscope::kernels::ternary {

void quantize_act_i8_row(const float* x, void* y, int64_t n) {
  auto* q = static_cast<int8_t*>(y);
  float amax = 0;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = amax / 127.f;
  const float id = amax != 0.f ? 127.f / amax : 0.f;
  for (int64_t i = 0; i < n; ++i) q[i] = static_cast<int8_t>(std::nearbyint(x[i] * id));
  std::memcpy(q + n, &d, sizeof d);
  int32_t* sums = reinterpret_cast<int32_t*>(q + n + 4);
  for (int64_t b = 0; b < n / kSumBlock; ++b) {
    int32_t s = 0;
    for (int64_t i = 0; i < kSumBlock; ++i) s += q[b * kSumBlock + i];
    sums[b] = s;
  }
}

ActLayout act_layout_i8_row() { return {"i8_row", std::nullopt, act_row_bytes, quantize_act_i8_row}; }

namespace {

int32_t dot_codes(const uint8_t* c, const int8_t* q, int len) {
  int32_t s = 0;
  for (int i = 0; i < len; ++i) s += c[i] * q[i];
  return s;
}

}  // namespace

float dot_tq1_0_ref(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockTQ1_0*>(w);
  const auto* q = static_cast<const int8_t*>(a);
  float acc = 0;
  uint8_t c[256];
  for (int64_t b = 0; b < n / QK_TQ; ++b) {
    tq1_0_codes(x[b], c);
    acc = tq_step(acc, x[b].d, dot_codes(c, q + b * QK_TQ, QK_TQ), a, n, b);
  }
  return tq_finish(acc, a, n);
}

float dot_tq2_0_ref(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockTQ2_0*>(w);
  const auto* q = static_cast<const int8_t*>(a);
  float acc = 0;
  uint8_t c[256];
  for (int64_t b = 0; b < n / QK_TQ; ++b) {
    tq2_0_codes(x[b], c);
    acc = tq_step(acc, x[b].d, dot_codes(c, q + b * QK_TQ, QK_TQ), a, n, b);
  }
  return tq_finish(acc, a, n);
}

float dot_i2_s_ref(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint8_t*>(w);
  const auto* q = static_cast<const int8_t*>(a);
  int32_t isum = 0;
  uint8_t c[128];
  for (int64_t b = 0; b < n / QK_I2_S; ++b) {
    i2_s_codes(x + 32 * b, c);
    isum += dot_codes(c, q + b * QK_I2_S, QK_I2_S);
  }
  return finish_i2_s(isum, a, n);
}

float dot_iq2_bn_ref(int64_t n, const void* w, const void* a) {
  const auto* x = reinterpret_cast<const BlockIQ2_BN*>(static_cast<const uint8_t*>(w) + kIQ2BNRowMeta);
  const auto* q = static_cast<const int8_t*>(a);
  int32_t isum = 0;
  uint8_t c[64];
  for (int64_t b = 0; b < n / QK_IQ2_BN; ++b) {
    iq2_bn_codes(x[b], c);
    isum += dot_codes(c, q + b * QK_IQ2_BN, QK_IQ2_BN);
  }
  return finish_iq2_bn(w, isum, a, n);
}

namespace {

bool tq_type(TensorType t) { return t == TensorType::TQ1_0 || t == TensorType::TQ2_0; }

// The codes of block b (of the type's own block size) of a ternary row.
void block_codes(TensorType t, const uint8_t* row, int64_t b, uint8_t* c) {
  switch (t) {
    case TensorType::TQ1_0: tq1_0_codes(reinterpret_cast<const BlockTQ1_0*>(row)[b], c); break;
    case TensorType::TQ2_0: tq2_0_codes(reinterpret_cast<const BlockTQ2_0*>(row)[b], c); break;
    case TensorType::I2_S: i2_s_codes(row + 32 * b, c); break;
    default: iq2_bn_codes(reinterpret_cast<const BlockIQ2_BN*>(row + kIQ2BNRowMeta)[b], c); break;
  }
}

}  // namespace

size_t packed_group_bytes(TensorType t, int64_t n) {
  size_t scales = 0;
  if (tq_type(t)) scales = static_cast<size_t>(n / QK_TQ) * kPackRows * 2;
  if (t == TensorType::IQ2_BN) scales = kPackRows * 4;
  return packed_codes_bytes(n) + scales;
}

void pack_group(TensorType t, const void* src, size_t row_bytes, int64_t n, void* dst) {
  auto* out = static_cast<uint8_t*>(dst);
  std::memset(out, 0, packed_group_bytes(t, n));
  const int64_t bs = type_traits(t).block_size;
  uint8_t c[256];
  for (int r = 0; r < kPackRows; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(src) + static_cast<size_t>(r) * row_bytes;
    if (t == TensorType::IQ2_BN) {
      // IQ2_BN's blocks of 64 already hold their codes in the packed order: a copy.
      const auto* blocks = reinterpret_cast<const BlockIQ2_BN*>(row + kIQ2BNRowMeta);
      for (int64_t b = 0; b < n / 64; ++b) std::memcpy(out + b * 128 + 16 * r, blocks[b].qs, 16);
    } else {
      // Each 64 codes of a block to the packed 16 bytes: byte j holds elements j, 16 + j, 32 + j, 48 + j.
      for (int64_t b = 0; b < n / bs; ++b) {
        block_codes(t, row, b, c);
        for (int64_t k0 = 0; k0 < bs; k0 += 64) {
          uint8_t* o = out + ((b * bs + k0) / 64) * 128 + 16 * r;
          const uint8_t* ck = c + k0;
          for (int j = 0; j < 16; ++j)
            o[j] = static_cast<uint8_t>(ck[j] | ck[16 + j] << 2 | ck[32 + j] << 4 | ck[48 + j] << 6);
        }
      }
    }
    uint8_t* scales = out + packed_codes_bytes(n);
    if (tq_type(t)) {
      const size_t bb = t == TensorType::TQ1_0 ? sizeof(BlockTQ1_0) : sizeof(BlockTQ2_0);
      const size_t d_at = t == TensorType::TQ1_0 ? offsetof(BlockTQ1_0, d) : offsetof(BlockTQ2_0, d);
      for (int64_t b = 0; b < n / QK_TQ; ++b) std::memcpy(scales + (b * kPackRows + r) * 2, row + b * bb + d_at, 2);
    } else if (t == TensorType::IQ2_BN) {
      std::memcpy(scales + 4 * r, row, 4);
    }
  }
}

namespace {

// The scalar reference multiply of a packed group: y[t * ldy + r] for r < kPackRows, t < nt.
template <TensorType kType>
void gemm_packed_ref(int64_t n, const void* w, const void* act, size_t act_stride, const int32_t*, int nt, float* y,
                     int64_t ldy) {
  for (int t = 0; t < nt; ++t) {
    const auto* a = static_cast<const uint8_t*>(act) + static_cast<size_t>(t) * act_stride;
    const auto* q = reinterpret_cast<const int8_t*>(a);
    for (int r = 0; r < kPackRows; ++r) {
      float acc = 0;
      int32_t isum = 0;
      for (int64_t b64 = 0; b64 < n / 64; ++b64) {
        const uint8_t* c = packed_codes(w, b64) + 16 * r;
        for (int k = 0; k < 64; ++k) isum += (((c[k % 16] >> (2 * (k / 16))) & 3) - 1) * q[b64 * 64 + k];
        if (tq_type(kType) && (b64 + 1) % 4 == 0) {
          acc = packed_tq_step(acc, n, w, r, b64 / 4, isum);
          isum = 0;
        }
      }
      y[t * ldy + r] = packed_finish(kType, n, w, r, acc, isum, a);
    }
  }
}

template <TensorType kType>
size_t group_bytes_of(int64_t n) {
  return packed_group_bytes(kType, n);
}
template <TensorType kType>
void pack_of(const void* src, size_t row_bytes, int64_t n, void* dst) {
  pack_group(kType, src, row_bytes, n, dst);
}

}  // namespace

}  // namespace tokenscope::kernels::ternary

namespace tokenscope::kernels::detail {

namespace {
template <TensorType kType>
void put(KernelTable& t, VecDotFn dot) {
  WeightKernels& k = t.for_type(kType);
  k.supported = true;
  k.act = ternary::act_layout_i8_row();
  k.vec_dot = dot;
  k.packed_group_bytes = ternary::group_bytes_of<kType>;
  k.pack_rows = ternary::pack_of<kType>;
  k.gemm_packed = ternary::gemm_packed_ref<kType>;
}
}  // namespace

void install_tq1_0_scalar(KernelTable& t) { put<TensorType::TQ1_0>(t, ternary::dot_tq1_0_ref); }
void install_tq2_0_scalar(KernelTable& t) { put<TensorType::TQ2_0>(t, ternary::dot_tq2_0_ref); }
void install_i2_s_scalar(KernelTable& t) { put<TensorType::I2_S>(t, ternary::dot_i2_s_ref); }
void install_iq2_bn_scalar(KernelTable& t) { put<TensorType::IQ2_BN>(t, ternary::dot_iq2_bn_ref); }

}  // namespace tokenscope::kernels::detail
