// tokenscope: the one error mechanism for bad input, and CHECK for internal invariants.
//
// Anything that comes from outside (files, flags, HTTP requests) and is wrong raises
// tokenscope::Error with a message a user can act on, naming the file and the field.
// Apps and the server catch it at the edge, print it and exit non-zero.
// A broken internal invariant is a bug: TS_CHECK prints file:line and aborts.
#pragma once

#include <cstdarg>
#include <stdexcept>
#include <string>

namespace tokenscope {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// printf-style formatting into a std::string.
std::string strfmt(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string vstrfmt(const char* fmt, va_list ap);

// Throws Error with a printf-style message.
[[noreturn]] void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

[[noreturn]] void check_failed(const char* file, int line, const char* expr, const std::string& msg);

}  // namespace tokenscope

#define TS_CHECK(cond)                                                          \
  do {                                                                          \
    if (__builtin_expect(!(cond), 0))                                           \
      ::tokenscope::check_failed(__FILE__, __LINE__, #cond, std::string());     \
  } while (0)

#define TS_CHECK_MSG(cond, ...)                                                 \
  do {                                                                          \
    if (__builtin_expect(!(cond), 0))                                           \
      ::tokenscope::check_failed(__FILE__, __LINE__, #cond,                     \
                                 ::tokenscope::strfmt(__VA_ARGS__));            \
  } while (0)
