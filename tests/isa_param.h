// Tests parameterized by kernel ISA. Every ISA this binary is built with is one test instance, named by the ISA
// (Isas/Matmul.Foo/avx512); on a CPU that lacks it the instance is reported as skipped with the reason rather than
// left out, and each test binary ends by printing which ISAs ran and which were skipped.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <ostream>
#include <string>

#include "kernels/kernels.h"

namespace tokenscope::kernels {
// gtest prints a test's parameter through PrintTo: the ISA's name instead of "4-byte object <01-00 00-00>".
inline void PrintTo(Isa isa, std::ostream* os) { *os << isa_name(isa); }
}  // namespace tokenscope::kernels

namespace tokenscope::testing {

// A fixture base: skips (with the reason) an ISA this CPU cannot run. Fixtures with their own SetUp call it first
// and return if IsSkipped().
class IsaTest : public ::testing::TestWithParam<kernels::Isa> {
 protected:
  void SetUp() override {
    if (!kernels::isa_available(GetParam()))
      GTEST_SKIP() << kernels::isa_name(GetParam()) << " is not supported by this CPU (the kernels are built, "
                   << "but cpuid/HWCAP lacks the instructions they need)";
  }
};

// The test names' suffix: the ISA's name.
inline std::string isa_test_name(const ::testing::TestParamInfo<kernels::Isa>& info) {
  return kernels::isa_name(info.param);
}

// At the end of a test binary that includes this header: which ISAs ran and which this CPU skipped.
class IsaSummary : public ::testing::Environment {
 public:
  void TearDown() override {
    std::string ran, skipped;
    for (kernels::Isa i : kernels::compiled_isas()) {
      std::string& list = kernels::isa_available(i) ? ran : skipped;
      list += (list.empty() ? "" : ", ") + std::string(kernels::isa_name(i));
    }
    std::printf("[ ISAs     ] ran: %s; skipped (not supported by this CPU): %s\n", ran.c_str(),
                skipped.empty() ? "none" : skipped.c_str());
  }
};
inline ::testing::Environment* const kIsaSummary = ::testing::AddGlobalTestEnvironment(new IsaSummary);

}  // namespace tokenscope::testing

// Instantiates the ISA-parameterized fixture `fixture` over every ISA the binary is built with.
#define TS_INSTANTIATE_FOR_ISAS(fixture)                                                                      \
  INSTANTIATE_TEST_SUITE_P(Isas, fixture, ::testing::ValuesIn(::tokenscope::kernels::compiled_isas()), \
                           ::tokenscope::testing::isa_test_name)
