// The profiler core, on its own (links ts_profile only): FLOP/byte accounting, steps and ops, per-thread
// counters, USDT probe notes. What is made of them (summary, trace, placement) is tested in report_test*.cpp.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/error.h"
#include "profile/counters.h"
#include "profile/pfm_events.h"
#include "profile/profiler.h"
#include "profile/usdt.h"
#include "test_util.h"

using namespace tokenscope;
using namespace tokenscope::profile;
using nlohmann::json;
using tokenscope::testing::burn_cpu;

namespace {

TEST(ProfileCost, QuantizedMatmulByHand) {
  // Q4_0: blocks of 32 weights in 18 bytes (f16 scale + 16 bytes of nibbles). A [4096 -> 11008] matrix,
  // one token: 2 * 11008 * 4096 FLOPs; 11008 rows x 128 blocks x 18 bytes of weights + 4096 f32 in + 11008 f32 out.
  const Cost d = matmul_cost(1, 11008, 4096, 128 * 18);
  EXPECT_DOUBLE_EQ(d.flops, 90177536.0);
  EXPECT_DOUBLE_EQ(d.bytes, 25362432.0 + 16384.0 + 44032.0);
  // The same matrix over a 78-token prompt: 78x the FLOPs, the weights still read once.
  const Cost p = matmul_cost(78, 11008, 4096, 128 * 18);
  EXPECT_DOUBLE_EQ(p.flops, 78 * 90177536.0);
  EXPECT_DOUBLE_EQ(p.bytes, 25362432.0 + 78 * 16384.0 + 78 * 44032.0);
  // Arithmetic intensity: ~3.5 FLOP/byte for the GEMV, ~24x that for the prefill GEMM.
  EXPECT_NEAR(d.flops / d.bytes, 3.547, 1e-3);
  EXPECT_GT((p.flops / p.bytes) / (d.flops / d.bytes), 20);
  // Elementwise: 10 elements, 4 FLOPs each, one f32 input and one output.
  const Cost e = elementwise_cost(10, 4, 1, 1);
  EXPECT_DOUBLE_EQ(e.flops, 40);
  EXPECT_DOUBLE_EQ(e.bytes, 80);
}

TEST(ProfileCounters, SoftwareCountersCountPerThreadWithoutHardwareOnes) {
  // Two threads: this one and a helper that burns CPU; each thread's task clock is its own.
  std::atomic<int> helper_tid{0};
  std::atomic<bool> go{false}, done{false};
  std::thread helper([&] {
    helper_tid = static_cast<int>(::gettid());
    while (!go) std::this_thread::yield();
    burn_cpu(30);
    done = true;
  });
  while (helper_tid == 0) std::this_thread::yield();
  CounterGroup g({static_cast<int>(::gettid()), helper_tid.load()});
  const auto& names = g.names();
  ASSERT_GE(names.size(), 1u);
  EXPECT_EQ(names[0], "task-clock-ms");
  for (const char* n : {"page-faults-minor", "context-switches", "cpu-migrations"})
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  const auto before = g.read_per_thread();
  go = true;
  burn_cpu(10);
  helper.join();
  const auto after = g.read_per_thread();
  ASSERT_EQ(after.size(), 2u);
  const double mine = after[0][0] - before[0][0], theirs = after[1][0] - before[1][0];
  EXPECT_GT(mine, 8);     // 10 ms of CPU on this thread
  EXPECT_GT(theirs, 25);  // 30 ms of CPU on the helper
  EXPECT_LT(mine, theirs);
  const auto sum = g.read();
  EXPECT_NEAR(sum[0], after[0][0] + after[1][0], 1.0);
  if (g.hardware_available()) {
    EXPECT_TRUE(g.hardware_note().empty());
  } else {
    // A VM without a PMU: said once, in one note, and the software counters carry on.
    EXPECT_NE(g.hardware_note().find("hardware counters are not available"), std::string::npos);
    for (const auto& n : names) EXPECT_EQ(n.find("cycles"), std::string::npos) << n;
  }
}

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

TEST(ProfileSteps, MarkersAndOps) {
  Profiler p;
  fake_run(p);
  ASSERT_EQ(p.steps().size(), 4u);
  EXPECT_EQ(p.steps()[0].past, 0);
  EXPECT_EQ(p.steps()[0].n_eval, 78);
  EXPECT_EQ(p.steps()[2].past, 79);
  EXPECT_EQ(p.steps()[2].n_eval, 1);
  EXPECT_EQ(p.steps()[1].tid, static_cast<int>(::gettid()));
  for (const auto& s : p.steps()) {
    ASSERT_EQ(s.thread_counters.size(), 1u);
    EXPECT_GT(s.counters[0], 1.5) << "task clock of step " << s.index;  // >= 2 ms of CPU burnt
    EXPECT_DOUBLE_EQ(s.counters[0], s.thread_counters[0][0]);
  }
  ASSERT_EQ(p.ops().size(), 12u);
  EXPECT_EQ(p.ops()[4].step, 1u);  // ops belong to the step they ran in (sampling: the one before it)
}

TEST(ProfileUsdt, ProbesAreInTheBinary) {
  // Fire them (nops without a tracer), then find their notes in this executable.
  usdt_stage_begin(0, 0);
  usdt_step_begin(0, 0, 78);
  usdt_step_end(0, 0, 78);
  usdt_stage_end(0, 78);
  if (!kHaveUsdt) GTEST_SKIP() << "built without sys/sdt.h (install systemtap-sdt-dev)";
  char self[4096];
  const ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  ASSERT_GT(len, 0);
  self[len] = 0;
  FILE* f = popen((std::string("readelf -n '") + self + "' 2>/dev/null").c_str(), "r");
  ASSERT_NE(f, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  pclose(f);
  if (out.empty()) GTEST_SKIP() << "readelf (binutils) not available";
  EXPECT_NE(out.find("Provider: tokenscope"), std::string::npos);
  for (const char* probe : {"Name: step_begin", "Name: step_end", "Name: stage_begin", "Name: stage_end"})
    EXPECT_NE(out.find(probe), std::string::npos) << probe;
}

}  // namespace

namespace {

TEST(ProfilePfm, NamedEventsResolveAndCount) {
  if (!have_libpfm()) {
    EXPECT_THROW(resolve_named_event("perf::PAGE-FAULTS"), Error);
    GTEST_SKIP() << "built without libpfm4 (install libpfm4-dev)";
  }
  EXPECT_THROW(resolve_named_event("NO_SUCH_EVENT_ANYWHERE"), Error);
  const CounterSpec s = resolve_named_event("perf::CONTEXT-SWITCHES");
  EXPECT_EQ(s.type, 1u);    // PERF_TYPE_SOFTWARE
  EXPECT_EQ(s.config, 3u);  // PERF_COUNT_SW_CONTEXT_SWITCHES
  EXPECT_FALSE(s.hardware);
  // Counted alongside the built-in events: each sleep switches this thread out.
  CounterGroup g({static_cast<int>(::gettid())}, {s});
  const auto& names = g.names();
  const auto it = std::find(names.begin(), names.end(), "perf::CONTEXT-SWITCHES");
  ASSERT_NE(it, names.end());
  const size_t i = static_cast<size_t>(it - names.begin());
  const size_t b = static_cast<size_t>(std::find(names.begin(), names.end(), "context-switches") - names.begin());
  ASSERT_LT(b, names.size());
  const std::vector<double> before = g.read();
  for (int k = 0; k < 20; ++k) std::this_thread::sleep_for(std::chrono::microseconds(200));
  const std::vector<double> after = g.read();
  const double named = after[i] - before[i], builtin = after[b] - before[b];
  EXPECT_GE(named, 10);  // most sleeps (a short one may return without switching)
  // The same event, read in one group read; the switch-out that happens while the group itself is being
  // scheduled out can land in one member and not yet in the other (seen once in CI: 19 vs 20).
  EXPECT_NEAR(named, builtin, 1.0);
}

}  // namespace
