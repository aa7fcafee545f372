// The machine's roofline as tokenscope's own kernels see it: read bandwidth from memory (a streaming read
// over a buffer far larger than the caches, all threads) and the peak int8 / f32 throughput of the
// kernels on cache-resident data. Cached as JSON (~/.cache/tokenscope/sysinfo.json) per CPU, threads, ISA.
#pragma once

#include <string>

#include "kernels/kernels.h"

namespace tokenscope {

struct MachineInfo {
  std::string cpu;
  int threads = 0;
  std::string isa;
  double read_gbs = 0;        // GB/s (1e9 bytes)
  double peak_int8_gops = 0;  // int8 multiply-adds x 2 per second, packed Q8_0 GEMM kernel, in cache
  double peak_f32_gflops = 0; // f32 FMA x 2 per second, dot_f32 kernel, in cache
  std::string measured_at;
  bool from_cache = false;
};

MachineInfo measure_machine(int threads, kernels::Isa isa);
// The cached figures for this CPU/threads/ISA, measured now if absent or if refresh.
MachineInfo machine_info(int threads, kernels::Isa isa, bool refresh = false);
std::string machine_info_json(const MachineInfo& m);
std::string sysinfo_cache_path();

}  // namespace tokenscope
