// Byte-level BPE (tokenizer.ggml.model "gpt2"): GPT-2's byte-to-unicode mapping, a pre-tokenizer
// that splits text into words, then per word the merges of lowest rank first.
//
// Symbols are kept as ids. Merge parts or results that are not vocabulary entries (possible in a
// hand-made vocabulary) get ids past the vocabulary, so a merge never depends on string compares;
// a symbol that ends up without a vocabulary id is emitted byte by byte where single-byte tokens
// exist, as llama.cpp does.
#include <array>
#include <queue>

#include "base/error.h"
#include "gguf/gguf.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace tokenscope::tok {
namespace {

// GPT-2's reversible mapping of bytes to printable code points: printable Latin-1 bytes map to
// themselves, the others (controls, space, DEL, NBSP, soft hyphen...) to U+0100 upwards in order.
std::array<uint32_t, 256> byte_to_codepoint_table() {
  std::array<uint32_t, 256> t{};
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    t[b] = printable ? static_cast<uint32_t>(b) : next++;
  }
  return t;
}

struct Merge {
  int32_t rank;
  int32_t result;  // symbol id of the merged text
};

class BpeTokenizer final : public VocabTokenizer {
 public:
  explicit BpeTokenizer(const gguf::File& f) {
    const char* p = f.path().c_str();
    const std::string pre = f.opt_string("tokenizer.ggml.pre").value_or("gpt2");
    if (pre == "default") {
      pre_ = pretok::Kind::gpt2;  // llama.cpp's "default" adds more splits; see the tokenizer tests' notes
    } else if (!pretok::kind_from_name(pre, &pre_)) {
      fail("%s: tokenizer.ggml.pre '%s' is not supported (supported: gpt2, smollm, llama3, qwen2 and aliases)", p,
           pre.c_str());
    }
    const bool llama3 = pre_ == pretok::Kind::llama3;
    ignore_merges_ = llama3;
    load_common(f, v_, /*default_add_bos=*/llama3, /*default_add_eos=*/false);

    const auto b2c = byte_to_codepoint_table();
    for (int b = 0; b < 256; ++b) {
      std::string s;
      unicode::append_utf8(s, b2c[b]);
      byte_str_[b] = s;
      cp_to_byte_[b2c[b]] = static_cast<uint8_t>(b);
      cp_is_byte_[b2c[b]] = 1;
    }

    const gguf::Value* mv = f.find("tokenizer.ggml.merges");
    if (!mv) fail("%s: tokenizer.ggml.merges is missing (a gpt2 tokenizer needs its merges)", p);
    if (mv->type != gguf::ValueType::ARRAY || (mv->elem_type != gguf::ValueType::STRING && !mv->items.empty()))
      fail("%s: tokenizer.ggml.merges must be an array of strings", p);
    merges_.reserve(mv->items.size() * 2);
    for (size_t i = 0; i < mv->items.size(); ++i) {
      const std::string& m = mv->items[i].s;
      // "left right"; the separator is the first space after the first character.
      const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
      if (sp == std::string::npos)
        fail("%s: tokenizer.ggml.merges[%zu] '%s' is not two tokens separated by a space", p, i, m.c_str());
      const std::string_view l(m.data(), sp), r(m.data() + sp + 1, m.size() - sp - 1);
      const int32_t a = symbol_id(l), b = symbol_id(r);
      std::string joined(l);
      joined += r;
      const int32_t c = symbol_id(joined);
      merges_.try_emplace(key(a, b), Merge{static_cast<int32_t>(i), c});
    }
    for (int b = 0; b < 256; ++b) byte_sym_[b] = find_symbol(byte_str_[b]);
  }

  std::vector<TokenId> encode(std::string_view text, bool add_special, bool parse_special) const override {
    std::vector<TokenId> out;
    if (add_special && v_.add_bos) out.push_back(v_.bos);
    for (const Fragment& fr : v_.partition(text, parse_special)) {
      if (fr.token >= 0) {
        out.push_back(fr.token);
      } else {
        encode_text(text.substr(fr.offset, fr.length), out);
      }
    }
    if (add_special && v_.add_eos) out.push_back(v_.eos);
    return out;
  }

  std::string token_to_piece(TokenId id, bool render_special) const override {
    v_.check_id(id);
    const std::string& t = v_.tokens[id];
    switch (v_.types[id]) {
      case kControl:
      case kUnknown:
        return render_special ? t : std::string();
      case kUserDefined:
        return t;
      case kNormal:
      case kByte: {
        std::string out;
        for (uint32_t cp : unicode::decode_utf8(t)) {
          if (cp < cp_is_byte_.size() && cp_is_byte_[cp]) {
            out += static_cast<char>(cp_to_byte_[cp]);
          } else {
            unicode::append_utf8(out, cp);  // not from the byte mapping: keep it as it is
          }
        }
        return out;
      }
      default:
        return std::string();
    }
  }

 private:
  static uint64_t key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  // Id of a symbol text: its token id, or an id past the vocabulary for texts only merges know.
  int32_t symbol_id(std::string_view s) {
    const int32_t id = find_symbol(s);
    if (id >= 0) return id;
    const int32_t extra = v_.size() + static_cast<int32_t>(extra_.size());
    extra_.emplace(std::string(s), extra);
    return extra;
  }
  int32_t find_symbol(std::string_view s) const {
    const TokenId id = v_.find(s);
    if (id >= 0) return id;
    auto it = extra_.find(s);
    return it == extra_.end() ? -1 : it->second;
  }

  void encode_text(std::string_view text, std::vector<TokenId>& out) const {
    const std::vector<uint32_t> cps = unicode::decode_utf8(text);
    std::string word;
    for (const auto& [b, e] : pretok::split(pre_, cps)) {
      word.clear();
      for (size_t i = b; i < e; ++i) unicode::append_utf8(word, cps[i]);
      encode_word(word, out);
    }
  }

  struct Symbol {
    int32_t id;      // symbol id (-1: a byte no merge or token knows)
    uint32_t start;  // bytes of the word
    uint32_t n;      // 0 once merged into its left neighbour
    int32_t prev, next;
  };
  struct Bigram {
    int32_t rank;
    int32_t result;
    int32_t left, right;
    uint32_t size;  // bytes of both symbols when queued, to drop stale entries
    bool operator<(const Bigram& o) const {  // priority_queue pops the largest: lowest rank, leftmost
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };

  // One pre-tokenized word, as raw bytes.
  void encode_word(const std::string& word, std::vector<TokenId>& out) const {
    if (ignore_merges_) {
      std::string mapped;
      for (unsigned char ch : word) mapped += byte_str_[ch];
      const TokenId id = v_.find(mapped);
      if (id >= 0) {
        out.push_back(id);
        return;
      }
    }
    const size_t n = word.size();
    std::vector<Symbol> sym(n);
    for (size_t i = 0; i < n; ++i) {
      sym[i] = Symbol{byte_sym_[static_cast<unsigned char>(word[i])], static_cast<uint32_t>(i), 1,
                      static_cast<int32_t>(i) - 1, i + 1 < n ? static_cast<int32_t>(i + 1) : -1};
    }
    std::priority_queue<Bigram> queue;
    auto add = [&](int32_t l, int32_t r) {
      if (l < 0 || r < 0 || sym[l].id < 0 || sym[r].id < 0) return;
      auto it = merges_.find(key(sym[l].id, sym[r].id));
      if (it == merges_.end()) return;
      queue.push(Bigram{it->second.rank, it->second.result, l, r, sym[l].n + sym[r].n});
    };
    for (size_t i = 1; i < n; ++i) add(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));
    while (!queue.empty()) {
      const Bigram bg = queue.top();
      queue.pop();
      Symbol& l = sym[bg.left];
      Symbol& r = sym[bg.right];
      if (l.n == 0 || r.n == 0 || l.n + r.n != bg.size) continue;
      l.id = bg.result;
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) sym[r.next].prev = bg.left;
      add(l.prev, bg.left);
      add(bg.left, l.next);
    }
    for (int32_t i = 0; i >= 0 && static_cast<size_t>(i) < n; i = sym[i].next) {
      const Symbol& s = sym[i];
      if (s.id >= 0 && s.id < v_.size()) {
        out.push_back(s.id);
        continue;
      }
      // Not a token: each byte of its mapped text that is a token by itself (llama.cpp's fallback).
      std::string mapped;
      for (uint32_t k = 0; k < s.n; ++k) mapped += byte_str_[static_cast<unsigned char>(word[s.start + k])];
      for (char ch : mapped) {
        const TokenId id = v_.find(std::string_view(&ch, 1));
        if (id >= 0) out.push_back(id);
      }
    }
  }

  pretok::Kind pre_ = pretok::Kind::gpt2;
  bool ignore_merges_ = false;
  std::array<std::string, 256> byte_str_;     // byte -> its mapped code point, UTF-8
  std::array<int32_t, 256> byte_sym_{};       // byte -> symbol id of byte_str_
  std::array<uint8_t, 324> cp_to_byte_{};     // mapped code point -> byte
  std::array<uint8_t, 324> cp_is_byte_{};
  TokenIndex extra_;                          // merge texts that are not tokens -> ids past the vocabulary
  std::unordered_map<uint64_t, Merge> merges_;  // (left id, right id) -> rank, result
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe(const gguf::File& file) { return std::make_unique<BpeTokenizer>(file); }

std::string byte_token_text(uint8_t b) {
  static const std::array<uint32_t, 256> table = byte_to_codepoint_table();
  std::string s;
  unicode::append_utf8(s, table[b]);
  return s;
}

}  // namespace tokenscope::tok

namespace tokenscope {
std::string gpt2_byte_token(uint8_t b) { return tok::byte_token_text(b); }
}  // namespace tokenscope
