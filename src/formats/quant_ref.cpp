// Scalar reference (de)quantizers. Block layouts are those of blocks.h (ggml's on-disk formats).
#include "formats/quant_ref.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "base/error.h"
#include "base/fp16.h"
#include "formats/blocks.h"

namespace tokenscope {

int nearest_int(float fval) {
  // Adding 1.5 * 2^23 puts the rounded integer in the low mantissa bits (current rounding mode: to even).
  float val = fval + 12582912.f;
  int i;
  std::memcpy(&i, &val, sizeof(int));
  return (i & 0x007fffff) - 0x00400000;
}

namespace {

int64_t nblocks(int64_t n, int64_t qk) {
  TS_CHECK_MSG(n >= 0 && n % qk == 0, "row of %lld elements is not a multiple of the block size %lld",
               static_cast<long long>(n), static_cast<long long>(qk));
  return n / qk;
}

}  // namespace

void pack_scale_min_k4(const uint8_t sc[8], const uint8_t m[8], uint8_t out[12]) {
  std::memset(out, 0, 12);
  for (int j = 0; j < 8; ++j) {
    const uint8_t ls = sc[j] & 63, lm = m[j] & 63;
    if (j < 4) {
      out[j] = ls;
      out[j + 4] = lm;
    } else {
      out[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      out[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      out[j] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Plain types.

void dequantize_row_f32(const void* src, float* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}
void quantize_row_f32(const float* src, void* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

// 16-bit floats (IEEE half and bfloat16), read and written bytewise (rows need not be aligned).
namespace {
template <float (*ToF32)(uint16_t)>
void dequantize_half(const void* src, float* dst, int64_t n) {
  const auto* s = static_cast<const uint8_t*>(src);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, s + 2 * i, 2);
    dst[i] = ToF32(h);
  }
}
template <uint16_t (*FromF32)(float)>
void quantize_half(const float* src, void* dst, int64_t n) {
  auto* d = static_cast<uint8_t*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = FromF32(src[i]);
    std::memcpy(d + 2 * i, &h, 2);
  }
}
}  // namespace

void dequantize_row_f16(const void* src, float* dst, int64_t n) { dequantize_half<fp16_to_fp32>(src, dst, n); }
void quantize_row_f16(const float* src, void* dst, int64_t n) { quantize_half<fp32_to_fp16>(src, dst, n); }
void dequantize_row_bf16(const void* src, float* dst, int64_t n) { dequantize_half<bf16_to_fp32>(src, dst, n); }
void quantize_row_bf16(const float* src, void* dst, int64_t n) { quantize_half<fp32_to_bf16>(src, dst, n); }

// ---------------------------------------------------------------------------------------------
// 32-element block types.

void dequantize_row_q4_0(const void* src, float* dst, int64_t n) {
  const int64_t nb = nblocks(n, QK4_0);
  const auto* x = static_cast<const BlockQ4_0*>(src);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      dst[i * QK4_0 + j] = static_cast<float>((x[i].qs[j] & 0x0F) - 8) * d;
      dst[i * QK4_0 + j + QK4_0 / 2] = static_cast<float>((x[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void quantize_row_q4_0(const float* src, void* dst, int64_t n) {
  const int64_t nb = nblocks(n, QK4_0);
  auto* y = static_cast<BlockQ4_0*>(dst);
  for (int64_t i = 0; i < nb; ++i) {
    const float* x = src + i * QK4_0;
    float amax = 0.0f, max = 0.0f;  // absolute max, and the signed value that has it
    for (int j = 0; j < QK4_0; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      const float x0 = x[j] * id;
      const float x1 = x[QK4_0 / 2 + j] * id;
      const uint8_t xi0 = static_cast<uint8_t>(std::min<int8_t>(15, static_cast<int8_t>(x0 + 8.5f)));
      const uint8_t xi1 = static_cast<uint8_t>(std::min<int8_t>(15, static_cast<int8_t>(x1 + 8.5f)));
      y[i].qs[j] = static_cast<uint8_t>(xi0 | (xi1 << 4));
    }
  }
}

void dequantize_row_q4_1(const void* src, float* dst, int64_t n) {
  const int64_t nb = nblocks(n, QK4_1);
  const auto* x = static_cast<const BlockQ4_1*>(src);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float m = fp16_to_fp32(x[i].m);
    for (int j = 0; j < QK4_1 / 2; ++j) {
      dst[i * QK4_1 + j] = static_cast<float>(x[i].qs[j] & 0x0F) * d + m;
      dst[i * QK4_1 + j + QK4_1 / 2] = static_cast<float>(x[i].qs[j] >> 4) * d + m;
    }
  }
}

void quantize_row_q4_1(const float* src, void* dst, int64_t n) {
  const int64_t nb = nblocks(n, QK4_1);
  auto* y = static_cast<BlockQ4_1*>(dst);
  for (int64_t i = 0; i < nb; ++i) {
    const float* x = src + i * QK4_1;
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < QK4_1; ++j) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / ((1 << 4) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    y[i].m = fp32_to_fp16(min);
    for (int j = 0; j < QK4_1 / 2; ++j) {
      const float x0 = (x[j] - min) * id;
      const float x1 = (x[QK4_1 / 2 + j] - min) * id;
      const uint8_t xi0 = static_cast<uint8_t>(std::min<int8_t>(15, static_cast<int8_t>(x0 + 0.5f)));
      const uint8_t xi1 = static_cast<uint8_t>(std::min<int8_t>(15, static_cast<int8_t>(x1 + 0.5f)));
      y[i].qs[j] = static_cast<uint8_t>(xi0 | (xi1 << 4));
    }
  }
}

// Q5_0 / Q5_1 (dequantize only): fifth bit of element j in bit j of the 32-bit qh.
namespace {
struct BlockQ5_0 { f16_t d; uint8_t qh[4]; uint8_t qs[16]; };
struct BlockQ5_1 { f16_t d; f16_t m; uint8_t qh[4]; uint8_t qs[16]; };
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
}  // namespace

void dequantize_row_q5_0(const void* src, float* dst, int64_t n) {
  const int64_t nb = nblocks(n, 32);
  const auto* x = static_cast<const BlockQ5_0*>(src);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    uint32_t qh;
    std::memcpy(&qh, x[i].qh, 4);
    for (int j = 0; j < 16; ++j) {
      const int h0 = static_cast<int>(((qh >> j) << 4) & 0x10);
      const int h1 = static_cast<int>((qh >> (j + 12)) & 0x10);
      dst[i * 32 + j] = static_cast<float>(((x[i].qs[j] & 0x0F) | h0) - 16) * d;
      dst[i * 32 + j + 16] = static_cast<float>(((x[i].qs[j] >> 4) | h1) - 16) * d;
    }
  }
}

void dequantize_row_q5_1(const void* src, float* dst, int64_t n) {
  const int64_t nb = nblocks(n, 32);
  const auto* x = static_cast<const BlockQ5_1*>(src);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float m = fp16_to_fp32(x[i].m);
    uint32_t qh;
    std::memcpy(&qh, x[i].qh, 4);
    for (int j = 0; j < 16; ++j) {
      const int h0 = static_cast<int>(((qh >> j) << 4) & 0x10);
      const int h1 = static_cast<int>((qh >> (j + 12)) & 0x10);
      dst[i * 32 + j] = static_cast<float>((x[i].qs[j] & 0x0F) | h0) * d + m;
      dst[i * 32 + j + 16] = static_cast<float>((x[i].qs[j] >> 4) | h1) * d + m;
    }
  }
}

// Q8_0 and Q8_1 share d and qs; Q8_1 also stores s = d * sum(qs).
namespace {
template <typename Block>
void dequantize_q8(const void* src, float* dst, int64_t n) {
  const int64_t nb = nblocks(n, 32);
  const auto* x = static_cast<const Block*>(src);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < 32; ++j) dst[i * 32 + j] = static_cast<float>(x[i].qs[j]) * d;
  }
}

template <typename Block, bool kWithSum>
void quantize_q8(const float* src, void* dst, int64_t n) {
  const int64_t nb = nblocks(n, 32);
  auto* y = static_cast<Block*>(dst);
  for (int64_t i = 0; i < nb; ++i) {
    const float* x = src + i * 32;
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      y[i].qs[j] = static_cast<int8_t>(std::roundf(x[j] * id));
      sum += y[i].qs[j];
    }
    if constexpr (kWithSum) y[i].s = fp32_to_fp16(static_cast<float>(sum) * d);
  }
}
}  // namespace

void dequantize_row_q8_0(const void* src, float* dst, int64_t n) { dequantize_q8<BlockQ8_0>(src, dst, n); }
void dequantize_row_q8_1(const void* src, float* dst, int64_t n) { dequantize_q8<BlockQ8_1>(src, dst, n); }
void quantize_row_q8_0(const float* src, void* dst, int64_t n) { quantize_q8<BlockQ8_0, false>(src, dst, n); }
void quantize_row_q8_1(const float* src, void* dst, int64_t n) { quantize_q8<BlockQ8_1, true>(src, dst, n); }

// ---------------------------------------------------------------------------------------------
// K-quants (super-blocks of 256).

namespace {
struct BlockQ2_K { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; f16_t d; f16_t dmin; };
struct BlockQ3_K { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; f16_t d; };
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
}  // namespace

void dequantize_row_q2_k(const void* src, float* dst, int64_t n) {
  const int64_t nb = nblocks(n, QK_K);
  const auto* x = static_cast<const BlockQ2_K*>(src);
  float* y = dst;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float min = fp16_to_fp32(x[i].dmin);
    const uint8_t* q = x[i].qs;
    int is = 0;
    for (int c = 0; c < QK_K; c += 128) {
      int shift = 0;
      for (int j = 0; j < 4; ++j) {
        for (int half = 0; half < 2; ++half) {
          const uint8_t sc = x[i].scales[is++];
          const float dl = d * static_cast<float>(sc & 0xF);
          const float ml = min * static_cast<float>(sc >> 4);
          for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<float>((q[l + 16 * half] >> shift) & 3) - ml;
        }
        shift += 2;
      }
      q += 32;
    }
  }
}

void dequantize_row_q3_k(const void* src, float* dst, int64_t n) {
  const int64_t nb = nblocks(n, QK_K);
  const auto* x = static_cast<const BlockQ3_K*>(src);
  float* y = dst;
  for (int64_t i = 0; i < nb; ++i) {
    const float d_all = fp16_to_fp32(x[i].d);
    // 16 six-bit scales: low 4 bits in bytes 0..7 (two per byte), high 2 bits in bytes 8..11.
    int8_t scales[16];
    const uint8_t* s = x[i].scales;
    for (int j = 0; j < 16; ++j) {
      const int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
      const int hi = (s[8 + (j % 4)] >> (2 * (j / 4))) & 3;
      scales[j] = static_cast<int8_t>((lo | (hi << 4)) - 32);
    }
    const uint8_t* q = x[i].qs;
    const uint8_t* hm = x[i].hmask;
    uint8_t m = 1;
    int is = 0;
    for (int c = 0; c < QK_K; c += 128) {
      int shift = 0;
      for (int j = 0; j < 4; ++j) {
        for (int half = 0; half < 2; ++half) {
          const float dl = d_all * static_cast<float>(scales[is++]);
          for (int l = 16 * half; l < 16 * half + 16; ++l) {
            const int v = ((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4);
            *y++ = dl * static_cast<float>(v);
          }
        }
        shift += 2;
        m = static_cast<uint8_t>(m << 1);
      }
      q += 32;
    }
  }
}

void dequantize_row_q4_k(const void* src, float* dst, int64_t n) {
  const int64_t nb = nblocks(n, QK_K);
  const auto* x = static_cast<const BlockQ4_K*>(src);
  float* y = dst;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float min = fp16_to_fp32(x[i].dmin);
    const uint8_t* q = x[i].qs;
    int is = 0;
    for (int j = 0; j < QK_K; j += 64) {
      uint8_t sc, m;
      get_scale_min_k4(is + 0, x[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = min * m;
      get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = min * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
      q += 32;
      is += 2;
    }
  }
}

void dequantize_row_q5_k(const void* src, float* dst, int64_t n) {
  const int64_t nb = nblocks(n, QK_K);
  const auto* x = static_cast<const BlockQ5_K*>(src);
  float* y = dst;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float min = fp16_to_fp32(x[i].dmin);
    const uint8_t* ql = x[i].qs;
    const uint8_t* qh = x[i].qh;
    int is = 0;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < QK_K; j += 64) {
      uint8_t sc, m;
      get_scale_min_k4(is + 0, x[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = min * m;
      get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = min * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
      ql += 32;
      is += 2;
      u1 = static_cast<uint8_t>(u1 << 2);
      u2 = static_cast<uint8_t>(u2 << 2);
    }
  }
}

void dequantize_row_q6_k(const void* src, float* dst, int64_t n) {
  const int64_t nb = nblocks(n, QK_K);
  const auto* x = static_cast<const BlockQ6_K*>(src);
  float* y = dst;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const uint8_t* ql = x[i].ql;
    const uint8_t* qh = x[i].qh;
    const int8_t* sc = x[i].scales;
    for (int c = 0; c < QK_K; c += 128) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l + 0] = d * sc[is + 0] * static_cast<float>(q1);
        y[l + 32] = d * sc[is + 2] * static_cast<float>(q2);
        y[l + 64] = d * sc[is + 4] * static_cast<float>(q3);
        y[l + 96] = d * sc[is + 6] * static_cast<float>(q4);
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

void dequantize_row_q8_k(const void* src, float* dst, int64_t n) {
  const int64_t nb = nblocks(n, QK_K);
  const auto* x = static_cast<const BlockQ8_K*>(src);
  for (int64_t i = 0; i < nb; ++i)
    for (int j = 0; j < QK_K; ++j) dst[i * QK_K + j] = x[i].d * static_cast<float>(x[i].qs[j]);
}

void quantize_row_q8_k(const float* src, void* dst, int64_t n) {
  const int64_t nb = nblocks(n, QK_K);
  auto* y = static_cast<BlockQ8_K*>(dst);
  for (int64_t i = 0; i < nb; ++i) {
    const float* x = src + i * QK_K;
    float max = 0.0f, amax = 0.0f;
    for (int j = 0; j < QK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    if (amax == 0.0f) {
      y[i].d = 0.0f;
      std::memset(y[i].qs, 0, sizeof(y[i].qs));
      std::memset(y[i].bsums, 0, sizeof(y[i].bsums));
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < QK_K; ++j) y[i].qs[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * x[j])));
    for (int j = 0; j < QK_K / 16; ++j) {
      int sum = 0;
      for (int k = 0; k < 16; ++k) sum += y[i].qs[j * 16 + k];
      y[i].bsums[j] = static_cast<int16_t>(sum);
    }
    y[i].d = 1 / iscale;
  }
}

// --- K-quant weight quantizers ---------------------------------------------------------------
//
// Not ggml's exact search, but the same structure: per sub-block, choose (scale, min) by trying a
// few candidate scales around (max - min) / nmax and refitting both by least squares on the chosen
// levels; keep the candidate with the smallest squared error. Then the sub-block scales and mins are
// themselves quantized to 6 bits (Q4_K/Q5_K) or int8 (Q6_K) and the levels are recomputed with the
// final stored scales, so the stored block is self-consistent.

namespace {

// Asymmetric: x ~= scale * q - mn with q in [0, nmax], mn >= 0. Returns scale, sets *the_min = mn.
float fit_scale_min(const float* x, int n, int nmax, float* the_min) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  if (lo > 0) lo = 0;  // a positive minimum is represented with mn = 0 (keeps mn >= 0)
  if (hi <= lo) {
    *the_min = -lo;
    return 0.0f;
  }
  auto error_of = [&](float scale, float mn) {
    float e = 0;
    const float iscale = scale != 0.0f ? 1.0f / scale : 0.0f;
    for (int i = 0; i < n; ++i) {
      const int q = std::clamp(nearest_int(iscale * (x[i] + mn)), 0, nmax);
      const float diff = scale * static_cast<float>(q) - mn - x[i];
      e += diff * diff;
    }
    return e;
  };
  float best_scale = (hi - lo) / static_cast<float>(nmax);
  float best_min = -lo;
  float best_err = error_of(best_scale, best_min);
  for (int step = -6; step <= 12; ++step) {
    const float scale0 = (hi - lo) / (static_cast<float>(nmax) + 0.1f * static_cast<float>(step));
    const float iscale = 1.0f / scale0;
    // Least squares of x ~= a * q + b over the chosen levels, then a = scale, b = -min.
    double sq = 0, sqq = 0, sx = 0, sqx = 0;
    for (int i = 0; i < n; ++i) {
      const int q = std::clamp(nearest_int(iscale * (x[i] - lo)), 0, nmax);
      sq += q;
      sqq += static_cast<double>(q) * q;
      sx += x[i];
      sqx += static_cast<double>(q) * x[i];
    }
    const double det = n * sqq - sq * sq;
    if (det <= 0) continue;
    double a = (n * sqx - sq * sx) / det;
    double b = (sqq * sx - sq * sqx) / det;
    if (b > 0) {  // min must stay >= 0: refit the scale alone with b = 0
      b = 0;
      a = sqq > 0 ? sqx / sqq : 0;
    }
    if (a <= 0) continue;
    const float err = error_of(static_cast<float>(a), static_cast<float>(-b));
    if (err < best_err) {
      best_err = err;
      best_scale = static_cast<float>(a);
      best_min = static_cast<float>(-b);
    }
  }
  *the_min = best_min;
  return best_scale;
}

// Symmetric: x ~= scale * q with q in [-nmax, nmax - 1]. Returns a signed scale.
float fit_scale_symmetric(const float* x, int n, int nmax) {
  float amax = 0, max = 0;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  if (amax == 0) return 0.0f;
  auto error_of = [&](float scale) {
    float e = 0;
    const float iscale = 1.0f / scale;
    for (int i = 0; i < n; ++i) {
      const int q = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      const float diff = scale * static_cast<float>(q) - x[i];
      e += diff * diff;
    }
    return e;
  };
  // The extreme value maps to -nmax (which is representable), as in ggml.
  float best = max / static_cast<float>(-nmax);
  float best_err = error_of(best);
  for (int step = -9; step <= 9; ++step) {
    const float iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(step)) / max;
    double sqx = 0, sqq = 0;
    for (int i = 0; i < n; ++i) {
      const int q = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      sqx += static_cast<double>(q) * x[i];
      sqq += static_cast<double>(q) * q;
    }
    if (sqq <= 0) continue;
    const float scale = static_cast<float>(sqx / sqq);
    if (scale == 0) continue;
    const float err = error_of(scale);
    if (err < best_err) {
      best_err = err;
      best = scale;
    }
  }
  return best;
}

// Shared by Q4_K (nmax 15) and Q5_K (nmax 31): fills d, dmin, scales and the levels L[256].
template <typename Block>
void quantize_k_scales(const float* x, Block& b, int nmax, uint8_t L[QK_K]) {
  float scales[8], mins[8];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    scales[j] = fit_scale_min(x + 32 * j, 32, nmax, &mins[j]);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = static_cast<uint8_t>(std::min(63, nearest_int(inv_scale * scales[j])));
    lm[j] = static_cast<uint8_t>(std::min(63, nearest_int(inv_min * mins[j])));
  }
  pack_scale_min_k4(ls, lm, b.scales);
  b.d = fp32_to_fp16(max_scale / 63.f);
  b.dmin = fp32_to_fp16(max_min / 63.f);
  const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
  for (int j = 0; j < 8; ++j) {
    const float dj = d * ls[j];
    const float mj = dmin * lm[j];
    for (int ii = 0; ii < 32; ++ii) {
      const int l = dj != 0.0f ? nearest_int((x[32 * j + ii] + mj) / dj) : 0;
      L[32 * j + ii] = static_cast<uint8_t>(std::clamp(l, 0, nmax));
    }
  }
}

}  // namespace

void quantize_row_q4_k(const float* src, void* dst, int64_t n) {
  const int64_t nb = nblocks(n, QK_K);
  auto* y = static_cast<BlockQ4_K*>(dst);
  uint8_t L[QK_K];
  for (int64_t i = 0; i < nb; ++i) {
    quantize_k_scales(src + i * QK_K, y[i], 15, L);
    uint8_t* q = y[i].qs;
    for (int j = 0; j < QK_K; j += 64) {
      for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
      q += 32;
    }
  }
}

void quantize_row_q5_k(const float* src, void* dst, int64_t n) {
  const int64_t nb = nblocks(n, QK_K);
  auto* y = static_cast<BlockQ5_K*>(dst);
  uint8_t L[QK_K];
  for (int64_t i = 0; i < nb; ++i) {
    quantize_k_scales(src + i * QK_K, y[i], 31, L);
    std::memset(y[i].qh, 0, sizeof(y[i].qh));
    uint8_t* ql = y[i].qs;
    uint8_t m1 = 1, m2 = 2;
    for (int j = 0; j < QK_K; j += 64) {
      for (int l = 0; l < 32; ++l) {
        int l1 = L[j + l], l2 = L[j + l + 32];
        if (l1 > 15) { l1 -= 16; y[i].qh[l] |= m1; }
        if (l2 > 15) { l2 -= 16; y[i].qh[l] |= m2; }
        ql[l] = static_cast<uint8_t>(l1 | (l2 << 4));
      }
      ql += 32;
      m1 = static_cast<uint8_t>(m1 << 2);
      m2 = static_cast<uint8_t>(m2 << 2);
    }
  }
}

void quantize_row_q6_k(const float* src, void* dst, int64_t n) {
  const int64_t nb = nblocks(n, QK_K);
  auto* y = static_cast<BlockQ6_K*>(dst);
  for (int64_t i = 0; i < nb; ++i) {
    const float* x = src + i * QK_K;
    float scales[QK_K / 16];
    float max_scale = 0, amax = 0;
    for (int ib = 0; ib < QK_K / 16; ++ib) {
      scales[ib] = fit_scale_symmetric(x + 16 * ib, 16, 32);
      if (std::fabs(scales[ib]) > amax) {
        amax = std::fabs(scales[ib]);
        max_scale = scales[ib];
      }
    }
    uint8_t L[QK_K];
    if (amax == 0) {
      std::memset(&y[i], 0, sizeof(BlockQ6_K));
      std::memset(y[i].ql, 0, sizeof(y[i].ql));
      for (int j = 0; j < QK_K; ++j) L[j] = 32;
    } else {
      // Sub-block scales as int8 with the largest magnitude at -128 (ggml's convention).
      const float iscale = -128.f / max_scale;
      y[i].d = fp32_to_fp16(1 / iscale);
      for (int ib = 0; ib < QK_K / 16; ++ib)
        y[i].scales[ib] = static_cast<int8_t>(std::clamp(nearest_int(iscale * scales[ib]), -128, 127));
      const float dd = fp16_to_fp32(y[i].d);
      for (int ib = 0; ib < QK_K / 16; ++ib) {
        const float d = dd * y[i].scales[ib];
        for (int ii = 0; ii < 16; ++ii) {
          const int l = d != 0.0f ? nearest_int(x[16 * ib + ii] / d) : 0;
          L[16 * ib + ii] = static_cast<uint8_t>(std::clamp(l, -32, 31) + 32);
        }
      }
    }
    uint8_t* ql = y[i].ql;
    uint8_t* qh = y[i].qh;
    for (int j = 0; j < QK_K; j += 128) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
        const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
        ql[l] = static_cast<uint8_t>(q1 | (q3 << 4));
        ql[l + 32] = static_cast<uint8_t>(q2 | (q4 << 4));
        qh[l] = static_cast<uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                     ((L[j + l + 96] >> 4) << 6));
      }
      ql += 64;
      qh += 32;
    }
  }
}

}  // namespace tokenscope
