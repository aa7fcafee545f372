#include "report/placement.h"

#include <algorithm>

#include "base/error.h"

namespace tokenscope::report {

namespace {

std::string pct(double x) { return strfmt("%.0f%%", 100 * x); }

}  // namespace

std::string human_bytes(double b) {
  if (b >= 1024.0 * 1024 * 1024) return strfmt("%.1f GiB", b / (1024.0 * 1024 * 1024));
  if (b >= 1024.0 * 1024) return strfmt("%.*f MiB", b >= 1024.0 * 1024 * 100 ? 0 : 1, b / (1024.0 * 1024));
  if (b >= 1024) return strfmt("%.0f KiB", b / 1024);
  return strfmt("%.0f B", b);
}

RooflinePoint place_on_roofline(double flops, double bytes, double ms, double peak_gops, double read_gbs) {
  RooflinePoint p;
  const double s = ms * 1e-3;
  p.ai = bytes > 0 ? flops / bytes : 0;
  p.gflops_s = s > 0 ? flops / s / 1e9 : 0;
  p.gbs = s > 0 ? bytes / s / 1e9 : 0;
  p.ridge = read_gbs > 0 ? peak_gops / read_gbs : 0;
  p.memory_bound = p.ai < p.ridge;
  p.bw_util = read_gbs > 0 ? p.gbs / read_gbs : 0;
  p.compute_util = peak_gops > 0 ? p.gflops_s / peak_gops : 0;
  const double attainable = std::min(peak_gops, p.ai * read_gbs);
  p.roof_util = attainable > 0 ? p.gflops_s / attainable : 0;
  return p;
}

Placement place_cache_aware(const MachineInfo& m, double flops, double bytes, double ms, double working_set,
                            double peak_gops, const std::string& peak_name) {
  Placement out;
  out.working_set = working_set;
  std::vector<MemoryLevel> levels = m.levels;
  if (levels.empty() && m.read_gbs > 0) {  // a summary from before the cache-aware roofline: DRAM only
    MemoryLevel d;
    d.name = "DRAM";
    d.gbs.median = d.gbs.lo = d.gbs.hi = m.read_gbs;
    levels.push_back(d);
  }
  if (levels.empty()) {
    out.point = place_on_roofline(flops, bytes, ms, peak_gops, 0);
    out.verdict = "not placed: no roofline was measured";
    return out;
  }
  // By size: the first level that holds the working set (DRAM, capacity 0, holds anything).
  size_t idx = levels.size() - 1;
  for (size_t i = 0; i < levels.size(); ++i)
    if (levels[i].capacity <= 0 || working_set <= levels[i].capacity) {
      idx = i;
      break;
    }
  const size_t sized = idx;
  out.sized_level = levels[sized].name;
  const double gbs = ms > 0 ? bytes / (ms * 1e-3) / 1e9 : 0;
  // Confirmed by the rate: faster than a level delivers means the data comes (at least partly) from a faster one.
  auto above = [&](size_t i) { return gbs > 1.10 * std::max(levels[i].gbs.median, levels[i].gbs.hi); };
  while (idx > 0 && above(idx)) --idx;
  const MemoryLevel& L = levels[idx];
  out.level = L.name;
  out.level_gbs = L.gbs.median;
  out.level_capacity = L.capacity;
  out.point = place_on_roofline(flops, bytes, ms, peak_gops, L.gbs.median);
  const RooflinePoint& p = out.point;
  const std::string ws = human_bytes(working_set);
  // The largest cache (for "exceeds the 32 MiB L3" when the working set lives in DRAM).
  const MemoryLevel* last_cache = nullptr;
  for (const MemoryLevel& l : levels)
    if (l.capacity > 0) last_cache = &l;
  if (p.memory_bound) {
    out.roof = L.name + " bandwidth";
    out.share = p.bw_util;
    if (idx != sized) {
      out.why = strfmt("(working set %s per step is sized for %s, but the achieved %.1f GB/s is above the %s roof of "
                       "%.1f GB/s, so part of it is served from %s)",
                       ws.c_str(), levels[sized].name.c_str(), gbs, levels[sized].name.c_str(),
                       levels[sized].gbs.median, L.name.c_str());
    } else if (L.capacity > 0) {
      out.why = strfmt("(working set %s per step fits the %s %s)", ws.c_str(), human_bytes(L.capacity).c_str(),
                       L.name.c_str());
    } else if (last_cache) {
      out.why = strfmt("(working set %s per step exceeds the %s %s)", ws.c_str(),
                       human_bytes(last_cache->capacity).c_str(), last_cache->name.c_str());
    } else {
      out.why = strfmt("(working set %s per step)", ws.c_str());
    }
    if (out.share > 1) {
      if (idx == 0)
        out.over_note = strfmt("above the %s roof (%.1f GB/s), the fastest level measured: the op's byte count "
                               "overstates its memory traffic, or the roof was measured while the machine was busy",
                               L.name.c_str(), L.gbs.median);
      else if (gbs <= L.gbs.hi)
        out.over_note = strfmt("above the median %s roof (%.1f GB/s) but within the range measured for it "
                               "(%.1f-%.1f GB/s): measurement spread",
                               L.name.c_str(), L.gbs.median, L.gbs.lo, L.gbs.hi);
      else
        out.over_note = strfmt("less than 10%% above the %s roof (%.1f GB/s, measured %.1f-%.1f): too close to "
                               "claim a faster level; measurement spread",
                               L.name.c_str(), L.gbs.median, L.gbs.lo, L.gbs.hi);
    }
    out.verdict = strfmt("bound by %s bandwidth %s: %s of the %s roof", L.name.c_str(), out.why.c_str(),
                         pct(out.share).c_str(), L.name.c_str());
  } else {
    out.roof = peak_name;
    out.share = p.compute_util;
    out.why = strfmt("(%.1f FLOP/byte, right of the %s ridge at %.1f; working set %s per step in %s)", p.ai,
                     L.name.c_str(), p.ridge, ws.c_str(), L.name.c_str());
    if (out.share > 1)
      out.over_note = strfmt("above the measured %s (%.0f GOP/s): the peak was measured while the machine was busier "
                             "than during this run, or this kernel outruns the one the peak is measured with",
                             peak_name.c_str(), peak_gops);
    std::string kind = peak_name.substr(0, peak_name.find(' '));
    out.verdict = strfmt("bound by %s compute %s: %s of the %s", kind.c_str(), out.why.c_str(),
                         pct(out.share).c_str(), peak_name.c_str());
  }
  if (!out.over_note.empty()) out.verdict += " [" + out.over_note + "]";
  return out;
}

}  // namespace tokenscope::report
