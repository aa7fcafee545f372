// BPE pre-tokenizers against the regexes they implement, as Python's `regex` module applies them
// (tests/data/pretokenize_splits.json), and the generated Unicode classes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_util.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/unicode.h"

using namespace tokenscope;
using tokenscope::testing::data_path;

namespace {

std::vector<std::string> split_words(pretok::Kind kind, const std::string& text) {
  const std::vector<uint32_t> cps = unicode::decode_utf8(text);
  std::vector<std::string> out;
  for (const auto& [b, e] : pretok::split(kind, cps)) {
    std::string w;
    for (size_t i = b; i < e; ++i) unicode::append_utf8(w, cps[i]);
    out.push_back(w);
  }
  return out;
}

}  // namespace

TEST(Pretokenize, MatchesRegexModule) {
  const std::string s = tokenscope::testing::read_file(data_path("pretokenize_splits.json"));
  ASSERT_FALSE(s.empty()) << "missing " << data_path("pretokenize_splits.json");
  const auto cases = nlohmann::json::parse(s);
  EXPECT_GE(cases.size(), 60u);
  for (const auto& c : cases) {
    const std::string text = c.at("text").get<std::string>();
    for (pretok::Kind k : {pretok::Kind::gpt2, pretok::Kind::smollm, pretok::Kind::llama3, pretok::Kind::qwen2}) {
      const auto want = c.at(pretok::kind_name(k)).get<std::vector<std::string>>();
      EXPECT_EQ(split_words(k, text), want) << pretok::kind_name(k) << " on " << nlohmann::json(text).dump();
    }
  }
}

TEST(Pretokenize, WhitespaceRunBeforeAWord) {
  // "\s+(?!\S)" leaves the last space of a run to the following word.
  EXPECT_EQ(split_words(pretok::Kind::gpt2, "a   b"), (std::vector<std::string>{"a", "  ", " b"}));
  // ...but a run that ends the text is one word.
  EXPECT_EQ(split_words(pretok::Kind::gpt2, "a   "), (std::vector<std::string>{"a", "   "}));
  // smollm splits digits first, so the run before a digit ends its piece and stays whole.
  EXPECT_EQ(split_words(pretok::Kind::smollm, "x  12"), (std::vector<std::string>{"x", "  ", "1", "2"}));
  EXPECT_EQ(split_words(pretok::Kind::llama3, "x  1234"), (std::vector<std::string>{"x", " ", " ", "123", "4"}));
  EXPECT_TRUE(split_words(pretok::Kind::llama3, "").empty());
}

TEST(Pretokenize, Names) {
  pretok::Kind k;
  ASSERT_TRUE(pretok::kind_from_name("smollm", &k));
  EXPECT_EQ(k, pretok::Kind::smollm);
  ASSERT_TRUE(pretok::kind_from_name("llama-bpe", &k));
  EXPECT_EQ(k, pretok::Kind::llama3);
  ASSERT_TRUE(pretok::kind_from_name("qwen2", &k));
  EXPECT_EQ(k, pretok::Kind::qwen2);
  EXPECT_FALSE(pretok::kind_from_name("nonsense", &k));
}

TEST(Unicode, Classes) {
  EXPECT_TRUE(unicode::is_letter('a'));
  EXPECT_TRUE(unicode::is_letter(0x00E9));   // é
  EXPECT_TRUE(unicode::is_letter(0x4E2D));   // 中
  EXPECT_TRUE(unicode::is_letter(0x1D400));  // mathematical bold A
  EXPECT_FALSE(unicode::is_letter('1'));
  EXPECT_FALSE(unicode::is_letter(0x0301));  // combining acute: a mark, not a letter
  EXPECT_TRUE(unicode::is_number('7'));
  EXPECT_TRUE(unicode::is_number(0x0663));  // Arabic-Indic three
  EXPECT_TRUE(unicode::is_number(0x00BD));  // ½
  EXPECT_TRUE(unicode::is_number(0x216B));  // Roman numeral twelve
  for (uint32_t cp : {0x09u, 0x0Au, 0x0Bu, 0x0Cu, 0x0Du, 0x20u, 0x85u, 0xA0u, 0x1680u, 0x2000u, 0x200Au, 0x2028u,
                      0x2029u, 0x202Fu, 0x205Fu, 0x3000u})
    EXPECT_TRUE(unicode::is_whitespace(cp)) << cp;
  // Not White_Space: the information separators (str.isspace() says yes), zero-width space, BOM.
  for (uint32_t cp : {0x1Cu, 0x1Du, 0x1Eu, 0x1Fu, 0x200Bu, 0xFEFFu, 0x180Eu}) EXPECT_FALSE(unicode::is_whitespace(cp)) << cp;
  EXPECT_EQ(unicode::flags(0x10FFFF), 0);
  EXPECT_EQ(unicode::flags(0x110000), 0);
}

TEST(Unicode, DecodeLikeLlamaCpp) {
  EXPECT_EQ(unicode::decode_utf8("a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x8D\x95"),
            (std::vector<uint32_t>{'a', 0xE9, 0x4E2D, 0x1F355}));
  // A malformed byte becomes U+FFFD and decoding resumes at the next byte.
  EXPECT_EQ(unicode::decode_utf8("\xFF" "a\xC3"), (std::vector<uint32_t>{0xFFFD, 'a', 0xFFFD}));
  EXPECT_EQ(unicode::decode_utf8("\xE4\xB8" "x"), (std::vector<uint32_t>{0xFFFD, 0xFFFD, 'x'}));
  std::string s;
  for (uint32_t cp : {0x24u, 0xA2u, 0x939u, 0x20ACu, 0x10348u}) unicode::append_utf8(s, cp);
  EXPECT_EQ(s, "\x24\xC2\xA2\xE0\xA4\xB9\xE2\x82\xAC\xF0\x90\x8D\x88");
}
