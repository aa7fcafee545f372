// sysinfo: the roofline's levels from a CPU description, the cache keyed by everything the figures depend on
// (a changed CPU description is measured again), and this machine's description and measurement.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "engine/sysinfo.h"
#include "test_util.h"

using namespace tokenscope;
using tokenscope::testing::temp_path;

namespace {

constexpr double KiB = 1024.0, MiB = 1024.0 * 1024;

// The Xeon VM: 2 cores, L1d 48 KiB and L2 2 MiB per core, a 260 MiB L3 shared.
CpuDescription xeon() {
  CpuDescription d;
  d.cpu = "Intel(R) Xeon(R) synthetic";
  d.cpus = 2;
  d.caches = {{1, 48 * KiB, 1}, {2, 2 * MiB, 1}, {3, 260 * MiB, 2}};
  d.kernel = "6.1.0-test";
  d.isa = "avx512";
  d.threads = 2;
  return d;
}

TEST(Sysinfo, LevelsFromTheCacheSizes) {
  const auto l = roofline_levels(xeon());
  ASSERT_EQ(l.size(), 4u);
  EXPECT_EQ(l[0].name, "L1");
  EXPECT_DOUBLE_EQ(l[0].capacity, 96 * KiB);  // private: one per thread
  EXPECT_DOUBLE_EQ(l[1].capacity, 4 * MiB);
  EXPECT_DOUBLE_EQ(l[2].capacity, 260 * MiB);  // shared by both CPUs: once
  EXPECT_EQ(l[3].name, "DRAM");
  EXPECT_DOUBLE_EQ(l[3].capacity, 0);
  for (size_t i = 0; i + 1 < l.size(); ++i) {
    // Each measured working set fits its level and is too large for the level below.
    EXPECT_LE(l[i].working_set, l[i].capacity) << l[i].name;
    if (i > 0) {
      EXPECT_GT(l[i].working_set, l[i - 1].capacity) << l[i].name;
    }
  }
  EXPECT_GE(l[3].working_set, 4 * 260 * MiB);
  // One thread: the private caches count once.
  CpuDescription one = xeon();
  one.threads = 1;
  EXPECT_DOUBLE_EQ(roofline_levels(one)[1].capacity, 2 * MiB);
  // An L3 no larger than the L2s together adds no level.
  CpuDescription small = xeon();
  small.caches[2].size = 4 * MiB;
  const auto s = roofline_levels(small);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[2].name, "DRAM");
  // No cache information at all: DRAM only.
  CpuDescription none = xeon();
  none.caches.clear();
  EXPECT_EQ(roofline_levels(none).size(), 1u);
}

TEST(Sysinfo, CacheIsMeasuredAgainWhenTheCpuDescriptionChanges) {
  const std::string path = temp_path("sysinfo.json");
  std::filesystem::remove(path);
  int measured = 0;
  auto measure = [&](const CpuDescription& d) {
    ++measured;
    MachineInfo m;
    m.cpu = d.cpu;
    m.threads = d.threads;
    m.levels = roofline_levels(d);
    for (auto& l : m.levels) l.gbs = profile::Spread{10.0 * measured, 9, 11, 7};
    m.read_gbs = 10.0 * measured;
    m.peak_int8_gops = 100;
    m.peak_f32_gflops = 50;
    return m;
  };
  const CpuDescription d = xeon();
  MachineInfo m = machine_info_cached(path, d, false, measure);
  EXPECT_EQ(measured, 1);
  EXPECT_FALSE(m.from_cache);
  m = machine_info_cached(path, d, false, measure);
  EXPECT_EQ(measured, 1);
  EXPECT_TRUE(m.from_cache);
  EXPECT_EQ(m.key, d.key());
  EXPECT_DOUBLE_EQ(m.read_gbs, 10);
  ASSERT_EQ(m.levels.size(), 4u);
  // Each part of the description is part of the key.
  std::vector<CpuDescription> changed(6, d);
  changed[0].cpu = "AMD EPYC synthetic";
  changed[1].cpus = 4;
  changed[2].caches[2].size = 32 * MiB;
  changed[3].kernel = "6.18.0-test";
  changed[4].isa = "avx2";
  changed[5].threads = 1;
  for (size_t i = 0; i < changed.size(); ++i) {
    EXPECT_NE(changed[i].key(), d.key()) << i;
    m = machine_info_cached(path, changed[i], false, measure);
    EXPECT_EQ(measured, static_cast<int>(i) + 2) << "change " << i << " was not measured again";
    EXPECT_FALSE(m.from_cache);
  }
  // The first machine's entry is still there; --refresh measures it again.
  m = machine_info_cached(path, d, false, measure);
  EXPECT_EQ(measured, 7);
  EXPECT_TRUE(m.from_cache);
  m = machine_info_cached(path, d, true, measure);
  EXPECT_EQ(measured, 8);
  EXPECT_DOUBLE_EQ(m.read_gbs, 80);
  // Figures measured on a disturbed machine: kept while the machine is still busy, measured again once quiet.
  auto disturbed = [&](const CpuDescription& x) {
    MachineInfo r = measure(x);
    r.disturbed = true;
    return r;
  };
  CpuDescription busy = d;
  busy.kernel = "busy";
  machine_info_cached(path, busy, false, disturbed);
  EXPECT_EQ(measured, 9);
  m = machine_info_cached(path, busy, false, measure, [] { return false; });
  EXPECT_EQ(measured, 9);
  EXPECT_TRUE(m.disturbed);
  m = machine_info_cached(path, busy, false, measure, [] { return true; });
  EXPECT_EQ(measured, 10);
  EXPECT_FALSE(m.disturbed);
  m = machine_info_cached(path, busy, false, measure, [] { return true; });
  EXPECT_EQ(measured, 10);  // a quiet measurement stays
  // A damaged file is measured again, not an error.
  std::ofstream(path) << "{ not json";
  machine_info_cached(path, d, false, measure);
  EXPECT_EQ(measured, 11);
  std::filesystem::remove(path);
}

TEST(Sysinfo, ThisMachineIsDescribed) {
  const CpuDescription d = describe_cpu(1, kernels::Isa::scalar);
  EXPECT_FALSE(d.cpu.empty());
  EXPECT_GE(d.cpus, 1);
  EXPECT_FALSE(d.kernel.empty());
  EXPECT_EQ(d.isa, "scalar");
  for (const CacheInfo& c : d.caches) {
    EXPECT_GE(c.level, 1);
    EXPECT_GT(c.size, 0);
  }
  // sysfs and cpuid agree on the sizes where both answer.
  const auto s = sysfs_caches("/sys/devices/system/cpu/cpu0/cache");
  const auto c = cpuid_caches();
  if (s.empty() || c.empty()) GTEST_SKIP() << "sysfs or cpuid gives no cache sizes here";
  ASSERT_EQ(s.size(), c.size());
  for (size_t i = 0; i < s.size(); ++i) {
    EXPECT_EQ(s[i].level, c[i].level);
    EXPECT_DOUBLE_EQ(s[i].size, c[i].size) << "L" << s[i].level;
  }
}

TEST(Sysinfo, UnreadableSysfsGivesNoCaches) {
  EXPECT_TRUE(sysfs_caches("/nonexistent/cache").empty());
}

}  // namespace
