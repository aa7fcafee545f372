// Naming sampled addresses: demangled names shortened to what a hot-function table needs, and the symbolizer
// finding a function of this very binary by an address inside it.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdint>
#include <string>

#include "base/error.h"
#include "profile/profiler.h"
#include "profile/sampler.h"
#include "report/hotspots.h"
#include "report/symbols.h"
#include "test_util.h"

using namespace tokenscope;
using tokenscope::report::short_function_name;

extern "C" __attribute__((noinline, used)) int ts_symbolizer_probe(int x) {
  volatile unsigned y = static_cast<unsigned>(x);
  for (unsigned i = 0; i < 10; ++i) y = y * 3 + i;
  return static_cast<int>(y & 0x7fffffff);
}

// Busy work for the sampler to find: about a millisecond per call.
extern "C" __attribute__((noinline, used)) int ts_sampler_busy(int n) {
  volatile unsigned y = static_cast<unsigned>(n);  // unsigned: wraps, as intended
  for (unsigned i = 0; i < 1000000; ++i) y = y * 3 + i;
  return static_cast<int>(y & 0x7fffffff);
}

TEST(Symbols, ShortNamesDropParametersReturnTypesAndClones) {
  EXPECT_EQ(short_function_name("ns::f(int, float*)"), "ns::f");
  EXPECT_EQ(short_function_name("void ns::(anonymous namespace)::gemm<true, 11>(long, unsigned char const*)"),
            "ns::(anonymous namespace)::gemm<true, 11>");
  EXPECT_EQ(short_function_name("ns::A<int>::run() const"), "ns::A<int>::run");
  EXPECT_EQ(short_function_name("ns::g(int) [clone .isra.0]"), "ns::g");
  EXPECT_EQ(short_function_name("float __vector(4) ns::q<true>(float const*)"), "ns::q<true>");
  EXPECT_EQ(short_function_name("std::_Function_handler<void (long, long, int), ns::mm(ns::Ctx&, int)::{lambda(long, "
                                "long, int)#5}>::_M_invoke(std::_Any_data const&, long&&, long&&, int&&)"),
            "ns::mm()::{lambda()#5}");
  EXPECT_EQ(short_function_name("plain_c_function"), "plain_c_function");
}

TEST(Symbols, ResolvesAFunctionOfThisBinary) {
  EXPECT_GT(ts_symbolizer_probe(2), 0);
  report::Symbolizer s;
  const auto addr = reinterpret_cast<uint64_t>(&ts_symbolizer_probe);
  const report::CodeLocation at = s.resolve(addr + 4);
  EXPECT_EQ(at.function, "ts_symbolizer_probe");
  EXPECT_EQ(at.module, "test_report");
  // Not code of any mapping.
  EXPECT_EQ(s.resolve(16).module, "[unknown]");
}

TEST(Sampler, SamplesLandInTheBusyFunctionAndItsStep) {
  profile::Profiler prof;
  std::unique_ptr<profile::Sampler> sampler;
  try {
    sampler = std::make_unique<profile::Sampler>(std::vector<int>{static_cast<int>(::gettid())}, 500);
  } catch (const Error& e) {
    GTEST_SKIP() << "the kernel refuses task-clock sampling here: " << e.what();
  }
  sampler->start();
  prof.begin_step(profile::Stage::decode, 0, 1);
  volatile unsigned sink = 0;
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  const double t0 = static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
  for (;;) {
    sink = (sink & 0xffffu) + static_cast<unsigned>(ts_sampler_busy(static_cast<int>(sink & 7u)));
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    if (static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9 - t0 > 0.1) break;
  }
  prof.end_step();
  sampler->stop();
  // 100 ms of CPU at one sample per 0.5 ms: about 200 (a loaded machine still gives its CPU time).
  EXPECT_GT(sampler->samples().size(), 100u);
  const nlohmann::json h = report::hotspots_json(*sampler, prof);
  ASSERT_TRUE(h["stages"].contains("decode")) << h.dump();
  const auto& decode = h["stages"]["decode"];
  EXPECT_GT(decode["samples"].get<int64_t>(), 80);
  bool probe_seen = false;
  for (const auto& f : decode["functions"])
    if (f["function"] == "ts_sampler_busy" && f["share"].get<double>() > 0.5) probe_seen = true;
  EXPECT_TRUE(probe_seen) << report::hotspots_table(h);
}
