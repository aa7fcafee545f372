// The block32 family's packed (row-interleaved) layouts (block32.h) and their scalar reference multiplies. Every
// ISA shares these packers and only brings its own multiply. Sizes first, then the packers, then the references.
#include <cstring>

#include "base/fp16.h"
#include "formats/blocks.h"
#include "kernels/block32/block32.h"

namespace tokenscope::kernels::detail {

namespace {
constexpr int R = kPackRows;
}  // namespace

size_t packed_bytes_q4_0(int64_t n) { return static_cast<size_t>(n / QK4_0) * (R * 2 + 4 * 32); }
size_t packed_bytes_q4_1(int64_t n) { return static_cast<size_t>(n / QK4_1) * (R * 4 + 4 * 32); }
size_t packed_bytes_q8_0(int64_t n) { return static_cast<size_t>(n / QK8_0) * (R * 2 + 8 * 32); }

void pack_rows_q4_0(const void* src, size_t row_bytes, int64_t n, void* dst) {
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < n / QK4_0; ++b) {
    for (int r = 0; r < R; ++r) std::memcpy(out + 2 * r, &row_block<BlockQ4_0>(src, row_bytes, r, b)->d, 2);
    out += 2 * R;
    for (int c = 0; c < 4; ++c)
      for (int r = 0; r < R; ++r, out += 4) std::memcpy(out, row_block<BlockQ4_0>(src, row_bytes, r, b)->qs + 4 * c, 4);
  }
}

void pack_rows_q4_1(const void* src, size_t row_bytes, int64_t n, void* dst) {
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < n / QK4_1; ++b) {
    for (int r = 0; r < R; ++r) std::memcpy(out + 2 * r, &row_block<BlockQ4_1>(src, row_bytes, r, b)->d, 2);
    for (int r = 0; r < R; ++r) std::memcpy(out + 2 * R + 2 * r, &row_block<BlockQ4_1>(src, row_bytes, r, b)->m, 2);
    out += 4 * R;
    for (int c = 0; c < 4; ++c)
      for (int r = 0; r < R; ++r, out += 4) std::memcpy(out, row_block<BlockQ4_1>(src, row_bytes, r, b)->qs + 4 * c, 4);
  }
}

void pack_rows_q8_0(const void* src, size_t row_bytes, int64_t n, void* dst) {
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < n / QK8_0; ++b) {
    for (int r = 0; r < R; ++r) std::memcpy(out + 2 * r, &row_block<BlockQ8_0>(src, row_bytes, r, b)->d, 2);
    out += 2 * R;
    for (int c = 0; c < 8; ++c)
      for (int r = 0; r < R; ++r, out += 4) std::memcpy(out, row_block<BlockQ8_0>(src, row_bytes, r, b)->qs + 4 * c, 4);
  }
}

// Scalar reference multiplies over the packed layouts: per row and block an exact integer sum, then
// y += d_w * d_a * sum (Q4_0: sum of (q - 8) * a; Q4_1: plus m * s), accumulated block by block.

void gemm_packed_q4_0_ref(int64_t n, const void* w, const void* act, size_t act_stride, const int32_t* act_sums, int nt,
                          float* y, int64_t ldy) {
  const int64_t nb = n / QK4_0;
  for (int t = 0; t < nt; ++t) {
    const auto* a = reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(act) + t * act_stride);
    float acc[R] = {};
    const uint8_t* g = static_cast<const uint8_t*>(w);
    for (int64_t b = 0; b < nb; ++b, g += packed_bytes_q4_0(QK4_0)) {
      f16_t d[R];
      std::memcpy(d, g, sizeof d);
      const uint8_t* q = g + 2 * R;
      for (int r = 0; r < R; ++r) {
        int sum = 0;
        for (int c = 0; c < 4; ++c)
          for (int k = 0; k < 4; ++k) {
            const uint8_t byte = q[(c * R + r) * 4 + k];
            sum += (byte & 0xF) * a[b].qs[4 * c + k] + (byte >> 4) * a[b].qs[16 + 4 * c + k];
          }
        sum -= 8 * act_sums[t * nb + b];
        acc[r] += fp16_to_fp32(d[r]) * fp16_to_fp32(a[b].d) * static_cast<float>(sum);
      }
    }
    for (int r = 0; r < R; ++r) y[t * ldy + r] = acc[r];
  }
}

void gemm_packed_q4_1_ref(int64_t n, const void* w, const void* act, size_t act_stride, const int32_t* act_sums, int nt,
                          float* y, int64_t ldy) {
  const int64_t nb = n / QK4_1;
  for (int t = 0; t < nt; ++t) {
    const auto* a = reinterpret_cast<const BlockQ8_1*>(static_cast<const uint8_t*>(act) + t * act_stride);
    float acc[R] = {};
    const uint8_t* g = static_cast<const uint8_t*>(w);
    for (int64_t b = 0; b < nb; ++b, g += packed_bytes_q4_1(QK4_1)) {
      f16_t d[R], m[R];
      std::memcpy(d, g, sizeof d);
      std::memcpy(m, g + 2 * R, sizeof m);
      const uint8_t* q = g + 4 * R;
      for (int r = 0; r < R; ++r) {
        int sum = 0;
        for (int c = 0; c < 4; ++c)
          for (int k = 0; k < 4; ++k) {
            const uint8_t byte = q[(c * R + r) * 4 + k];
            sum += (byte & 0xF) * a[b].qs[4 * c + k] + (byte >> 4) * a[b].qs[16 + 4 * c + k];
          }
        acc[r] += fp16_to_fp32(d[r]) * fp16_to_fp32(a[b].d) * static_cast<float>(sum) +
                  fp16_to_fp32(m[r]) * fp16_to_fp32(a[b].s);
      }
    }
    for (int r = 0; r < R; ++r) y[t * ldy + r] = acc[r];
  }
  (void)act_sums;
}

void gemm_packed_q8_0_ref(int64_t n, const void* w, const void* act, size_t act_stride, const int32_t* act_sums, int nt,
                          float* y, int64_t ldy) {
  const int64_t nb = n / QK8_0;
  for (int t = 0; t < nt; ++t) {
    const auto* a = reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(act) + t * act_stride);
    float acc[R] = {};
    const uint8_t* g = static_cast<const uint8_t*>(w);
    for (int64_t b = 0; b < nb; ++b, g += packed_bytes_q8_0(QK8_0)) {
      f16_t d[R];
      std::memcpy(d, g, sizeof d);
      const auto* q = reinterpret_cast<const int8_t*>(g + 2 * R);
      for (int r = 0; r < R; ++r) {
        int sum = 0;
        for (int c = 0; c < 8; ++c)
          for (int k = 0; k < 4; ++k) sum += q[(c * R + r) * 4 + k] * a[b].qs[4 * c + k];
        acc[r] += fp16_to_fp32(d[r]) * fp16_to_fp32(a[b].d) * static_cast<float>(sum);
      }
    }
    for (int r = 0; r < R; ++r) y[t * ldy + r] = acc[r];
  }
  (void)act_sums;
}

}  // namespace tokenscope::kernels::detail
