#include "apps/cmd_synth.h"

#include <cstdio>

#include "apps/cli_util.h"
#include "base/error.h"
#include "formats/tensor_type.h"
#include "model/synth.h"

namespace tokenscope::app {

CLI::App* add_synth_command(CLI::App& app, SynthArgs& a) {
  CLI::App* cmd = app.add_subcommand(
      "synth", "Write a GGUF with random weights and the exact tensor shapes and hyper-parameters of a real model");
  std::string shapes;
  for (const ModelShape& m : model_shapes()) shapes += (shapes.empty() ? "" : ", ") + m.name;
  cmd->add_option("--shape", a.shape, "Model shape: " + shapes);
  cmd->add_option("--type", a.type, "Type of the weight matrices (f32, f16, bf16, q4_0, q4_1, q8_0, q4_k, q5_k, q6_k, tq1_0, tq2_0, i2_s, iq2_bn)")
      ->capture_default_str();
  cmd->add_option("-o,--output", a.out, "Output GGUF file");
  cmd->add_option("--arch", a.arch,
                  "Architecture name to write (default: the shape's; bitnet-b1.58-2b also takes bitnet-25, and bitnet, "
                  "llama.cpp's name, which runs a SiLU FFN)");
  cmd->add_option("--tokenizer-from", a.tokenizer_from, "Copy the tokenizer from this GGUF (same vocabulary size)");
  cmd->add_option("-s,--seed", a.seed, "Random seed")->capture_default_str();
  cmd->add_flag("--list", a.list, "List the shapes and the tensor table of --shape, write nothing");
  return cmd;
}

CLI::App* add_quantize_command(CLI::App& app, QuantizeArgs& a) {
  CLI::App* cmd = app.add_subcommand("quantize", "Convert a GGUF's weight matrices to another type: quantize IN OUT TYPE");
  cmd->add_option("in", a.in, "Input GGUF")->required();
  cmd->add_option("out", a.out, "Output GGUF")->required();
  cmd->add_option("type", a.type, "Target type (f32, f16, bf16, q4_0, q4_1, q8_0, q4_k, q5_k, q6_k, tq1_0, tq2_0, i2_s, iq2_bn)")->required();
  cmd->add_flag("--keep-embd", a.keep_embd, "Leave token_embd.weight as it is");
  return cmd;
}

namespace {
TensorType parse_type(const std::string& s, const char* flag) {
  auto t = type_from_name(s);
  if (!t) usage_fail("%s %s: unknown tensor type", flag, s.c_str());
  return *t;
}
}  // namespace

int cmd_synth(const SynthArgs& a) {
  if (a.list) {
    for (const ModelShape& s : model_shapes())
      std::printf("%-14s %-6s layers %2lld  embd %4lld  ff %4lld  heads %2lld/%2lld  vocab %6lld  ctx %6lld  %s\n",
                  s.name.c_str(), s.arch.c_str(), static_cast<long long>(s.n_layer), static_cast<long long>(s.n_embd),
                  static_cast<long long>(s.n_ff), static_cast<long long>(s.n_head), static_cast<long long>(s.n_head_kv),
                  static_cast<long long>(s.n_vocab), static_cast<long long>(s.n_ctx), s.tied ? "tied" : "untied");
    if (!a.shape.empty()) {
      int64_t params = 0;
      uint64_t bytes = 0;
      for (const SynthTensor& t : synth_tensor_table(model_shape(a.shape), parse_type(a.type, "--type"))) {
        int64_t n = 1;
        for (int64_t d : t.dims) n *= d;
        params += n;
        bytes += row_size(t.type, t.dims[0]) * static_cast<uint64_t>(n / t.dims[0]);
        std::printf("%-28s %-6s [%s]\n", t.name.c_str(), type_name(t.type),
                    [&] {
                      std::string s;
                      for (size_t i = 0; i < t.dims.size(); ++i) s += (i ? ", " : "") + std::to_string(t.dims[i]);
                      return s;
                    }()
                        .c_str());
      }
      std::printf("total: %lld parameters, %.1f MiB\n", static_cast<long long>(params), bytes / 1048576.0);
    }
    return 0;
  }
  if (a.shape.empty()) fail("synth: --shape is required (see --list)");
  SynthOptions o;
  o.shape = a.shape;
  o.type = parse_type(a.type, "--type");
  o.out = a.out;
  o.tokenizer_from = a.tokenizer_from;
  o.arch = a.arch;
  o.seed = a.seed;
  const uint64_t bytes = synth_model(o);
  std::fprintf(stderr, "synth: wrote %s (%s as %s, %s weights, %.1f MiB)\n", o.out.c_str(), o.shape.c_str(),
               o.arch.empty() ? model_shape(o.shape).arch.c_str() : o.arch.c_str(), type_name(o.type),
               bytes / 1048576.0);
  return 0;
}

int cmd_quantize(const QuantizeArgs& a) {
  QuantizeOptions o;
  o.in = a.in;
  o.out = a.out;
  o.type = parse_type(a.type, "type");
  o.keep_embd = a.keep_embd;
  const QuantizeReport r = quantize_model(o);
  std::fprintf(stderr, "quantize: %s -> %s: %lld tensors converted to %s, %lld copied; %.1f MiB -> %.1f MiB\n",
               a.in.c_str(), a.out.c_str(), static_cast<long long>(r.converted), type_name(o.type),
               static_cast<long long>(r.copied), r.bytes_in / 1048576.0, r.bytes_out / 1048576.0);
  if (r.fallbacks > 0) {
    std::string how;
    for (const auto& [t, n] : r.fallback_types) how += strfmt("%s%lld as %s", how.empty() ? "" : ", ", static_cast<long long>(n), type_name(t));
    std::fprintf(stderr, "quantize: %lld of them have rows that are not a whole number of %s blocks (%lld elements): "
                 "written %s\n", static_cast<long long>(r.fallbacks), type_name(o.type),
                 static_cast<long long>(type_traits(o.type).block_size), how.c_str());
  }
  return 0;
}

}  // namespace tokenscope::app
