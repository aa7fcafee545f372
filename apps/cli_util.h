// Helpers the CLI commands share: usage errors (exit status 2), Ctrl-C handling during generation, prompt input
// (-f FILE, -f - for stdin) and UTF-8 checks, and the line saying why generation stopped.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/file_load.h"

namespace tokenscope::app {

// A flag or argument that is wrong as given (bad usage): main prints it and exits with status 2, as CLI11's own
// parse errors do. Bad input (a file, a prompt) stays a plain Error: exit status 1.
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& what) : Error(what) {}
};
[[noreturn]] void usage_fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Ctrl-C during generation. After install_interrupt_handler(), the first SIGINT sets a flag that generation loops
// poll (interrupted()) to stop the current reply; a second SIGINT before clear_interrupt() exits at once with
// status 130. With restart_reads false a blocking read (chat's prompt) returns at the first SIGINT instead of
// resuming, so Ctrl-C at the prompt ends the chat.
void install_interrupt_handler(bool restart_reads);
bool interrupted();
void clear_interrupt();
// Reads one line of standard input into line (without its newline or a trailing CR). Returns false at the end of
// the input or as soon as Ctrl-C comes (interrupted() says which), even while waiting for the user to type: it
// reads the descriptor itself, waking every 100 ms, so a signal that lands just before it waits is not lost.
bool read_line_interruptible(std::string& line);

// The byte offset of the first byte that does not start or continue a valid UTF-8 sequence (overlong forms,
// surrogates and code points past U+10FFFF are invalid), or nullopt if the text is valid.
std::optional<size_t> invalid_utf8_offset(const std::string& text);
// Throws Error naming what (e.g. "the prompt") and the offset and value of the first invalid byte.
void require_utf8(const std::string& text, const char* what);

// The text of -f FILE, or of standard input for "-", with one trailing newline removed (as llama.cpp does).
std::string read_prompt_file(const std::string& path);

// One line for stderr saying why generation stopped (stop_reason as GenerationResult spells it).
std::string stop_message(const std::string& stop_reason, int64_t generated, int64_t n_predict, int64_t n_ctx);
// The reason as run --json reports it: eog, length, context or interrupted.
std::string stop_reason_name(const std::string& stop_reason);

// A progress line on stderr, redrawn in place ("bench: 3/12 runs (25%)"), shown only when stderr is a terminal so
// that logs and captured output stay clean. The line is erased when the object goes.
class Progress {
 public:
  Progress(std::string what, int64_t total);
  ~Progress();
  void step();  // one more of the total done: redraws the line
  void hide();  // erases the line until the next step (before printing a result)
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

 private:
  std::string what_;
  int64_t total_, done_ = 0;
  bool shown_;
};

// The line on stderr while a model is loaded and its weights packed, when stderr is a terminal: "tokenscope:
// loading MODEL (N MiB): reading 40%", then "packing 75%", erased once the packing is done. The function to set as
// LoadOptions::progress (empty when stderr is not a terminal); an error before the end erases the line through
// clear_status_line().
ProgressFn loading_line(const std::string& path);
// tokenscope's cache directory: $XDG_CACHE_HOME/tokenscope, else ~/.cache/tokenscope.
std::string cache_dir();
// A new directory path under parent named by the UTC time ("20261204-183000", then "-2", "-3" if taken); not created.
std::string new_dated_dir(const std::string& parent);
// Random (but fixed by seed) token ids, as llama-bench uses: work that does not depend on any text.
std::vector<int32_t> fixed_random_tokens(int n, int64_t n_vocab, uint32_t seed);
// Erases the progress line (Progress, loading_line) if one is on the terminal.
void clear_status_line();

}  // namespace tokenscope::app
