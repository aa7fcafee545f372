#include "apps/cmd_serve.h"

#include <memory>

#include <cstdlib>

#include "apps/cli_util.h"
#include "apps/cmd_profile.h"
#include "base/error.h"
#include "serve/server.h"

namespace tokenscope::app {

CLI::App* add_serve_command(CLI::App& app, ServeArgs& a) {
  CLI::App* cmd = app.add_subcommand(
      "serve", "OpenAI-compatible HTTP server (/v1/chat/completions, /v1/completions, /v1/models, /health, "
               "/metrics) with continuous batching");
  add_common_flags(*cmd, a.common);
  add_sampling_flags(*cmd, a.sampling);
  cmd->add_option("--host", a.host, "Address to listen on (default: loopback only)")->capture_default_str();
  cmd->add_option("--port", a.port, "Port (0: any free port, printed on stdout)")->capture_default_str();
  cmd->add_option("--parallel", a.parallel, "Sequences evaluated together (slots; -np N works too)")->capture_default_str();
  cmd->add_option("--api-key", a.api_key,
                  "Require 'Authorization: Bearer KEY' (default: $TOKENSCOPE_API_KEY if set; /health and /metrics "
                  "stay open)");
  cmd->add_option("--alias", a.alias, "The model's name in the API (default: the file name)");
  cmd->add_option("--max-batch-tokens", a.max_batch_tokens,
                  "Tokens per engine step: the running sequences' decodes plus prompt chunks")
      ->capture_default_str();
  cmd->add_option("--prefill-chunk", a.prefill_chunk,
                  "Most prompt tokens of one request per step (chunked prefill; 0: off, a prompt goes whole)")
      ->capture_default_str();
  cmd->add_option("--max-queue", a.max_queue, "Requests waiting beyond the running ones; more get 429")
      ->capture_default_str();
  cmd->add_option("--timeout", a.timeout_s, "HTTP read/write timeout in seconds")->capture_default_str();
  cmd->add_option("--max-body", a.max_body, "Largest request body in bytes (larger: 413)")->capture_default_str();
  cmd->add_option("--profile", a.profile_dir,
                  "Profile every engine step of the served load; on exit (SIGTERM/Ctrl-C) write summary.json, "
                  "trace.json and report.html to this directory and print the stage table (records grow with every "
                  "step: for a measurement session, not for production)");
  return cmd;
}

int cmd_serve(const ServeArgs& a) {
  if (a.parallel < 1 || a.parallel > 1024) usage_fail("-np must be between 1 and 1024 (got %d)", a.parallel);
  if (a.max_batch_tokens < 2) usage_fail("--max-batch-tokens must be >= 2 (got %lld)", static_cast<long long>(a.max_batch_tokens));
  if (a.prefill_chunk < 0 || a.prefill_chunk == 1)
    usage_fail("--prefill-chunk must be 0 (off) or >= 2 (got %lld)", static_cast<long long>(a.prefill_chunk));
  if (a.max_queue < 0) usage_fail("--max-queue must be >= 0 (got %d)", a.max_queue);
  if (a.timeout_s < 1) usage_fail("--timeout must be >= 1 second (got %d)", a.timeout_s);
  if (a.max_body < 1024) usage_fail("--max-body must be >= 1024 bytes (got %lld)", static_cast<long long>(a.max_body));
  validate(a.sampling);
  serve::ServerOptions o;
  std::unique_ptr<profile::Profiler> prof;
  MachineInfo machine;
  if (!a.profile_dir.empty()) {
    machine = machine_for(a.common);  // before serving, so its measurement does not overlap the load
    prof = std::make_unique<profile::Profiler>();
  }
  o.engine = engine_options(a.common, prof.get());
  o.host = a.host;
  o.port = a.port;
  o.scheduler.max_parallel = a.parallel;
  o.scheduler.max_batch_tokens = a.max_batch_tokens;
  o.scheduler.prefill_chunk = a.prefill_chunk;
  o.sampling = a.sampling;
  o.api_key = a.api_key;
  if (o.api_key.empty())
    if (const char* k = std::getenv("TOKENSCOPE_API_KEY")) o.api_key = k;
  o.alias = a.alias;
  o.max_queue = a.max_queue;
  o.timeout_s = a.timeout_s;
  o.max_body_bytes = static_cast<size_t>(a.max_body);
  std::unique_ptr<profile::LoadWatch> load_watch;  // the machine's load while serving (a disturbed profile says so)
  if (prof) load_watch = std::make_unique<profile::LoadWatch>();
  const int rc = serve::run_server(o);
  if (prof) {
    const profile::LoadReport load = load_watch->stop(machine.threads);
    write_profile(*prof, machine, o.engine.model_path, a.profile_dir, &load);
  }
  return rc;
}

}  // namespace tokenscope::app
