#include "profile/roofline.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace tokenscope::profile {

std::string machine_info_json(const MachineInfo& m) {
  nlohmann::json j = {{"cpu", m.cpu},
                      {"threads", m.threads},
                      {"isa", m.isa},
                      {"read_gbs", m.read_gbs},
                      {"peak_int8_gops", m.peak_int8_gops},
                      {"peak_f32_gflops", m.peak_f32_gflops},
                      {"measured_at", m.measured_at}};
  return j.dump(2);
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

}  // namespace tokenscope::profile
