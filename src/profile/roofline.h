// The machine's roofline (read bandwidth, int8 and f32 peaks) and where a piece of work sits on it.
// The figures are measured by the engine (engine/sysinfo.h, which needs the kernels); this layer only
// holds them and classifies: below the ridge point (peak / bandwidth) an op is memory-bound, above it
// compute-bound.
#pragma once

#include <string>

namespace tokenscope::profile {

struct MachineInfo {
  std::string cpu;
  int threads = 0;
  std::string isa;
  double read_gbs = 0;         // GB/s (1e9 bytes)
  double peak_int8_gops = 0;   // int8 multiply-adds x 2 per second, packed GEMM kernel, in cache
  double peak_f32_gflops = 0;  // f32 FMA x 2 per second, the attention GEMM kernel, in cache
  std::string measured_at;
  bool from_cache = false;
};

std::string machine_info_json(const MachineInfo& m);

// Placement of work (FLOPs, bytes, time) on the roofline of a given peak.
struct RooflinePoint {
  double ai = 0;           // FLOPs per byte
  double gflops_s = 0;     // achieved
  double gbs = 0;          // achieved
  double ridge = 0;        // peak / bandwidth
  bool memory_bound = false;
  double bw_util = 0;       // achieved GB/s / measured read bandwidth
  double compute_util = 0;  // achieved GFLOP/s / peak
  double roof_util = 0;     // achieved GFLOP/s / attainable min(peak, ai * bandwidth)
};
RooflinePoint place_on_roofline(double flops, double bytes, double ms, double peak_gops, double read_gbs);

}  // namespace tokenscope::profile
