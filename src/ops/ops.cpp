#include "ops/ops.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <system_error>
#include <thread>

#include "base/error.h"
#include "base/fp16.h"

namespace tokenscope::ops {

uint8_t* Context::act_scratch(size_t bytes) {
  if (act_.size() < bytes) act_.resize(bytes);
  return act_.data();
}

int32_t* Context::int_scratch(size_t n) {
  if (i32_.size() < n) i32_.resize(n);
  return i32_.data();
}

uint16_t* Context::half_scratch(size_t n) {
  if (f16_.size() < n) f16_.resize(n);
  return f16_.data();
}

float* Context::float_scratch(size_t n) {
  if (f32_.size() < n) f32_.resize(n);
  return f32_.data();
}

void pack_weights(const std::vector<Weight*>& ws) {
  constexpr size_t kAlign = 64;
  // Every table shares the packers; a type is packed where the best table here multiplies its packed layout
  // (the others then read the packed copy through their own or the reference multiply, or the rows, which
  // stay in place).
  const kernels::KernelTable& table = kernels::active();
  // Per weight: its packed group size where the type has a packed layout and the weight a full group (0:
  // a plain copy of the rows, the same bytes but on huge pages instead of the file mapping's 4 KiB ones),
  // and the bytes it takes in the buffer.
  std::vector<size_t> group_bytes(ws.size(), 0), bytes(ws.size());
  size_t total = 0;
  for (size_t i = 0; i < ws.size(); ++i) {
    const Weight& w = *ws[i];
    const kernels::WeightKernels& wk = table.for_type(w.type);
    if (wk.pack_rows && wk.gemm_packed && w.rows >= kernels::kPackRows) {
      group_bytes[i] = wk.packed_group_bytes(w.cols);
      bytes[i] = group_bytes[i] * static_cast<size_t>(w.rows / kernels::kPackRows);
    } else {
      bytes[i] = w.row_bytes * static_cast<size_t>(w.rows);
    }
    total += (bytes[i] + kAlign - 1) / kAlign * kAlign;
  }
  if (total == 0) return;
  auto buf = std::make_shared<const HugeBuffer>(total, "the weights' packed copies");
  // Where each weight goes, then the copying and packing in pieces spread over the CPUs (packing the
  // K-quants element by element took ~1.5 s of a 450 MB model's load on one thread).
  std::vector<uint8_t*> dst(ws.size());
  auto* out = static_cast<uint8_t*>(buf->data());
  for (size_t i = 0; i < ws.size(); ++i) {
    dst[i] = out;
    out += (bytes[i] + kAlign - 1) / kAlign * kAlign;
  }
  struct Piece {
    size_t weight;
    int64_t begin, end;  // groups (packed) or bytes (plain copy)
  };
  std::vector<Piece> pieces;
  constexpr int64_t kGroupsPerPiece = 2048, kBytesPerPiece = int64_t{16} << 20;
  for (size_t i = 0; i < ws.size(); ++i) {
    const int64_t n = group_bytes[i] ? ws[i]->rows / kernels::kPackRows : static_cast<int64_t>(bytes[i]);
    const int64_t step = group_bytes[i] ? kGroupsPerPiece : kBytesPerPiece;
    for (int64_t b = 0; b < n; b += step) pieces.push_back({i, b, std::min(n, b + step)});
  }
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t p = next++; p < pieces.size(); p = next++) {
      const Piece& pc = pieces[p];
      const Weight& w = *ws[pc.weight];
      if (group_bytes[pc.weight]) {
        const kernels::WeightKernels& wk = table.for_type(w.type);
        for (int64_t g = pc.begin; g < pc.end; ++g)
          wk.pack_rows(w.data + static_cast<size_t>(g * kernels::kPackRows) * w.row_bytes, w.row_bytes, w.cols,
                       dst[pc.weight] + static_cast<size_t>(g) * group_bytes[pc.weight]);
      } else {
        std::memcpy(dst[pc.weight] + pc.begin, w.data + pc.begin, static_cast<size_t>(pc.end - pc.begin));
      }
    }
  };
  const unsigned n_threads = std::clamp(std::thread::hardware_concurrency(), 1u, 8u);
  std::vector<std::thread> threads;
  try {
    for (unsigned t = 1; t < n_threads && t < pieces.size(); ++t) threads.emplace_back(work);
  } catch (const std::system_error&) {
    // No more threads to be had: the ones started and this one share the pieces.
  }
  work();
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < ws.size(); ++i) {
    Weight& w = *ws[i];
    if (group_bytes[i]) {
      w.packed = dst[i];
      w.packed_group_bytes = group_bytes[i];
    } else {
      w.data = dst[i];
    }
    w.packed_owner = buf;
  }
}

namespace {

// Integer sum of each activation block's quants in one quantized row (the packed Q4_0 kernel needs it for
// its -8 offset).
void block_sums(const uint8_t* act, TensorType act_type, int64_t K, int32_t* sums) {
  const size_t bb = row_size(act_type, 32);
  const size_t qoff = act_type == TensorType::Q8_1 ? 4 : 2;  // the quants follow d (and s)
  for (int64_t b = 0; b < K / 32; ++b) {
    const auto* q = reinterpret_cast<const int8_t*>(act + b * bb + qoff);
    int32_t s = 0;
    for (int j = 0; j < 32; ++j) s += q[j];
    sums[b] = s;
  }
}

}  // namespace

void matmul(Context& ctx, const Weight& w, const float* x, int64_t T, float* y, const float* bias) {
  matmul_multi(ctx, {{&w, y, bias}}, x, T);
}

void matmul_multi(Context& ctx, const std::vector<MatmulOut>& outs, const float* x, int64_t T) {
  TS_CHECK(!outs.empty());
  const Weight& w0 = *outs[0].w;
  const kernels::WeightKernels& wk0 = ctx.k().for_type(w0.type);
  for (const MatmulOut& o : outs) {
    const kernels::WeightKernels& wk = ctx.k().for_type(o.w->type);
    if (!wk.supported) fail("tensor %s: no matmul kernel for type %s", o.w->name.c_str(), type_name(o.w->type));
    TS_CHECK_MSG(o.w->cols == w0.cols, "matmul_multi: %s and %s have different input lengths", o.w->name.c_str(),
                 w0.name.c_str());
    if (wk.act_type != wk0.act_type) {
      // Mixed formats (e.g. a Q4_0 matrix next to a Q4_1 one) quantize the input differently: one at a time.
      for (const MatmulOut& single : outs) matmul_multi(ctx, {single}, x, T);
      return;
    }
  }
  const int64_t K = w0.cols;
  const size_t act_row = row_size(wk0.act_type, K);
  uint8_t* act = ctx.act_scratch(act_row * static_cast<size_t>(T));

  // 1. Activations into the weights' paired activation format (Q8_0, Q8_1, Q8_K, F16, ...), once.
  // The packed multiplies of the types paired with Q8_0 / Q8_1 take each activation block's quant sum (Q8_K
  // blocks carry their own).
  const bool packed_ok = wk0.gemm_packed && K % 32 == 0;
  int32_t* sums = nullptr;
  if (packed_ok && (wk0.act_type == TensorType::Q8_0 || wk0.act_type == TensorType::Q8_1))
    sums = ctx.int_scratch(static_cast<size_t>(T * (K / 32)));
  auto quantize_rows = [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      uint8_t* a = act + static_cast<size_t>(t) * act_row;
      wk0.quantize_act(x + t * K, a, K);
      if (sums) block_sums(a, wk0.act_type, K, sums + t * (K / 32));
    }
  };
  if (T == 1) {
    quantize_rows(0, 1);
  } else {
    ctx.pool().parallel_for(T, 4, [&](int64_t b, int64_t e, int) { quantize_rows(b, e); });
  }

  // 2. Work units: groups of kPackRows rows (or pairs of groups) for packed weights, chunks of 16 rows
  //    otherwise, numbered across all outputs. Tokens go in chunks that stay in cache while the thread's
  //    weights stream past them.
  constexpr int64_t R = kernels::kPackRows;
  constexpr int64_t kPlainChunk = 16;
  // Per output: pairs of groups, then single groups, then plain chunks, numbered consecutively across the
  // outputs (unit_at maps a number back; no list is built, decode's output projection alone has 6k units).
  std::vector<Context::MatmulUnits>& spans = ctx.units_scratch();
  spans.clear();
  int64_t n_units = 0;
  for (const MatmulOut& o : outs) {
    const Weight& w = *o.w;
    Context::MatmulUnits sp;
    sp.first = n_units;
    if (w.packed && ctx.k().for_type(w.type).gemm_packed && packed_ok) {
      // Two groups per unit where the table multiplies pairs (16 int32 lanes), then single groups. Not in
      // decode: one weight stream per thread measured ~15% faster there than the pair's two (Zen 5, tg128).
      if (ctx.k().for_type(w.type).gemm_packed2 && T >= 4) sp.pairs = w.rows / (2 * R);
      sp.singles = (w.rows - sp.pairs * 2 * R) / R;
    }
    const int64_t rest = w.rows - sp.pairs * 2 * R - sp.singles * R;
    sp.plains = (rest + kPlainChunk - 1) / kPlainChunk;
    n_units += sp.pairs + sp.singles + sp.plains;
    spans.push_back(sp);
  }
  struct Unit {
    size_t out;
    int64_t row0, rows;
    bool packed;
  };
  auto unit_at = [&](int64_t u) {
    size_t i = 0;
    while (i + 1 < spans.size() && spans[i + 1].first <= u) ++i;
    const Context::MatmulUnits& sp = spans[i];
    int64_t l = u - sp.first;
    if (l < sp.pairs) return Unit{i, l * 2 * R, 2 * R, true};
    l -= sp.pairs;
    const int64_t row_s = sp.pairs * 2 * R;
    if (l < sp.singles) return Unit{i, row_s + l * R, R, true};
    l -= sp.singles;
    const int64_t row0 = row_s + sp.singles * R + l * kPlainChunk;
    return Unit{i, row0, std::min(kPlainChunk, outs[i].w->rows - row0), false};
  };
  auto sums_at = [&](int64_t t) -> const int32_t* { return sums ? sums + t * (K / 32) : nullptr; };
  // (Token chunks sized to keep the activations in L1, 8 or 16 KiB, measured the same as 64 tokens.)
  constexpr int64_t kTokenChunk = 64;
  auto body = [&](int64_t ub, int64_t ue, int) {
    for (int64_t t0 = 0; t0 < T; t0 += kTokenChunk) {
      const int64_t t1 = std::min(T, t0 + kTokenChunk);
      for (int64_t u = ub; u < ue; ++u) {
        const Unit un = unit_at(u);
        const MatmulOut& o = outs[un.out];
        const Weight& w = *o.w;
        const kernels::WeightKernels& wk = ctx.k().for_type(w.type);
        const int64_t N = w.rows;
        if (un.packed) {
          const uint8_t* g = w.packed + static_cast<size_t>(un.row0 / R) * w.packed_group_bytes;
          if (un.rows == 2 * R) {
            for (int64_t t = t0; t < t1; t += kernels::kPacked2MaxTokens) {
              const int nt = static_cast<int>(std::min<int64_t>(kernels::kPacked2MaxTokens, t1 - t));
              wk.gemm_packed2(K, g, w.packed_group_bytes, act + static_cast<size_t>(t) * act_row, act_row,
                              sums_at(t), nt, o.y + t * N + un.row0, N);
            }
          } else {
            for (int64_t t = t0; t < t1; t += 4) {
              const int nt = static_cast<int>(std::min<int64_t>(4, t1 - t));
              wk.gemm_packed(K, g, act + static_cast<size_t>(t) * act_row, act_row, sums_at(t), nt,
                             o.y + t * N + un.row0, N);
            }
          }
        } else {
          for (int64_t r = un.row0; r < un.row0 + un.rows; ++r) {
            const uint8_t* wr = w.data + static_cast<size_t>(r) * w.row_bytes;
            for (int64_t t = t0; t < t1; ++t)
              o.y[t * N + r] = wk.vec_dot(K, wr, act + static_cast<size_t>(t) * act_row);
          }
        }
        if (o.bias)
          for (int64_t t = t0; t < t1; ++t)
            for (int64_t r = un.row0; r < un.row0 + un.rows; ++r) o.y[t * N + r] += o.bias[r];
      }
    }
  };
  // Each thread streams its own contiguous range in order, which the hardware prefetchers follow (claiming
  // chunks from one shared counter measured ~6% slower in decode), and one done early takes small pieces
  // from the back of the other's (the VM's vCPUs are not equally fast from moment to moment). Against the plain split: decode +3% on the
  // Q8_0 and Qwen-shape models, -1% on Q4_0 (6 interleaved rounds); prefill +3% Q4_1, +1% Q8_0 (5 rounds).
  ctx.pool().parallel_for_stealing(n_units, T == 1 ? 4 : 1, body);
}

void rmsnorm(Context& ctx, const float* x, const float* weight, float* y, int64_t T, int64_t n, float eps) {
  const auto& k = ctx.k();
  if (T < 4) {
    for (int64_t t = 0; t < T; ++t) k.rmsnorm_f32(x + t * n, weight, y + t * n, n, eps);
    return;
  }
  ctx.pool().parallel_for(T, 2, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) k.rmsnorm_f32(x + t * n, weight, y + t * n, n, eps);
  });
}

void rope_table(Context& ctx, const int32_t* pos, int64_t T, int64_t n_rot, float freq_base, float* cs) {
  TS_CHECK(n_rot % 2 == 0);
  const float theta_scale = std::pow(freq_base, -2.0f / static_cast<float>(n_rot));
  auto rows = [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      float theta = static_cast<float>(pos[t]);
      float* c = cs + t * n_rot;
      for (int64_t i = 0; i < n_rot / 2; ++i) {
        c[2 * i] = std::cos(theta);
        c[2 * i + 1] = std::sin(theta);
        theta *= theta_scale;
      }
    }
  };
  if (T < 16) {
    rows(0, T);
    return;
  }
  ctx.pool().parallel_for(T, 8, [&](int64_t b, int64_t e, int) { rows(b, e); });
}

namespace {
// One head's rotation: the first n_rot dims of v by the angles c (cos, sin interleaved).
void rope_head(float* v, const float* c, int64_t n_rot, RopeStyle style) {
  for (int64_t i = 0; i < n_rot / 2; ++i) {
    const int64_t a = style == RopeStyle::normal ? 2 * i : i;
    const int64_t b2 = style == RopeStyle::normal ? 2 * i + 1 : i + n_rot / 2;
    const float co = c[2 * i], si = c[2 * i + 1];
    const float x0 = v[a], x1 = v[b2];
    v[a] = x0 * co - x1 * si;
    v[b2] = x0 * si + x1 * co;
  }
}

// Where the zeroing after storing values up to position `end` stops: the end of that block of kAttnPad
// positions, but not past n_ctx, nor past stale_end (from there on the cache is still zero from its
// allocation). Shared by store_value_blocks and attention_decode.
int64_t value_clear_end(int64_t end, int64_t n_ctx, int64_t stale_end) {
  return std::min({n_ctx, (end + kAttnPad - 1) / kAttnPad * kAttnPad, std::max(stale_end, end)});
}

// Zeros positions end..clear_end-1 (within end's block) of one KV head's value blocks.
void clear_value_tail(uint16_t* vh, int64_t head_dim, int64_t end, int64_t clear_end) {
  if (clear_end <= end) return;
  for (int64_t i = 0; i < head_dim; ++i) {
    uint16_t* row = vh + value_index(head_dim, i, end);
    std::fill(row, row + (clear_end - end), uint16_t{0});
  }
}
}  // namespace

void rope(Context& ctx, float* x, int64_t T, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cs,
          RopeStyle style) {
  TS_CHECK(n_rot % 2 == 0 && n_rot <= head_dim);
  auto rows = [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t)
      for (int64_t h = 0; h < n_heads; ++h) rope_head(x + (t * n_heads + h) * head_dim, cs + t * n_rot, n_rot, style);
  };
  if (T < 4) {
    rows(0, T);
    return;
  }
  ctx.pool().parallel_for(T, 2, [&](int64_t b, int64_t e, int) { rows(b, e); });
}

void store_heads(Context& ctx, TensorType type, const float* x, void* cache, int64_t T, int64_t n_heads,
                 int64_t head_dim, int64_t pos0, int64_t n_ctx) {
  TS_CHECK(pos0 >= 0 && pos0 + T <= n_ctx);
  TS_CHECK(type == TensorType::F16 || (type == TensorType::Q8_0 && head_dim % 32 == 0));
  const size_t row = row_size(type, head_dim);
  const auto& k = ctx.k();
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < n_heads; ++h) {
      const float* src = x + (t * n_heads + h) * head_dim;
      uint8_t* dst = static_cast<uint8_t*>(cache) + static_cast<size_t>(h * n_ctx + pos0 + t) * row;
      if (type == TensorType::F16) k.f32_to_f16(src, reinterpret_cast<uint16_t*>(dst), head_dim);
      else k.for_type(TensorType::Q8_0).quantize_act(src, dst, head_dim);
    }
}

void store_value_blocks(Context& ctx, const float* x, uint16_t* v_cache, int64_t T, int64_t n_heads, int64_t head_dim,
                        int64_t pos0, int64_t n_ctx, int64_t stale_end) {
  TS_CHECK_MSG(n_ctx % kAttnPad == 0, "the value cache must hold a multiple of %d positions", static_cast<int>(kAttnPad));
  TS_CHECK(pos0 >= 0 && pos0 + T <= n_ctx);
  const int64_t n = n_heads * head_dim;
  const int64_t end = pos0 + T, clear_end = value_clear_end(end, n_ctx, stale_end);
  // Rows to f16 with the SIMD converter, then per head and block the positions' values go in as runs.
  auto* h = reinterpret_cast<uint16_t*>(ctx.act_scratch(static_cast<size_t>(T * n) * 2));
  ctx.k().f32_to_f16(x, h, T * n);
  for (int64_t kvh = 0; kvh < n_heads; ++kvh) {
    uint16_t* vh = v_cache + kvh * head_dim * n_ctx;
    for (int64_t p0 = pos0; p0 < end; p0 = (p0 / kAttnPad + 1) * kAttnPad) {  // one block's positions at a time
      const int64_t p1 = std::min(end, (p0 / kAttnPad + 1) * kAttnPad);
      for (int64_t i = 0; i < head_dim; ++i) {
        uint16_t* run = vh + value_index(head_dim, i, p0);
        const uint16_t* src = h + (p0 - pos0) * n + kvh * head_dim + i;
        for (int64_t p = p0; p < p1; ++p) run[p - p0] = src[(p - p0) * n];
      }
    }
    clear_value_tail(vh, head_dim, end, clear_end);  // the block's unused tail stays zero (see attention)
  }
}

namespace {

// Prefill, flash-attention style: a tile of query rows (the heads sharing one KV head x a few consecutive
// tokens) walks the keys in blocks of kFlashKeys with an online softmax (running max m and sum l per row;
// when the max grows, the row's partial output and sum are rescaled by exp(m_old - m_new)). Only a
// rows x kFlashKeys score block ever exists, whatever the context length, and each K row and V^T row is
// converted from f16 once per tile instead of once per query. q is rounded through f16 as the one-query path
// rounds it; scores, probabilities and the output stay f32 (f32 dot products: a different summation order
// and rounding from the one-query path, within the attention test's bound).
// 512 keys: a prompt of up to 512 tokens is one block (no rescaling). Against the earlier one-pass tiles,
// pp512 measured 0.99 with 512 and 0.96 with 256 (separate runs of 4 interleaved rounds: within noise).
constexpr int64_t kFlashKeys = 512;

void attention_flash(Context& ctx, const float* q, const uint16_t* k_cache, const uint16_t* v_cache, float* out,
                     int64_t T, int64_t pos0, int64_t n_ctx, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                     float scale) {
  const int64_t group = n_head / n_head_kv;
  const int64_t tok_per_tile = std::max<int64_t>(1, 32 / group);  // ~32 query rows per tile
  const int64_t tiles = (T + tok_per_tile - 1) / tok_per_tile;
  const int64_t jobs = tiles * n_head_kv;
  const int64_t rows_max = group * tok_per_tile;
  const auto& k = ctx.k();
  const int nth = ctx.pool().size();
  // Per thread: query rows (f32, rounded through f16, times scale), one score block, the output rows,
  // the running max and sum per row.
  const int64_t per_thread = rows_max * (2 * head_dim + kFlashKeys + 2) + 64;
  float* scratch = ctx.float_scratch(static_cast<size_t>(nth * per_thread));
  uint16_t* half_scratch = reinterpret_cast<uint16_t*>(ctx.act_scratch(static_cast<size_t>(nth * head_dim) * 2));
  // Jobs claimed one at a time: later tiles see more keys, so fixed ranges would unbalance the threads.
  ctx.pool().parallel_for_dynamic(jobs, 1, [&](int64_t job_b, int64_t job_e, int ith) {
    float* qs = scratch + ith * per_thread;
    float* s = qs + rows_max * head_dim;
    float* acc = s + rows_max * kFlashKeys;
    float* m = acc + rows_max * head_dim;
    float* l = m + rows_max;
    uint16_t* h = half_scratch + ith * head_dim;
    for (int64_t job = job_b; job < job_e; ++job) {
      const int64_t tile = job / n_head_kv, kvh = job % n_head_kv;
      const int64_t t0 = tile * tok_per_tile, t1 = std::min(T, t0 + tok_per_tile);
      const int64_t nrows = (t1 - t0) * group;
      const int64_t n_kv_tile = pos0 + t1;  // keys the last token of the tile sees
      // Query rows in order (token, head within group); the softmax scale is folded in.
      for (int64_t t = t0; t < t1; ++t)
        for (int64_t g = 0; g < group; ++g) {
          const int64_t r = (t - t0) * group + g;
          k.f32_to_f16(q + (t * n_head + kvh * group + g) * head_dim, h, head_dim);
          k.f16_to_f32(h, qs + r * head_dim, head_dim);
          for (int64_t i = 0; i < head_dim; ++i) qs[r * head_dim + i] *= scale;
        }
      std::fill(m, m + nrows, -INFINITY);
      std::fill(l, l + nrows, 0.0f);
      std::fill(acc, acc + nrows * head_dim, 0.0f);
      const uint16_t* kh = k_cache + kvh * n_ctx * head_dim;
      const uint16_t* vh = v_cache + kvh * head_dim * n_ctx;
      for (int64_t j0 = 0; j0 < n_kv_tile; j0 += kFlashKeys) {
        const int64_t nb = std::min(kFlashKeys, n_kv_tile - j0);
        k.gemm_f32_f16t(nrows, nb, head_dim, qs, head_dim, kh + j0 * head_dim, head_dim, kernels::kF16Chunk, s,
                        kFlashKeys, false);
        for (int64_t r = 0; r < nrows; ++r) {
          float* p = s + r * kFlashKeys;
          // Keys of this block the row sees (causal mask): the rest get probability 0.
          const int64_t seen = std::clamp<int64_t>(pos0 + t0 + r / group + 1 - j0, 0, nb);
          std::fill(p + seen, p + nb, 0.0f);
          if (seen == 0) continue;
          const float m_new = std::max(m[r], k.max_f32(p, seen));
          const float sum = static_cast<float>(k.exp_sum_f32(p, seen, m_new));
          if (m_new > m[r] && l[r] > 0.0f) {  // the max grew: rescale what the row has so far
            const float c = std::exp(m[r] - m_new);
            l[r] *= c;
            for (int64_t i = 0; i < head_dim; ++i) acc[r * head_dim + i] *= c;
          }
          l[r] += sum;
          m[r] = m_new;
        }
        // Output rows += probabilities x the keys' values: a row per value dimension in the value blocks
        // (kAttnPad apart), its chunks a block apart. j0 starts a block (kFlashKeys is a multiple of it).
        k.gemm_f32_f16t(nrows, head_dim, nb, s, kFlashKeys, vh + value_index(head_dim, 0, j0), kAttnPad,
                        head_dim * kAttnPad, acc, head_dim, true);
      }
      for (int64_t r = 0; r < nrows; ++r) {
        const int64_t t = t0 + r / group, hq = kvh * group + r % group;
        const float inv = 1.0f / l[r];
        float* o = out + (t * n_head + hq) * head_dim;
        for (int64_t i = 0; i < head_dim; ++i) o[i] = acc[r * head_dim + i] * inv;
      }
    }
  });
}

// Decode's one-query-at-a-time attention over jobs (token, head); `before`, if set, runs at the start of each
// job (attention_decode stores the job's KV head and rotates its query there).
void attention_one_query(Context& ctx, const float* q, const uint16_t* k_cache, const uint16_t* v_cache, float* out,
                         int64_t T, int64_t pos0, int64_t n_ctx, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                         float scale, const std::function<void(int64_t t, int64_t h, int64_t kvh)>& before) {
  const int64_t group = n_head / n_head_kv;
  const int64_t n_kv_max = pos0 + T;
  const auto& k = ctx.k();
  // Per-thread scratch: scores (f32), then the query and the probabilities in f16 (zero-padded to a
  // multiple of kAttnPad positions).
  const int nth = ctx.pool().size();
  const int64_t n_pad_max = std::min(n_ctx, (n_kv_max + kAttnPad - 1) / kAttnPad * kAttnPad);
  const int64_t per_thread = n_pad_max + (n_pad_max + head_dim + 1) / 2 + 16;
  float* scratch = ctx.float_scratch(static_cast<size_t>(nth * per_thread));

  ctx.pool().parallel_for_dynamic(T * n_head, 1, [&](int64_t b, int64_t e, int ith) {
    float* scores = scratch + ith * per_thread;
    uint16_t* half = reinterpret_cast<uint16_t*>(scores + n_kv_max);
    uint16_t* q16 = half;             // head_dim halves
    uint16_t* p16 = half + head_dim;  // n_kv halves
    for (int64_t job = b; job < e; ++job) {
      const int64_t t = job / n_head, h = job % n_head;
      const int64_t kvh = h / group;
      const int64_t n_kv = pos0 + t + 1;
      if (before) before(t, h, kvh);
      k.f32_to_f16(q + (t * n_head + h) * head_dim, q16, head_dim);
      const uint16_t* kh = k_cache + kvh * n_ctx * head_dim;
      k.dot_f16_rows(head_dim, kh, head_dim, kernels::kF16Chunk, n_kv, q16, scores);
      k.softmax_f16r(scores, n_kv, scale);  // already on the f16 grid: the conversion below is exact
      k.f32_to_f16(scores, p16, n_kv);
      // Value products over whole blocks of kAttnPad positions: the cache holds zeros past the last
      // stored position (store_value_blocks), the probabilities are zero-padded here. Each value dimension
      // is a row kAttnPad apart whose chunks are a block apart.
      const int64_t n_pad = std::min(n_ctx, (n_kv + kAttnPad - 1) / kAttnPad * kAttnPad);
      for (int64_t j = n_kv; j < n_pad; ++j) p16[j] = 0;
      float* o = out + (t * n_head + h) * head_dim;
      const uint16_t* vh = v_cache + kvh * head_dim * n_ctx;
      k.dot_f16_rows(n_pad, vh, kAttnPad, head_dim * kAttnPad, head_dim, p16, o);
    }
  });
}

}  // namespace

void attention(Context& ctx, const float* q, const uint16_t* k_cache, const uint16_t* v_cache, float* out,
               int64_t T, int64_t pos0, int64_t n_ctx, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
               float scale) {
  TS_CHECK(n_head % n_head_kv == 0);
  TS_CHECK_MSG(n_ctx % kAttnPad == 0, "the value cache must hold a multiple of %d positions", static_cast<int>(kAttnPad));
  if (T >= 8) {
    attention_flash(ctx, q, k_cache, v_cache, out, T, pos0, n_ctx, n_head, n_head_kv, head_dim, scale);
    return;
  }
  attention_one_query(ctx, q, k_cache, v_cache, out, T, pos0, n_ctx, n_head, n_head_kv, head_dim, scale, nullptr);
}


void attention_decode(Context& ctx, float* q, float* k_new, const float* v_new, uint16_t* k_cache, uint16_t* v_cache,
                      float* out, int64_t T, int64_t pos0, int64_t n_ctx, int64_t n_head, int64_t n_head_kv,
                      int64_t head_dim, float scale, const float* cs, int64_t n_rot, RopeStyle style, int64_t stale_end) {
  TS_CHECK(T < 8 && n_head % n_head_kv == 0 && n_rot % 2 == 0 && n_rot <= head_dim);
  TS_CHECK(pos0 >= 0 && pos0 + T <= n_ctx && n_ctx % kAttnPad == 0);
  const int64_t end = pos0 + T, clear_end = value_clear_end(end, n_ctx, stale_end);
  // Per KV head: 0 = not stored, 1 = being stored by the job that claimed it, 2 = stored.
  std::vector<std::atomic<int>> state(static_cast<size_t>(n_head_kv));
  const auto& k = ctx.k();
  auto store_kv_head = [&](int64_t kvh) {
    uint16_t h16[256];
    uint16_t* vh = v_cache + kvh * head_dim * n_ctx;
    for (int64_t t = 0; t < T; ++t) {
      float* kr = k_new + (t * n_head_kv + kvh) * head_dim;
      rope_head(kr, cs + t * n_rot, n_rot, style);
      k.f32_to_f16(kr, k_cache + (kvh * n_ctx + pos0 + t) * head_dim, head_dim);
      for (int64_t i0 = 0; i0 < head_dim; i0 += 256) {  // the values, through the SIMD converter
        const int64_t ni = std::min<int64_t>(256, head_dim - i0);
        k.f32_to_f16(v_new + (t * n_head_kv + kvh) * head_dim + i0, h16, ni);
        uint16_t* dst = vh + value_index(head_dim, i0, pos0 + t);  // then kAttnPad apart within the block
        for (int64_t i = 0; i < ni; ++i) dst[i * kAttnPad] = h16[i];
      }
    }
    clear_value_tail(vh, head_dim, end, clear_end);  // see store_value_blocks
  };
  attention_one_query(ctx, q, k_cache, v_cache, out, T, pos0, n_ctx, n_head, n_head_kv, head_dim, scale,
                      [&](int64_t t, int64_t h, int64_t kvh) {
                        std::atomic<int>& s = state[static_cast<size_t>(kvh)];
                        int expected = 0;
                        if (s.load(std::memory_order_acquire) != 2 && s.compare_exchange_strong(expected, 1)) {
                          store_kv_head(kvh);
                          s.store(2, std::memory_order_release);
                        }
                        for (int i = 0; s.load(std::memory_order_acquire) != 2; ++i) spin_pause(i);  // yields now and then
                        rope_head(q + (t * n_head + h) * head_dim, cs + t * n_rot, n_rot, style);
                      });
}

void attention_q8_0(Context& ctx, const float* q, const uint8_t* k_cache, const uint8_t* v_cache, float* out,
                    int64_t T, int64_t pos0, int64_t n_ctx, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                    float scale) {
  TS_CHECK(n_head % n_head_kv == 0 && head_dim % 32 == 0);
  const size_t row = row_size(TensorType::Q8_0, head_dim);
  const int64_t n_kv_max = pos0 + T;
  const auto& k = ctx.k();
  if (T >= 8) {
    // Prefill: an f16 copy of positions 0..n_kv_max-1 in the F16 layout (keys head-major, values in blocks),
    // dequantized in parallel per (head, block of positions), then the flash path. The copy holds a whole
    // number of value blocks; the flash path reads no position past n_kv_max.
    const int64_t n_st = (n_kv_max + kAttnPad - 1) / kAttnPad * kAttnPad;
    const int64_t kv_dim = n_head_kv * head_dim;
    uint16_t* k16 = ctx.half_scratch(static_cast<size_t>(2 * kv_dim * n_st));
    uint16_t* v16 = k16 + kv_dim * n_st;
    constexpr int64_t kPosBlock = 64;
    const int64_t blocks = (n_kv_max + kPosBlock - 1) / kPosBlock;
    ctx.pool().parallel_for(n_head_kv * blocks, 1, [&](int64_t b, int64_t e, int) {
      // Rows to f16 with the SIMD converter; the value rows through a block buffer, then transposed (the
      // per-element software f16 conversion made this staging cost 10-25% of a Q8_0 prefill).
      std::vector<float> f(static_cast<size_t>(head_dim));
      std::vector<uint16_t> vblk(static_cast<size_t>(kPosBlock * head_dim));
      for (int64_t job = b; job < e; ++job) {
        const int64_t h = job / blocks, p0 = (job % blocks) * kPosBlock, p1 = std::min(n_kv_max, p0 + kPosBlock);
        for (int64_t p = p0; p < p1; ++p) {
          const size_t at = static_cast<size_t>(h * n_ctx + p) * row;
          dequantize_row(TensorType::Q8_0, k_cache + at, f.data(), head_dim);
          k.f32_to_f16(f.data(), k16 + (h * n_st + p) * head_dim, head_dim);
          dequantize_row(TensorType::Q8_0, v_cache + at, f.data(), head_dim);
          k.f32_to_f16(f.data(), vblk.data() + (p - p0) * head_dim, head_dim);
        }
        uint16_t* vh = v16 + h * head_dim * n_st;
        for (int64_t i = 0; i < head_dim; ++i)
          for (int64_t p = p0; p < p1; ++p) vh[value_index(head_dim, i, p)] = vblk[static_cast<size_t>((p - p0) * head_dim + i)];
      }
    });
    attention_flash(ctx, q, k16, v16, out, T, pos0, n_st, n_head, n_head_kv, head_dim, scale);
    return;
  }
  const int64_t group = n_head / n_head_kv;
  const int nth = ctx.pool().size();
  const kernels::QuantizeActFn quantize = k.for_type(TensorType::Q8_0).quantize_act;
  // Per thread: the scores, then the query in Q8_0.
  const int64_t per_thread = n_kv_max + static_cast<int64_t>(row + 3) / 4 + 16;
  float* scratch = ctx.float_scratch(static_cast<size_t>(nth * per_thread));
  ctx.pool().parallel_for_dynamic(T * n_head, 1, [&](int64_t b, int64_t e, int ith) {
    float* scores = scratch + ith * per_thread;
    auto* q8 = reinterpret_cast<uint8_t*>(scores + n_kv_max);
    for (int64_t job = b; job < e; ++job) {
      const int64_t t = job / n_head, h = job % n_head;
      const int64_t kvh = h / group;
      const int64_t n_kv = pos0 + t + 1;
      quantize(q + (t * n_head + h) * head_dim, q8, head_dim);
      const uint8_t* kh = k_cache + static_cast<size_t>(kvh * n_ctx) * row;
      k.dot_q8_0_rows(head_dim, kh, row, n_kv, q8, scores);
      for (int64_t j = 0; j < n_kv; ++j) scores[j] *= scale;
      const float mx = k.max_f32(scores, n_kv);
      const float inv = static_cast<float>(1.0 / k.exp_sum_f32(scores, n_kv, mx));
      float* o = out + (t * n_head + h) * head_dim;
      std::fill(o, o + head_dim, 0.0f);
      k.axpy_q8_0_rows(head_dim, v_cache + static_cast<size_t>(kvh * n_ctx) * row, row, n_kv, scores, o);
      for (int64_t i = 0; i < head_dim; ++i) o[i] *= inv;
    }
  });
}

void swiglu(Context& ctx, const float* gate, const float* up, float* out, int64_t T, int64_t n) {
  const auto& k = ctx.k();
  auto body = [&](int64_t b, int64_t e) { k.silu_mul_f32(gate + b, up + b, out + b, e - b); };
  const int64_t total = T * n;
  if (total < 8192) {
    body(0, total);
    return;
  }
  ctx.pool().parallel_for(total, 4096, [&](int64_t b, int64_t e, int) { body(b, e); });
}

void add_inplace(Context& ctx, float* y, const float* x, int64_t n) {
  auto body = [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] += x[i];
  };
  if (n < 16384) {  // decode's one row: cheaper than waking the pool
    body(0, n);
    return;
  }
  ctx.pool().parallel_for(n, 8192, [&](int64_t b, int64_t e, int) { body(b, e); });
}

void embedding_row(const Weight& table, int64_t id, float* out) {
  TS_CHECK(id >= 0 && id < table.rows);
  dequantize_row(table.type, table.data + static_cast<size_t>(id) * table.row_bytes, out, table.cols);
}

}  // namespace tokenscope::ops
