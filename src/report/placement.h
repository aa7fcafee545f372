// Where a piece of work sits on the machine's cache-aware roofline (profile/roofline.h holds the figures): it is
// placed against the memory level its per-step working set lives in, confirmed by its achieved rate; below that
// level's ridge point (peak / bandwidth) it is memory-bound, above it compute-bound.
#pragma once

#include <string>

#include "profile/roofline.h"

namespace tokenscope::report {

using profile::MachineInfo;
using profile::MemoryLevel;
using profile::Spread;

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

}  // namespace tokenscope::report
