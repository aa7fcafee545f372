// BPE pre-tokenizers: split text into the words that BPE merges never cross, as the regular
// expressions of the GPT-2 / StarCoder (smollm) / Llama 3 / Qwen2 tokenizers do. They are written
// as hand-made matchers over code points, one alternative after the other, with the same
// semantics as the regexes (leftmost alternative wins, greedy repetition with backtracking):
//
//   gpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   smollm: first every \p{N} code point on its own, then gpt2 inside each piece
//   llama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//           \s*[\r\n]+|\s+(?!\S)|\s+
//   qwen2:  as llama3 with \p{N} (one digit at a time) instead of \p{N}{1,3}
//
// "\s+(?!\S)" takes a whitespace run that ends the piece whole, and leaves the last whitespace
// character of a run followed by something else to start the next word (so " world" stays one
// word after "hello  ").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace tokenscope::pretok {

enum class Kind { gpt2, smollm, llama3, qwen2 };

// Maps a tokenizer.ggml.pre value to a pre-tokenizer; nullopt-like false when unknown.
bool kind_from_name(std::string_view name, Kind* out);
const char* kind_name(Kind k);

// Splits code points into words, as [begin, end) index ranges covering the input in order.
std::vector<std::pair<size_t, size_t>> split(Kind kind, const std::vector<uint32_t>& cps);

}  // namespace tokenscope::pretok
