#include "tokenizer/pretokenize.h"

#include "tokenizer/unicode.h"

namespace tokenscope::pretok {
namespace {

using Range = std::pair<size_t, size_t>;

// A view of one piece of text: code points [begin, end) of the whole text. Matchers never look
// outside the piece, so a lookahead at its end sees "end of text".
struct Piece {
  const uint32_t* c;
  size_t begin, end;
  bool in(size_t i) const { return i >= begin && i < end; }
  uint8_t fl(size_t i) const { return in(i) ? unicode::flags(c[i]) : 0; }
  bool letter(size_t i) const { return fl(i) & unicode::kLetter; }
  bool number(size_t i) const { return fl(i) & unicode::kNumber; }
  bool space(size_t i) const { return fl(i) & unicode::kWhitespace; }
  // [^\s\p{L}\p{N}]: any code point of the piece that is neither whitespace, letter nor number.
  bool other(size_t i) const {
    return in(i) && !(unicode::flags(c[i]) & (unicode::kLetter | unicode::kNumber | unicode::kWhitespace));
  }
  bool newline(size_t i) const { return in(i) && (c[i] == '\r' || c[i] == '\n'); }
};

inline uint32_t ascii_lower(uint32_t cp) { return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp; }

// 's|'t|'re|'ve|'m|'ll|'d at pos; returns the end of the match or pos when none.
size_t match_contraction(const Piece& p, size_t pos, bool ignore_case) {
  if (p.c[pos] != '\'' || !p.in(pos + 1)) return pos;
  auto at = [&](size_t i) { return ignore_case ? ascii_lower(p.c[i]) : p.c[i]; };
  const uint32_t a = at(pos + 1);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return pos + 2;
  if (p.in(pos + 2)) {
    const uint32_t b = at(pos + 2);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return pos + 3;
  }
  return pos;
}

// The whitespace alternatives shared by both families, at a position none of the others matched:
// \s+(?!\S) then \s+ (and, when a newline is in the run and with_newlines, \s*[\r\n]+ first).
size_t match_whitespace(const Piece& p, size_t pos, bool with_newlines) {
  size_t n = 0;
  size_t last_newline_end = 0;
  while (p.space(pos + n)) {
    if (p.newline(pos + n)) last_newline_end = pos + n + 1;
    ++n;
  }
  // \s*[\r\n]+: the greedy \s* backs off to the last newline of the run, which [\r\n]+ then takes.
  if (with_newlines && last_newline_end > 0) return last_newline_end;
  // \s+(?!\S): a run followed by a non-space gives back its last character.
  if (n > 1 && p.in(pos + n)) return pos + n - 1;
  // \s+ (a single space before a non-space, or a run that ends the piece).
  if (n > 0) return pos + n;
  return pos + 1;  // nothing matched: the code point stands alone
}

size_t match_gpt2(const Piece& p, size_t pos) {
  if (size_t e = match_contraction(p, pos, false); e != pos) return e;
  // " ?X+" for X in \p{L}, \p{N}, [^\s\p{L}\p{N}]: the optional space is a plain U+0020.
  const size_t q = pos + (p.c[pos] == ' ' ? 1 : 0);
  if (p.letter(q)) {
    size_t e = q;
    while (p.letter(e)) ++e;
    return e;
  }
  if (p.number(q)) {
    size_t e = q;
    while (p.number(e)) ++e;
    return e;
  }
  if (p.other(q)) {
    size_t e = q;
    while (p.other(e)) ++e;
    return e;
  }
  return match_whitespace(p, pos, false);
}

size_t match_llama3(const Piece& p, size_t pos, size_t max_digits) {
  if (size_t e = match_contraction(p, pos, true); e != pos) return e;
  const uint32_t c = p.c[pos];
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (!(c == '\r' || c == '\n' || p.number(pos))) {
    if (p.letter(pos) || p.letter(pos + 1)) {
      size_t e = pos + 1;
      while (p.letter(e)) ++e;
      return e;
    }
  }
  // \p{N}{1,max_digits}
  if (p.number(pos)) {
    size_t e = pos + 1;
    while (e - pos < max_digits && p.number(e)) ++e;
    return e;
  }
  // " ?[^\s\p{L}\p{N}]+[\r\n]*"
  const size_t q = pos + (c == ' ' ? 1 : 0);
  if (p.other(q)) {
    size_t e = q;
    while (p.other(e)) ++e;
    while (p.newline(e)) ++e;
    return e;
  }
  return match_whitespace(p, pos, true);
}

void split_piece(Kind kind, const Piece& p, std::vector<Range>& out) {
  size_t pos = p.begin;
  while (pos < p.end) {
    size_t e;
    switch (kind) {
      case Kind::llama3: e = match_llama3(p, pos, 3); break;
      case Kind::qwen2: e = match_llama3(p, pos, 1); break;
      default: e = match_gpt2(p, pos); break;
    }
    out.emplace_back(pos, e);
    pos = e;
  }
}

}  // namespace

bool kind_from_name(std::string_view name, Kind* out) {
  struct Alias {
    const char* name;
    Kind kind;
  };
  // tokenizer.ggml.pre values whose split regexes are exactly one of ours.
  static const Alias kAliases[] = {
      {"gpt2", Kind::gpt2},          {"gpt-2", Kind::gpt2},        {"mpt", Kind::gpt2},          {"olmo", Kind::gpt2},
      {"jais", Kind::gpt2},          {"smollm", Kind::smollm},     {"starcoder", Kind::smollm},
      {"refact", Kind::smollm},      {"command-r", Kind::smollm},  {"codeshell", Kind::smollm},
      {"exaone", Kind::smollm},      {"llama3", Kind::llama3},     {"llama-v3", Kind::llama3},
      {"llama-bpe", Kind::llama3},   {"qwen2", Kind::qwen2},       {"stablelm2", Kind::qwen2},
      {"deepseek-r1-qwen", Kind::qwen2},
  };
  for (const Alias& a : kAliases) {
    if (name == a.name) {
      *out = a.kind;
      return true;
    }
  }
  return false;
}

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::gpt2: return "gpt2";
    case Kind::smollm: return "smollm";
    case Kind::llama3: return "llama3";
    case Kind::qwen2: return "qwen2";
  }
  return "?";
}

std::vector<Range> split(Kind kind, const std::vector<uint32_t>& cps) {
  std::vector<Range> out;
  if (cps.empty()) return out;
  out.reserve(cps.size() / 3 + 1);
  if (kind == Kind::smollm) {
    // First pass (\p{N}): every number code point alone, the text between numbers as one piece;
    // then the gpt2 regex inside each piece.
    size_t start = 0;
    for (size_t i = 0; i <= cps.size(); ++i) {
      const bool at_end = i == cps.size();
      if (at_end || unicode::is_number(cps[i])) {
        if (i > start) split_piece(Kind::gpt2, Piece{cps.data(), start, i}, out);
        if (!at_end) out.emplace_back(i, i + 1);
        start = i + 1;
      }
    }
    return out;
  }
  split_piece(kind, Piece{cps.data(), 0, cps.size()}, out);
  return out;
}

}  // namespace tokenscope::pretok
