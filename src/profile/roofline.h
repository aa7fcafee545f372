// The machine's cache-aware roofline, the figures only: measured by the engine (engine/sysinfo.h, which needs
// the kernels), and work is placed on them by report/placement.h. One memory roof per level of the hierarchy
// (L1, L2, L3, DRAM: the read rate the decode kernels reach with a working set that lives in that level, the
// idea of Intel Advisor's cache-aware roofline) and two compute roofs (the int8 peak of the packed GEMM kernel
// for matmuls, the f32 peak of the attention GEMM for the rest).
#pragma once

#include <string>
#include <vector>

namespace tokenscope::profile {

// A figure measured several times: its median and the range of the measurements.
struct Spread {
  double median = 0, lo = 0, hi = 0;
  int n = 0;
};
Spread spread_of(std::vector<double> samples);

// One level of the memory hierarchy as the run's threads see it.
struct MemoryLevel {
  std::string name;          // "L1", "L2", "L3", "DRAM"
  double capacity = 0;       // bytes the run's threads can keep in this level (private caches x threads); 0 for DRAM
  double working_set = 0;    // bytes the measurement read over and over
  Spread gbs;                // the roof: read GB/s (1e9 bytes), the higher of the two kernels' medians
  Spread stream_gbs;         // the SIMD f32 dot kernel streaming the buffer (attention's and the norms' reads)
  Spread gemv_gbs;           // the packed quantized GEMV kernel of decode (one token), weight bytes read
};

struct MachineInfo {
  std::string cpu;
  int threads = 0;
  std::string isa;
  double read_gbs = 0;         // DRAM read GB/s (the median of levels.back()); kept for older readers
  double peak_int8_gops = 0;   // int8 multiply-adds x 2 per second, packed GEMM kernel, in cache (median)
  double peak_f32_gflops = 0;  // f32 FMA x 2 per second, the attention GEMM kernel, in cache (median)
  Spread int8_spread, f32_spread;
  std::vector<MemoryLevel> levels;  // fastest first; empty in summaries written before the cache-aware roofline
  std::string key;                  // what the figures belong to: CPU, cores, caches, kernel, ISA, threads
  // The machine's load while the figures were measured (load.h): disturbed when other work competed.
  bool disturbed = false;
  std::string load;                 // the load line, and the warnings when disturbed
  std::string measured_at;
  bool from_cache = false;
};

}  // namespace tokenscope::profile
