// `tokenscope bench`: llama-bench-style throughput tests (pp: prompt processing, tg: text generation).
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "apps/commands.h"

namespace tokenscope::app {

struct BenchArgs {
  std::vector<std::string> models;                 // empty: the default model
  std::vector<int> n_prompt{512};                  // pp tests (0: none)
  std::vector<int> n_gen{128};                     // tg tests (0: none)
  std::vector<int> depth{0};                       // KV-cache tokens already present before the test
  std::vector<int> batch;                          // batched tests (llama-batched-bench): sequences per test
  int ubatch = 512;                                // batched tests: most tokens per step in the prompt phase
  std::vector<int> threads;                        // empty: all CPUs
  std::vector<std::string> isas;                   // empty: best available
  std::string ternary_kernel;                      // empty: mad
  std::vector<std::string> barriers{"hybrid"};
  std::vector<std::string> kv_types{"f16"};
  std::string cpu_mask;
  int reps = 5;
  std::string output = "md";                       // md, json, jsonl, csv
  bool no_warmup = false;
  bool profile = false;                            // run with the profiler attached (to measure its overhead)
  SystemArgs sys;                                  // --load, --hugepages, --sched, --pool, ...
};

CLI::App* add_bench_command(CLI::App& app, BenchArgs& a);
int cmd_bench(const BenchArgs& a);

}  // namespace tokenscope::app
