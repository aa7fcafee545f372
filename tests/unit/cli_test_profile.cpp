// `tokenscope profile` end to end on the default model: a profile taken while busy loops spin on every CPU
// carries the disturbance warning in the terminal, summary.json and report.html; one taken on a quiet machine
// does not (checked when the machine was quiet around it: CI hosts run other builds).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "test_util.h"

using namespace tokenscope::testing;

namespace {

std::string run_cmd(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  pclose(p);
  return out;
}

// Other tasks' CPUs' worth over 300 ms, nothing of this test running (from /proc/stat).
double others_alone() {
  auto sample = [] {
    std::ifstream f("/proc/stat");
    std::string cpu;
    double v[8] = {};
    f >> cpu;
    for (double& x : v) f >> x;
    return std::array<double, 2>{v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7], v[3] + v[4] + v[7]};
  };
  const auto a = sample();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto b = sample();
  const double total = b[0] - a[0];
  return total > 0 ? (total - (b[1] - a[1])) / total * static_cast<double>(sysconf(_SC_NPROCESSORS_ONLN)) : 0;
}

nlohmann::json profile_run(const std::string& model, const std::string& home, const std::string& dir,
                           std::string* out) {
  *out = run_cmd("HOME='" + home + "' " + std::string(TS_TOKENSCOPE_BIN) + " profile -m '" + model +
                 "' -p 'The capital of France is' -n 24 -o '" + dir + "'");
  return nlohmann::json::parse(read_file(dir + "/summary.json"), nullptr, false);
}

TEST(CliProfile, BusyMachineIsFlaggedInTerminalJsonAndReport) {
  const std::string model = model_path(kSmolLM2);
  ASSERT_FALSE(model.empty()) << "run scripts/fetch-models.sh first";
  const std::string home = temp_path("home");
  std::filesystem::create_directories(home);
  const int cpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  // The roofline measured (and cached in this HOME) before the runs compared below.
  run_cmd("HOME='" + home + "' " + std::string(TS_TOKENSCOPE_BIN) + " sysinfo");

  const double alone_before = others_alone();
  std::string idle_out;
  const std::string idle_dir = temp_path("prof-idle");
  const nlohmann::json idle = profile_run(model, home, idle_dir, &idle_out);
  const double alone_after = others_alone();

  std::vector<pid_t> kids;
  for (int i = 0; i < cpus; ++i) {
    const pid_t pid = fork();
    if (pid < 0) break;
    if (pid == 0) {
      volatile double x = 1;
      for (;;) x = x * 1.0000001 + 1e-9;
    }
    kids.push_back(pid);
  }
  std::string busy_out;
  const std::string busy_dir = temp_path("prof-busy");
  const nlohmann::json busy = profile_run(model, home, busy_dir, &busy_out);
  for (pid_t k : kids) kill(k, SIGKILL);
  for (pid_t k : kids) waitpid(k, nullptr, 0);
  ASSERT_EQ(static_cast<int>(kids.size()), cpus) << "fork failed";

  ASSERT_TRUE(busy.is_object()) << busy_out;
  ASSERT_TRUE(busy.contains("load")) << busy_out;
  EXPECT_TRUE(busy["load"]["disturbed"].get<bool>()) << busy["load"].dump();
  EXPECT_NE(busy_out.find("WARNING: disturbed measurement"), std::string::npos) << busy_out;
  EXPECT_NE(busy_out.find("other tasks used"), std::string::npos) << busy_out;
  EXPECT_NE(read_file(busy_dir + "/report.html").find("id=\"disturbed\""), std::string::npos);

  ASSERT_TRUE(idle.is_object()) << idle_out;
  EXPECT_GT(busy["load"]["others_cpus"].get<double>(), idle["load"]["others_cpus"].get<double>());
  if (alone_before < 0.1 && alone_after < 0.1) {
    EXPECT_FALSE(idle["load"]["disturbed"].get<bool>()) << idle["load"].dump();
    EXPECT_EQ(idle_out.find("WARNING: disturbed"), std::string::npos) << idle_out;
  } else {
    std::printf("the machine was busy on its own (%.2f, %.2f CPUs of other tasks): the idle profile says: %s\n",
                alone_before, alone_after, idle["load"].value("line", "").c_str());
  }

  // The two runs compared: the table on stdout, the page in B's directory, the disturbed run named.
  const std::string cmp = run_cmd(std::string(TS_TOKENSCOPE_BIN) + " report --compare '" + idle_dir + "' '" + busy_dir + "'");
  EXPECT_NE(cmp.find("op decode"), std::string::npos) << cmp;
  EXPECT_NE(cmp.find("layer decode"), std::string::npos) << cmp;
  EXPECT_NE(cmp.find(busy_dir + " was measured on a busy machine"), std::string::npos) << cmp;
  EXPECT_NE(read_file(busy_dir + "/compare.html").find("profile comparison"), std::string::npos);
  std::filesystem::remove_all(home);
  std::filesystem::remove_all(idle_dir);
  std::filesystem::remove_all(busy_dir);
}

}  // namespace
