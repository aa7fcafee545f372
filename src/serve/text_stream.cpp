#include "serve/text_stream.h"

#include <algorithm>

namespace tokenscope::serve {

namespace {

// Bytes of the UTF-8 sequence a lead byte starts (1 for ASCII), or 0 if b cannot start one.
int utf8_len(unsigned char b) {
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return 2;
  if (b >= 0xE0 && b <= 0xEF) return 3;
  if (b >= 0xF0 && b <= 0xF4) return 4;
  return 0;
}

// Length of the valid UTF-8 character at s[i], or 0 if the bytes there are not one (or are cut short).
size_t valid_char(std::string_view s, size_t i) {
  const unsigned char b = static_cast<unsigned char>(s[i]);
  const int n = utf8_len(b);
  if (n == 0 || i + static_cast<size_t>(n) > s.size()) return 0;
  for (int k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + static_cast<size_t>(k)]) & 0xC0) != 0x80) return 0;
  if (n >= 3) {  // overlong forms and surrogates (second byte ranges)
    const unsigned char c = static_cast<unsigned char>(s[i + 1]);
    if (b == 0xE0 && c < 0xA0) return 0;
    if (b == 0xED && c > 0x9F) return 0;
    if (b == 0xF0 && c < 0x90) return 0;
    if (b == 0xF4 && c > 0x8F) return 0;
  }
  return static_cast<size_t>(n);
}

}  // namespace

size_t utf8_complete_prefix(std::string_view s) {
  // Only the last (up to) three bytes can be the start of a character still being completed.
  const size_t from = s.size() > 3 ? s.size() - 3 : 0;
  for (size_t i = s.size(); i-- > from;) {
    const unsigned char b = static_cast<unsigned char>(s[i]);
    if ((b & 0xC0) == 0x80) continue;  // a continuation byte: look further back for its lead
    const int n = utf8_len(b);
    if (n > 1 && i + static_cast<size_t>(n) > s.size()) {
      // A lead byte whose sequence is not complete yet: hold it back if what follows it fits.
      bool ok = true;
      for (size_t k = i + 1; k < s.size(); ++k) ok &= (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80;
      if (ok) return i;
    }
    break;
  }
  return s.size();
}

std::string utf8_sanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = valid_char(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

TextStream::TextStream(std::vector<std::string> stop) : stop_(std::move(stop)) {
  stop_.erase(std::remove(stop_.begin(), stop_.end(), std::string()), stop_.end());
}

std::string TextStream::push(std::string_view piece) {
  if (stopped_) return "";
  held_.append(piece);
  // A whole stop string: release what precedes the earliest one and stop.
  size_t cut = std::string::npos;
  for (const std::string& s : stop_) cut = std::min(cut, held_.find(s));
  if (cut != std::string::npos) {
    stopped_ = true;
    std::string out = utf8_sanitize(std::string_view(held_).substr(0, cut));
    held_.clear();
    sent_ += out;
    return out;
  }
  // Hold back the longest tail that is the start of a stop string, and an unfinished UTF-8 character.
  size_t keep = 0;
  for (const std::string& s : stop_)
    for (size_t n = std::min(s.size() - 1, held_.size()); n > keep; --n)
      if (std::string_view(held_).substr(held_.size() - n) == std::string_view(s).substr(0, n)) {
        keep = n;
        break;
      }
  size_t release = held_.size() - keep;
  release = utf8_complete_prefix(std::string_view(held_).substr(0, release));
  std::string out = utf8_sanitize(std::string_view(held_).substr(0, release));
  held_.erase(0, release);
  sent_ += out;
  return out;
}

std::string TextStream::finish() {
  if (stopped_) return "";
  std::string out = utf8_sanitize(held_);
  held_.clear();
  sent_ += out;
  return out;
}

}  // namespace tokenscope::serve
