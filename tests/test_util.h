// Helpers shared by the unit tests.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <time.h>
#include <unistd.h>

namespace tokenscope::testing {

inline std::string data_path(const std::string& name) { return std::string(TS_TEST_DATA_DIR) + "/" + name; }

inline std::string models_dir() {
  if (const char* d = std::getenv("TOKENSCOPE_MODELS"); d && *d) return d;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/root") + "/.cache/tokenscope/models";
}

// Path of a fetched model file, or "" if it is not there (tests then fail with a hint to run
// scripts/fetch-models.sh, which the README's test command does).
inline std::string model_path(const std::string& file) {
  std::string p = models_dir() + "/" + file;
  return std::filesystem::exists(p) ? p : std::string();
}

// Busy work until this thread has used about ms milliseconds of CPU time (not wall time: on a loaded
// machine a wall-clock loop may get only a fraction of a core, and tests read the task clock).
inline double burn_cpu(double ms) {
  auto cpu_ms = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
  };
  const double t0 = cpu_ms();
  volatile double x = 1;
  while (cpu_ms() - t0 < ms)
    for (int i = 0; i < 1000; ++i) x = x * 1.0000001 + 1e-9;
  return x;
}

inline const char* kSmolLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf";

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline std::string temp_path(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / "tokenscope-tests";
  std::filesystem::create_directories(dir);
  return (dir / (std::to_string(::getpid()) + "-" + name)).string();
}

}  // namespace tokenscope::testing
