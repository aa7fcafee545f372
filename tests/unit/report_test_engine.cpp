// The profiler on real runs: step markers, op spans with FLOP/byte accounting, counters, trace and summary.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "report/report.h"
#include "engine/session.h"
#include "model_builder.h"
#include "profile/profiler.h"
#include "test_util.h"

using namespace tokenscope;
using namespace tokenscope::testing;
using nlohmann::json;
using namespace tokenscope::profile;
using namespace tokenscope::report;

namespace {

TEST(ProfileCost, MatmulFlopsAndBytesByHand) {
  // 7 tokens x a [576 -> 1536] Q4_1 matrix: 2*7*1536*576 FLOPs; bytes: 1536 rows x 18 blocks x 20 bytes of
  // weights, plus the f32 input (7 x 576 x 4) and output (7 x 1536 x 4).
  const profile::Cost c = profile::matmul_cost(7, 1536, 576, 18 * 20);
  EXPECT_DOUBLE_EQ(c.flops, 12386304.0);
  EXPECT_DOUBLE_EQ(c.bytes, 1536.0 * 360 + 7 * 576 * 4 + 7 * 1536 * 4);
  // Attention: 3 queries at positions 5, 6, 7 see 6 + 7 + 8 = 21 keys; 9 heads of 64: 4 * 9 * 64 * 21 FLOPs.
  const profile::Cost a = profile::attention_cost(3, 5, 9, 3, 64);
  EXPECT_DOUBLE_EQ(a.flops, 4.0 * 9 * 64 * 21);
  EXPECT_DOUBLE_EQ(a.bytes, 2.0 * 2 * 8 * 3 * 64 + 2.0 * 4 * 3 * 9 * 64);
}

class ProfiledRun : public ::testing::Test {
 protected:
  void SetUp() override {
    TinyModelSpec spec;
    spec.wtype = TensorType::Q4_1;
    spec.n_ctx = 256;
    path_ = temp_path("tiny-profile.gguf");
    build_tiny_model(spec).write(path_);
    SessionOptions o;
    o.model_path = path_;
    o.n_threads = 2;
    o.n_ctx = 256;
    o.profiler = &prof_;
    s_ = Session::open(o);
    // 78 prompt tokens (bytes of a text: the tiny vocabulary has no merges), then 5 generated.
    const std::string text(78, 'a');
    prompt_ = s_->tokenize(text, true, true);
    GenerateOptions g;
    g.n_predict = 5;
    g.ignore_eos = true;
    g.sampling.temperature = 0;
    s_->generate(prompt_, g);
  }
  std::string path_;
  profile::Profiler prof_;
  std::unique_ptr<Session> s_;
  std::vector<TokenId> prompt_;
};

TEST_F(ProfiledRun, StepMarkersReadPastAndNEval) {
  ASSERT_EQ(prompt_.size(), 78u);
  const auto& steps = prof_.steps();
  ASSERT_EQ(steps.size(), 5u);  // the prefill, then 4 decode steps (the prefill yields the first token)
  EXPECT_EQ(steps[0].stage, profile::Stage::prefill);
  EXPECT_EQ(steps[0].past, 0);
  EXPECT_EQ(steps[0].n_eval, 78);
  for (size_t i = 1; i < steps.size(); ++i) {
    EXPECT_EQ(steps[i].stage, profile::Stage::decode);
    EXPECT_EQ(steps[i].past, 78 + static_cast<int64_t>(i) - 1);
    EXPECT_EQ(steps[i].n_eval, 1);
    EXPECT_GE(steps[i].t0_us, steps[i - 1].t1_us);
  }
}

TEST_F(ProfiledRun, OpsCoverEveryLayerWithShapesAndCosts) {
  int matmuls_prefill = 0, attention = 0, sampling = 0;
  for (const auto& op : prof_.ops()) {
    EXPECT_LE(op.t0_us, op.t1_us);
    if (op.kind == profile::OpKind::sampling) {
      ++sampling;
      continue;
    }
    EXPECT_GE(op.flops, 0);
    EXPECT_GT(op.bytes, 0) << op.name;
    if (op.kind == profile::OpKind::matmul && op.step == 0) {
      ++matmuls_prefill;
      EXPECT_EQ(op.m, 78);
      EXPECT_STREQ(op.format, "Q4_1");
      EXPECT_DOUBLE_EQ(op.flops, 2.0 * op.m * op.n * op.k);
    }
    if (op.kind == profile::OpKind::attention) ++attention;
  }
  EXPECT_EQ(matmuls_prefill, 2 * 4);  // 2 layers x (qkv, output, gate_up, down)
  EXPECT_EQ(attention, 2 * 5);        // 2 layers x 5 steps
  EXPECT_EQ(sampling, 5);
}

TEST_F(ProfiledRun, EveryPoolThreadHasOpSpansInsideTheOps) {
  // The second pool thread's share of the work: spans inside the ops, and in the trace on its own track,
  // named after the op they belong to.
  ASSERT_EQ(prof_.thread_spans().size(), 2u);
  const auto& worker = prof_.thread_spans()[1];
  ASSERT_GT(worker.size(), 20u);
  size_t inside = 0;
  for (const auto& sp : worker) {
    EXPECT_LE(sp.t0_us, sp.t1_us);
    for (const auto& op : prof_.ops())
      if (sp.t0_us >= op.t0_us && sp.t1_us <= op.t1_us) {
        ++inside;
        break;
      }
  }
  EXPECT_GT(inside, worker.size() * 9 / 10);  // all but pool jobs outside the forward pass (counter setup)
  const json trace = json::parse(trace_json(prof_));
  const int worker_tid = prof_.thread_ids().at(1);
  int named = 0;
  for (const auto& e : trace["traceEvents"])
    if (e["ph"] == "X" && e["tid"] == worker_tid && e["name"].get<std::string>().rfind("attn_qkv", 0) == 0) ++named;
  EXPECT_GE(named, 2 * 5);  // at least one attn_qkv span per layer and step
}

TEST_F(ProfiledRun, SoftwareCountersAreNonZeroWithoutHardwareOnes) {
  ASSERT_NE(prof_.counters(), nullptr);
  const auto& names = prof_.counters()->names();
  const auto it = std::find(names.begin(), names.end(), "task-clock-ms");
  ASSERT_NE(it, names.end()) << "the task clock (a software counter) must always open";
  const size_t i = static_cast<size_t>(it - names.begin());
  for (const auto& s : prof_.steps()) EXPECT_GT(s.counters[i], 0.0) << "step " << s.index;
  if (!prof_.counters()->hardware_available()) {
    EXPECT_NE(prof_.counters()->hardware_note().find("not available"), std::string::npos);
  }
}

TEST_F(ProfiledRun, TraceAndSummaryParseWithTheExpectedEvents) {
  MachineInfo m;
  m.cpu = "test";
  m.threads = 2;
  m.isa = "scalar";
  m.read_gbs = 20;
  m.peak_int8_gops = 200;
  m.peak_f32_gflops = 50;
  const json trace = json::parse(trace_json(prof_));
  // Tracks: tid 0 the steps, each pool thread its OS thread id; op spans on the thread that ran the step.
  ASSERT_EQ(prof_.thread_ids().size(), 2u);
  const int caller = prof_.thread_ids()[0];
  int steps = 0, ops = 0, counters = 0, busy = 0, named_threads = 0, stage_instants = 0;
  bool saw_prefill_marker = false, saw_decode_marker = false, saw_qkv_layer1 = false;
  for (const auto& e : trace["traceEvents"]) {
    if (e["ph"] == "X" && e["tid"] == 0) {
      ++steps;
      saw_prefill_marker |= e["name"] == "prefill: past 0, n_eval 78";
      saw_decode_marker |= e["name"] == "decode: past 79, n_eval 1";
      EXPECT_TRUE(e["args"].contains("task-clock-ms"));
    }
    if (e["ph"] == "X" && e["tid"] == caller) {
      ++ops;
      EXPECT_GE(e["dur"].get<double>(), 0);
      if (e["args"]["op"] == "attn_qkv" && e["args"]["layer"] == 1 && e["args"]["step"] == 0) {
        saw_qkv_layer1 = true;
        EXPECT_EQ(e["args"]["format"], "Q4_1");
        EXPECT_EQ(e["args"]["m"], 78);
        EXPECT_GT(e["args"]["flops"].get<double>(), 0);
      }
    }
    if (e["ph"] == "C") ++counters;
    if (e["ph"] == "C" && e["name"] == "thread busy %") {
      ++busy;
      EXPECT_TRUE(e["args"].contains("thread 1"));
    }
    if (e["ph"] == "M" && e["name"] == "thread_name") ++named_threads;
    if (e["ph"] == "i") ++stage_instants;
  }
  EXPECT_EQ(steps, 5);
  EXPECT_TRUE(saw_prefill_marker);
  EXPECT_TRUE(saw_decode_marker);
  EXPECT_TRUE(saw_qkv_layer1);
  EXPECT_EQ(ops, static_cast<int>(prof_.ops().size()));
  EXPECT_EQ(busy, 2 * 5);           // a value at the start and a zero at the end of every step
  EXPECT_EQ(named_threads, 1 + 2);  // the steps track and the two pool threads
  EXPECT_EQ(stage_instants, 2);     // prefill begins, decode begins
  EXPECT_GT(counters, 0);
  const ProfileSummary sum = summarize(prof_, m);
  ASSERT_EQ(sum.stages.size(), 2u);
  EXPECT_EQ(sum.stages[0].stage, "prefill");
  EXPECT_EQ(sum.stages[0].tokens, 78);
  EXPECT_EQ(sum.stages[1].steps, 4);
  // Prefill matmuls reuse each weight byte for 78 tokens (on this tiny model the f32 activations weigh
  // as much as the weights, so the gain in FLOPs per byte is ~6x rather than 78x).
  auto ai = [](const StageSummary& s) {
    for (const auto& o : s.ops)
      if (o.kind == "matmul") return o.ai;
    return 0.0;
  };
  EXPECT_GT(ai(sum.stages[0]), 4 * ai(sum.stages[1]));
  const json j = json::parse(summary_json(sum, prof_, path_));
  EXPECT_EQ(j["steps"].size(), 5u);
  EXPECT_EQ(j["stages"][1]["stage"], "decode");
}

// On the default model the measured figures put prefill's matmuls right of the ridge point (compute-bound)
// and decode's left of it (memory-bound). Uses a fixed machine description so the test does not depend on
// a noisy bandwidth measurement; the classification depends only on the measured FLOPs and bytes.
TEST(ProfileDefaultModel, PrefillComputeBoundDecodeMemoryBound) {
  const std::string p = model_path(kSmolLM2);
  ASSERT_FALSE(p.empty()) << "default model missing: run scripts/fetch-models.sh";
  profile::Profiler prof;
  SessionOptions o;
  o.model_path = p;
  o.n_threads = 2;
  o.n_ctx = 256;
  o.profiler = &prof;
  auto s = Session::open(o);
  GenerateOptions g;
  g.n_predict = 8;
  g.ignore_eos = true;
  g.sampling.temperature = 0;
  s->generate(s->tokenize(std::string(300, 'x') + " the end", true, true), g);
  MachineInfo m;
  m.read_gbs = 20;
  m.peak_int8_gops = 200;
  m.peak_f32_gflops = 50;
  const ProfileSummary sum = summarize(prof, m);
  ASSERT_EQ(sum.stages.size(), 2u);
  // Prefill's work is the matmuls: most of its FLOPs (a count, not a time, so a preemption of another op
  // under a parallel test run cannot flip it).
  double matmul_flops = 0;
  for (const OpSummary& op : sum.stages[0].ops)
    if (op.kind == "matmul") matmul_flops = op.flops;
  EXPECT_GT(matmul_flops, 0.8 * sum.stages[0].flops);
  EXPECT_EQ(sum.stages[0].bound, "compute");
  EXPECT_EQ(sum.stages[1].bound, "memory");

  // The cache-aware placement on a real run: decode's working set per step is the model's weights (plus a
  // little KV cache and activations), so an L3 half again as large holds it and one a tenth smaller does not.
  // The roofs (memory and compute) are far above any rate, so only the sizes decide.
  const double weights = static_cast<double>(s->model().weight_bytes());
  auto machine = [&](double l3) {
    MachineInfo c = m;
    c.peak_int8_gops = c.peak_f32_gflops = 1e12;
    auto level = [](const char* name, double cap) {
      profile::MemoryLevel l;
      l.name = name;
      l.capacity = cap;
      l.gbs = profile::Spread{1e6, 1e6, 1e6, 1};
      return l;
    };
    c.levels = {level("L2", 2 << 20), level("L3", l3), level("DRAM", 0)};
    c.levels.back().gbs = profile::Spread{1e5, 1e5, 1e5, 1};
    return c;
  };
  const StageSummary fits = summarize(prof, machine(1.5 * weights)).stages[1];
  EXPECT_EQ(fits.level, "L3") << fits.verdict;
  EXPECT_GT(fits.working_set, weights);
  EXPECT_LT(fits.working_set, 1.2 * weights);
  EXPECT_NE(fits.verdict.find("fits the"), std::string::npos) << fits.verdict;
  const StageSummary spills = summarize(prof, machine(0.9 * weights)).stages[1];
  EXPECT_EQ(spills.level, "DRAM") << spills.verdict;
  EXPECT_NE(spills.verdict.find("exceeds the"), std::string::npos) << spills.verdict;
  for (const OpSummary& op : spills.ops)
    if (op.op_kind == "matmul" || op.op_kind == "output projection") {
      EXPECT_EQ(op.level, "DRAM") << op.kind;
    }
}

}  // namespace
