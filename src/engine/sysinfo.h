// The machine's roofline as tokenscope's own kernels see it: read bandwidth from memory (a streaming read
// over a buffer far larger than the caches, all threads) and the peak int8 / f32 throughput of the
// kernels on cache-resident data. Cached as JSON (~/.cache/tokenscope/sysinfo.json) per CPU, threads, ISA.
#pragma once

#include <string>

#include "kernels/kernels.h"
#include "profile/roofline.h"

namespace tokenscope {

using profile::MachineInfo;
using profile::machine_info_json;

MachineInfo measure_machine(int threads, kernels::Isa isa);
// The cached figures for this CPU/threads/ISA, measured now if absent or if refresh.
MachineInfo machine_info(int threads, kernels::Isa isa, bool refresh = false);
std::string sysinfo_cache_path();

}  // namespace tokenscope
