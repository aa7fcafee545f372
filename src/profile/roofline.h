// The machine's cache-aware roofline and where a piece of work sits on it.
//
// The figures are measured by the engine (engine/sysinfo.h, which needs the kernels); this layer only holds
// them and places work. The roofline has one memory roof per level of the hierarchy (L1, L2, L3, DRAM: the
// read rate the decode kernels reach with a working set that lives in that level, the idea of Intel Advisor's
// cache-aware roofline) and two compute roofs (the int8 peak of the packed GEMM kernel for matmuls, the f32
// peak of the attention GEMM for the rest). A piece of work is placed against the level its per-step working
// set lives in, confirmed by its achieved rate; below that level's ridge point (peak / bandwidth) it is
// memory-bound, above it compute-bound.
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

std::string machine_info_json(const MachineInfo& m);
// Reads what machine_info_json wrote (also summaries of older versions, which have no levels: read_gbs
// becomes the one DRAM level). Missing fields stay zero.
MachineInfo machine_info_from_json(const std::string& text);

// Placement of work (FLOPs, bytes, time) on the roofline of a given peak and one bandwidth.
struct RooflinePoint {
  double ai = 0;           // FLOPs per byte
  double gflops_s = 0;     // achieved
  double gbs = 0;          // achieved
  double ridge = 0;        // peak / bandwidth
  bool memory_bound = false;
  double bw_util = 0;       // achieved GB/s / the bandwidth
  double compute_util = 0;  // achieved GFLOP/s / peak
  double roof_util = 0;     // achieved GFLOP/s / attainable min(peak, ai * bandwidth)
};
RooflinePoint place_on_roofline(double flops, double bytes, double ms, double peak_gops, double read_gbs);

// Placement on the cache-aware roofline.
struct Placement {
  RooflinePoint point;       // against the chosen level's bandwidth and the peak
  std::string level;         // the memory level whose roof applies ("L3"), "" if the machine has no levels
  double level_gbs = 0;      // its bandwidth (median)
  double level_capacity = 0; // its capacity (0: DRAM, unbounded)
  double working_set = 0;    // bytes per step the work touches (weights + KV + activations)
  std::string sized_level;   // the level the working set fits by size; differs from level when the rate moved it
  std::string roof;          // the roof the share is against: "L3 bandwidth" or "int8 peak"
  double share = 0;          // achieved / that roof at this arithmetic intensity
  std::string why;           // "(weights+KV 92 MB per step fit the 260 MB L3)"
  std::string over_note;     // non-empty whenever share > 1: which roof was exceeded and why
  std::string verdict;       // "bound by L3 bandwidth (...): 81% of the L3 roof"
};
// peak_name: "int8 peak" or "f32 peak". A level is chosen by size (the first whose capacity holds working_set),
// then moved to a faster level while the achieved rate exceeds the chosen roof by more than its measured spread
// and 10%, since data cannot arrive faster than the level it comes from delivers it.
Placement place_cache_aware(const MachineInfo& m, double flops, double bytes, double ms, double working_set,
                            double peak_gops, const std::string& peak_name);

// "92 MB", "1.0 MiB"-style sizes for verdicts: bytes in decimal MB when >= 1e6, KB otherwise.
std::string human_bytes(double bytes);

}  // namespace tokenscope::profile
