// The cache-aware roofline's placement on synthetic machines: work is placed against the memory level its
// per-step working set lives in, moved to a faster level when its achieved rate says the data comes from there,
// and no share above 100% is ever given without naming the roof exceeded and why.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine/sysinfo.h"
#include "report/placement.h"

using namespace tokenscope;
using namespace tokenscope::profile;
using namespace tokenscope::report;

namespace {

constexpr double MiB = 1024.0 * 1024;

MemoryLevel level(const char* name, double capacity, double gbs, double lo, double hi) {
  MemoryLevel l;
  l.name = name;
  l.capacity = capacity;
  l.gbs = Spread{gbs, lo, hi, 7};
  return l;
}

// The Xeon VM: 2 cores, 48 KiB L1d and 2 MiB L2 per core, 260 MiB L3.
MachineInfo xeon() {
  MachineInfo m;
  m.cpu = "synthetic Xeon";
  m.threads = 2;
  m.levels = {level("L1", 96 * 1024, 400, 380, 410), level("L2", 4 * MiB, 200, 190, 205),
              level("L3", 260 * MiB, 100, 95, 104), level("DRAM", 0, 20, 19, 21)};
  m.read_gbs = 20;
  m.peak_int8_gops = 500;
  m.peak_f32_gflops = 120;
  return m;
}

// Decode-like work: AI 2 FLOP/byte; `bytes` read in ms so that the achieved rate is gbs.
Placement decode_like(const MachineInfo& m, double ws, double gbs) {
  const double bytes = ws, ms = bytes / (gbs * 1e9) * 1e3;
  return place_cache_aware(m, 2 * bytes, bytes, ms, ws, m.peak_int8_gops, "int8 peak");
}

TEST(ProfileCacheRoofline, ModelThatFitsL3IsPlacedAgainstL3) {
  const Placement p = decode_like(xeon(), 92e6, 81);
  EXPECT_EQ(p.level, "L3");
  EXPECT_EQ(p.sized_level, "L3");
  EXPECT_TRUE(p.point.memory_bound);
  EXPECT_NEAR(p.share, 0.81, 1e-9);
  EXPECT_EQ(p.roof, "L3 bandwidth");
  EXPECT_TRUE(p.over_note.empty());
  EXPECT_NE(p.verdict.find("bound by L3 bandwidth"), std::string::npos) << p.verdict;
  EXPECT_NE(p.verdict.find("fits the 260 MiB L3"), std::string::npos) << p.verdict;
  EXPECT_NE(p.verdict.find("81% of the L3 roof"), std::string::npos) << p.verdict;
}

TEST(ProfileCacheRoofline, ModelThatDoesNotFitIsPlacedAgainstDram) {
  const Placement p = decode_like(xeon(), 400e6, 16);
  EXPECT_EQ(p.level, "DRAM");
  EXPECT_NEAR(p.share, 0.8, 1e-9);
  EXPECT_NE(p.verdict.find("exceeds the 260 MiB L3"), std::string::npos) << p.verdict;
  EXPECT_NE(p.verdict.find("80% of the DRAM roof"), std::string::npos) << p.verdict;
}

TEST(ProfileCacheRoofline, ModelThatFitsL2IsPlacedAgainstL2) {
  const Placement p = decode_like(xeon(), 3 * MiB, 150);
  EXPECT_EQ(p.level, "L2");
  EXPECT_NEAR(p.share, 0.75, 1e-9);
  EXPECT_NE(p.verdict.find("fits the 4.0 MiB L2"), std::string::npos) << p.verdict;
}

TEST(ProfileCacheRoofline, RateAboveTheSizedRoofMovesUpALevelAndSaysSo) {
  // Sized for DRAM (330 MB > 260 MiB), but 31 GB/s is 155% of the DRAM roof: part of it comes from L3.
  const Placement p = decode_like(xeon(), 330e6, 31);
  EXPECT_EQ(p.sized_level, "DRAM");
  EXPECT_EQ(p.level, "L3");
  EXPECT_NEAR(p.share, 0.31, 1e-9);
  EXPECT_NE(p.verdict.find("above the DRAM roof"), std::string::npos) << p.verdict;
  EXPECT_NE(p.verdict.find("served from L3"), std::string::npos) << p.verdict;
  // Far above L2's and L3's roofs with a small working set: up to L1.
  const Placement q = decode_like(xeon(), 3 * MiB, 300);
  EXPECT_EQ(q.level, "L1");
}

TEST(ProfileCacheRoofline, AboveTheFastestRoofIsExplained) {
  // AI 0.5 (left of every ridge) at 600 GB/s: above L1's 400.
  const MachineInfo m = xeon();
  const double bytes = 16 * 1024, ms = bytes / 600e9 * 1e3;
  const Placement p = place_cache_aware(m, 0.5 * bytes, bytes, ms, bytes, m.peak_int8_gops, "int8 peak");
  EXPECT_TRUE(p.point.memory_bound);
  EXPECT_EQ(p.level, "L1");
  EXPECT_GT(p.share, 1);
  EXPECT_NE(p.over_note.find("above the L1 roof"), std::string::npos) << p.over_note;
  EXPECT_NE(p.verdict.find(p.over_note), std::string::npos);
}

TEST(ProfileCacheRoofline, ComputeBoundWorkIsPlacedAgainstThePeak) {
  // AI 100 at 300 GOP/s: right of every ridge, 60% of the int8 peak.
  const MachineInfo m = xeon();
  const double bytes = 1e8, flops = 100 * bytes, ms = flops / 300e9 * 1e3;
  const Placement p = place_cache_aware(m, flops, bytes, ms, 92e6, m.peak_int8_gops, "int8 peak");
  EXPECT_FALSE(p.point.memory_bound);
  EXPECT_EQ(p.roof, "int8 peak");
  EXPECT_NEAR(p.share, 0.6, 1e-9);
  EXPECT_NE(p.verdict.find("bound by int8 compute"), std::string::npos) << p.verdict;
  const Placement over = place_cache_aware(m, flops, bytes, ms / 2, 92e6, m.peak_int8_gops, "int8 peak");
  EXPECT_GT(over.share, 1);
  EXPECT_NE(over.over_note.find("above the measured int8 peak"), std::string::npos) << over.over_note;
}

// Over every working set and rate: a share above 100% always comes with the roof it exceeds and a reason, in
// the verdict; a share at or below 100% never carries one.
TEST(ProfileCacheRoofline, NeverAboveOneHundredPercentWithoutTheExplanation) {
  const MachineInfo m = xeon();
  int over = 0;
  for (double ws : {8e3, 60e3, 1e6, 3.5e6, 5e6, 92e6, 270e6, 400e6, 4e9})
    for (double gbs = 1; gbs < 1000; gbs *= 1.07)
      for (double ai : {0.5, 2.0, 20.0, 200.0}) {
        const double bytes = 1e6, ms = bytes / (gbs * 1e9) * 1e3;
        const Placement p = place_cache_aware(m, ai * bytes, bytes, ms, ws, m.peak_int8_gops, "int8 peak");
        ASSERT_FALSE(p.level.empty());
        EXPECT_NE(p.verdict.find(p.roof == "int8 peak" ? "of the int8 peak" : "of the " + p.level + " roof"),
                  std::string::npos) << p.verdict;
        if (p.share > 1) {
          ++over;
          EXPECT_FALSE(p.over_note.empty()) << p.verdict;
          EXPECT_NE(p.over_note.find(p.point.memory_bound ? p.level + " roof" : "int8 peak"), std::string::npos)
              << p.over_note;
          EXPECT_NE(p.verdict.find(p.over_note), std::string::npos);
        } else {
          EXPECT_TRUE(p.over_note.empty()) << p.verdict;
        }
      }
  EXPECT_GT(over, 0);  // the sweep reaches past the roofs
}

TEST(ProfileCacheRoofline, SummaryWithoutLevelsFallsBackToOneDramRoof) {
  MachineInfo m;
  m.read_gbs = 20;
  m.peak_int8_gops = 200;
  const Placement p = decode_like(m, 92e6, 10);
  EXPECT_EQ(p.level, "DRAM");
  EXPECT_NEAR(p.share, 0.5, 1e-9);
  MachineInfo none;
  EXPECT_NE(decode_like(none, 92e6, 10).verdict.find("no roofline"), std::string::npos);
}

TEST(ProfileCacheRoofline, MachineInfoRoundTripsThroughJson) {
  MachineInfo m = xeon();
  m.int8_spread = Spread{500, 480, 510, 7};
  const MachineInfo r = machine_info_from_json(machine_info_json(m));
  ASSERT_EQ(r.levels.size(), 4u);
  EXPECT_EQ(r.levels[2].name, "L3");
  EXPECT_DOUBLE_EQ(r.levels[2].capacity, 260 * MiB);
  EXPECT_DOUBLE_EQ(r.levels[2].gbs.hi, 104);
  EXPECT_DOUBLE_EQ(r.int8_spread.lo, 480);
  EXPECT_EQ(r.cpu, "synthetic Xeon");
}

TEST(ProfileCacheRoofline, SpreadIsMedianAndRange) {
  const Spread s = spread_of({5, 1, 4, 2, 3});
  EXPECT_DOUBLE_EQ(s.median, 3);
  EXPECT_DOUBLE_EQ(s.lo, 1);
  EXPECT_DOUBLE_EQ(s.hi, 5);
  EXPECT_EQ(s.n, 5);
  EXPECT_DOUBLE_EQ(spread_of({1, 2, 3, 10}).median, 2.5);
}

}  // namespace
