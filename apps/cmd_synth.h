// `tokenscope synth` (random-weight GGUFs with real models' shapes) and `tokenscope quantize`.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace tokenscope::app {

struct SynthArgs {
  std::string shape, type = "q4_0", out, tokenizer_from, arch;
  uint32_t seed = 1;
  bool list = false;
};
struct QuantizeArgs {
  std::string in, out, type;
  bool keep_embd = false;
};

CLI::App* add_synth_command(CLI::App& app, SynthArgs& a);
CLI::App* add_quantize_command(CLI::App& app, QuantizeArgs& a);
int cmd_synth(const SynthArgs& a);
int cmd_quantize(const QuantizeArgs& a);

}  // namespace tokenscope::app
