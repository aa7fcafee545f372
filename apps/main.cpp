// tokenscope command line: run, chat, serve, bench, profile and the tools around them.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/cmd_bench.h"
#include "apps/cmd_profile.h"
#ifdef TOKENSCOPE_SERVE
#include "apps/cmd_serve.h"
#endif
#include "apps/cmd_study.h"
#include "apps/cmd_synth.h"
#include "apps/cli_util.h"
#include "apps/commands.h"
#include "base/error.h"

int main(int argc, char** argv) {
  using namespace tokenscope::app;
  CLI::App app{"tokenscope: a CPU LLM inference engine that explains its own performance"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "tokenscope 0.1.0");

  CommonArgs common;
  RunArgs run;
  CLI::App* run_cmd = app.add_subcommand("run", "Generate text from a prompt, then print a per-stage summary");
  add_common_flags(*run_cmd, common);
  add_sampling_flags(*run_cmd, run.sampling);
  run_cmd->add_option("-p,--prompt", run.prompt, "Prompt text");
  run_cmd->add_option("-f,--file", run.prompt_file, "Prompt from a file (-: standard input)");
  run_cmd->add_option("--prompts", run.prompts_file,
                      "File of prompts, one per line, or JSON lines {\"prompt\": ..., \"n_predict\": N}: all go "
                      "through the batched engine, results in input order");
  run_cmd->add_option("--parallel", run.parallel, "With --prompts: sequences evaluated together (new ones join as "
                      "others finish; default 4)");
  run_cmd->add_option("-n,--n-predict", run.n_predict, "Tokens to generate (-1: until end of generation)")
      ->capture_default_str();
  run_cmd->add_flag("--chat", run.chat, "Wrap the prompt in the model's chat template as a user turn");
  run_cmd->add_option("--system", run.system, "System message for --chat (default: the template's own)");
  run_cmd->add_flag("--json", run.json, "Print one JSON object (text, token ids, stage figures) instead of text");
  run_cmd->add_flag("--ignore-eos", run.ignore_eos, "Keep generating past end-of-generation tokens");

  CommonArgs chat_common;
  ChatArgs chat;
  CLI::App* chat_cmd = app.add_subcommand("chat", "Interactive chat using the model's chat template");
  add_common_flags(*chat_cmd, chat_common);
  add_sampling_flags(*chat_cmd, chat.sampling);
  chat_cmd->add_option("-n,--n-predict", chat.n_predict, "Max tokens per reply")->capture_default_str();
  chat_cmd->add_option("--system", chat.system, "System message (default: the template's own)");

  CommonArgs tok_common;
  TokenizeArgs tok;
  CLI::App* tok_cmd = app.add_subcommand("tokenize", "Print the token ids of a text as a JSON array");
  tok_cmd->add_option("-m,--model", tok_common.model, "GGUF model file (default: the default model)");
  tok_cmd->add_option("-p,--prompt", tok.text, "Text to tokenize")->required();
  tok_cmd->add_flag("--no-special", tok.no_add_special, "Do not add BOS/EOS");
  tok_cmd->add_flag("--no-parse-special", tok.no_parse_special, "Treat special-token text as plain text");
  tok_cmd->add_flag("--pieces", tok.pieces, "Print [id, piece] pairs");

  InspectArgs insp;
  CLI::App* insp_cmd = app.add_subcommand("inspect", "Print a GGUF file's metadata and tensor table");
  insp_cmd->add_option("file", insp.file, "GGUF file");
  insp_cmd->add_option("-m,--model", insp.model, "GGUF file (instead of the positional FILE)");
  insp_cmd->add_flag("--all", insp.all, "Print long arrays in full");

  BenchArgs bench;
  CLI::App* bench_cmd = add_bench_command(app, bench);
  SynthArgs synth;
  CLI::App* synth_cmd = add_synth_command(app, synth);
  QuantizeArgs quant;
  CLI::App* quant_cmd = add_quantize_command(app, quant);
  ProfileArgs prof;
  CLI::App* prof_cmd = add_profile_command(app, prof);
  SysinfoArgs sysinfo;
  CLI::App* sysinfo_cmd = add_sysinfo_command(app, sysinfo);
  ReportArgs report;
  CLI::App* report_cmd = add_report_command(app, report);
#ifdef TOKENSCOPE_SERVE
  ServeArgs serve;
  CLI::App* serve_cmd = add_serve_command(app, serve);
#endif
  StudyArgs study;
  CLI::App* study_cmd = add_study_command(app, study);
  ProbeArgs probe;
  CLI::App* probe_cmd = add_probe_command(app, probe);

  // A flag given twice takes its last value, as llama.cpp's do (scripts append to a user's flags): every option
  // that holds one value. Lists (-p 128,512 on bench) keep all theirs.
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
    for (CLI::Option* opt : sub->get_options())
      if (opt->get_items_expected_max() == 1 && opt->get_type_size_max() <= 1)
        opt->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);

  // llama.cpp spells the slot count "-np"; CLI11 only takes one-letter short names, so it is read as --parallel.
  std::vector<std::string> args;
  for (int i = argc - 1; i >= 1; --i) {
    std::string s = argv[i];
    if (s == "-np") s = "--parallel";
    else if (s.rfind("-np=", 0) == 0) s = "--parallel=" + s.substr(4);
    args.push_back(std::move(s));
  }
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; a parse error is bad usage: exit status 2, as getopt tools do.
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    if (*run_cmd) return cmd_run(common, run);
    if (*chat_cmd) return cmd_chat(chat_common, chat);
    if (*tok_cmd) return cmd_tokenize(tok_common, tok);
    if (*insp_cmd) return cmd_inspect(insp);
    if (*bench_cmd) return cmd_bench(bench);
    if (*synth_cmd) return cmd_synth(synth);
    if (*quant_cmd) return cmd_quantize(quant);
    if (*prof_cmd) return cmd_profile(prof);
    if (*sysinfo_cmd) return cmd_sysinfo(sysinfo);
    if (*report_cmd) return cmd_report(report);
    if (*study_cmd) return cmd_study(study);
    if (*probe_cmd) return cmd_probe(probe);
#ifdef TOKENSCOPE_SERVE
    if (*serve_cmd) return cmd_serve(serve);
#endif
  } catch (const UsageError& e) {
    clear_status_line();
    std::fflush(stdout);
    std::fprintf(stderr, "tokenscope: error: %s\nRun with --help for more information.\n", e.what());
    return 2;
  } catch (const tokenscope::Error& e) {
    clear_status_line();
    std::fflush(stdout);
    std::fprintf(stderr, "tokenscope: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "tokenscope: error: out of memory\n");
    return 1;
  }
  return 0;
}
