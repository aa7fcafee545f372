#include "serve/server.h"

#include <httplib.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include "base/error.h"
#include "serve/metrics.h"
#include "serve/openai.h"
#include "serve/text_stream.h"

namespace tokenscope::serve {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// One generation request in flight, shared by the HTTP worker that answers it and the engine thread.
struct Job {
  // Set by the worker before the job is handed over, then read-only.
  Request req;
  bool chat = false;
  Clock::time_point arrived;
  // Engine thread only.
  int id = -1;  // the scheduler's request number once submitted
  std::unique_ptr<TextStream> text;
  bool first_seen = false;
  Clock::time_point first_token;
  // Set by the worker (client gone) or the server (drain): the engine cancels the job.
  std::atomic<bool> cancelled{false};
  // Shared, under m.
  std::mutex m;
  std::condition_variable cv;
  std::string out;  // text released and not yet taken by the worker
  bool done = false;
  std::string finish_reason;
  int error_status = 0;  // > 0: the request failed in the engine
  std::string error;
  int64_t prompt_tokens = 0, completion_tokens = 0;
};

std::string random_id(const char* prefix) {
  static std::mutex m;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard<std::mutex> l(m);
  char b[40];
  std::snprintf(b, sizeof b, "%s%016llx", prefix, static_cast<unsigned long long>(rng()));
  return b;
}

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) {
  if (e.status == 429 || e.status == 503) res.set_header("Retry-After", "1");
  send_json(res, e.status, e.body());
}

class Server {
 public:
  explicit Server(const ServerOptions& o) : opts_(o) {}
  int run();

 private:
  void routes();
  void handle_completion(const httplib::Request& req, httplib::Response& res, bool chat);
  // Engine thread.
  void engine_loop();
  void on_token(int request, const std::string& piece);
  void on_done(int request);
  void start_drain();
  void cancel(const std::shared_ptr<Job>& job);
  void publish_gauges();

  ServerOptions opts_;
  Metrics metrics_;
  httplib::Server http_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Scheduler> sched_;
  ChatTemplate chat_{ChatFormat::chatml, ""};
  bool has_chat_ = false;
  std::string chat_error_;
  std::string model_name_, model_file_;
  int64_t n_ctx_ = 0;
  std::atomic<bool> ready_{false}, draining_{false}, cancel_all_{false};
  std::atomic<int> in_flight_{0};
  // The engine thread's inbox, under m_.
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> inbox_;
  std::vector<std::shared_ptr<Job>> cancels_;
  // Engine thread only.
  std::unordered_map<int, std::shared_ptr<Job>> jobs_;
  std::vector<int> finished_;
};

void Server::cancel(const std::shared_ptr<Job>& job) {
  job->cancelled = true;
  {
    std::lock_guard<std::mutex> l(m_);
    cancels_.push_back(job);
  }
  cv_.notify_all();
}

void Server::start_drain() {
  {
    std::lock_guard<std::mutex> l(m_);
    if (draining_) {
      cancel_all_ = true;
    } else {
      draining_ = true;
    }
  }
  std::fprintf(stderr, "tokenscope serve: %s\n",
               cancel_all_ ? "second signal: cancelling the running requests"
                           : "draining: new requests get 503, running ones finish (signal again to cancel them)");
  cv_.notify_all();
}

void Server::routes() {
  http_.new_task_queue = [n = opts_.scheduler.max_parallel + opts_.max_queue + 8] {
    return new httplib::ThreadPool(static_cast<size_t>(n));
  };
  http_.set_payload_max_length(opts_.max_body_bytes);
  http_.set_read_timeout(opts_.timeout_s);
  http_.set_write_timeout(opts_.timeout_s);
  http_.set_keep_alive_timeout(5);

  http_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (opts_.api_key.empty() || req.path == "/health" || req.path == "/metrics")
      return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    if (auth == "Bearer " + opts_.api_key || req.get_header_value("X-Api-Key") == opts_.api_key)
      return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, ApiError(401, auth.empty() ? "no API key: send 'Authorization: Bearer KEY'" : "invalid API key",
                             "authentication_error", "invalid_api_key"));
    return httplib::Server::HandlerResponse::Handled;
  });
  // Every error status gets OpenAI's error object (routing misses, 413 from the body cap, ...).
  http_.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 413) {
      send_error(res, ApiError(413, "the request body is larger than the server accepts (--max-body)",
                               "invalid_request_error", "request_too_large"));
    } else if (res.status == 404) {
      send_error(res, ApiError(404, "no such endpoint: " + req.method + " " + req.path, "not_found_error", "not_found"));
    } else {
      send_error(res, ApiError(res.status, "HTTP error " + std::to_string(res.status), "invalid_request_error"));
    }
  });
  http_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, ApiError(500, what, "server_error", "internal_error"));
  });
  http_.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    if (req.path == "/v1/chat/completions" || req.path == "/v1/completions" || req.path == "/chat/completions" ||
        req.path == "/completions")
      metrics_.request(res.status);
  });

  http_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (draining_) return send_json(res, 503, {{"status", "draining"}});
    if (!ready_) return send_json(res, 503, {{"status", "loading"}});
    send_json(res, 200, {{"status", "ok"}});
  });
  http_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  auto models = [this](const httplib::Request&, httplib::Response& res) {
    if (!ready_) return send_error(res, ApiError(503, "the model is loading", "server_error", "loading"));
    json m = {{"id", model_name_}, {"object", "model"}, {"created", 0}, {"owned_by", "tokenscope"}};
    send_json(res, 200, {{"object", "list"}, {"data", json::array({m})}});
  };
  http_.Get("/v1/models", models);
  http_.Get("/models", models);
  auto chat = [this](const httplib::Request& req, httplib::Response& res) { handle_completion(req, res, true); };
  auto text = [this](const httplib::Request& req, httplib::Response& res) { handle_completion(req, res, false); };
  http_.Post("/v1/chat/completions", chat);
  http_.Post("/chat/completions", chat);
  http_.Post("/v1/completions", text);
  http_.Post("/completions", text);
}

void Server::handle_completion(const httplib::Request& req, httplib::Response& res, bool chat) {
  const Clock::time_point arrived = Clock::now();
  if (!ready_) return send_error(res, ApiError(503, "the model is loading", "server_error", "loading"));
  if (draining_) return send_error(res, ApiError(503, "the server is shutting down", "server_error", "shutting_down"));
  CompletionRequest cr;
  try {
    cr = parse_completion_request(req.body, chat, opts_.sampling);
  } catch (const ApiError& e) {
    return send_error(res, e);
  }
  if (!cr.model.empty() && cr.model != model_name_ && cr.model != model_file_)
    return send_error(res, ApiError(404, "the model '" + cr.model + "' does not exist: this server has '" +
                                             model_name_ + "'", "invalid_request_error", "model_not_found", "model"));
  std::string prompt_text;
  if (chat) {
    if (!has_chat_) return send_error(res, ApiError(400, chat_error_, "invalid_request_error", "no_chat_template"));
    prompt_text = render_chat(chat_.format, cr.messages, true, chat_.default_system);
  } else {
    prompt_text = cr.prompt;
  }
  Request r;
  r.prompt = engine_->tokenizer().encode(prompt_text, true, true);
  if (r.prompt.empty()) return send_error(res, bad_param(chat ? "messages" : "prompt", "the prompt is empty"));
  const int64_t n_prompt = static_cast<int64_t>(r.prompt.size());
  if (n_prompt >= n_ctx_)
    return send_error(res, ApiError(400, "the prompt has " + std::to_string(n_prompt) +
                                             " tokens, the context holds " + std::to_string(n_ctx_) +
                                             " (prompt and generated tokens together)",
                                    "invalid_request_error", "context_length_exceeded", chat ? "messages" : "prompt"));
  const int64_t room = n_ctx_ - n_prompt;
  std::string warning;
  if (cr.max_tokens && *cr.max_tokens > room) {
    warning = "max_tokens " + std::to_string(*cr.max_tokens) + " does not fit the context after the prompt: clamped to " +
              std::to_string(room);
    res.set_header("X-Max-Tokens-Clamped", std::to_string(room));
    cr.max_tokens = room;
  }
  r.n_predict = cr.max_tokens ? *cr.max_tokens : -1;
  r.ignore_eos = cr.ignore_eos;
  r.sampling = cr.sampling;

  auto job = std::make_shared<Job>();
  job->req = std::move(r);
  job->chat = chat;
  job->arrived = arrived;
  job->text = std::make_unique<TextStream>(cr.stop);
  {
    std::lock_guard<std::mutex> l(m_);
    if (draining_) return send_error(res, ApiError(503, "the server is shutting down", "server_error", "shutting_down"));
    if (in_flight_ >= opts_.scheduler.max_parallel + opts_.max_queue)
      return send_error(res, ApiError(429, "the server is busy: " + std::to_string(in_flight_.load()) +
                                               " requests are running or queued (--max-queue)",
                                      "rate_limit_error", "queue_full"));
    ++in_flight_;
    inbox_.push_back(job);
  }
  cv_.notify_all();
  // Held until the answer is written (a stream's until its provider is released).
  auto flight = std::shared_ptr<void>(nullptr, [this](void*) { --in_flight_; });

  CompletionIds ids{random_id(chat ? "chatcmpl-" : "cmpl-"), static_cast<int64_t>(std::time(nullptr)), model_name_};
  const std::string echo = cr.echo ? prompt_text : "";
  if (!cr.stream) {
    std::unique_lock<std::mutex> l(job->m);
    job->cv.wait(l, [&] { return job->done; });
    if (job->error_status)
      return send_error(res, ApiError(job->error_status, job->error, "server_error", "engine_error"));
    json body = completion_response(ids, chat, echo + job->out, job->finish_reason, job->prompt_tokens,
                                    job->completion_tokens);
    if (!warning.empty()) body["warning"] = warning;
    return send_json(res, 200, body);
  }
  struct StreamState {
    bool first = true, finished = false;
  };
  auto st = std::make_shared<StreamState>();
  const bool include_usage = cr.include_usage;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");  // nginx: pass events through as they come
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, job, st, ids, chat, include_usage, echo, flight](size_t, httplib::DataSink& sink) {
        std::string text;
        bool done = false;
        {
          std::unique_lock<std::mutex> l(job->m);
          job->cv.wait_for(l, std::chrono::seconds(1), [&] { return job->done || !job->out.empty(); });
          text.swap(job->out);
          done = job->done;
        }
        std::string chunk;
        if (st->first && !echo.empty()) text = echo + text;
        if (!text.empty() || (st->first && chat)) {
          chunk += sse(completion_chunk(ids, chat, text, st->first, nullptr));
          st->first = false;
        }
        if (done) {
          if (job->error_status) {
            chunk += sse(ApiError(job->error_status, job->error, "server_error", "engine_error").body());
          } else {
            chunk += sse(completion_chunk(ids, chat, "", false, &job->finish_reason));
            if (include_usage) chunk += sse(usage_chunk(ids, chat, job->prompt_tokens, job->completion_tokens));
          }
          chunk += "data: [DONE]\n\n";
        }
        // A comment line while nothing came: a client that has gone away is noticed by the failed write.
        if (chunk.empty()) chunk = ": waiting\n\n";
        if (!sink.write(chunk.data(), chunk.size())) return false;
        if (done) {
          st->finished = true;
          sink.done();
        }
        return true;
      },
      [this, job, st](bool) {
        if (!st->finished) cancel(job);  // the client went away (or the write timed out)
      });
}

void Server::on_token(int request, const std::string& piece) {
  const auto it = jobs_.find(request);
  if (it == jobs_.end()) return;
  Job& j = *it->second;
  if (!j.first_seen) {
    j.first_seen = true;
    j.first_token = Clock::now();
  }
  std::string out = j.text->push(piece);
  if (!out.empty()) {
    {
      std::lock_guard<std::mutex> l(j.m);
      j.out += out;
    }
    j.cv.notify_all();
  }
  if (j.text->stopped()) sched_->cancel(request, "stop");
}

void Server::on_done(int request) {
  const auto it = jobs_.find(request);
  if (it == jobs_.end()) return;
  std::shared_ptr<Job> job = it->second;
  const RequestResult& r = sched_->result(request);
  const Clock::time_point now = Clock::now();
  const std::string tail = job->text->finish();
  const std::string finish = finish_reason_of(r.stop_reason);
  const int64_t n = static_cast<int64_t>(r.tokens.size());
  if (r.stop_reason != "cancelled") {
    const double ttft = job->first_seen ? seconds(job->arrived, job->first_token) : seconds(job->arrived, now);
    const double tpot = n > 1 && job->first_seen ? seconds(job->first_token, now) / static_cast<double>(n - 1) : 0;
    const double queue = (r.t_start_ms - r.t_submit_ms) / 1000.0;
    metrics_.generation(r.prompt_tokens, r.reused_tokens, n, ttft, tpot, seconds(job->arrived, now), queue, finish);
  }
  {
    std::lock_guard<std::mutex> l(job->m);
    job->out += tail;
    job->finish_reason = finish;
    job->prompt_tokens = r.prompt_tokens;
    job->completion_tokens = n;
    if (r.stop_reason == "error") {
      job->error_status = 500;
      job->error = "the request needs more KV cache than the server has (-c)";
    }
    job->done = true;
  }
  job->cv.notify_all();
  jobs_.erase(it);
  finished_.push_back(request);
}

void Server::publish_gauges() {
  EngineGauges g;
  g.running = sched_->running();
  g.waiting = sched_->waiting();
  {
    std::lock_guard<std::mutex> l(m_);
    g.waiting += static_cast<int64_t>(inbox_.size());
  }
  const StepInfo& s = sched_->last_step();
  g.batch_tokens = s.tokens;
  g.batch_sequences = s.sequences;
  const KVPool& kv = engine_->kv();
  g.kv_pages_used = kv.used_pages();
  g.kv_pages_free = kv.free_pages();
  g.kv_pages_cached = kv.cached_pages();
  g.kv_page_tokens = ops::kAttnPad;
  g.prefix_lookups = kv.lookups();
  g.prefix_hits = kv.hits();
  metrics_.set_gauges(g);
}

void Server::engine_loop() {
  for (;;) {
    std::deque<std::shared_ptr<Job>> incoming;
    std::vector<std::shared_ptr<Job>> cancels;
    {
      std::unique_lock<std::mutex> l(m_);
      if (inbox_.empty() && cancels_.empty() && sched_->running() == 0 && sched_->waiting() == 0) {
        if (draining_) break;
        cv_.wait_for(l, std::chrono::milliseconds(500));
        continue;
      }
      incoming.swap(inbox_);
      cancels.swap(cancels_);
    }
    for (const auto& job : incoming) {
      if (job->cancelled) {  // its client went away before it was queued
        {
          std::lock_guard<std::mutex> l(job->m);
          job->done = true;
          job->finish_reason = "stop";
        }
        job->cv.notify_all();
        continue;
      }
      try {
        job->id = sched_->submit(job->req);
        jobs_[job->id] = job;
      } catch (const Error& e) {
        {
          std::lock_guard<std::mutex> l(job->m);
          job->error_status = 400;
          job->error = e.what();
          job->done = true;
        }
        job->cv.notify_all();
      }
    }
    for (const auto& job : cancels)
      if (job->id >= 0) sched_->cancel(job->id);
    if (cancel_all_) {
      std::vector<int> ids;
      for (const auto& [id, job] : jobs_) ids.push_back(id);
      for (int id : ids) sched_->cancel(id);
    }
    bool stepped = false;
    try {
      stepped = sched_->step();
    } catch (const Error& e) {
      // Only a sequence that cannot fit the pool even alone gets here: it fails, the others go on.
      std::fprintf(stderr, "tokenscope serve: %s\n", e.what());
      for (int id : sched_->running_requests()) sched_->cancel(id, "error");
    }
    if (stepped) {
      const StepInfo& s = sched_->last_step();
      metrics_.step(profile::stage_name(s.stage), s.tokens, s.ms / 1000.0);
    }
    for (int id : finished_) sched_->release(id);
    finished_.clear();
    publish_gauges();
  }
}

// SIGTERM and SIGINT go to one thread that waits for them (the others block them).
class SignalWatcher {
 public:
  explicit SignalWatcher(std::function<void()> on_signal) : on_signal_(std::move(on_signal)) {
    thread_ = std::thread([this] {
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGTERM);
      sigaddset(&set, SIGINT);
      while (!stop_) {
        timespec ts{0, 200 * 1000 * 1000};
        if (sigtimedwait(&set, nullptr, &ts) > 0) on_signal_();
      }
    });
  }
  ~SignalWatcher() {
    stop_ = true;
    thread_.join();
  }

 private:
  std::function<void()> on_signal_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

int Server::run() {
  routes();
  int port = opts_.port;
  if (port < 0 || port > 65535) fail("--port %d: not a port number (0-65535, 0: any free port)", port);
  if (port == 0) {
    port = http_.bind_to_any_port(opts_.host);
    if (port <= 0) fail("cannot listen on %s (any port): %s", opts_.host.c_str(), std::strerror(errno));
  } else if (!http_.bind_to_port(opts_.host, port)) {
    fail("cannot listen on %s:%d: %s", opts_.host.c_str(), port,
         errno ? std::strerror(errno) : "address in use or not available");
  }
  std::printf("tokenscope serve: listening on http://%s:%d\n", opts_.host.c_str(), port);
  std::fflush(stdout);
  std::atomic<bool> listener_done{false};
  std::thread listener([this, &listener_done] {
    http_.listen_after_bind();
    listener_done = true;
  });
  auto stop_http = [&] {
    // stop() does nothing before the listener runs: wait for it to start (or to have failed).
    while (!http_.is_running() && !listener_done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    http_.stop();
    listener.join();
  };
  SignalWatcher signals([this] { start_drain(); });
  try {
    engine_ = Engine::open(opts_.engine);
    SchedulerOptions so = opts_.scheduler;
    sched_ = std::make_unique<Scheduler>(
        *engine_, so, [this](int req, TokenId, const std::string& piece) { on_token(req, piece); },
        [this](int req) { on_done(req); });
  } catch (...) {
    stop_http();
    throw;
  }
  n_ctx_ = engine_->n_ctx();
  model_file_ = opts_.engine.model_path.substr(opts_.engine.model_path.find_last_of('/') + 1);
  model_name_ = opts_.alias.empty() ? model_file_ : opts_.alias;
  try {
    chat_ = chat_template_of(engine_->model().file());
    has_chat_ = true;
  } catch (const Error& e) {
    chat_error_ = std::string("chat completions need a chat template: ") + e.what();
  }
  publish_gauges();
  ready_ = true;
  metrics_.set_ready(true);
  std::printf("tokenscope serve: model %s loaded in %.0f ms: %lld tokens of KV cache, %d sequences at once, %d threads, "
              "isa %s\n", model_name_.c_str(), engine_->load_ms(), static_cast<long long>(n_ctx_),
              opts_.scheduler.max_parallel, engine_->n_threads(), kernels::isa_name(engine_->isa()));
  std::fflush(stdout);
  engine_loop();
  ready_ = false;
  metrics_.set_ready(false);
  // The engine is done with every request, but a stream's last events may not be written yet, and stopping the
  // HTTP server ends chunked responses where they are: wait for the handlers (bounded, for clients that stop reading;
  // their writes time out on their own).
  const auto give_up = Clock::now() + std::chrono::seconds(30);
  while (in_flight_ > 0 && Clock::now() < give_up) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  stop_http();
  std::printf("tokenscope serve: drained, exiting\n");
  std::fflush(stdout);
  return 0;
}

}  // namespace

int run_server(const ServerOptions& opts) {
  // Block the stop signals in every thread made from here on; SignalWatcher takes them.
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  signal(SIGPIPE, SIG_IGN);  // a client gone mid-write is an error return, not a kill
  int rc;
  try {
    Server s(opts);
    rc = s.run();
  } catch (...) {
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    throw;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return rc;
}

}  // namespace tokenscope::serve
