// Tokenizer factory and the vocabulary parts shared by BPE and SentencePiece: loading
// tokenizer.ggml.* metadata, special ids, end-of-generation tokens, and cutting special tokens
// out of raw text.
#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "base/error.h"
#include "gguf/gguf.h"
#include "tokenizer/vocab.h"

namespace tokenscope {
namespace tok {
namespace {

const char* const kTokens = "tokenizer.ggml.tokens";
const char* const kTypes = "tokenizer.ggml.token_type";
const char* const kScores = "tokenizer.ggml.scores";

// Texts of tokens that end a turn in the common chat formats; like llama.cpp, they end
// generation whatever their ids, and are treated as control tokens.
const char* const kEogTexts[] = {
    "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<|end|>",
};

std::optional<TokenId> opt_id(const gguf::File& f, const Vocab& v, const char* key) {
  const std::optional<int64_t> id = f.opt_int(key);
  if (!id) return std::nullopt;
  if (*id < 0 || *id >= v.size())
    fail("%s: %s is %lld, outside the vocabulary of %d tokens", f.path().c_str(), key,
         static_cast<long long>(*id), v.size());
  return static_cast<TokenId>(*id);
}

}  // namespace

void Vocab::check_id(TokenId id) const {
  if (id < 0 || id >= size()) fail("%s: token id %d is outside the vocabulary of %d tokens", path.c_str(), id, size());
}

void load_common(const gguf::File& f, Vocab& v, bool default_add_bos, bool default_add_eos) {
  v.path = f.path();
  const char* p = v.path.c_str();
  const gguf::Value* tv = f.find(kTokens);
  if (!tv) fail("%s: %s is missing (the file has no tokenizer vocabulary)", p, kTokens);
  if (tv->type != gguf::ValueType::ARRAY || tv->elem_type != gguf::ValueType::STRING)
    fail("%s: %s must be an array of strings", p, kTokens);
  v.tokens = f.get_string_array(kTokens);
  if (v.tokens.empty()) fail("%s: %s is empty", p, kTokens);
  if (v.tokens.size() > static_cast<size_t>(INT32_MAX)) fail("%s: %s has too many tokens", p, kTokens);
  const size_t n = v.tokens.size();

  if (f.find(kTypes)) {
    const std::vector<int64_t> t = f.get_int_array(kTypes);
    if (t.size() != n) fail("%s: %s has %zu entries but %s has %zu", p, kTypes, t.size(), kTokens, n);
    v.types.resize(n);
    for (size_t i = 0; i < n; ++i) {
      if (t[i] < kUndefined || t[i] > kByte)
        fail("%s: %s[%zu] is %lld, not a token type (0..6)", p, kTypes, i, static_cast<long long>(t[i]));
      v.types[i] = static_cast<int32_t>(t[i]);
    }
  } else {
    v.types.assign(n, kNormal);
  }
  if (f.find(kScores)) {
    v.scores = f.get_float_array(kScores);
    if (v.scores.size() != n) fail("%s: %s has %zu entries but %s has %zu", p, kScores, v.scores.size(), kTokens, n);
  }

  v.index.reserve(n);
  for (size_t i = 0; i < n; ++i) v.index[v.tokens[i]] = static_cast<TokenId>(i);

  v.bos = opt_id(f, v, "tokenizer.ggml.bos_token_id").value_or(-1);
  v.eos = opt_id(f, v, "tokenizer.ggml.eos_token_id").value_or(-1);
  v.eot = opt_id(f, v, "tokenizer.ggml.eot_token_id").value_or(-1);
  v.eom = opt_id(f, v, "tokenizer.ggml.eom_token_id").value_or(-1);
  v.pad = opt_id(f, v, "tokenizer.ggml.padding_token_id").value_or(-1);
  v.unk = opt_id(f, v, "tokenizer.ggml.unknown_token_id").value_or(-1);
  v.add_bos = f.opt_bool("tokenizer.ggml.add_bos_token").value_or(default_add_bos);
  v.add_eos = f.opt_bool("tokenizer.ggml.add_eos_token").value_or(default_add_eos);
  if (v.add_bos && v.bos < 0) fail("%s: tokenizer.ggml.add_bos_token is set but tokenizer.ggml.bos_token_id is missing", p);
  if (v.add_eos && v.eos < 0) fail("%s: tokenizer.ggml.add_eos_token is set but tokenizer.ggml.eos_token_id is missing", p);

  v.eog.assign(n, 0);
  for (TokenId id : {v.eos, v.eot, v.eom})
    if (id >= 0) v.eog[id] = 1;
  for (const char* text : kEogTexts) {
    const TokenId id = v.find(text);
    if (id < 0) continue;
    v.eog[id] = 1;
    if (v.types[id] != kControl) v.types[id] = kControl;
  }

  for (size_t i = 0; i < n; ++i) {
    const int32_t t = v.types[i];
    if ((t == kControl || t == kUserDefined || t == kUnknown) && !v.tokens[i].empty())
      v.specials.push_back(static_cast<TokenId>(i));
  }
  std::stable_sort(v.specials.begin(), v.specials.end(),
                   [&](TokenId a, TokenId b) { return v.tokens[a].size() > v.tokens[b].size(); });
}

std::vector<Fragment> Vocab::partition(std::string_view text, bool parse_special) const {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back(Fragment{-1, 0, text.size()});
  std::vector<Fragment> next;
  // Longest special tokens first; each cuts every occurrence out of the raw pieces left so far.
  for (TokenId id : specials) {
    const int32_t t = types[id];
    if (!parse_special && (t == kControl || t == kUnknown)) continue;
    const std::string& s = tokens[id];
    if (text.find(s) == std::string_view::npos) continue;
    next.clear();
    for (const Fragment& fr : frags) {
      if (fr.token >= 0) {
        next.push_back(fr);
        continue;
      }
      size_t pos = fr.offset;
      const size_t end = fr.offset + fr.length;
      const std::string_view window = text.substr(0, end);
      while (pos < end) {
        const size_t m = window.find(s, pos);
        if (m == std::string_view::npos) break;
        if (m > pos) next.push_back(Fragment{-1, pos, m - pos});
        next.push_back(Fragment{id, 0, 0});
        pos = m + s.size();
      }
      if (pos < end) next.push_back(Fragment{-1, pos, end - pos});
    }
    frags.swap(next);
  }
  return frags;
}

}  // namespace tok

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const gguf::File& file) {
  const gguf::Value* m = file.find("tokenizer.ggml.model");
  if (!m) fail("%s: tokenizer.ggml.model is missing (the file has no tokenizer)", file.path().c_str());
  if (m->type != gguf::ValueType::STRING) fail("%s: tokenizer.ggml.model must be a string", file.path().c_str());
  if (m->s == "gpt2") return tok::make_bpe(file);
  if (m->s == "llama") return tok::make_spm(file);
  fail("%s: tokenizer.ggml.model '%s' is not supported (supported: gpt2 for byte-level BPE, llama for "
       "SentencePiece)", file.path().c_str(), m->s.c_str());
}

std::string Tokenizer::decode(const std::vector<TokenId>& ids, bool render_special) const {
  std::string out;
  for (TokenId id : ids) out += token_to_piece(id, render_special);
  return out;
}

}  // namespace tokenscope
