// `tokenscope serve`: the OpenAI-compatible HTTP server (src/serve/).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "apps/commands.h"

namespace tokenscope::app {

struct ServeArgs {
  CommonArgs common;
  SamplerParams sampling;
  std::string host = "127.0.0.1";
  int port = 8080;
  int parallel = 4;
  std::string api_key;
  std::string alias;
  int64_t max_batch_tokens = 512;
  int64_t prefill_chunk = 256;
  int max_queue = 64;
  int timeout_s = 600;
  int64_t max_body = 1 << 20;
  std::string profile_dir;  // non-empty: profile every engine step, write the trace and report there on exit
};

CLI::App* add_serve_command(CLI::App& app, ServeArgs& a);
int cmd_serve(const ServeArgs& a);

}  // namespace tokenscope::app
