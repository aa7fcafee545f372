// Continuous batching over the engine: requests wait in a queue, at most max_parallel run at once, and every
// step evaluates one token of each running sequence that is generating plus prompt chunks of those still reading
// their prompt, up to max_batch_tokens (chunked prefill, as in Sarathi-Serve: a long prompt rides along with the
// decodes in pieces, so running streams keep their pace). A finished sequence frees its pages and the next
// request joins at the next step. When the KV pool runs out of pages, the newest running sequence is preempted:
// its pages are freed and it goes back to the front of the queue, to be recomputed when room is back: its prompt
// in chunks, then what it had generated one token per step, as it was first evaluated, so that it goes on with
// exactly the tokens it would have produced without the preemption.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/engine.h"

namespace tokenscope {

struct Request {
  std::vector<TokenId> prompt;
  int64_t n_predict = 128;  // < 0: until end of generation or the context is full
  bool ignore_eos = false;
  SamplerParams sampling;
};

struct RequestResult {
  std::vector<TokenId> tokens;  // generated ids
  std::string text;
  // Why it stopped: "eog" (an end-of-generation token), "length" (n_predict tokens), "context" (the sequence
  // filled the context), "cancelled" (Scheduler::cancel).
  std::string stop_reason;
  int64_t prompt_tokens = 0;
  int64_t reused_tokens = 0;  // prompt tokens taken from the prefix cache instead of evaluated
  int preemptions = 0;
  // Milliseconds since the scheduler started: submitted, first scheduled, first token sampled, finished.
  double t_submit_ms = 0, t_start_ms = 0, t_first_ms = 0, t_end_ms = 0;
  bool done = false;
};

struct SchedulerOptions {
  int max_parallel = 4;            // sequences running at once
  // Tokens per step (decodes first, then prompt chunks); at least 2. A prompt chunk goes one token over it
  // rather than leave a single prompt token for later.
  int64_t max_batch_tokens = 512;
  // Most prompt tokens of one sequence per step (> 0; at least 2). 0: chunking off, a prompt goes whole into
  // the first step with any room left, however long it is.
  int64_t prefill_chunk = 0;
};

// What the last step held and how long it took.
struct StepInfo {
  profile::Stage stage = profile::Stage::decode;
  int64_t tokens = 0;     // batch entries
  int sequences = 0;
  double ms = 0;          // Engine::eval
};

class Scheduler {
 public:
  // Called for each generated token (not for the end-of-generation token that stops a request).
  using TokenFn = std::function<void(int request, TokenId id, const std::string& piece)>;
  // Called once when a request is done (any stop reason), after its result is final.
  using DoneFn = std::function<void(int request)>;
  Scheduler(Engine& engine, const SchedulerOptions& opts, TokenFn on_token = nullptr, DoneFn on_done = nullptr);
  ~Scheduler();

  // Queues a request; returns its number (0, 1, ... in submission order). Throws Error for an empty prompt or
  // one that cannot fit the context.
  int submit(Request r);
  // Runs one step; false when no request is waiting or running. Not reentrant: the callbacks may submit and
  // cancel requests but must not call step() or run().
  bool step();
  // Steps until every submitted request is done.
  void run();
  // Stops a request: a waiting one is done at once, a running one before the next step evaluates it (its pages
  // go back to the pool), with stop reason "cancelled" unless `reason` names another. No effect on a done or
  // unknown request.
  void cancel(int request, const char* reason = "cancelled");
  // The request's result (while it runs: so far). Throws std::out_of_range for an unknown or released request.
  const RequestResult& result(int request) const { return slots_.at(request).res; }
  // Forgets a done request (a server keeps only what is in flight); no effect on others.
  void release(int request);
  int running() const { return static_cast<int>(running_.size()); }
  // The running requests' numbers, oldest first.
  std::vector<int> running_requests() const;
  int waiting() const { return static_cast<int>(waiting_.size()); }
  const StepInfo& last_step() const { return last_; }

 private:
  struct Active {
    int request;
    std::unique_ptr<Sequence> seq;
    std::vector<TokenId> pending;  // prompt tokens still to evaluate, in chunks
    std::vector<TokenId> replay;   // after a preemption: generated tokens to evaluate again, one per step
    TokenId next = -1;             // the token sampled last, evaluated at the next step
    int64_t added = 0;             // tokens it has in this step's batch
    int64_t logits_entry = -1;     // the batch entry whose logits it samples from, or -1
  };
  struct Slot {
    Request req;
    RequestResult res;
    std::optional<Sampler> sampler;  // a preempted request's sampler, kept for its rerun
    const char* cancel = nullptr;    // set by cancel(): the stop reason
  };
  double now_ms() const;
  void admit();
  void preempt_newest();
  void finish(Active& a, const char* reason);
  void done(Slot& s, int request, const char* reason);
  Slot& slot(int request) { return slots_.at(request); }
  // Free pages the running sequences will take for the tokens they know of, plus one page of growth each.
  int64_t committed_pages() const;

  Engine& engine_;
  SchedulerOptions opts_;
  TokenFn on_token_;
  DoneFn on_done_;
  std::unordered_map<int, Slot> slots_;  // submitted and not released (references stay valid on insertion)
  int next_id_ = 0;
  std::vector<int> waiting_;  // request numbers, front first
  std::vector<Active> running_;
  Batch batch_;
  StepInfo last_;
  double t0_ms_;
};

}  // namespace tokenscope
