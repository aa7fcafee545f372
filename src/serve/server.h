// `tokenscope serve`: an OpenAI-compatible HTTP server over the batched engine.
//
// Threads: HTTP requests are handled on cpp-httplib's worker threads, which parse, tokenize and hand a Job to
// the engine thread; the engine thread alone drives the Scheduler (continuous batching: every step takes the
// running sequences' decode tokens plus prompt chunks up to the batch budget) and passes each generated piece
// back to its Job, where the worker waits to answer (or streams it as server-sent events). A client that goes
// away cancels its job; the engine frees its slot before the next step. SIGTERM or SIGINT drains: new requests
// get 503, running ones finish, then the server exits (a second signal cancels what is still running).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/engine.h"
#include "engine/scheduler.h"

namespace tokenscope::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                // 0: any free port (the line "listening on http://HOST:PORT" says which)
  EngineOptions engine;           // model, threads, KV pool size (-c), ISA, ...
  SchedulerOptions scheduler;     // parallel sequences, batch budget, prefill chunk
  SamplerParams sampling;         // defaults for requests that do not set them
  std::string api_key;            // empty: none required
  std::string alias;              // the model's name in the API (default: the file name)
  int max_queue = 64;             // requests waiting for a slot beyond the running ones; more get 429
  int timeout_s = 600;            // HTTP read/write timeout
  size_t max_body_bytes = 1 << 20;
};

// Runs the server until it is drained by SIGTERM/SIGINT (or request_stop()); returns the exit code. Throws
// Error if the address cannot be bound or the model cannot be loaded.
int run_server(const ServerOptions& opts);

}  // namespace tokenscope::serve
