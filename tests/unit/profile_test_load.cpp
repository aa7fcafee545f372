// Noise detection: a measurement records the machine's load and is flagged as disturbed when other work
// competed with it. The logic on synthetic samples, then live: a run with a busy loop spinning on every CPU
// (child processes: other tasks, not this one) carries the warning; a run on an idle machine does not.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "profile/load.h"

using namespace tokenscope::profile;

namespace {

// Two samples 1 s apart on a 2-CPU machine at 100 jiffies per CPU-second, this process using `self` CPU seconds
// and the machine `busy` CPU seconds in all.
std::pair<LoadSample, LoadSample> samples(double busy, double self, double steal = 0, long invol = 0) {
  LoadSample a, b;
  a.have_stat = b.have_stat = true;
  a.stat_cpus = b.stat_cpus = 2;
  a.wall_s = 100;
  b.wall_s = 101;
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  a.total_j = 1000;
  b.total_j = 1000 + 2 * hz;
  a.idle_j = 500;
  b.idle_j = 500 + (2 - busy - steal) * hz;
  b.steal_j = steal * hz;
  b.self_cpu_s = self;
  b.invol_cs = invol;
  b.procs_running = 3;
  return {a, b};
}

TEST(ProfileLoad, QuietRunIsNotDisturbed) {
  const auto [a, b] = samples(2.02, 2.0);  // this run on both CPUs, others 0.02
  const LoadReport r = compare_load(a, b, 2);
  EXPECT_TRUE(r.measured);
  EXPECT_NEAR(r.others_cpus, 0.02, 1e-9);
  EXPECT_FALSE(r.disturbed);
  EXPECT_TRUE(r.warnings.empty());
  EXPECT_EQ(r.runnable_others, 1);
}

TEST(ProfileLoad, CompetingTasksAreNamedWithTheirFigure) {
  const auto [a, b] = samples(2.0, 0.7);  // others took 1.3 CPUs from a 2-thread run
  const LoadReport r = compare_load(a, b, 2);
  EXPECT_NEAR(r.others_cpus, 1.3, 1e-9);
  ASSERT_TRUE(r.disturbed);
  EXPECT_NE(r.warnings[0].find("other tasks used 1.30 of the 2 CPUs"), std::string::npos) << r.warnings[0];
  // One thread on two CPUs leaves one free: others using 0.9 of a CPU do not compete, 1.3 do.
  const auto [c, d] = samples(1.9, 1.0);
  EXPECT_FALSE(compare_load(c, d, 1).disturbed);
  EXPECT_TRUE(compare_load(a, b, 1).disturbed);
}

TEST(ProfileLoad, StealPreemptionAndFrequency) {
  const auto [a, b] = samples(1.9, 1.9, 0.1);
  const LoadReport r = compare_load(a, b, 2);
  ASSERT_TRUE(r.disturbed);
  EXPECT_NE(r.warnings[0].find("stole 5.0%"), std::string::npos) << r.warnings[0];
  const auto [c, d] = samples(2.0, 2.0, 0, 400);
  const LoadReport p = compare_load(c, d, 2);
  ASSERT_TRUE(p.disturbed);
  EXPECT_NE(p.warnings[0].find("preempted 400 times"), std::string::npos);
  auto [e, f] = samples(2.0, 2.0);
  e.freq_mhz = {3000, 3000};
  f.freq_mhz = {2000, 2200};
  const LoadReport q = compare_load(e, f, 2);
  ASSERT_TRUE(q.disturbed);
  EXPECT_NE(q.warnings[0].find("from 3000 to 2100 MHz"), std::string::npos) << q.warnings[0];
}

TEST(ProfileLoad, NoProcStatSaysNotMeasured) {
  LoadSample a, b;
  b.wall_s = 1;
  const LoadReport r = compare_load(a, b, 1);
  EXPECT_FALSE(r.measured);
  EXPECT_FALSE(r.disturbed);
  EXPECT_NE(r.line().find("not measured"), std::string::npos);
}

// A stand-in for a profiled run: `threads` threads spinning for `ms` of wall time.
void run_threads(int threads, int ms) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; ++i)
    ts.emplace_back([&] {
      volatile double x = 1;
      while (!stop.load(std::memory_order_relaxed))
        for (int k = 0; k < 1000; ++k) x = x * 1.0000001 + 1e-9;
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  stop = true;
  for (auto& t : ts) t.join();
}

TEST(ProfileLoad, BusyLoopOnTheSameCpusIsDetectedAndAnIdleRunIsNot) {
  const int cpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  if (!sample_load().have_stat) GTEST_SKIP() << "no /proc/stat";
  // The machine on its own (nothing of this test running), before and after: was it idle?
  auto machine_alone = [] {
    LoadWatch w;
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    return w.stop(1).others_cpus;
  };
  const double alone_before = machine_alone();
  LoadWatch idle_watch;
  run_threads(cpus, 600);
  const LoadReport idle = idle_watch.stop(cpus);
  const double alone_after = machine_alone();

  // The same run with a busy loop per CPU in child processes.
  std::vector<pid_t> kids;
  for (int i = 0; i < cpus; ++i) {
    const pid_t pid = fork();
    if (pid < 0) break;  // checked once the others are stopped
    if (pid == 0) {
      volatile double x = 1;
      for (;;) x = x * 1.0000001 + 1e-9;
    }
    kids.push_back(pid);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  LoadWatch busy_watch;
  run_threads(cpus, 600);
  const LoadReport busy = busy_watch.stop(cpus);
  for (pid_t k : kids) kill(k, SIGKILL);
  for (pid_t k : kids) waitpid(k, nullptr, 0);
  ASSERT_EQ(static_cast<int>(kids.size()), cpus) << "fork failed";

  // The busy loops took about half the CPUs' time from the run (others ~ cpus / 2): flagged, with the figure.
  EXPECT_TRUE(busy.disturbed) << busy.line();
  EXPECT_GT(busy.others_cpus, 0.3 * cpus) << busy.line();
  ASSERT_FALSE(busy.warnings.empty());
  EXPECT_NE(busy.warnings[0].find("other tasks used"), std::string::npos);
  // The idle run is clean unless the machine itself was busy around it (a shared CI host running builds, or
  // another test under ctest -j): then what it says must agree with what the machine did on its own, and its
  // figure need not stay below the busy run's.
  const bool machine_quiet = alone_before < 0.1 && alone_after < 0.1;
  if (machine_quiet) {
    EXPECT_FALSE(idle.disturbed) << idle.line();
    EXPECT_GT(busy.others_cpus, idle.others_cpus) << busy.line() << "\n" << idle.line();
  } else {
    std::printf("the machine was busy on its own (other tasks %.2f then %.2f CPUs): the idle run says: %s\n",
                alone_before, alone_after, idle.line().c_str());
    if (idle.disturbed) {
      EXPECT_GT(std::max(alone_before, alone_after), 0.05);
    }
  }
}

}  // namespace
