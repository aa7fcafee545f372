// Internal: the vocabulary shared by the BPE and SentencePiece tokenizers (tokens, types, special
// ids, the special-token partition of raw text) and the two implementations' factories.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace tokenscope {
namespace gguf { class File; }

namespace tok {

// tokenizer.ggml.token_type values.
enum TokenType : int32_t {
  kUndefined = 0, kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6,
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenIndex = std::unordered_map<std::string, TokenId, StringHash, std::equal_to<>>;

// A piece of the input after special tokens are cut out: either a token or raw text.
struct Fragment {
  TokenId token = -1;  // >= 0: a special token
  size_t offset = 0, length = 0;  // raw text, when token < 0
};

struct Vocab {
  std::string path;  // the GGUF file, for error messages
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<float> scores;  // empty when the file has none
  TokenIndex index;           // text -> id (for duplicated texts the last id wins, as llama.cpp)
  TokenId bos = -1, eos = -1, eot = -1, eom = -1, pad = -1, unk = -1;
  bool add_bos = false, add_eos = false;
  std::vector<uint8_t> eog;  // per token: ends generation
  // Control, user-defined and unknown tokens, longest text first: matched in raw text before
  // the text is tokenized (control and unknown only when parse_special).
  std::vector<TokenId> specials;

  int32_t size() const { return static_cast<int32_t>(tokens.size()); }
  TokenId find(std::string_view text) const {
    auto it = index.find(text);
    return it == index.end() ? -1 : it->second;
  }
  // Cuts the special tokens out of text (see `specials`).
  std::vector<Fragment> partition(std::string_view text, bool parse_special) const;
  void check_id(TokenId id) const;  // throws Error when out of range
};

// The vocabulary accessors both tokenizers share; they differ in encode and token_to_piece.
class VocabTokenizer : public Tokenizer {
 public:
  int32_t n_vocab() const override { return v_.size(); }
  TokenId bos() const override { return v_.bos; }
  TokenId eos() const override { return v_.eos; }
  bool is_eog(TokenId id) const override { return id >= 0 && id < v_.size() && v_.eog[static_cast<size_t>(id)]; }
  const std::string& token_text(TokenId id) const override {
    v_.check_id(id);
    return v_.tokens[static_cast<size_t>(id)];
  }
  std::optional<TokenId> find_token(std::string_view text) const override {
    const TokenId id = v_.find(text);
    if (id < 0) return std::nullopt;
    return id;
  }

 protected:
  Vocab v_;
};

// Reads the parts every vocabulary has; `model` is tokenizer.ggml.model.
// default_add_bos / default_add_eos apply when the file has no add_bos_token / add_eos_token key.
void load_common(const gguf::File& file, Vocab& v, bool default_add_bos, bool default_add_eos);

std::unique_ptr<Tokenizer> make_bpe(const gguf::File& file);
std::unique_ptr<Tokenizer> make_spm(const gguf::File& file);

}  // namespace tok
}  // namespace tokenscope
