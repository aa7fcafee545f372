// The text a request streams back, piece by piece as tokens are generated: stop strings are cut out (text is held
// back while its end could still be the start of a stop string, as OpenAI's API does) and only whole UTF-8
// characters are released (a token can end inside a character; JSON strings must be valid UTF-8).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tokenscope::serve {

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stop = {});
  // Adds a generated piece; returns the text that is now safe to send (possibly empty). After a stop string
  // is found, returns what came before it and ignores every later piece.
  std::string push(std::string_view piece);
  // Generation ended without a stop string: the text still held back, with bytes that do not form valid UTF-8
  // replaced by U+FFFD.
  std::string finish();
  bool stopped() const { return stopped_; }
  // Everything released so far.
  const std::string& text() const { return sent_; }

 private:
  std::vector<std::string> stop_;
  std::string held_;  // generated, not yet released
  std::string sent_;
  bool stopped_ = false;
};

// The length of the longest prefix of s that ends on a UTF-8 character boundary, without cutting a multi-byte
// character whose remaining bytes may still come (bytes that can never form a character count as complete).
size_t utf8_complete_prefix(std::string_view s);
// s with every byte sequence that is not valid UTF-8 replaced by U+FFFD.
std::string utf8_sanitize(std::string_view s);

}  // namespace tokenscope::serve
