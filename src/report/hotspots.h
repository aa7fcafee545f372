// The sampled hot functions of a profile (profile --sample): each sample placed in the profiler step it fell in
// (prefill, decode, mixed; "other" between steps: sampling, tokenizing, the program around the engine), its
// address named by the symbol tables, counted per function.
#pragma once

#include <nlohmann/json.hpp>

#include "profile/profiler.h"
#include "profile/sampler.h"

namespace tokenscope::report {

// {"period_us", "samples", "lost", "kernel", "note", "stages": {stage: {"samples", "functions": [{"function",
// "module", "samples", "share"}, ...top]}}}. Resolve while the code is still mapped (in the profiled process).
nlohmann::json hotspots_json(const profile::Sampler& s, const profile::Profiler& p, int top = 50);

// The top rows per stage as a terminal table.
std::string hotspots_table(const nlohmann::json& h, int rows = 10);

}  // namespace tokenscope::report
