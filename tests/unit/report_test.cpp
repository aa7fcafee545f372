// The report layer on recorded runs: the stage summary, the Chrome trace and its sampling, roofline placement.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "profile/profiler.h"
#include "report/placement.h"
#include "report/report.h"
#include "test_util.h"

using namespace tokenscope;
using namespace tokenscope::profile;
using namespace tokenscope::report;
using nlohmann::json;
using tokenscope::testing::burn_cpu;

namespace {

// A profile with known steps: a 78-token prefill and 3 decode steps, each with one matmul and one add.
void fake_run(Profiler& p) {
  p.open_counters({static_cast<int>(::gettid())});
  for (int s = 0; s < 4; ++s) {
    const int64_t past = s == 0 ? 0 : 77 + s, n = s == 0 ? 78 : 1;
    p.begin_step(s == 0 ? Stage::prefill : Stage::decode, past, n);
    const double t0 = p.now_us();
    burn_cpu(s == 0 ? 8 : 2);
    const double t1 = p.now_us();
    const double mid = t0 + 0.8 * (t1 - t0);
    p.add_op(OpKind::matmul, 0, "ffn_down", t0, mid, matmul_cost(n, 576, 1536, 48 * 20), n, 576, 1536, "Q4_1");
    p.add_op(OpKind::add, 0, "residual", mid, t1, elementwise_cost(n * 576, 1, 2, 1));
    p.end_step();
    const double ts = p.now_us();
    p.add_op(OpKind::sampling, -1, "sampling", ts, p.now_us(), elementwise_cost(49152, 2, 1, 0));
  }
}

MachineInfo fake_machine() {
  MachineInfo m;
  m.cpu = "test CPU";
  m.threads = 1;
  m.isa = "avx2";
  m.read_gbs = 20;
  m.peak_int8_gops = 200;
  m.peak_f32_gflops = 50;
  return m;
}


TEST(ReportRoofline, PlacesWorkLeftOrRightOfTheRidge) {
  // Machine: 20 GB/s, 200 GOP/s -> ridge at 10 FLOP/byte.
  // 1 GFLOP over 0.5 GB in 50 ms: AI 2 (memory-bound), 20 GFLOP/s, 10 GB/s = half the bandwidth.
  const RooflinePoint m = place_on_roofline(1e9, 0.5e9, 50, 200, 20);
  EXPECT_DOUBLE_EQ(m.ridge, 10);
  EXPECT_DOUBLE_EQ(m.ai, 2);
  EXPECT_TRUE(m.memory_bound);
  EXPECT_DOUBLE_EQ(m.gflops_s, 20);
  EXPECT_DOUBLE_EQ(m.gbs, 10);
  EXPECT_DOUBLE_EQ(m.bw_util, 0.5);
  EXPECT_DOUBLE_EQ(m.compute_util, 0.1);
  EXPECT_DOUBLE_EQ(m.roof_util, 0.5);  // attainable at AI 2: 40 GFLOP/s
  // 10 GFLOP over 0.1 GB in 100 ms: AI 100 (compute-bound), 100 GFLOP/s = half the peak.
  const RooflinePoint c = place_on_roofline(10e9, 0.1e9, 100, 200, 20);
  EXPECT_FALSE(c.memory_bound);
  EXPECT_DOUBLE_EQ(c.compute_util, 0.5);
  EXPECT_DOUBLE_EQ(c.roof_util, 0.5);
}

TEST(ReportSteps, StageSummary) {
  Profiler p;
  fake_run(p);
  const ProfileSummary sum = summarize(p, fake_machine());
  ASSERT_EQ(sum.stages.size(), 2u);
  const StageSummary& pre = sum.stages[0];
  const StageSummary& dec = sum.stages[1];
  EXPECT_EQ(pre.stage, "prefill");
  EXPECT_EQ(pre.tokens, 78);
  EXPECT_EQ(dec.steps, 3);
  EXPECT_EQ(dec.tokens, 3);
  ASSERT_EQ(pre.ops.size(), 2u);  // matmul and add; sampling is not part of a stage's ops
  EXPECT_EQ(pre.ops[0].kind, "matmul");
  EXPECT_NEAR(pre.ops[0].share, 0.8, 0.05);
  EXPECT_DOUBLE_EQ(pre.ops[0].flops, 2.0 * 78 * 576 * 1536);
  // The prefill matmul reuses each weight byte 78 times: right of the ridge (10); the decode ones left of it.
  EXPECT_EQ(pre.ops[0].bound, "compute");
  EXPECT_EQ(dec.ops[0].bound, "memory");
  EXPECT_EQ(pre.bound, "compute");
  EXPECT_EQ(dec.bound, "memory");
  EXPECT_NE(pre.bottleneck.find("bound by int8 compute"), std::string::npos) << pre.bottleneck;
  // A machine without cache levels (a summary of an older version): decode is placed against DRAM.
  EXPECT_NE(dec.bottleneck.find("bound by DRAM bandwidth"), std::string::npos) << dec.bottleneck;
  EXPECT_EQ(dec.level, "DRAM");
  EXPECT_NE(dec.main_ops.find("matmul 8"), std::string::npos) << dec.main_ops;
  EXPECT_NE(dec.observations.find("3 tokens in 3 steps"), std::string::npos) << dec.observations;
  EXPECT_GT(dec.threads_busy, 0.2);  // one thread burning the whole step (less on a loaded machine)
  const std::string table = stage_table_markdown(sum);
  EXPECT_NE(table.find("| prefill | matmul"), std::string::npos) << table;
  EXPECT_NE(table.find("| decode | matmul"), std::string::npos) << table;
}

TEST(ReportTrace, ChromeTraceEventsParse) {
  Profiler p;
  fake_run(p);
  const json t = json::parse(trace_json(p));
  ASSERT_TRUE(t["traceEvents"].is_array());
  std::vector<std::string> markers;
  int ops = 0, counter_events = 0;
  for (const auto& e : t["traceEvents"]) {
    ASSERT_TRUE(e.contains("ph") && e.contains("pid")) << e.dump();
    if (e["ph"] == "X" && e["tid"] == 0) markers.push_back(e["name"]);
    if (e["ph"] == "X" && e["tid"] == static_cast<int>(::gettid())) {
      ++ops;
      EXPECT_TRUE(e["args"].contains("flops") && e["args"].contains("bytes") && e["args"].contains("layer"));
    }
    if (e["ph"] == "C") {
      ++counter_events;
      EXPECT_TRUE(e.contains("ts"));
    }
  }
  EXPECT_EQ(markers, (std::vector<std::string>{"prefill: past 0, n_eval 78", "decode: past 78, n_eval 1",
                                               "decode: past 79, n_eval 1", "decode: past 80, n_eval 1"}));
  EXPECT_EQ(ops, 12);
  // Every counter gets a value and a reset per step, plus the thread busy track.
  EXPECT_EQ(counter_events, 4 * 2 * (static_cast<int>(p.counters()->names().size()) + 1));
  const json s = json::parse(summary_json(summarize(p, fake_machine()), p, "model.gguf"));
  EXPECT_EQ(s["steps"].size(), 4u);
  EXPECT_EQ(s["stages"][0]["by_name"][0]["kind"], "ffn_down");
  EXPECT_EQ(s["counter_names"][0], "task-clock-ms");
  EXPECT_EQ(s["machine"]["read_gbs"], 20);
}

// A long run's trace stays bounded: the first decode steps in full, then one in `every`, and it says so.
TEST(ReportTrace, LongRunsAreSampledAfterTheFirstSteps) {
  Profiler p;
  p.set_thread_count(2);
  p.open_counters({static_cast<int>(::gettid()), static_cast<int>(::gettid())});  // two "pool threads"
  const int n_decode = 300;
  for (int s = 0; s <= n_decode; ++s) {
    p.begin_step(s == 0 ? Stage::prefill : Stage::decode, s == 0 ? 0 : 7 + s, s == 0 ? 8 : 1);
    for (int k = 0; k < 3; ++k) {
      const double t = p.now_us();
      p.add_op(OpKind::add, k, "residual", t, t + 0.5, elementwise_cost(8, 1, 2, 1));
      p.add_thread_span(1, t + 0.1, t + 0.4);
    }
    p.end_step();
  }
  auto count = [](const json& t, int* ops, int* markers, int* thread_spans, std::string* desc) {
    *ops = *markers = *thread_spans = 0;
    for (const auto& e : t["traceEvents"]) {
      if (e["ph"] == "X" && e["tid"] == 0) ++*markers;
      if (e["ph"] == "X" && e.contains("cat") && e["cat"] == "add" && e.contains("args") && e["args"].contains("flops")) ++*ops;
      if (e["ph"] == "X" && e.contains("args") && e["args"].contains("pool_thread")) ++*thread_spans;
      if (e["ph"] == "M" && e["name"] == "trace_sampling") *desc = e["args"]["description"];
    }
  };
  int ops, markers, spans;
  std::string desc;
  // 1 prefill + 10 decode steps in full, then 290 steps sampled to at most 50: one in 6 (49 steps).
  count(json::parse(trace_json(p, TraceOptions{10, 50})), &ops, &markers, &spans, &desc);
  EXPECT_EQ(markers, n_decode + 1);  // every step's marker
  const int kept = 1 + 10 + (290 + 5) / 6;
  EXPECT_EQ(ops, 3 * kept);
  EXPECT_EQ(spans, 3 * kept);
  EXPECT_NE(desc.find("one step in 6"), std::string::npos) << desc;
  // full_steps 0: everything.
  count(json::parse(trace_json(p, TraceOptions{0, 50})), &ops, &markers, &spans, &desc);
  EXPECT_EQ(ops, 3 * (n_decode + 1));
  EXPECT_NE(desc.find("every step"), std::string::npos) << desc;
  // A short run is not sampled.
  count(json::parse(trace_json(p, TraceOptions{1000, 50})), &ops, &markers, &spans, &desc);
  EXPECT_EQ(ops, 3 * (n_decode + 1));
}

TEST(ReportSteps, RoofBelowTheNextLevelsIsNoted) {
  Profiler p;
  fake_run(p);
  MachineInfo m = fake_machine();
  MemoryLevel l1, l2, dram;
  l1.name = "L1";
  l1.capacity = 64 << 10;
  l1.gbs = Spread{50, 45, 55, 7};  // wholly below L2: disturbed
  l2.name = "L2";
  l2.capacity = 2 << 20;
  l2.gbs = Spread{80, 70, 90, 7};
  dram.name = "DRAM";
  dram.gbs.median = 20;
  m.levels = {l1, l2, dram};
  const ProfileSummary s = summarize(p, m);
  int noted = 0;
  for (const std::string& n : s.notes) noted += n.find("the L1 roof (50.0 GB/s) was measured below the L2 roof") == 0;
  EXPECT_EQ(noted, 1);
  // Equal within the spread (a kernel that reads L1 and L2 at the same rate): no note.
  m.levels[0].gbs = Spread{79, 74, 85, 7};
  for (const std::string& n : summarize(p, m).notes) EXPECT_EQ(n.find("was measured below"), std::string::npos) << n;
}

TEST(ReportLoad, LoadRoundTripsThroughJson) {
  LoadSample a, b;
  a.have_stat = b.have_stat = true;
  a.stat_cpus = b.stat_cpus = 2;
  b.wall_s = 1;
  b.total_j = 200;  // both CPUs busy with other tasks for the whole second
  a.freq_mhz = {3000, 3000};
  b.freq_mhz = {2000, 2200};
  const LoadReport r = compare_load(a, b, 2);
  ASSERT_TRUE(r.disturbed);
  const LoadReport back = load_from_json(load_json(r));
  EXPECT_TRUE(back.measured && back.disturbed);
  EXPECT_EQ(back.warnings, r.warnings);
  EXPECT_DOUBLE_EQ(back.others_cpus, r.others_cpus);
  EXPECT_DOUBLE_EQ(back.freq_min_mhz, 2000);
  EXPECT_FALSE(load_from_json("{}").measured);
  EXPECT_FALSE(load_from_json("not json").measured);
}

}  // namespace
