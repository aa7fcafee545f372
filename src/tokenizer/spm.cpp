// SentencePiece-style tokenizer (tokenizer.ggml.model "llama": Llama 1/2, Gemma): spaces become
// U+2581, the text starts as one symbol per UTF-8 character, and adjacent symbols are merged
// while their concatenation is a vocabulary entry, best score first (leftmost on ties). A final
// symbol that is not a token is spelled out with byte tokens <0xAB>.
#include <algorithm>
#include <array>
#include <cstdio>
#include <queue>

#include "base/error.h"
#include "gguf/gguf.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace tokenscope::tok {
namespace {

const std::string kSpace = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's space

class SpmTokenizer final : public VocabTokenizer {
 public:
  explicit SpmTokenizer(const gguf::File& f) {
    load_common(f, v_, /*default_add_bos=*/true, /*default_add_eos=*/false);
    if (v_.scores.empty())
      fail("%s: tokenizer.ggml.scores is missing (a llama/SentencePiece tokenizer needs token scores)", f.path().c_str());
    add_space_prefix_ = f.opt_bool("tokenizer.ggml.add_space_prefix").value_or(true);
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      TokenId id = v_.find(name);
      if (id < 0) {
        const char ch = static_cast<char>(b);
        id = v_.find(std::string_view(&ch, 1));
      }
      byte_tok_[b] = id;
    }
  }

  std::vector<TokenId> encode(std::string_view text, bool add_special, bool parse_special) const override {
    std::vector<TokenId> out;
    if (add_special && v_.add_bos) out.push_back(v_.bos);
    bool prev_special = true;  // the text starts as if after a special token
    std::string buf;
    for (const Fragment& fr : v_.partition(text, parse_special)) {
      if (fr.token >= 0) {
        out.push_back(fr.token);
        prev_special = true;
        continue;
      }
      buf.clear();
      if (add_space_prefix_ && prev_special) buf += kSpace;
      for (char ch : text.substr(fr.offset, fr.length)) {
        if (ch == ' ') {
          buf += kSpace;
        } else {
          buf += ch;
        }
      }
      encode_escaped(buf, out);
      prev_special = false;
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
      case kNormal: {
        std::string out;
        out.reserve(t.size());
        for (size_t i = 0; i < t.size();) {
          if (t.compare(i, kSpace.size(), kSpace) == 0) {
            out += ' ';
            i += kSpace.size();
          } else {
            out += t[i++];
          }
        }
        return out;
      }
      case kByte: {
        unsigned b = 0;
        if (t.size() == 6 && std::sscanf(t.c_str(), "<0x%2X>", &b) == 1) return std::string(1, static_cast<char>(b));
        return t;
      }
      default:
        return std::string();
    }
  }

 private:
  struct Symbol {
    uint32_t start, n;  // bytes of the text; n 0 once merged into the left neighbour
    int32_t prev, next;
  };
  struct Bigram {
    float score;
    int32_t left, right;
    uint32_t size;
    bool operator<(const Bigram& o) const {  // priority_queue pops the largest: best score, leftmost
      return score != o.score ? score < o.score : left > o.left;
    }
  };

  void encode_escaped(const std::string& text, std::vector<TokenId>& out) const {
    std::vector<Symbol> sym;
    sym.reserve(text.size());
    for (size_t off = 0; off < text.size();) {
      const size_t len = std::min(unicode::utf8_len(static_cast<uint8_t>(text[off])), text.size() - off);
      const int32_t idx = static_cast<int32_t>(sym.size());
      sym.push_back(Symbol{static_cast<uint32_t>(off), static_cast<uint32_t>(len), idx - 1,
                           off + len < text.size() ? idx + 1 : -1});
      off += len;
    }
    if (sym.empty()) return;
    std::priority_queue<Bigram> queue;
    auto add = [&](int32_t l, int32_t r) {
      if (l < 0 || r < 0) return;
      const uint32_t size = sym[l].n + sym[r].n;
      const TokenId id = v_.find(std::string_view(text).substr(sym[l].start, size));
      if (id < 0) return;
      queue.push(Bigram{v_.scores[id], l, r, size});
    };
    for (size_t i = 1; i < sym.size(); ++i) add(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));
    while (!queue.empty()) {
      const Bigram bg = queue.top();
      queue.pop();
      Symbol& l = sym[bg.left];
      Symbol& r = sym[bg.right];
      if (l.n == 0 || r.n == 0 || l.n + r.n != bg.size) continue;
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) sym[r.next].prev = bg.left;
      add(l.prev, bg.left);
      add(bg.left, l.next);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next) {
      const std::string_view piece = std::string_view(text).substr(sym[i].start, sym[i].n);
      const TokenId id = v_.find(piece);
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
      // Merges only ever form vocabulary entries, so a symbol that is not one is a single
      // character the vocabulary lacks: spell it with byte tokens.
      for (unsigned char ch : piece) {
        const TokenId b = byte_tok_[ch] >= 0 ? byte_tok_[ch] : v_.unk;
        if (b >= 0) out.push_back(b);
      }
    }
  }

  bool add_space_prefix_ = true;
  std::array<TokenId, 256> byte_tok_{};
};

}  // namespace

std::unique_ptr<Tokenizer> make_spm(const gguf::File& file) { return std::make_unique<SpmTokenizer>(file); }

}  // namespace tokenscope::tok
