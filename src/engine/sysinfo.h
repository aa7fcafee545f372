// The machine's cache-aware roofline as tokenscope's own kernels see it: the read bandwidth of each level of
// the memory hierarchy (L1, L2, L3, DRAM; working sets sized from the cache sizes sysfs or cpuid report), each
// measured with decode's two read paths (the packed quantized GEMV of one token, and the SIMD f32 dot that
// attention and the norms stream with), and the peak int8 / f32 throughput of the kernels on cache-resident
// data; every figure a median with its range over repeated measurements.
//
// Cached as JSON (~/.cache/tokenscope/sysinfo.json) under a key naming everything the figures depend on: CPU
// model, online CPUs, cache sizes, kernel release, ISA, threads and the measuring method. A VM that comes back
// as another kind of machine gets a new key, so it is measured again; figures measured while the machine was
// disturbed (profile/load.h) are kept with that flag and measured again once it is quiet.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "profile/roofline.h"

namespace tokenscope {

using profile::MachineInfo;

// The figures as JSON (the cache's entries, summary.json's "machine"), and back: summaries of older versions
// have no levels (their read_gbs is the DRAM roof); missing fields stay zero.
std::string machine_info_json(const MachineInfo& m);
MachineInfo machine_info_from_json(const std::string& text);

struct CacheInfo {
  int level = 0;         // 1, 2, 3
  double size = 0;       // bytes of one instance
  int shared_cpus = 1;   // CPUs sharing one instance
};

// What the measured figures belong to.
struct CpuDescription {
  std::string cpu;       // model name
  int cpus = 0;          // online CPUs
  std::vector<CacheInfo> caches;  // data and unified caches, by level
  std::string kernel;    // kernel release (uname -r)
  std::string isa;       // the kernel table's ISA (and its features)
  int threads = 0;       // threads the run uses
  // "cpu=...; cpus=2; caches=L1 32K/1 L2 1024K/1 L3 32768K/2; kernel=...; isa=avx512; threads=2; method=4".
  std::string key() const;
};

// This machine, for a run of `threads` threads with the given ISA.
CpuDescription describe_cpu(int threads, kernels::Isa isa);
// Data and unified caches listed under a sysfs cache directory (/sys/devices/system/cpu/cpu0/cache); empty if
// it cannot be read.
std::vector<CacheInfo> sysfs_caches(const std::string& dir);
// The same from cpuid (x86: leaf 4 on Intel, 0x8000001D on AMD); empty elsewhere.
std::vector<CacheInfo> cpuid_caches();

// The levels the roofline has for this description: each cache level's capacity for the run's threads (private
// caches count once per thread, up to the instances there are) and the working set measured in it (half the
// capacity, and at least twice the level below, so neither the level below nor the one above holds it), then DRAM
// (a buffer four times the largest cache, at least 512 MiB). A cache no larger than the one below is left out.
std::vector<profile::MemoryLevel> roofline_levels(const CpuDescription& d);

MachineInfo measure_machine(const CpuDescription& d, kernels::Isa isa);
// The cached figures for this machine, measured now if there are none under its key or if refresh.
MachineInfo machine_info(int threads, kernels::Isa isa, bool refresh = false);
// The cache logic on its own: the entry under d.key() in the JSON file at path, else measure(d), stored there.
// An entry measured on a disturbed machine is measured again when quiet_now() says the machine is quiet.
MachineInfo machine_info_cached(const std::string& path, const CpuDescription& d, bool refresh,
                                const std::function<MachineInfo(const CpuDescription&)>& measure,
                                const std::function<bool()>& quiet_now = nullptr);
std::string sysinfo_cache_path();

}  // namespace tokenscope
