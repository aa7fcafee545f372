// Kernel micro-benchmarks (Google Benchmark): one weight row x one activation row (vec_dot, the decode
// GEMV's inner loop), the packed 8-row multiply and the 16-row one (gemm_packed2), per weight type and per ISA this machine has, on a
// matrix that fits in L2, so the figures are the kernels' compute throughput (weight GB/s), not DRAM's; and
// decode attention's f16 row dot products (f16_rows/keys: a query against n_kv keys of 64 dims; f16_rows/values:
// 64 value dimensions against n_kv probabilities, rows in the value cache's blocks of kF16Chunk positions), in L1/L2.
//   build/tokenscope_kernel_bench --benchmark_filter=Q6_K
// Compare ISAs or revisions side by side in one run (the machines here are shared and noisy).
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "formats/tensor_type.h"
#include "kernels/kernels.h"

using namespace tokenscope;
using namespace tokenscope::kernels;

namespace {

constexpr int64_t kCols = 1024;
constexpr int64_t kRows = 256;  // 256 x 1024 weights: 144..544 KiB, resident in L2

struct Setup {
  std::vector<uint8_t> w, act, packed;
  std::vector<int32_t> sums;
  size_t row_bytes = 0, act_bytes = 0, group_bytes = 0;
};

Setup make_setup(const WeightKernels& k, TensorType wt) {
  Setup s;
  std::mt19937 rng(42);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(kCols)), wf(static_cast<size_t>(kCols * kRows));
  s.row_bytes = row_size(wt, kCols);
  s.w.resize(tensor_bytes(wt, kCols, kRows));  // a whole tensor: I2_S keeps its scale after the rows
  for (auto& v : wf) v = nd(rng) * 0.05f;
  quantize_tensor(wt, wf.data(), s.w.data(), kRows, kCols);
  s.act_bytes = k.act.row_bytes(kCols);
  s.act.resize(s.act_bytes * kPacked2MaxTokens);
  for (int t = 0; t < kPacked2MaxTokens; ++t) {
    for (auto& v : x) v = nd(rng);
    k.act.quantize(x.data(), s.act.data() + t * s.act_bytes, kCols);
  }
  s.sums.assign(static_cast<size_t>(kPacked2MaxTokens * kCols / 32), 0);
  if (k.pack_rows) {
    s.group_bytes = k.packed_group_bytes(kCols);
    s.packed.resize(s.group_bytes * (kRows / kPackRows));
    for (int64_t g = 0; g < kRows / kPackRows; ++g)
      k.pack_rows(s.w.data() + g * kPackRows * s.row_bytes, s.row_bytes, kCols, s.packed.data() + g * s.group_bytes);
  }
  return s;
}

void bm_vec_dot(benchmark::State& state, Isa isa, TensorType wt) {
  const WeightKernels& k = table(isa).for_type(wt);
  const Setup s = make_setup(k, wt);
  float sink = 0;
  for (auto _ : state) {
    for (int64_t r = 0; r < kRows; ++r) sink += k.vec_dot(kCols, s.w.data() + r * s.row_bytes, s.act.data());
    benchmark::DoNotOptimize(sink);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(s.w.size()));
}

void bm_packed(benchmark::State& state, Isa isa, TensorType wt, int nt) {
  const WeightKernels& k = table(isa).for_type(wt);
  const Setup s = make_setup(k, wt);
  float y[4 * kPackRows];
  for (auto _ : state) {
    for (int64_t g = 0; g < kRows / kPackRows; ++g)
      k.gemm_packed(kCols, s.packed.data() + g * s.group_bytes, s.act.data(), s.act_bytes, s.sums.data(), nt, y,
                    kPackRows);
    benchmark::DoNotOptimize(y);
  }
  // Weight bytes per pass, and the integer multiply-adds (tokens x weights) as items.
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(s.packed.size()));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kRows * kCols * nt);
}

// Two groups (16 rows) per call, as prefill uses them on AVX-512.
void bm_packed2(benchmark::State& state, Isa isa, TensorType wt, int nt) {
  const WeightKernels& k = table(isa).for_type(wt);
  const Setup s = make_setup(k, wt);
  float y[kPacked2MaxTokens * 2 * kPackRows];
  for (auto _ : state) {
    for (int64_t g = 0; g + 1 < kRows / kPackRows; g += 2)
      k.gemm_packed2(kCols, s.packed.data() + g * s.group_bytes, s.group_bytes, s.act.data(), s.act_bytes,
                     s.sums.data(), nt, y, 2 * kPackRows);
    benchmark::DoNotOptimize(y);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(s.packed.size()));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kRows * kCols * nt);
}

// Decode attention for one head (head size 64) at n_kv positions: the keys pass (count = n_kv rows of 64) or the
// values pass (count = 64 rows of n_kv, interleaved in blocks of kF16Chunk positions as the value cache holds them).
void bm_f16_rows(benchmark::State& state, Isa isa, bool values, int64_t n_kv) {
  const KernelTable& k = table(isa);
  constexpr int64_t hd = 64;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> bits(0x3000, 0x3BFF);  // f16 values in [0.125, 1)
  std::vector<uint16_t> x(static_cast<size_t>(hd * n_kv)), y(static_cast<size_t>(std::max(hd, n_kv)));
  for (auto& v : x) v = static_cast<uint16_t>(bits(rng));
  for (auto& v : y) v = static_cast<uint16_t>(bits(rng));
  std::vector<float> out(static_cast<size_t>(std::max(hd, n_kv)));
  for (auto _ : state) {
    if (values)
      k.dot_f16_rows(n_kv, x.data(), kF16Chunk, F16Chunks{hd * kF16Chunk}, hd, y.data(), out.data());
    else
      k.dot_f16_rows(hd, x.data(), hd, F16Chunks{}, n_kv, y.data(), out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * hd * n_kv);  // multiply-adds
}

const bool registered = [] {
  for (Isa isa : available_isas()) {
    for (TensorType wt : {TensorType::Q4_0, TensorType::Q4_1, TensorType::Q8_0, TensorType::Q4_K, TensorType::Q5_K,
                          TensorType::Q6_K, TensorType::F16, TensorType::BF16, TensorType::TQ1_0, TensorType::TQ2_0,
                          TensorType::I2_S, TensorType::IQ2_BN}) {
      const std::string name = std::string(type_name(wt)) + "/" + isa_name(isa);
      benchmark::RegisterBenchmark(("vec_dot/" + name).c_str(), bm_vec_dot, isa, wt);
      if (table(isa).for_type(wt).gemm_packed)
        for (int nt : {1, 4})
          benchmark::RegisterBenchmark(("packed/" + name + "/nt" + std::to_string(nt)).c_str(), bm_packed, isa, wt, nt);
      if (table(isa).for_type(wt).gemm_packed2)
        for (int nt : {1, 8})
          benchmark::RegisterBenchmark(("packed2/" + name + "/nt" + std::to_string(nt)).c_str(), bm_packed2, isa, wt, nt);
    }
    for (bool values : {false, true})
      for (int64_t n_kv : {64, 512})
        benchmark::RegisterBenchmark(
            (std::string("f16_rows/") + (values ? "values/" : "keys/") + isa_name(isa) + "/n" + std::to_string(n_kv)).c_str(),
            bm_f16_rows, isa, values, n_kv);
  }
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
