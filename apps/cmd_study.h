// `tokenscope study`: the classic experiments, each one command (src/studies/), and `tokenscope probe pool`, the
// measurement the barrier study runs in each configuration (decode speed, CPU time and context switches per
// token, the pool's wake-up latency).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "apps/commands.h"

namespace tokenscope::app {

struct StudyArgs {
  std::string name;     // a study, or "all"
  bool list = false;
  std::string model;
  std::string shape;    // formats: the synth shape
  int rounds = 5;
  int threads = 0;
  std::string out_dir;  // default: ~/.cache/tokenscope/studies/<UTC time>
  std::string work_dir; // default: ~/.cache/tokenscope/study-work
  bool quick = false;
};

struct ProbeArgs {
  std::string what;  // pool
  CommonArgs common;
  int64_t n_gen = 48;
  int wake_reps = 200;
};

CLI::App* add_study_command(CLI::App& app, StudyArgs& a);
int cmd_study(const StudyArgs& a);
CLI::App* add_probe_command(CLI::App& app, ProbeArgs& a);
int cmd_probe(const ProbeArgs& a);

}  // namespace tokenscope::app
