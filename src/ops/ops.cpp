#include "ops/ops.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <system_error>
#include <thread>

#include "base/error.h"
#include "base/fp16.h"
#include "base/huge_buffer.h"
#include "kernels/ternary/ternary_lut.h"

namespace tokenscope::ops {

using kernels::ActLayout;

uint8_t* Context::act_scratch(size_t bytes) {
  if (act_.size() < bytes) act_.resize(bytes);
  return act_.data();
}

uint8_t* Context::table_scratch(size_t bytes) {
  if (tables_.size() < bytes) tables_.resize(bytes);
  return tables_.data();
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

void pack_weights(const std::vector<Weight*>& ws, const ProgressFn& progress) {
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
  // The source bytes that stay in use after packing, sorted: the rows past a packed weight's last full group,
  // and all of a weight whose source is not to be released (its bytes may be another weight's too, say an
  // output projection tied to the embedding table). No page touching them is released.
  struct Range {
    const uint8_t *begin, *end;
  };
  std::vector<Range> keep;
  bool any_release = false;
  for (size_t i = 0; i < ws.size(); ++i) {
    const Weight& w = *ws[i];
    const uint8_t* end = w.data + w.row_bytes * static_cast<size_t>(w.rows);
    if (!w.release_source) {
      keep.push_back({w.data, end});
      continue;
    }
    any_release = true;
    if (group_bytes[i]) {
      const uint8_t* tail = w.data + w.row_bytes * static_cast<size_t>(w.rows / kernels::kPackRows * kernels::kPackRows);
      if (tail < end) keep.push_back({tail, end});
    }
  }
  std::sort(keep.begin(), keep.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  // Releases the file pages lying wholly inside [b, e) and outside every kept range.
  auto release = [&](const uint8_t* b, const uint8_t* e) {
    for (const Range& k : keep) {
      if (k.end <= b) continue;
      if (k.begin >= e) break;
      if (k.begin > b) release_file_pages(b, static_cast<size_t>(k.begin - b));
      b = std::max(b, k.end);
    }
    if (b < e) release_file_pages(b, static_cast<size_t>(e - b));
  };
  // A piece copies up to ~18 MB; with 8 threads that much in flight each would keep a third of a 400 MB
  // model resident twice at the peak, so a piece releases its source every kReleaseBytes as it goes. The next
  // release starts at the page holding the end of the last, which that one could not release whole.
  constexpr size_t kReleaseBytes = size_t{1} << 20;
  const uintptr_t page = page_bytes();
  auto page_floor = [&](const uint8_t* p) {
    return reinterpret_cast<const uint8_t*>(reinterpret_cast<uintptr_t>(p) & ~(page - 1));
  };
  std::atomic<size_t> next{0};
  // Source bytes copied so far, for the progress line, which the calling thread draws after each of its pieces.
  uint64_t source_total = 0;
  for (const Weight* w : ws) source_total += w->row_bytes * static_cast<uint64_t>(w->rows);
  std::atomic<uint64_t> source_done{0};
  const std::thread::id caller = std::this_thread::get_id();
  auto work = [&] {
    for (size_t p = next++; p < pieces.size(); p = next++) {
      const Piece& pc = pieces[p];
      const Weight& w = *ws[pc.weight];
      const bool rel = any_release && w.release_source;
      const size_t unit = group_bytes[pc.weight] ? static_cast<size_t>(kernels::kPackRows) * w.row_bytes : 1;
      const uint8_t* const src0 = w.data + static_cast<size_t>(pc.begin) * unit;
      const uint8_t* from = src0;  // source consumed but not yet released from here on
      const int64_t step = std::max<int64_t>(1, static_cast<int64_t>(kReleaseBytes / unit));
      for (int64_t b = pc.begin; b < pc.end; b += step) {
        const int64_t e = std::min(pc.end, b + step);
        if (group_bytes[pc.weight]) {
          const kernels::WeightKernels& wk = table.for_type(w.type);
          for (int64_t g = b; g < e; ++g)
            wk.pack_rows(w.data + static_cast<size_t>(g) * unit, w.row_bytes, w.cols,
                         dst[pc.weight] + static_cast<size_t>(g) * group_bytes[pc.weight]);
        } else {
          std::memcpy(dst[pc.weight] + b, w.data + b, static_cast<size_t>(e - b));
        }
        if (rel) {
          const uint8_t* done = w.data + static_cast<size_t>(e) * unit;
          release(from, done);
          from = std::max(src0, page_floor(done));
        }
      }
      const uint64_t so_far = source_done += static_cast<uint64_t>(pc.end - pc.begin) * unit;
      if (progress && std::this_thread::get_id() == caller)
        progress("packing", std::min(so_far, source_total), source_total);
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
  if (progress) progress("packing", source_total, source_total);
  for (size_t i = 0; i < ws.size(); ++i) {
    Weight& w = *ws[i];
    if (group_bytes[i]) {
      w.packed = dst[i];
      w.packed_group_bytes = group_bytes[i];
    } else {
      w.data = dst[i];
    }
    w.packed_owner = buf;
    w.release_source = false;  // done; and a plain copy's `data` is now ordinary memory
  }
  if (kernels::ternary_kernel() != kernels::TernaryKernel::mad) pack_lut(ws);
}

namespace {

// Whether the LUT multiply of one group of 16 rows of w beats the MAD multiply of the same rows on this machine (the
// packed one, as decode uses it), timed for a few milliseconds each on w's first 16 rows and a random activation row
// (--ternary-kernel auto).
bool lut_is_faster(const Weight& w) {
  namespace lut = kernels::ternary::lut;
  const kernels::KernelTable& k = kernels::active();
  const kernels::WeightKernels& wk = k.for_type(w.type);
  const int64_t n = w.cols;
  std::vector<uint8_t> group(lut::group_bytes(w.type, n)), act(wk.act.row_bytes(n)), tables(lut::table_bytes(n));
  lut::pack_group(w.type, w.data, w.row_bytes, n, group.data());
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] = static_cast<float>((i * 7919) % 255) / 127.0f - 1.0f;
  wk.act.quantize(x.data(), act.data(), n);
  lut::build_tables(act.data(), n, tables.data());
  const lut::LutGemvFn gemv = lut::gemv_for(k.isa);
  float y[lut::kLutRows];
  volatile float sink = 0;
  auto time_it = [&](auto&& body) {
    using clock = std::chrono::steady_clock;
    double best = 1e30;
    for (int round = 0; round < 3; ++round) {
      const auto t0 = clock::now();
      for (int rep = 0; rep < 8; ++rep) body();
      best = std::min(best, std::chrono::duration<double>(clock::now() - t0).count());
    }
    return best;
  };
  // The MAD side as decode runs it: the packed multiply of the same 16 rows (two groups of kPackRows), one token;
  // the dot products where the type has no packed layout.
  std::vector<uint8_t> packed;
  static_assert(lut::kLutRows % kernels::kPackRows == 0);
  if (wk.pack_rows && wk.gemm_packed) {
    const size_t gb = wk.packed_group_bytes(n);
    packed.resize(gb * (lut::kLutRows / kernels::kPackRows));
    for (int g = 0; g < lut::kLutRows / kernels::kPackRows; ++g)
      wk.pack_rows(w.data + static_cast<size_t>(g * kernels::kPackRows) * w.row_bytes, w.row_bytes, n,
                   packed.data() + g * gb);
  }
  const double mad = time_it([&] {
    if (!packed.empty()) {
      const size_t gb = wk.packed_group_bytes(n);
      for (int g = 0; g < lut::kLutRows / kernels::kPackRows; ++g)
        wk.gemm_packed(n, packed.data() + g * gb, act.data(), wk.act.row_bytes(n), nullptr, 1,
                       y + g * kernels::kPackRows, kernels::kPackRows);
    } else {
      for (int r = 0; r < lut::kLutRows; ++r)
        y[r] = wk.vec_dot(n, w.data + static_cast<size_t>(r) * w.row_bytes, act.data());
    }
    sink = sink + y[0];
  });
  const double lut_s = time_it([&] {
    gemv(w.type, n, group.data(), tables.data(), act.data(), y);
    sink = sink + y[0];
  });
  return lut_s < mad;
}

}  // namespace

void pack_lut(const std::vector<Weight*>& ws) {
  namespace lut = kernels::ternary::lut;
  constexpr size_t kAlign = 64;
  // Under auto, only the shapes (type, row length) where the LUT multiply measured faster get a LUT copy.
  std::map<std::pair<TensorType, int64_t>, bool> faster;
  const bool measure = kernels::ternary_kernel() == kernels::TernaryKernel::automatic;
  std::vector<size_t> at(ws.size(), 0);
  size_t total = 0;
  for (size_t i = 0; i < ws.size(); ++i) {
    const Weight& w = *ws[i];
    if (!is_ternary(w.type) || w.rows < lut::kLutRows || w.lut) continue;
    if (measure) {
      const auto key = std::pair{w.type, w.cols};
      if (!faster.count(key)) faster[key] = lut_is_faster(w);
      if (!faster[key]) continue;
    }
    at[i] = total + 1;  // 0: none
    total += (lut::group_bytes(w.type, w.cols) * static_cast<size_t>(w.rows / lut::kLutRows) + kAlign - 1) / kAlign * kAlign;
  }
  if (total == 0) return;
  auto buf = std::make_shared<const HugeBuffer>(total, "the ternary weights' lookup-table copies");
  auto* base = static_cast<uint8_t*>(buf->data());
  struct Job {
    size_t weight;
    int64_t group;
  };
  std::vector<Job> jobs;
  for (size_t i = 0; i < ws.size(); ++i)
    if (at[i])
      for (int64_t g = 0; g < ws[i]->rows / lut::kLutRows; ++g) jobs.push_back({i, g});
  std::atomic<size_t> next{0};
  auto work = [&] {
    constexpr size_t kChunk = 64;
    for (size_t j0 = next.fetch_add(kChunk); j0 < jobs.size(); j0 = next.fetch_add(kChunk))
      for (size_t j = j0; j < std::min(jobs.size(), j0 + kChunk); ++j) {
        const Weight& w = *ws[jobs[j].weight];
        const size_t gb = lut::group_bytes(w.type, w.cols);
        lut::pack_group(w.type, w.data + static_cast<size_t>(jobs[j].group * lut::kLutRows) * w.row_bytes, w.row_bytes,
                        w.cols, base + at[jobs[j].weight] - 1 + static_cast<size_t>(jobs[j].group) * gb);
      }
  };
  const unsigned n_threads = std::clamp(std::thread::hardware_concurrency(), 1u, 8u);
  std::vector<std::thread> threads;
  try {
    for (unsigned t = 1; t < n_threads; ++t) threads.emplace_back(work);
  } catch (const std::system_error&) {
    // No more threads to be had: the ones started and this one share the groups.
  }
  work();
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < ws.size(); ++i)
    if (at[i]) {
      ws[i]->lut = base + at[i] - 1;
      ws[i]->lut_group_bytes = lut::group_bytes(ws[i]->type, ws[i]->cols);
      ws[i]->lut_owner = buf;
    }
}

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
    if (std::strcmp(wk.act.name, wk0.act.name) != 0) {
      // Mixed formats (e.g. a Q4_0 matrix next to a Q4_1 one) quantize the input differently: one at a time.
      for (const MatmulOut& single : outs) matmul_multi(ctx, {single}, x, T);
      return;
    }
  }
  const int64_t K = w0.cols;
  const size_t act_row = wk0.act.row_bytes(K);
  uint8_t* act = ctx.act_scratch(act_row * static_cast<size_t>(T));

  // 1. Activations into the weights' paired activation layout (Q8_0, Q8_1, Q8_K, F16, ...), once, with the
  // block sums the layout's packed multiplies take (Q8_0 / Q8_1: each block's quant sum; Q8_K blocks carry their own).
  const ActLayout& al = wk0.act;
  const bool packed_ok = wk0.gemm_packed && K % 32 == 0;
  const int64_t n_sums = packed_ok && al.block_sums ? K / al.sum_block : 0;
  int32_t* sums = n_sums ? ctx.int_scratch(static_cast<size_t>(T * n_sums)) : nullptr;
  auto quantize_rows = [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      uint8_t* a = act + static_cast<size_t>(t) * act_row;
      al.quantize(x + t * K, a, K);
      if (sums) al.block_sums(a, K, sums + t * n_sums);
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
  // The lookup-table multiply where the ternary weights have their LUT copy and the mode asks for it (auto: short
  // steps only); its tables are built once per token for every output of the call.
  namespace lut = kernels::ternary::lut;
  const kernels::TernaryKernel tk = kernels::ternary_kernel();
  const bool lut_ok = tk == kernels::TernaryKernel::lut || (tk == kernels::TernaryKernel::automatic && T <= kernels::kLutAutoMaxTokens);
  bool any_lut = false;
  for (const MatmulOut& o : outs) {
    const Weight& w = *o.w;
    Context::MatmulUnits sp;
    sp.first = n_units;
    if (w.lut && lut_ok) {
      sp.luts = w.rows / lut::kLutRows;
      any_lut = true;
    } else if (w.packed && ctx.k().for_type(w.type).gemm_packed && packed_ok) {
      // Two groups per unit where the table multiplies pairs (16 int32 lanes), then single groups. Not in
      // decode: one weight stream per thread measured ~15% faster there than the pair's two (Zen 5, tg128).
      if (ctx.k().for_type(w.type).gemm_packed2 && T >= 4) sp.pairs = w.rows / (2 * R);
      sp.singles = (w.rows - sp.pairs * 2 * R) / R;
    }
    const int64_t rest = w.rows - sp.pairs * 2 * R - sp.singles * R - sp.luts * lut::kLutRows;
    sp.plains = (rest + kPlainChunk - 1) / kPlainChunk;
    n_units += sp.pairs + sp.singles + sp.luts + sp.plains;
    spans.push_back(sp);
  }
  enum class Kind { packed, lut, plain };
  struct Unit {
    size_t out;
    int64_t row0, rows;
    Kind kind;
  };
  auto unit_at = [&](int64_t u) {
    size_t i = 0;
    while (i + 1 < spans.size() && spans[i + 1].first <= u) ++i;
    const Context::MatmulUnits& sp = spans[i];
    int64_t l = u - sp.first;
    if (l < sp.pairs) return Unit{i, l * 2 * R, 2 * R, Kind::packed};
    l -= sp.pairs;
    const int64_t row_s = sp.pairs * 2 * R;
    if (l < sp.singles) return Unit{i, row_s + l * R, R, Kind::packed};
    l -= sp.singles;
    if (l < sp.luts) return Unit{i, l * lut::kLutRows, lut::kLutRows, Kind::lut};
    l -= sp.luts;
    const int64_t row0 = row_s + sp.singles * R + sp.luts * lut::kLutRows + l * kPlainChunk;
    return Unit{i, row0, std::min(kPlainChunk, outs[i].w->rows - row0), Kind::plain};
  };
  // Each token's tables, once for all the call's LUT outputs (they share the i8_row input).
  uint8_t* tables = nullptr;
  const size_t table_row = lut::table_bytes(K);
  if (any_lut) {
    tables = ctx.table_scratch(table_row * static_cast<size_t>(T));
    auto build = [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t)
        lut::build_tables(act + static_cast<size_t>(t) * act_row, K, tables + static_cast<size_t>(t) * table_row);
    };
    if (T == 1) build(0, 1);
    else ctx.pool().parallel_for(T, 1, [&](int64_t b, int64_t e, int) { build(b, e); });
  }
  const lut::LutGemvFn lut_gemv = lut::gemv_for(ctx.k().isa);
  auto sums_at = [&](int64_t t) -> const int32_t* { return sums ? sums + t * n_sums : nullptr; };
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
        if (un.kind == Kind::lut) {
          const uint8_t* g = w.lut + static_cast<size_t>(un.row0 / lut::kLutRows) * w.lut_group_bytes;
          float yr[lut::kLutRows];
          for (int64_t t = t0; t < t1; ++t) {
            lut_gemv(w.type, K, g, tables + static_cast<size_t>(t) * table_row, act + static_cast<size_t>(t) * act_row, yr);
            std::memcpy(o.y + t * N + un.row0, yr, sizeof yr);
          }
        } else if (un.kind == Kind::packed) {
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
        if (w.scale != 1.0f)
          for (int64_t t = t0; t < t1; ++t)
            for (int64_t r = un.row0; r < un.row0 + un.rows; ++r) o.y[t * N + r] *= w.scale;
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

namespace {

// Prefill, flash-attention style: a tile of query rows (the heads sharing one KV head x a few consecutive
// tokens) walks the keys in blocks of kFlashKeys with an online softmax (running max m and sum l per row;
// when the max grows, the row's partial output and sum are rescaled by exp(m_old - m_new)). Only a
// rows x kFlashKeys score block ever exists, whatever the context length, and each K row and V^T row is
// converted from f16 once per tile instead of once per query. q is rounded through f16 as the one-query path
// rounds it; scores, probabilities and the output stay f32 (f32 dot products: a different summation order
// and rounding from the one-query path, within the attention test's bound).
// 512 keys: a prompt of up to 512 tokens is one block (no rescaling). A multiple of kAttnPad, so every block
// starts a page.
constexpr int64_t kFlashKeys = 512;
// Query rows per flash tile (the heads of a group x tokens).
constexpr int64_t kFlashRows = 32;

// One KV head of one sequence in f16 pages: its keys and values, page `page` elements apart, physical page of
// logical page c at map[c] (null: c itself).
struct F16Head {
  const uint16_t* k = nullptr;
  const uint16_t* v = nullptr;
  int64_t page = 0;
  const int32_t* map = nullptr;
  int64_t phys(int64_t c) const { return map ? map[c] : c; }
  const uint16_t* key_row(int64_t p, int64_t head_dim) const {
    return k + phys(p / kAttnPad) * page + (p % kAttnPad) * head_dim;
  }
  // The end of the run of positions from p0 (below `end`) whose pages are physically consecutive: their key rows
  // are one plain stretch of rows.
  int64_t contiguous_end(int64_t p0, int64_t end) const {
    int64_t c = p0 / kAttnPad;
    int64_t p1 = std::min(end, (c + 1) * kAttnPad);
    while (p1 < end && phys(c + 1) == phys(c) + 1) {
      ++c;
      p1 = std::min(end, (c + 1) * kAttnPad);
    }
    return p1;
  }
  // Value rows (one per dimension, kAttnPad apart in a page) of positions from the page of j0 on.
  const uint16_t* values_from(int64_t j0) const { return map ? v : v + (j0 / kAttnPad) * page; }
  kernels::F16Chunks value_chunks(int64_t j0) const { return {page, map ? map + j0 / kAttnPad : nullptr}; }
};

// The flash tile of query rows of tokens t0..t1-1 (of the sequence's rows, at positions pos0 + t) and KV head kvh.
// qs, s, acc, m, l, h, rot: the calling thread's scratch (see attention()).
void flash_tile(const kernels::KernelTable& k, const float* q, float* out, const F16Head& kv, int64_t t0, int64_t t1,
                int64_t pos0, int64_t kvh, int64_t n_head, int64_t group, int64_t head_dim, float scale, const float* cs,
                int64_t n_rot, RopeStyle style, float* qs, float* s, float* acc, float* m, float* l, uint16_t* h,
                float* rot) {
  const int64_t nrows = (t1 - t0) * group;
  const int64_t n_kv_tile = pos0 + t1;  // keys the last token of the tile sees
  // Query rows in order (token, head within group), rotated, rounded through f16; the softmax scale folded in.
  for (int64_t t = t0; t < t1; ++t)
    for (int64_t g = 0; g < group; ++g) {
      const int64_t r = (t - t0) * group + g;
      std::memcpy(rot, q + (t * n_head + kvh * group + g) * head_dim, static_cast<size_t>(head_dim) * sizeof(float));
      rope_head(rot, cs + t * n_rot, n_rot, style);
      k.f32_to_f16(rot, h, head_dim);
      k.f16_to_f32(h, qs + r * head_dim, head_dim);
      for (int64_t i = 0; i < head_dim; ++i) qs[r * head_dim + i] *= scale;
    }
  std::fill(m, m + nrows, -INFINITY);
  std::fill(l, l + nrows, 0.0f);
  std::fill(acc, acc + nrows * head_dim, 0.0f);
  for (int64_t j0 = 0; j0 < n_kv_tile; j0 += kFlashKeys) {
    const int64_t nb = std::min(kFlashKeys, n_kv_tile - j0);
    // Scores, one stretch of physically consecutive pages at a time.
    for (int64_t p0 = j0; p0 < j0 + nb;) {
      const int64_t p1 = kv.contiguous_end(p0, j0 + nb);
      k.gemm_f32_f16t(nrows, p1 - p0, head_dim, qs, head_dim, kv.key_row(p0, head_dim), head_dim, kernels::F16Chunks{},
                      s + (p0 - j0), kFlashKeys, false);
      p0 = p1;
    }
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
    // Output rows += probabilities x the keys' values: a row per value dimension (kAttnPad apart in a page),
    // its chunks a page apart, through the page table.
    k.gemm_f32_f16t(nrows, head_dim, nb, s, kFlashKeys, kv.values_from(j0), kAttnPad, kv.value_chunks(j0), acc,
                    head_dim, true);
  }
  for (int64_t r = 0; r < nrows; ++r) {
    const int64_t t = t0 + r / group, hq = kvh * group + r % group;
    const float inv = 1.0f / l[r];
    float* o = out + (t * n_head + hq) * head_dim;
    for (int64_t i = 0; i < head_dim; ++i) o[i] = acc[r * head_dim + i] * inv;
  }
}

// One query (position pos) of one head against an f16 head's n_kv = pos + 1 keys: llama.cpp's non-flash
// arithmetic (see attention() in ops.h). scores: n_kv floats; q16: head_dim halves; p16: n_kv rounded up to a
// page, halves.
void one_query_f16(const kernels::KernelTable& k, const float* q, float* o, const F16Head& kv, int64_t n_kv,
                   int64_t head_dim, float scale, float* scores, uint16_t* q16, uint16_t* p16) {
  k.f32_to_f16(q, q16, head_dim);
  for (int64_t p0 = 0; p0 < n_kv;) {
    const int64_t p1 = kv.contiguous_end(p0, n_kv);
    k.dot_f16_rows(head_dim, kv.key_row(p0, head_dim), head_dim, kernels::F16Chunks{}, p1 - p0, q16, scores + p0);
    p0 = p1;
  }
  k.softmax_f16r(scores, n_kv, scale);  // already on the f16 grid: the conversion below is exact
  k.f32_to_f16(scores, p16, n_kv);
  // Value products over whole pages: the cache holds zeros past the sequence's last position (ops.h), the
  // probabilities are zero-padded here.
  const int64_t n_pad = (n_kv + kAttnPad - 1) / kAttnPad * kAttnPad;
  for (int64_t j = n_kv; j < n_pad; ++j) p16[j] = 0;
  k.dot_f16_rows(n_pad, kv.values_from(0), kAttnPad, kv.value_chunks(0), head_dim, p16, o);
}

// Stores row t's new key (already rotated) and value of KV head kvh at position pos into the sequence's pages.
void store_row(const kernels::KernelTable& k, const KVStore& kv, int64_t layer, const int32_t* pages, int64_t kvh,
               int64_t pos, const float* key, const float* value, uint16_t* h16) {
  const int64_t hd = kv.layout.head_dim;
  const int64_t page = pages[pos / kAttnPad], slot = pos % kAttnPad;
  if (kv.layout.type == TensorType::Q8_0) {
    const size_t row = row_size(TensorType::Q8_0, hd);
    const kernels::QuantizeActFn quantize = k.for_type(TensorType::Q8_0).act.quantize;
    quantize(key, kv.key_page(layer, kvh, page) + static_cast<size_t>(slot) * row, hd);
    quantize(value, kv.value_page(layer, kvh, page) + static_cast<size_t>(slot) * row, hd);
    return;
  }
  k.f32_to_f16(key, reinterpret_cast<uint16_t*>(kv.key_page(layer, kvh, page)) + slot * hd, hd);
  k.f32_to_f16(value, h16, hd);  // then a dimension's value every kAttnPad halves
  uint16_t* vp = reinterpret_cast<uint16_t*>(kv.value_page(layer, kvh, page)) + slot;
  for (int64_t i = 0; i < hd; ++i) vp[i * kAttnPad] = h16[i];
}

}  // namespace

void attention(Context& ctx, const KVStore& kv, int64_t layer, const std::vector<AttnSeq>& seqs, float* q,
               float* k_new, const float* v_new, float* out, int64_t n_head, float scale, const float* cs,
               int64_t n_rot, RopeStyle style) {
  const KVLayout& L = kv.layout;
  const int64_t n_head_kv = L.n_head_kv, hd = L.head_dim;
  TS_CHECK(n_head % n_head_kv == 0 && n_rot % 2 == 0 && n_rot <= hd);
  TS_CHECK(L.type == TensorType::F16 || (L.type == TensorType::Q8_0 && hd % 32 == 0));
  TS_CHECK(hd <= 1024);
  const bool q8 = L.type == TensorType::Q8_0;
  const int64_t group = n_head / n_head_kv;
  const int64_t tok_per_tile = std::max<int64_t>(1, kFlashRows / group);
  const int64_t rows_max = group * tok_per_tile;
  const auto& k = ctx.k();
  const int nth = ctx.pool().size();
  const size_t n_seq = seqs.size();
  const int64_t kv_dim = n_head_kv * hd;
  const size_t q8_row = q8 ? row_size(TensorType::Q8_0, hd) : 0;

  // Jobs: n_head per one-row sequence (a query head), tiles x n_head_kv per longer one; job_end[i] is one past
  // sequence i's last job. The f16 staging of the Q8_0 cache for longer sequences: stage_at[i] elements into the
  // half scratch (keys then values, n_st positions each per head).
  std::vector<int64_t> job_end(n_seq), stage_at(n_seq, 0), n_st(n_seq, 0);
  int64_t n_jobs = 0, n_kv_max = 0, stage_total = 0;
  bool any_flash = false, any_stored_first = false;
  for (size_t i = 0; i < n_seq; ++i) {
    const AttnSeq& s = seqs[i];
    TS_CHECK(s.n >= 1 && s.pos0 >= 0 && s.pages);
    n_kv_max = std::max(n_kv_max, s.pos0 + s.n);
    if (s.n == 1) {
      n_jobs += n_head;
    } else {
      any_flash = true;
      n_jobs += (s.n + tok_per_tile - 1) / tok_per_tile * n_head_kv;
      if (q8) {
        n_st[i] = (s.pos0 + s.n + kAttnPad - 1) / kAttnPad * kAttnPad;
        stage_at[i] = stage_total;
        stage_total += 2 * kv_dim * n_st[i];
      }
    }
    if (s.n > 1 || q8) any_stored_first = true;
    job_end[i] = n_jobs;
  }

  // 1. Rotate and store the new keys and values before the attention jobs, per (sequence, KV head), except the
  //    one-row sequences over an F16 cache, whose jobs do it themselves (below).
  if (any_stored_first) {
    ctx.pool().parallel_for(static_cast<int64_t>(n_seq) * n_head_kv, 1, [&](int64_t b, int64_t e, int) {
      uint16_t h16[1024];
      for (int64_t u = b; u < e; ++u) {
        const AttnSeq& s = seqs[static_cast<size_t>(u / n_head_kv)];
        const int64_t kvh = u % n_head_kv;
        if (s.n == 1 && !q8) continue;
        for (int64_t t = s.row0; t < s.row0 + s.n; ++t) {
          float* kr = k_new + (t * n_head_kv + kvh) * hd;
          rope_head(kr, cs + t * n_rot, n_rot, style);
          store_row(k, kv, layer, s.pages, kvh, s.pos0 + (t - s.row0), kr, v_new + (t * n_head_kv + kvh) * hd, h16);
        }
      }
    });
  }
  // 1b. Over a Q8_0 cache, the longer sequences attend over an f16 copy of their positions in the F16 page
  //     layout (pages in order), dequantized in parallel per (sequence, KV head, 64 positions).
  uint16_t* staged = nullptr;
  if (q8 && any_flash) {
    staged = ctx.half_scratch(static_cast<size_t>(stage_total));
    constexpr int64_t kPosBlock = 64;
    std::vector<int64_t> unit_end(n_seq);
    int64_t n_units = 0;
    for (size_t i = 0; i < n_seq; ++i) {
      if (seqs[i].n > 1) n_units += n_head_kv * ((seqs[i].pos0 + seqs[i].n + kPosBlock - 1) / kPosBlock);
      unit_end[i] = n_units;
    }
    ctx.pool().parallel_for(n_units, 1, [&](int64_t b, int64_t e, int) {
      float f[1024];
      uint16_t h16[1024];
      for (int64_t u = b; u < e; ++u) {
        const size_t i = static_cast<size_t>(std::upper_bound(unit_end.begin(), unit_end.end(), u) - unit_end.begin());
        const AttnSeq& s = seqs[i];
        const int64_t n_kv = s.pos0 + s.n, blocks = (n_kv + kPosBlock - 1) / kPosBlock;
        const int64_t l = u - (i ? unit_end[i - 1] : 0), kvh = l / blocks;
        const int64_t p0 = (l % blocks) * kPosBlock, p1 = std::min(n_kv, p0 + kPosBlock);
        uint16_t* k16 = staged + stage_at[i] + kvh * n_st[i] * hd;
        uint16_t* v16 = staged + stage_at[i] + kv_dim * n_st[i] + kvh * n_st[i] * hd;
        for (int64_t p = p0; p < p1; ++p) {
          const int64_t page = s.pages[p / kAttnPad];
          const size_t at = static_cast<size_t>(p % kAttnPad) * q8_row;
          dequantize_row(TensorType::Q8_0, kv.key_page(layer, kvh, page) + at, f, hd);
          k.f32_to_f16(f, k16 + p * hd, hd);
          dequantize_row(TensorType::Q8_0, kv.value_page(layer, kvh, page) + at, f, hd);
          k.f32_to_f16(f, h16, hd);
          uint16_t* vp = v16 + (p / kAttnPad) * kAttnPad * hd + p % kAttnPad;
          for (int64_t d = 0; d < hd; ++d) vp[d * kAttnPad] = h16[d];
        }
      }
    });
  }

  // 2. The attention jobs. Per-thread scratch, the larger of the two kinds' needs:
  //    one query: scores (n_kv_max padded), the query in f16 or Q8_0, the probabilities in f16;
  //    flash: query rows, a score block, output rows, running max and sum, a query in f16 and one rotated.
  const int64_t n_pad_max = (n_kv_max + kAttnPad - 1) / kAttnPad * kAttnPad;
  const int64_t one_query = n_pad_max + (n_pad_max + hd + 1) / 2 + static_cast<int64_t>(q8_row + 3) / 4 + 16;
  const int64_t flash = any_flash ? rows_max * (2 * hd + kFlashKeys + 2) + hd + (hd + 1) / 2 + 16 : 0;
  const int64_t per_thread = (std::max(one_query, flash) + 15) / 16 * 16;
  float* scratch = ctx.float_scratch(static_cast<size_t>(nth * per_thread));
  // One-row sequences over an F16 cache: per (sequence, KV head) 0 = not stored, 1 = being stored by the job
  // that claimed it, 2 = stored.
  std::vector<std::atomic<int>> state(q8 ? 0 : n_seq * static_cast<size_t>(n_head_kv));
  const kernels::QuantizeActFn quantize_q8 = q8 ? k.for_type(TensorType::Q8_0).act.quantize : nullptr;

  // Jobs claimed one at a time where flash tiles are among them (later tiles see more keys: fixed ranges would
  // unbalance the threads); a batch of decodes has many small equal jobs, claimed a few at a time so that the
  // threads do not contend for the shared counter on every one.
  const int64_t claim = any_flash ? 1 : std::max<int64_t>(1, n_jobs / (8 * nth));
  ctx.pool().parallel_for_dynamic(n_jobs, claim, [&](int64_t b, int64_t e, int ith) {
    float* ts = scratch + ith * per_thread;
    for (int64_t job = b; job < e; ++job) {
      const size_t i = static_cast<size_t>(std::upper_bound(job_end.begin(), job_end.end(), job) - job_end.begin());
      const AttnSeq& s = seqs[i];
      const int64_t l = job - (i ? job_end[i - 1] : 0);
      if (s.n > 1) {
        const int64_t tile = l / n_head_kv, kvh = l % n_head_kv;
        const int64_t t0 = tile * tok_per_tile, t1 = std::min(s.n, t0 + tok_per_tile);
        F16Head head;
        if (q8) {
          head = {staged + stage_at[i] + kvh * n_st[i] * hd, staged + stage_at[i] + kv_dim * n_st[i] + kvh * n_st[i] * hd,
                  kAttnPad * hd, nullptr};
        } else {
          head = {reinterpret_cast<const uint16_t*>(kv.keys(layer, kvh)),
                  reinterpret_cast<const uint16_t*>(kv.values(layer, kvh)), kAttnPad * hd, s.pages};
        }
        float* qs = ts;
        float* sc = qs + rows_max * hd;
        float* acc = sc + rows_max * kFlashKeys;
        float* m = acc + rows_max * hd;
        float* lsum = m + rows_max;
        float* rot = lsum + rows_max;
        auto* h = reinterpret_cast<uint16_t*>(rot + hd);
        const int64_t r0 = s.row0;
        flash_tile(k, q + r0 * n_head * hd, out + r0 * n_head * hd, head, t0, t1, s.pos0, kvh, n_head, group, hd,
                   scale, cs + r0 * n_rot, n_rot, style, qs, sc, acc, m, lsum, h, rot);
        continue;
      }
      const int64_t hq = l, kvh = hq / group, t = s.row0, pos = s.pos0, n_kv = pos + 1;
      float* qrow = q + (t * n_head + hq) * hd;
      float* o = out + (t * n_head + hq) * hd;
      float* scores = ts;
      if (q8) {
        rope_head(qrow, cs + t * n_rot, n_rot, style);
        auto* q8buf = reinterpret_cast<uint8_t*>(scores + n_pad_max);
        quantize_q8(qrow, q8buf, hd);
        F16Head pages{nullptr, nullptr, 0, s.pages};  // only for its page runs
        for (int64_t p0 = 0; p0 < n_kv;) {
          const int64_t p1 = pages.contiguous_end(p0, n_kv);
          k.dot_q8_0_rows(hd, kv.key_page(layer, kvh, s.pages[p0 / kAttnPad]) + static_cast<size_t>(p0 % kAttnPad) * q8_row,
                          q8_row, p1 - p0, q8buf, scores + p0);
          p0 = p1;
        }
        for (int64_t j = 0; j < n_kv; ++j) scores[j] *= scale;
        const float mx = k.max_f32(scores, n_kv);
        const float inv = static_cast<float>(1.0 / k.exp_sum_f32(scores, n_kv, mx));
        std::fill(o, o + hd, 0.0f);
        for (int64_t p0 = 0; p0 < n_kv;) {
          const int64_t p1 = pages.contiguous_end(p0, n_kv);
          k.axpy_q8_0_rows(hd, kv.value_page(layer, kvh, s.pages[p0 / kAttnPad]) + static_cast<size_t>(p0 % kAttnPad) * q8_row,
                           q8_row, p1 - p0, scores + p0, o);
          p0 = p1;
        }
        for (int64_t d = 0; d < hd; ++d) o[d] *= inv;
        continue;
      }
      // F16: the first job of this (sequence, KV head) rotates and stores its new key and value; the others wait.
      std::atomic<int>& st = state[i * static_cast<size_t>(n_head_kv) + static_cast<size_t>(kvh)];
      int expected = 0;
      if (st.load(std::memory_order_acquire) != 2 && st.compare_exchange_strong(expected, 1)) {
        float* kr = k_new + (t * n_head_kv + kvh) * hd;
        rope_head(kr, cs + t * n_rot, n_rot, style);
        uint16_t h16[1024];
        store_row(k, kv, layer, s.pages, kvh, pos, kr, v_new + (t * n_head_kv + kvh) * hd, h16);
        st.store(2, std::memory_order_release);
      }
      for (int w = 0; st.load(std::memory_order_acquire) != 2; ++w) spin_pause(w);  // yields now and then
      rope_head(qrow, cs + t * n_rot, n_rot, style);
      auto* q16 = reinterpret_cast<uint16_t*>(scores + n_pad_max);
      const F16Head head{reinterpret_cast<const uint16_t*>(kv.keys(layer, kvh)),
                         reinterpret_cast<const uint16_t*>(kv.values(layer, kvh)), kAttnPad * hd, s.pages};
      one_query_f16(k, qrow, o, head, n_kv, hd, scale, scores, q16, q16 + hd);
    }
  });
}

namespace {
// out = fn(gate, up) elementwise over T rows of n, split across the pool when large.
void gated(Context& ctx, void (*fn)(const float*, const float*, float*, int64_t), const float* gate, const float* up,
           float* out, int64_t total) {
  if (total < 8192) {
    fn(gate, up, out, total);
    return;
  }
  ctx.pool().parallel_for(total, 4096, [&](int64_t b, int64_t e, int) { fn(gate + b, up + b, out + b, e - b); });
}
}  // namespace

void swiglu(Context& ctx, const float* gate, const float* up, float* out, int64_t T, int64_t n) {
  gated(ctx, ctx.k().silu_mul_f32, gate, up, out, T * n);
}

void relu_sqr_mul(Context& ctx, const float* gate, const float* up, float* out, int64_t T, int64_t n) {
  gated(ctx, ctx.k().relu_sqr_mul_f32, gate, up, out, T * n);
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
  if (table.scale != 1.0f)
    for (int64_t i = 0; i < table.cols; ++i) out[i] *= table.scale;
}

}  // namespace tokenscope::ops
