// AVX-512 (BW + VNNI) MAD kernels for the ternary formats: 64 codes a vector, vpdpbusd multiplying the unsigned
// codes with the int8 activations straight into int32 lanes. Where a format's bytes hold codes of elements a fixed
// distance apart (IQ2_BN's 16, TQ1_0's 32 and 16), the bytes are broadcast to every 128- or 256-bit lane and each lane
// shifted or multiplied by its own amount, so the codes come out in element order, next to contiguous activations.
#include <immintrin.h>

#include <cstring>

#include "kernels/ternary/ternary_kernels.h"
#include "kernels/simd/x86.h"
#include "kernels/ternary/ternary_packed_x86.h"

namespace tokenscope::kernels::ternary::avx512 {

namespace {

inline __m512i codes_at(__m512i v, int shift) {
  return _mm512_and_si512(_mm512_srli_epi16(v, shift), _mm512_set1_epi8(3));
}
inline int32_t hsum(__m256i v) {
  __m128i h = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  h = _mm_add_epi32(h, _mm_unpackhi_epi64(h, h));
  h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 1));
  return _mm_cvtsi128_si32(h);
}
inline __m256i load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
// 32 activations at p0 in the low half, 32 at p1 in the high half.
inline __m512i load_pair(const int8_t* p0, const int8_t* p1) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(load(p0)), load(p1), 1);
}

// Byte-wise base-3 digits ((v * p mod 256) * 3) >> 8 = (m >= 86) + (m >= 171), p given per 16-bit word.
inline __m512i trit(__m512i v, __m512i p) {
  const __m512i lo = _mm512_and_si512(_mm512_mullo_epi16(v, p), _mm512_set1_epi16(0x00FF));
  const __m512i hi = _mm512_and_si512(_mm512_mullo_epi16(_mm512_and_si512(v, _mm512_set1_epi16(static_cast<int16_t>(0xFF00))), p),
                                      _mm512_set1_epi16(static_cast<int16_t>(0xFF00)));
  const __m512i m = _mm512_or_si512(lo, hi), one = _mm512_set1_epi8(1);
  return _mm512_add_epi8(_mm512_min_epu8(_mm512_subs_epu8(m, _mm512_set1_epi8(85)), one),
                         _mm512_min_epu8(_mm512_subs_epu8(m, _mm512_set1_epi8(static_cast<char>(170))), one));
}
inline __m256i trit(__m256i v, __m256i p) {
  const __m256i lo = _mm256_and_si256(_mm256_mullo_epi16(v, p), _mm256_set1_epi16(0x00FF));
  const __m256i hi = _mm256_and_si256(_mm256_mullo_epi16(_mm256_and_si256(v, _mm256_set1_epi16(static_cast<int16_t>(0xFF00))), p),
                                      _mm256_set1_epi16(static_cast<int16_t>(0xFF00)));
  const __m256i m = _mm256_or_si256(lo, hi), one = _mm256_set1_epi8(1);
  return _mm256_add_epi8(_mm256_min_epu8(_mm256_subs_epu8(m, _mm256_set1_epi8(85)), one),
                         _mm256_min_epu8(_mm256_subs_epu8(m, _mm256_set1_epi8(static_cast<char>(170))), one));
}
// Multipliers p0 for the low 256 bits, p1 for the high.
inline __m512i halves(int16_t p0, int16_t p1) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(p0)), _mm256_set1_epi16(p1), 1);
}

}  // namespace

float dot_tq1_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockTQ1_0*>(w);
  const auto* q = static_cast<const int8_t*>(a);
  // qs[0..31]: digits n = 0..4 of byte m are elements 32 n + m; two digits a vector (low and high 256 bits).
  const __m512i p01 = halves(1, 3), p23 = halves(9, 27);
  // qs[32..47]: digit n of byte m is element 160 + 16 n + m; digits 0..3 in the four 128-bit lanes.
  const __m512i p0123 = _mm512_inserti64x4(
      _mm512_castsi256_si512(_mm256_set_m128i(_mm_set1_epi16(3), _mm_set1_epi16(1))),
      _mm256_set_m128i(_mm_set1_epi16(27), _mm_set1_epi16(9)), 1);
  // Digit 4 of qs[0..31] (elements 128..159), then digit 4 of qs[32..47] (224..239) next to qh's four bytes
  // repeated (element 240 + 4k + j is digit k of qh[j]: words 2k, 2k + 1 multiply by 3^k).
  const __m256i p4 = _mm256_set1_epi16(81);
  const __m256i ptail = _mm256_setr_epi16(81, 81, 81, 81, 81, 81, 81, 81, 1, 1, 3, 3, 9, 9, 27, 27);
  float acc = 0;
  for (int64_t b = 0; b < n / QK_TQ; ++b) {
    const int8_t* qa = q + b * QK_TQ;
    const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs));
    const __m512i v0x2 = _mm512_broadcast_i64x4(v0);
    const __m512i v1x4 = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].qs + 32)));
    __m512i s = _mm512_setzero_si512();
    s = _mm512_dpbusd_epi32(s, trit(v0x2, p01), _mm512_loadu_si512(qa));
    s = _mm512_dpbusd_epi32(s, trit(v0x2, p23), _mm512_loadu_si512(qa + 64));
    s = _mm512_dpbusd_epi32(s, trit(v1x4, p0123), _mm512_loadu_si512(qa + 160));
    uint32_t qh;
    std::memcpy(&qh, x[b].qh, 4);
    const __m256i vt = _mm256_set_m128i(_mm_set1_epi32(static_cast<int>(qh)), _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].qs + 32)));
    __m256i s8 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), trit(v0, p4), load(qa + 128));
    s8 = _mm256_dpbusd_epi32(s8, trit(vt, ptail), load(qa + 224));
    acc = tq_step(acc, x[b].d, _mm512_reduce_add_epi32(s) + hsum(s8), a, n, b);
  }
  return tq_finish(acc, a, n);
}

float dot_iq2_bn(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint8_t*>(w) + kIQ2BNRowMeta;
  const auto* q = static_cast<const int8_t*>(a);
  // A block's 16 bytes in every 128-bit lane, lane l shifted right by 2l: the codes of elements 16 l + j in order.
  const __m512i shifts = _mm512_set_epi64(0x0006000600060006, 0x0006000600060006, 0x0004000400040004,
                                          0x0004000400040004, 0x0002000200020002, 0x0002000200020002, 0, 0);
  __m512i s = _mm512_setzero_si512();
  for (int64_t b = 0; b < n / QK_IQ2_BN; ++b) {
    const __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + 16 * b)));
    const __m512i c = _mm512_and_si512(_mm512_srlv_epi16(v, shifts), _mm512_set1_epi8(3));
    s = _mm512_dpbusd_epi32(s, c, _mm512_loadu_si512(q + b * QK_IQ2_BN));
  }
  return finish_iq2_bn(w, _mm512_reduce_add_epi32(s), a, n);
}

float dot_tq2_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockTQ2_0*>(w);
  const auto* q = static_cast<const int8_t*>(a);
  float acc = 0;
  for (int64_t b = 0; b < n / QK_TQ; ++b) {
    // Bytes 0..31 hold elements 32 l + m, bytes 32..63 elements 128 + 32 l + m, in bits 2l.
    const __m512i v = _mm512_loadu_si512(x[b].qs);
    const int8_t* qa = q + b * QK_TQ;
    __m512i s = _mm512_setzero_si512();
    for (int l = 0; l < 4; ++l) s = _mm512_dpbusd_epi32(s, codes_at(v, 2 * l), load_pair(qa + 32 * l, qa + 128 + 32 * l));
    acc = tq_step(acc, x[b].d, _mm512_reduce_add_epi32(s), a, n, b);
  }
  return tq_finish(acc, a, n);
}

float dot_i2_s(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint8_t*>(w);
  const auto* q = static_cast<const int8_t*>(a);
  const int64_t nb = n / QK_I2_S;
  __m512i s = _mm512_setzero_si512();
  int64_t b = 0;
  // Two blocks a vector: block b's 32 bytes low, block b + 1's high; group g is in bits 6 - 2g.
  for (; b + 2 <= nb; b += 2) {
    const __m512i v = _mm512_loadu_si512(x + 32 * b);
    const int8_t* qa = q + b * QK_I2_S;
    for (int g = 0; g < 4; ++g)
      s = _mm512_dpbusd_epi32(s, codes_at(v, 6 - 2 * g), load_pair(qa + 32 * g, qa + QK_I2_S + 32 * g));
  }
  __m256i s8 = _mm256_setzero_si256();
  if (b < nb) {
    const __m256i v = load(x + 32 * b);
    const int8_t* qa = q + b * QK_I2_S;
    for (int g = 0; g < 4; ++g)
      s8 = _mm256_dpbusd_epi32(s8, _mm256_and_si256(_mm256_srli_epi16(v, 6 - 2 * g), _mm256_set1_epi8(3)), load(qa + 32 * g));
  }
  return finish_i2_s(_mm512_reduce_add_epi32(s) + hsum(s8), a, n);
}

// The packed multiply (ternary_kernels.h). A 64-byte load of a block holds 4 rows' 16 bytes, one row per 128-bit
// lane, and bits 2s..2s+1 of byte j are the code of element 16 s + j. So v & (3 << 2s) is 4^s times the codes of
// elements 16 s .. 16 s + 15 of each of the 4 rows, in order, against the same 16 activations broadcast to every
// lane: no shifts, one mask per position, and the 4^s comes off exactly (every product is a multiple of it) when
// the position's sums are combined. One accumulator per (position, token, 4-row half) keeps the multiply-adds
// independent; a 4-row half's lanes are summed per row at the end (per block of 256 for TQ1_0 / TQ2_0).
namespace {

// Per 128-bit lane (one row), the sum of its 4 int32 lanes, in every lane.
inline __m512i row_sums(__m512i v) {
  v = _mm512_add_epi32(v, _mm512_shuffle_epi32(v, _MM_PERM_BADC));
  return _mm512_add_epi32(v, _mm512_shuffle_epi32(v, _MM_PERM_CDAB));
}

// One 4-row half's masked codes of a block (position s in c[s]).
struct Codes {
  __m512i c0, c1, c2, c3;
};
inline Codes codes_of(const uint8_t* p) {
  const __m512i v = _mm512_loadu_si512(p);
  return {_mm512_and_si512(v, _mm512_set1_epi8(0x03)), _mm512_and_si512(v, _mm512_set1_epi8(0x0C)),
          _mm512_and_si512(v, _mm512_set1_epi8(0x30)), _mm512_and_si512(v, _mm512_set1_epi8(static_cast<char>(0xC0)))};
}
// One token's and one half's sums, per position: named members, not an array, so that GCC keeps every accumulator
// in its own register across the loop (arrays of vectors it copies to new registers every block).
struct Acc {
  __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512(), s2 = _mm512_setzero_si512(),
          s3 = _mm512_setzero_si512();
};
inline __m512i bcast16(const uint8_t* p) {
  return _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
// Adds one block of one token (its 64 activations at q) for both halves (a: rows 0-3, b: rows 4-7).
inline void madd(Acc& a, Acc& b, const Codes& ca, const Codes& cb, const uint8_t* q) {
  __m512i x = bcast16(q);
  a.s0 = _mm512_dpbusd_epi32(a.s0, ca.c0, x);
  b.s0 = _mm512_dpbusd_epi32(b.s0, cb.c0, x);
  x = bcast16(q + 16);
  a.s1 = _mm512_dpbusd_epi32(a.s1, ca.c1, x);
  b.s1 = _mm512_dpbusd_epi32(b.s1, cb.c1, x);
  x = bcast16(q + 32);
  a.s2 = _mm512_dpbusd_epi32(a.s2, ca.c2, x);
  b.s2 = _mm512_dpbusd_epi32(b.s2, cb.c2, x);
  x = bcast16(q + 48);
  a.s3 = _mm512_dpbusd_epi32(a.s3, ca.c3, x);
  b.s3 = _mm512_dpbusd_epi32(b.s3, cb.c3, x);
}
// Adds one block of 2 tokens (activations at p and r) for one half: the 8 multiply-adds written as the instructions,
// so that each accumulator stays in one register (GCC 12, given the intrinsics for 4 tokens' 16 accumulators,
// copies or spills some of them every block).
inline void madd2(Acc& x, Acc& y, const Codes& c, const uint8_t* p, const uint8_t* r) {
  __m512i t;
  asm("vbroadcasti32x4 (%[p]), %[t]\n\tvpdpbusd %[t], %[c0], %[x0]\n\t"
      "vbroadcasti32x4 16(%[p]), %[t]\n\tvpdpbusd %[t], %[c1], %[x1]\n\t"
      "vbroadcasti32x4 32(%[p]), %[t]\n\tvpdpbusd %[t], %[c2], %[x2]\n\t"
      "vbroadcasti32x4 48(%[p]), %[t]\n\tvpdpbusd %[t], %[c3], %[x3]\n\t"
      "vbroadcasti32x4 (%[r]), %[t]\n\tvpdpbusd %[t], %[c0], %[y0]\n\t"
      "vbroadcasti32x4 16(%[r]), %[t]\n\tvpdpbusd %[t], %[c1], %[y1]\n\t"
      "vbroadcasti32x4 32(%[r]), %[t]\n\tvpdpbusd %[t], %[c2], %[y2]\n\t"
      "vbroadcasti32x4 48(%[r]), %[t]\n\tvpdpbusd %[t], %[c3], %[y3]"
      : [x0] "+v"(x.s0), [x1] "+v"(x.s1), [x2] "+v"(x.s2), [x3] "+v"(x.s3), [y0] "+v"(y.s0), [y1] "+v"(y.s1),
        [y2] "+v"(y.s2), [y3] "+v"(y.s3), [t] "=&v"(t)
      : [c0] "v"(c.c0), [c1] "v"(c.c1), [c2] "v"(c.c2), [c3] "v"(c.c3), [p] "r"(p), [r] "r"(r), "m"(*p), "m"(*r));
}

// The 4 rows' sums of one half (rows 4 h .. 4 h + 3) into out[4 h + r]: the positions combined (4^s off, exactly),
// then each row's 4 lanes added.
inline void store_rows(const Acc& a, int h, int32_t* out) {
  const __m512i sum = _mm512_add_epi32(_mm512_add_epi32(a.s0, _mm512_srai_epi32(a.s1, 2)),
                                       _mm512_add_epi32(_mm512_srai_epi32(a.s2, 4), _mm512_srai_epi32(a.s3, 6)));
  alignas(64) int32_t lanes[16];
  _mm512_store_si512(lanes, row_sums(sum));
  for (int r = 0; r < 4; ++r) out[4 * h + r] = lanes[4 * r];
}

// kNt tokens (1, 2 or 4) of a group: the sums over [64 b0, 64 b1), all 8 rows. Four tokens take 16 accumulators per
// 4-row half, so they go one half at a time; fewer tokens take both halves at once.
template <int kNt>
inline void group_sums(const void* w, const uint8_t* a, size_t act_stride, int64_t b0, int64_t b1,
                       int32_t (*out)[kPackRows]) {
  auto act = [&](int t, int64_t b) { return a + static_cast<size_t>(t) * act_stride + 64 * b; };
  if constexpr (kNt == 4) {
    // 16 accumulators: one half at a time.
    for (int h = 0; h < 2; ++h) {
      Acc x0, x1, x2, x3;
      for (int64_t b = b0; b < b1; ++b) {
        const Codes c = codes_of(packed_codes(w, b) + 64 * h);
        madd2(x0, x1, c, act(0, b), act(1, b));
        madd2(x2, x3, c, act(2, b), act(3, b));
      }
      store_rows(x0, h, out[0]);
      store_rows(x1, h, out[1]);
      store_rows(x2, h, out[2]);
      store_rows(x3, h, out[3]);
    }
  } else {
    // Both halves at once, sharing each activation broadcast.
    Acc x0, y0, x1, y1;
    for (int64_t b = b0; b < b1; ++b) {
      if constexpr (kNt == 1) kernels::x86::prefetch_ahead(packed_codes(w, b), 128);  // decode streams the weights once
      const Codes c0 = codes_of(packed_codes(w, b)), c1 = codes_of(packed_codes(w, b) + 64);
      madd(x0, y0, c0, c1, act(0, b));
      if constexpr (kNt == 2) madd(x1, y1, c0, c1, act(1, b));
    }
    store_rows(x0, 0, out[0]);
    store_rows(y0, 1, out[0]);
    if constexpr (kNt == 2) {
      store_rows(x1, 0, out[1]);
      store_rows(y1, 1, out[1]);
    }
  }
}

// The group sums for the x86 driver (ternary_packed_x86.h).
// TQ1_0 / TQ2_0, four tokens (prefill): their sums are needed per block of 256, so the general path's per-row
// reduction (positions combined, each row's lanes added, per token) would run every 4 blocks and cost about as much
// as the multiply-adds. Here the codes are shifted out (shared by the tokens, so positions need no 4^s), each
// (token, half) keeps two accumulators (even and odd positions: independent multiply-adds), and every 256 the four
// tokens' sums of a half are reduced together by a 4 x 4 transpose into lanes 4 r + t (row 4 h + r, token t); the
// float steps then run on those lanes, a multiply and an add as packed_tq_step rounds.
struct TqAcc {  // one token: half 0 even / odd positions, half 1 even / odd
  __m512i h0e = _mm512_setzero_si512(), h0o = _mm512_setzero_si512(), h1e = _mm512_setzero_si512(),
          h1o = _mm512_setzero_si512();
};
struct TqCodes {
  __m512i a0, a1, a2, a3, b0, b1, b2, b3;  // half 0 (a) and half 1 (b), position s
};
inline TqCodes tq_codes(const uint8_t* c) {
  const __m512i three = _mm512_set1_epi8(3);
  const __m512i v = _mm512_loadu_si512(c), u = _mm512_loadu_si512(c + 64);
  return {_mm512_and_si512(v, three),
          _mm512_and_si512(_mm512_srli_epi16(v, 2), three),
          _mm512_and_si512(_mm512_srli_epi16(v, 4), three),
          _mm512_and_si512(_mm512_srli_epi16(v, 6), three),
          _mm512_and_si512(u, three),
          _mm512_and_si512(_mm512_srli_epi16(u, 2), three),
          _mm512_and_si512(_mm512_srli_epi16(u, 4), three),
          _mm512_and_si512(_mm512_srli_epi16(u, 6), three)};
}
// One token's block (its 64 activations at q), both halves: the 8 multiply-adds as the instructions, so that the 16
// accumulators of four tokens stay in registers.
inline void tq_madd(TqAcc& x, const TqCodes& c, const uint8_t* q) {
  __m512i t;
  asm("vbroadcasti32x4 (%[q]), %[t]\n\tvpdpbusd %[t], %[a0], %[h0e]\n\tvpdpbusd %[t], %[b0], %[h1e]\n\t"
      "vbroadcasti32x4 16(%[q]), %[t]\n\tvpdpbusd %[t], %[a1], %[h0o]\n\tvpdpbusd %[t], %[b1], %[h1o]\n\t"
      "vbroadcasti32x4 32(%[q]), %[t]\n\tvpdpbusd %[t], %[a2], %[h0e]\n\tvpdpbusd %[t], %[b2], %[h1e]\n\t"
      "vbroadcasti32x4 48(%[q]), %[t]\n\tvpdpbusd %[t], %[a3], %[h0o]\n\tvpdpbusd %[t], %[b3], %[h1o]"
      : [h0e] "+v"(x.h0e), [h0o] "+v"(x.h0o), [h1e] "+v"(x.h1e), [h1o] "+v"(x.h1o), [t] "=&v"(t)
      : [a0] "v"(c.a0), [a1] "v"(c.a1), [a2] "v"(c.a2), [a3] "v"(c.a3), [b0] "v"(c.b0), [b1] "v"(c.b1),
        [b2] "v"(c.b2), [b3] "v"(c.b3), [q] "r"(q), "m"(*q));
}
// Lanes 4 r + t: the sum of 128-bit lane r of s[t] (s0..s3: one token each).
inline __m512i transpose_sums(__m512i s0, __m512i s1, __m512i s2, __m512i s3) {
  const __m512i p01 = _mm512_add_epi32(_mm512_unpacklo_epi32(s0, s1), _mm512_unpackhi_epi32(s0, s1));
  const __m512i p23 = _mm512_add_epi32(_mm512_unpacklo_epi32(s2, s3), _mm512_unpackhi_epi32(s2, s3));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(p01, p23), _mm512_unpackhi_epi64(p01, p23));
}

template <TensorType kType>
void tq_tokens4(int64_t n, const void* w, const uint8_t* a, size_t st, float* y, int64_t ldy) {
  const auto* scales = static_cast<const uint8_t*>(w) + packed_codes_bytes(n);
  const __m512i row_of_lane0 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  const __m512i row_of_lane1 = _mm512_add_epi32(row_of_lane0, _mm512_set1_epi32(4));
  const uint8_t* at[4] = {a, a + st, a + 2 * st, a + 3 * st};
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();  // rows 0-3 / 4-7, lane 4 r + t
  for (int64_t blk = 0; blk < n / QK_TQ; ++blk) {
    TqAcc x0, x1, x2, x3;
    for (int64_t b = 4 * blk; b < 4 * blk + 4; ++b) {
      const TqCodes c = tq_codes(packed_codes(w, b));
      tq_madd(x0, c, at[0] + 64 * b);
      tq_madd(x1, c, at[1] + 64 * b);
      tq_madd(x2, c, at[2] + 64 * b);
      tq_madd(x3, c, at[3] + 64 * b);
    }
    const __m512i s0 = transpose_sums(_mm512_add_epi32(x0.h0e, x0.h0o), _mm512_add_epi32(x1.h0e, x1.h0o),
                                      _mm512_add_epi32(x2.h0e, x2.h0o), _mm512_add_epi32(x3.h0e, x3.h0o));
    const __m512i s1 = transpose_sums(_mm512_add_epi32(x0.h1e, x0.h1o), _mm512_add_epi32(x1.h1e, x1.h1o),
                                      _mm512_add_epi32(x2.h1e, x2.h1o), _mm512_add_epi32(x3.h1e, x3.h1o));
    const __m512i asum = _mm512_broadcast_i32x4(
        _mm_setr_epi32(act_sum(at[0], n, blk * QK_TQ, QK_TQ), act_sum(at[1], n, blk * QK_TQ, QK_TQ),
                       act_sum(at[2], n, blk * QK_TQ, QK_TQ), act_sum(at[3], n, blk * QK_TQ, QK_TQ)));
    const __m512 d = _mm512_castps256_ps512(
        _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + blk * kPackRows * 2))));
    acc0 = _mm512_add_ps(acc0, _mm512_mul_ps(_mm512_permutexvar_ps(row_of_lane0, d),
                                             _mm512_cvtepi32_ps(_mm512_sub_epi32(s0, asum))));
    acc1 = _mm512_add_ps(acc1, _mm512_mul_ps(_mm512_permutexvar_ps(row_of_lane1, d),
                                             _mm512_cvtepi32_ps(_mm512_sub_epi32(s1, asum))));
  }
  const __m512 sc = _mm512_broadcast_f32x4(
      _mm_setr_ps(act_scale(at[0], n), act_scale(at[1], n), act_scale(at[2], n), act_scale(at[3], n)));
  alignas(64) float out[2][16];
  _mm512_store_ps(out[0], _mm512_mul_ps(acc0, sc));
  _mm512_store_ps(out[1], _mm512_mul_ps(acc1, sc));
  for (int h = 0; h < 2; ++h)
    for (int r = 0; r < 4; ++r)
      for (int t = 0; t < 4; ++t) y[t * ldy + 4 * h + r] = out[h][4 * r + t];
}

struct Sums {
  template <int kNt>
  static void run(const void* w, const uint8_t* a, size_t act_stride, int64_t b0, int64_t b1, int32_t (*out)[kPackRows]) {
    group_sums<kNt>(w, a, act_stride, b0, b1, out);
  }
  // Four tokens of TQ1_0 / TQ2_0, whole: the driver's per-256 path replaced (see tq_tokens4).
  template <TensorType kType>
  static void tq_four_tokens(int64_t n, const void* w, const uint8_t* a, size_t act_stride, float* y, int64_t ldy) {
    tq_tokens4<kType>(n, w, a, act_stride, y, ldy);
  }
};

}  // namespace

template <TensorType kType>
void gemm_packed(int64_t n, const void* w, const void* act, size_t act_stride, const int32_t* sums, int nt, float* y,
                 int64_t ldy) {
  x86::gemm_packed<kType, Sums>(n, w, act, act_stride, sums, nt, y, ldy);
}

// The "i8_row" activations (ternary_kernels.h), as the scalar quantizer computes them: the largest magnitude (a
// maximum, exact in any order), q = nearest-even(x * (127 / amax)) by the conversion's default rounding (as
// nearbyint), then each 64 quants' sum.
void quantize_act_i8_row(const float* x, void* y, int64_t n) {
  auto* q = static_cast<int8_t*>(y);
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  __m512 vmax = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = i + 16 <= n ? 0xFFFF : static_cast<__mmask16>((1u << (n - i)) - 1);
    vmax = _mm512_max_ps(vmax, _mm512_and_ps(_mm512_maskz_loadu_ps(m, x + i), abs_mask));
  }
  const float amax = _mm512_reduce_max_ps(vmax);
  const float d = amax / 127.f;
  const float id = amax != 0.f ? 127.f / amax : 0.f;
  const __m512 vid = _mm512_set1_ps(id);
  auto* sums = reinterpret_cast<int32_t*>(q + n + 4);
  // n is a multiple of 64 (every ternary block is): 4 vectors a block.
  for (int64_t b = 0; b < n / kSumBlock; ++b) {
    __m512i s = _mm512_setzero_si512();
    for (int j = 0; j < 4; ++j) {
      const int64_t i = b * kSumBlock + 16 * j;
      const __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + i), vid));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtepi32_epi8(v));
      s = _mm512_add_epi32(s, v);
    }
    sums[b] = _mm512_reduce_add_epi32(s);
  }
  std::memcpy(q + n, &d, sizeof d);
}

}  // namespace tokenscope::kernels::ternary::avx512

namespace tokenscope::kernels::detail {

void install_tq1_0_avx512(KernelTable& t) {
  t.for_type(TensorType::TQ1_0).vec_dot = ternary::avx512::dot_tq1_0;
  t.for_type(TensorType::TQ1_0).gemm_packed = ternary::avx512::gemm_packed<TensorType::TQ1_0>;
  t.for_type(TensorType::TQ1_0).act.quantize = ternary::avx512::quantize_act_i8_row;
}
void install_tq2_0_avx512(KernelTable& t) {
  t.for_type(TensorType::TQ2_0).vec_dot = ternary::avx512::dot_tq2_0;
  t.for_type(TensorType::TQ2_0).gemm_packed = ternary::avx512::gemm_packed<TensorType::TQ2_0>;
  t.for_type(TensorType::TQ2_0).act.quantize = ternary::avx512::quantize_act_i8_row;
}
void install_i2_s_avx512(KernelTable& t) {
  t.for_type(TensorType::I2_S).vec_dot = ternary::avx512::dot_i2_s;
  t.for_type(TensorType::I2_S).gemm_packed = ternary::avx512::gemm_packed<TensorType::I2_S>;
  t.for_type(TensorType::I2_S).act.quantize = ternary::avx512::quantize_act_i8_row;
}
void install_iq2_bn_avx512(KernelTable& t) {
  t.for_type(TensorType::IQ2_BN).vec_dot = ternary::avx512::dot_iq2_bn;
  t.for_type(TensorType::IQ2_BN).gemm_packed = ternary::avx512::gemm_packed<TensorType::IQ2_BN>;
  t.for_type(TensorType::IQ2_BN).act.quantize = ternary::avx512::quantize_act_i8_row;
}

}  // namespace tokenscope::kernels::detail
