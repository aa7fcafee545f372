#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>

namespace tokenscope::unicode {
namespace {

// Flags of the first 256 code points, looked up directly; the rest by binary search.
std::array<uint8_t, 256> make_latin1_table() {
  std::array<uint8_t, 256> t{};
  for (size_t i = 0; i < kCodepointRangeCount; ++i) {
    const CodepointRange& r = kCodepointRanges[i];
    for (uint32_t cp = r.first; cp <= r.last && cp < 256; ++cp) t[cp] = r.flags;
  }
  return t;
}

}  // namespace

uint8_t flags(uint32_t cp) {
  static const std::array<uint8_t, 256> latin1 = make_latin1_table();
  if (cp < 256) return latin1[cp];
  const CodepointRange* begin = kCodepointRanges;
  const CodepointRange* end = kCodepointRanges + kCodepointRangeCount;
  // First range whose last >= cp.
  const CodepointRange* it =
      std::lower_bound(begin, end, cp, [](const CodepointRange& r, uint32_t c) { return r.last < c; });
  if (it != end && it->first <= cp) return it->flags;
  return 0;
}

std::vector<uint32_t> decode_utf8(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  auto cont = [&](size_t i) { return i < n && (p[i] & 0xC0) == 0x80; };
  size_t i = 0;
  while (i < n) {
    const uint8_t b = p[i];
    if (b < 0x80) {
      out.push_back(b);
      i += 1;
    } else if ((b & 0xE0) == 0xC0 && cont(i + 1)) {
      out.push_back((uint32_t(b & 0x1F) << 6) | (p[i + 1] & 0x3F));
      i += 2;
    } else if ((b & 0xF0) == 0xE0 && cont(i + 1) && cont(i + 2)) {
      out.push_back((uint32_t(b & 0x0F) << 12) | (uint32_t(p[i + 1] & 0x3F) << 6) | (p[i + 2] & 0x3F));
      i += 3;
    } else if ((b & 0xF8) == 0xF0 && cont(i + 1) && cont(i + 2) && cont(i + 3)) {
      const uint32_t cp = (uint32_t(b & 0x07) << 18) | (uint32_t(p[i + 1] & 0x3F) << 12) |
                          (uint32_t(p[i + 2] & 0x3F) << 6) | (p[i + 3] & 0x3F);
      if (cp <= 0x10FFFF) {
        out.push_back(cp);
        i += 4;
      } else {
        out.push_back(0xFFFD);
        i += 1;
      }
    } else {
      out.push_back(0xFFFD);
      i += 1;
    }
  }
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace tokenscope::unicode
