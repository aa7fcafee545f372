#include "apps/cli_util.h"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <random>
#include <sstream>

namespace tokenscope::app {

void usage_fail(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::string msg = vstrfmt(fmt, ap);
  va_end(ap);
  throw UsageError(msg);
}

namespace {

// Whether a progress line is on stderr now (drawn in place, without its newline).
bool g_status_line_shown = false;

// Draws text as the progress line, over the one shown before.
void draw_status_line(const std::string& text) {
  std::fprintf(stderr, "\r\033[K%s", text.c_str());
  g_status_line_shown = true;
}

std::atomic<int> g_interrupts{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free counter");

extern "C" void on_sigint(int) {
  if (g_interrupts.fetch_add(1) >= 1) {
    static const char msg[] = "\ntokenscope: interrupted twice, exiting\n";
    [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    ::_exit(130);
  }
}

}  // namespace

void install_interrupt_handler(bool restart_reads) {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = restart_reads ? SA_RESTART : 0;
  sigaction(SIGINT, &sa, nullptr);
}

bool interrupted() { return g_interrupts.load() > 0; }
void clear_interrupt() { g_interrupts.store(0); }

bool read_line_interruptible(std::string& line) {
  static std::string pending;  // read past the last line returned
  for (;;) {
    const size_t nl = pending.find('\n');
    if (nl != std::string::npos) {
      line.assign(pending, 0, nl);
      pending.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return true;
    }
    if (interrupted()) return false;
    pollfd p{STDIN_FILENO, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;  // timed out or a signal: look at the flag again
    char buf[4096];
    const ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // the end of the input (or an error reading it): a last unterminated line still counts
      if (pending.empty()) return false;
      line.swap(pending);
      pending.clear();
      return true;
    }
    pending.append(buf, static_cast<size_t>(n));
  }
}

std::optional<size_t> invalid_utf8_offset(const std::string& text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07, min = 0x10000;
    else return i;  // a continuation byte without a lead, or 0xF8-0xFF
    for (size_t k = 1; k < len; ++k) {
      if (i + k >= n || (s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::nullopt;
}

void require_utf8(const std::string& text, const char* what) {
  if (auto at = invalid_utf8_offset(text))
    fail("%s is not valid UTF-8: byte %zu (0x%02X) does not start or continue a character", what, *at,
         static_cast<unsigned>(static_cast<unsigned char>(text[*at])));
}

std::string read_prompt_file(const std::string& path) {
  std::string text;
  if (path == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail("-f %s: cannot open the prompt file (%s)", path.c_str(), std::strerror(errno));
    std::ostringstream ss;
    ss << f.rdbuf();
    text = ss.str();
  }
  if (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

std::string stop_reason_name(const std::string& stop_reason) {
  return stop_reason == "callback" ? "interrupted" : stop_reason;
}

std::string stop_message(const std::string& stop_reason, int64_t generated, int64_t n_predict, int64_t n_ctx) {
  const long long g = static_cast<long long>(generated);
  if (stop_reason == "eog")
    return strfmt("stopped: end of generation (the model ended its reply) after %lld tokens%s", g,
                  g == 0 ? ": for an instruct model try --chat, or --ignore-eos to continue anyway" : "");
  if (stop_reason == "length") return strfmt("stopped: -n %lld tokens reached", static_cast<long long>(n_predict));
  if (stop_reason == "context")
    return strfmt("stopped: context full (-c %lld tokens) after %lld tokens: raise -c for longer output",
                  static_cast<long long>(n_ctx), g);
  if (stop_reason == "callback") return strfmt("stopped: interrupted (Ctrl-C) after %lld tokens", g);
  return "stopped: " + stop_reason;
}

Progress::Progress(std::string what, int64_t total)
    : what_(std::move(what)), total_(total), shown_(total > 0 && ::isatty(STDERR_FILENO)) {
  if (shown_) draw_status_line(strfmt("%s: 0/%lld runs (0%%)", what_.c_str(), static_cast<long long>(total_)));
}

void Progress::step() {
  ++done_;
  if (shown_)
    draw_status_line(strfmt("%s: %lld/%lld runs (%lld%%)", what_.c_str(), static_cast<long long>(done_),
                            static_cast<long long>(total_), static_cast<long long>(100 * done_ / total_)));
}

void Progress::hide() { clear_status_line(); }

Progress::~Progress() { clear_status_line(); }

ProgressFn loading_line(const std::string& path) {
  if (!::isatty(STDERR_FILENO)) return {};
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(path, ec);
  const std::string head = strfmt("tokenscope: loading %s (%.1f MiB)", path.c_str(),
                                  ec ? 0.0 : static_cast<double>(bytes) / 1048576.0);
  // Redrawn only when the phase or the whole percentage changes: a few hundred redraws at most per load.
  struct Shown {
    std::string phase;
    int pct = -1;
  };
  auto shown = std::make_shared<Shown>();
  return [head, shown](const char* phase, uint64_t done, uint64_t total) {
    const int pct = total ? static_cast<int>(100 * std::min(done, total) / total) : 100;
    if (pct == shown->pct && shown->phase == phase) return;
    shown->pct = pct;
    shown->phase = phase;
    if (std::strcmp(phase, "packing") == 0 && pct == 100) {
      clear_status_line();
      return;
    }
    draw_status_line(strfmt("%s: %s %d%%", head.c_str(), phase, pct));
  };
}

std::string cache_dir() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  return (xdg && *xdg ? std::string(xdg) : std::string(home ? home : "/tmp") + "/.cache") + "/tokenscope";
}

std::string new_dated_dir(const std::string& parent) {
  const std::time_t t = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::gmtime(&t));
  const std::string base = parent + "/" + stamp;
  std::string dir = base;
  for (int i = 2; std::filesystem::exists(dir); ++i) dir = base + "-" + std::to_string(i);
  return dir;
}

std::vector<int32_t> fixed_random_tokens(int n, int64_t n_vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> d(0, n_vocab - 1);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = static_cast<int32_t>(d(rng));
  return t;
}

void clear_status_line() {
  if (!g_status_line_shown) return;
  std::fprintf(stderr, "\r\033[K");
  g_status_line_shown = false;
}

}  // namespace tokenscope::app
