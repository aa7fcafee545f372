// Tokenizers: llama.cpp's token ids on the real SmolLM2 (byte-level BPE) and Gemma 3 (SentencePiece)
// vocabularies, round trips, pieces, special tokens, end of generation, chat templates and bad metadata.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/error.h"
#include "gguf/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

using namespace tokenscope;
using tokenscope::testing::data_path;
using tokenscope::testing::model_path;
using tokenscope::testing::temp_path;
using tokenscope::testing::kSmolLM2;

namespace {

const char* const kGemma3 = "gemma-3-270m-q4_k_m.gguf";

struct Loaded {
  std::unique_ptr<gguf::File> file;
  std::unique_ptr<Tokenizer> tok;
};

// Loads a fetched model's tokenizer once per process; fails the test (CI fetches the models) when absent.
const Loaded* load_model(const char* name) {
  static std::map<std::string, Loaded> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return &it->second;
  const std::string p = model_path(name);
  if (p.empty()) return nullptr;
  Loaded l;
  l.file = gguf::File::open(p);
  l.tok = Tokenizer::from_gguf(*l.file);
  return &cache.emplace(name, std::move(l)).first->second;
}

#define REQUIRE_MODEL(var, name)                                                                 \
  const Loaded* var = load_model(name);                                                          \
  if (!var) {                                                                                    \
    GTEST_FAIL() << "model " << name << " not found in " << tokenscope::testing::models_dir()    \
                 << "; run scripts/fetch-models.sh all";                                         \
  }

struct Case {
  std::string text;
  bool add_special, parse_special;
  std::vector<TokenId> ids;
};

std::vector<Case> load_cases(const std::string& file) {
  const std::string s = tokenscope::testing::read_file(data_path(file));
  if (s.empty()) ADD_FAILURE() << "missing test data " << data_path(file);
  std::vector<Case> out;
  if (s.empty()) return out;
  for (const auto& j : nlohmann::json::parse(s)) {
    out.push_back(Case{j.at("text").get<std::string>(), j.at("add_special").get<bool>(),
                       j.at("parse_special").get<bool>(), j.at("ids").get<std::vector<TokenId>>()});
  }
  return out;
}

std::string show(const std::vector<TokenId>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + "]";
}

void expect_reference(const Tokenizer& tok, const std::string& data_file, size_t min_cases) {
  const std::vector<Case> cases = load_cases(data_file);
  EXPECT_GE(cases.size(), min_cases);
  size_t mismatches = 0;
  for (const Case& c : cases) {
    const std::vector<TokenId> got = tok.encode(c.text, c.add_special, c.parse_special);
    if (got != c.ids) {
      ++mismatches;
      ADD_FAILURE() << data_file << ": text " << nlohmann::json(c.text).dump() << " add_special " << c.add_special
                    << " parse_special " << c.parse_special << "\n  llama.cpp: " << show(c.ids)
                    << "\n  ours:      " << show(got);
    }
  }
  EXPECT_EQ(mismatches, 0u) << "of " << cases.size() << " cases";
}

}  // namespace

// ---- llama.cpp reference ids ------------------------------------------------------------------

TEST(TokenizerReference, SmolLM2MatchesLlamaCpp) {
  REQUIRE_MODEL(m, kSmolLM2);
  expect_reference(*m->tok, "smollm2_tokenize.json", 80);
}

TEST(TokenizerReference, Gemma3MatchesLlamaCpp) {
  REQUIRE_MODEL(m, kGemma3);
  expect_reference(*m->tok, "gemma3_tokenize.json", 80);
}

// ---- round trips and pieces ---------------------------------------------------------------------

TEST(TokenizerBpe, DecodeEncodeRoundTrips) {
  REQUIRE_MODEL(m, kSmolLM2);
  // SmolLM2's vocabulary has no token for the control bytes 0x04 0x06 0x13 0x14 0x16 0x1D: like
  // llama.cpp, encoding drops them, so texts with them cannot come back.
  const std::string lost("\x04\x06\x13\x14\x16\x1d", 6);
  size_t checked = 0;
  for (const Case& c : load_cases("smollm2_tokenize.json")) {
    if (c.text.find_first_of(lost) != std::string::npos) continue;
    ++checked;
    EXPECT_EQ(m->tok->decode(m->tok->encode(c.text, false, false)), c.text);
    // With special tokens parsed and rendered, the text comes back too.
    EXPECT_EQ(m->tok->decode(m->tok->encode(c.text, true, true), true), c.text);
  }
  EXPECT_GE(checked, 100u);
  // Every other byte on its own comes back, except the ones that are not UTF-8: as in llama.cpp,
  // malformed input is first replaced by U+FFFD (token 24211 "�").
  for (int b = 0; b < 0x80; ++b) {
    const std::string s(1, static_cast<char>(b));
    if (lost.find(s) != std::string::npos) {
      EXPECT_TRUE(m->tok->encode(s, false, false).empty()) << "byte " << b;
    } else {
      EXPECT_EQ(m->tok->decode(m->tok->encode(s, false, false)), s) << "byte " << b;
    }
  }
  for (int b = 0x80; b < 0x100; ++b)
    EXPECT_EQ(m->tok->encode(std::string(1, static_cast<char>(b)), false, false), (std::vector<TokenId>{24211}));
  EXPECT_EQ(m->tok->decode(m->tok->encode("a\xff" "b", false, false)), "a\xEF\xBF\xBD" "b");
}

TEST(TokenizerSpm, DecodeEncodeRoundTrips) {
  REQUIRE_MODEL(m, kGemma3);
  for (const Case& c : load_cases("gemma3_tokenize.json")) {
    EXPECT_EQ(m->tok->decode(m->tok->encode(c.text, false, false)), c.text);
  }
}

TEST(TokenizerBpe, BasicsAndPieces) {
  REQUIRE_MODEL(m, kSmolLM2);
  const Tokenizer& t = *m->tok;
  EXPECT_EQ(t.n_vocab(), 49152);
  EXPECT_EQ(t.bos(), 1);
  EXPECT_EQ(t.eos(), 2);
  // Byte-level tokens: GPT-2's mapping turns "Ġ" into a space and "Ċ" into a newline.
  ASSERT_TRUE(t.find_token("\xC4\xA0").has_value());  // "Ġ"
  EXPECT_EQ(t.token_to_piece(*t.find_token("\xC4\xA0")), " ");
  ASSERT_TRUE(t.find_token("\xC4\x8A").has_value());  // "Ċ"
  EXPECT_EQ(t.token_to_piece(*t.find_token("\xC4\x8A")), "\n");
  ASSERT_TRUE(t.find_token("\xC4\x89").has_value());  // "ĉ" = tab
  EXPECT_EQ(t.token_to_piece(*t.find_token("\xC4\x89")), "\t");
  // A token made of raw UTF-8 bytes: "Ã©" is the two bytes of "é".
  ASSERT_TRUE(t.find_token("\xC3\x83\xC2\xA9").has_value());
  EXPECT_EQ(t.token_to_piece(*t.find_token("\xC3\x83\xC2\xA9")), "\xC3\xA9");
  EXPECT_EQ(t.token_to_piece(*t.find_token("\xC4\xA0the")), " the");
  // Control tokens are invisible unless rendered.
  EXPECT_EQ(t.token_to_piece(1), "");
  EXPECT_EQ(t.token_to_piece(1, true), "<|im_start|>");
  EXPECT_EQ(t.token_text(1), "<|im_start|>");
  EXPECT_THROW(t.token_to_piece(49152), Error);
  EXPECT_THROW(t.token_to_piece(-1), Error);
}

TEST(TokenizerSpm, BasicsAndPieces) {
  REQUIRE_MODEL(m, kGemma3);
  const Tokenizer& t = *m->tok;
  EXPECT_EQ(t.n_vocab(), 262144);
  EXPECT_EQ(t.bos(), 2);
  EXPECT_EQ(t.eos(), 1);
  // Byte tokens give their byte.
  ASSERT_TRUE(t.find_token("<0x0A>").has_value());
  EXPECT_EQ(t.token_to_piece(*t.find_token("<0x0A>")), "\n");
  ASSERT_TRUE(t.find_token("<0xE2>").has_value());
  EXPECT_EQ(t.token_to_piece(*t.find_token("<0xE2>")), "\xE2");
  EXPECT_EQ(t.token_to_piece(*t.find_token("<0x41>")), "A");
  // U+2581 is a space.
  ASSERT_TRUE(t.find_token("\xE2\x96\x81the").has_value());
  EXPECT_EQ(t.token_to_piece(*t.find_token("\xE2\x96\x81the")), " the");
  // Control tokens.
  EXPECT_EQ(t.token_to_piece(2), "");
  EXPECT_EQ(t.token_to_piece(2, true), "<bos>");
  EXPECT_EQ(t.token_to_piece(106, true), "<end_of_turn>");
  // BOS is added (add_bos_token true), EOS is not.
  const std::vector<TokenId> ids = t.encode("Hi", true, false);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), 2);
  EXPECT_NE(ids.back(), 1);
  // A character the vocabulary lacks is spelled with byte tokens: U+10FFFD (private use, plane 16).
  const std::vector<TokenId> pua = t.encode("\xF4\x8F\xBF\xBD", false, false);
  ASSERT_EQ(pua.size(), 4u);
  EXPECT_EQ(pua[0], *t.find_token("<0xF4>"));
  EXPECT_EQ(pua[1], *t.find_token("<0x8F>"));
  EXPECT_EQ(pua[2], *t.find_token("<0xBF>"));
  EXPECT_EQ(pua[3], *t.find_token("<0xBD>"));
  EXPECT_EQ(t.decode(pua), "\xF4\x8F\xBF\xBD");
}

// ---- special tokens and end of generation --------------------------------------------------------

TEST(TokenizerSpecial, ParsedOnlyWhenAsked) {
  REQUIRE_MODEL(m, kSmolLM2);
  const Tokenizer& t = *m->tok;
  const std::string text = "<|im_start|>user\nhi<|im_end|>";
  const std::vector<TokenId> parsed = t.encode(text, false, true);
  ASSERT_GE(parsed.size(), 3u);
  EXPECT_EQ(parsed.front(), 1);
  EXPECT_EQ(parsed.back(), 2);
  const std::vector<TokenId> plain = t.encode(text, false, false);
  for (TokenId id : plain) {
    EXPECT_NE(id, 1);
    EXPECT_NE(id, 2);
  }
  EXPECT_GT(plain.size(), parsed.size());
  EXPECT_EQ(t.decode(plain), text);
  // Adjacent special tokens, and the longest one wins where two overlap.
  EXPECT_EQ(t.encode("<|im_end|><|im_start|>", false, true), (std::vector<TokenId>{2, 1}));
  EXPECT_EQ(t.encode("<|endoftext|>", false, true), (std::vector<TokenId>{0}));
}

TEST(TokenizerSpecial, GemmaTurnsAndUserDefinedTokens) {
  REQUIRE_MODEL(m, kGemma3);
  const Tokenizer& t = *m->tok;
  const std::vector<TokenId> ids = t.encode("<start_of_turn>user\nhi<end_of_turn>\n", true, true);
  ASSERT_GE(ids.size(), 5u);
  EXPECT_EQ(ids[0], 2);
  EXPECT_EQ(ids[1], 105);
  // "\n" is a user-defined token (107): matched in raw text even when special tokens are not parsed.
  EXPECT_EQ(ids.back(), 107);
  EXPECT_EQ(t.encode("\n", false, false), (std::vector<TokenId>{107}));
  for (TokenId id : t.encode("<start_of_turn>", false, false)) EXPECT_NE(id, 105);
}

TEST(TokenizerSpecial, EndOfGeneration) {
  REQUIRE_MODEL(s, kSmolLM2);
  EXPECT_TRUE(s->tok->is_eog(2));   // <|im_end|>, the EOS
  EXPECT_TRUE(s->tok->is_eog(0));   // <|endoftext|>
  EXPECT_FALSE(s->tok->is_eog(1));  // <|im_start|>
  EXPECT_FALSE(s->tok->is_eog(*s->tok->find_token("Hello")));
  EXPECT_FALSE(s->tok->is_eog(-1));
  EXPECT_FALSE(s->tok->is_eog(1 << 20));
  REQUIRE_MODEL(g, kGemma3);
  EXPECT_TRUE(g->tok->is_eog(1));    // <eos>
  EXPECT_TRUE(g->tok->is_eog(106));  // <end_of_turn>
  EXPECT_FALSE(g->tok->is_eog(105));
  EXPECT_FALSE(g->tok->is_eog(2));
}

// ---- chat templates ---------------------------------------------------------------------------------

TEST(ChatTemplate, ChatML) {
  const std::vector<ChatMessage> msgs = {{"user", "Hi!"}, {"assistant", "Hello."}, {"user", "Bye"}};
  EXPECT_EQ(render_chat(ChatFormat::chatml, msgs, true),
            "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n"
            "<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(render_chat(ChatFormat::chatml, {{"user", "x"}}, false, "Be brief."),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nx<|im_end|>\n");
  // An explicit system message replaces the default one.
  EXPECT_EQ(render_chat(ChatFormat::chatml, {{"system", "S"}, {"user", "x"}}, true, "Be brief."),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, Llama3) {
  const std::vector<ChatMessage> msgs = {{"system", "You are terse."}, {"user", " Hi! \n"}};
  EXPECT_EQ(render_chat(ChatFormat::llama3, msgs, true),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render_chat(ChatFormat::llama3, {{"user", "a"}, {"assistant", "b"}}, false),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\na<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nb<|eot_id|>");
}

TEST(ChatTemplate, Gemma) {
  const std::vector<ChatMessage> msgs = {
      {"system", "You are terse."}, {"user", "Hi!"}, {"assistant", "Hello."}, {"user", "Bye"}};
  EXPECT_EQ(render_chat(ChatFormat::gemma, msgs, true),
            "<start_of_turn>user\nYou are terse.\n\nHi!<end_of_turn>\n"
            "<start_of_turn>model\nHello.<end_of_turn>\n"
            "<start_of_turn>user\nBye<end_of_turn>\n"
            "<start_of_turn>model\n");
  EXPECT_EQ(render_chat(ChatFormat::gemma, {{"user", "x"}}, false), "<start_of_turn>user\nx<end_of_turn>\n");
}

TEST(ChatTemplate, Names) {
  for (ChatFormat f : {ChatFormat::chatml, ChatFormat::llama3, ChatFormat::gemma})
    EXPECT_EQ(chat_format_from_name(chat_format_name(f)), f);
  EXPECT_FALSE(chat_format_from_name("vicuna").has_value());
}

TEST(ChatTemplate, DetectsFormats) {
  REQUIRE_MODEL(m, kSmolLM2);
  const std::optional<std::string> smol = m->file->opt_string("tokenizer.chat_template");
  ASSERT_TRUE(smol.has_value());
  EXPECT_EQ(detect_chat_format(*smol), ChatFormat::chatml);
  // The Gemma 3 270m GGUF carries no chat template; this is the shape of Gemma 3's (abridged).
  const std::string gemma =
      "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}{%- set first_user_prefix = "
      "messages[0]['content'] + '\\n\\n' -%}{%- endif -%}{%- for message in loop_messages -%}"
      "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}"
      "{{ message['content'] | trim }}{{ '<end_of_turn>\\n' }}{%- endfor -%}"
      "{%- if add_generation_prompt -%}{{'<start_of_turn>model\\n'}}{%- endif -%}";
  EXPECT_EQ(detect_chat_format(gemma), ChatFormat::gemma);
  const std::string llama3 =
      "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
      "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
      "'<|eot_id|>' %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
      "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";
  EXPECT_EQ(detect_chat_format(llama3), ChatFormat::llama3);
  EXPECT_FALSE(detect_chat_format("{{ messages }}").has_value());
  EXPECT_FALSE(detect_chat_format("").has_value());
}

TEST(ChatTemplate, SmolLM2PromptTokenizes) {
  REQUIRE_MODEL(m, kSmolLM2);
  const std::string prompt = render_chat(ChatFormat::chatml, {{"user", "hi"}}, true);
  const std::vector<TokenId> ids = m->tok->encode(prompt, true, true);
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(ids.front(), 1);  // <|im_start|>, no BOS for SmolLM2
  EXPECT_EQ(m->tok->decode(ids, true), prompt);
}

// ---- bad metadata ---------------------------------------------------------------------------------

namespace {

// A small gpt2 vocabulary: the 256 byte tokens, two merges, one control token.
gguf::Writer tiny_bpe_writer() {
  gguf::Writer w;
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  // GPT-2's byte mapping, written out independently of the implementation.
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    const int cp = printable ? b : 256 + extra++;
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    tokens.push_back(s);
    types.push_back(1);
  }
  tokens.push_back("he");
  types.push_back(1);
  tokens.push_back("hel");
  types.push_back(1);
  tokens.push_back("<|endoftext|>");
  types.push_back(3);
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", "gpt2");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_string_array("tokenizer.ggml.merges", {"h e", "he l"});
  w.set_u32("tokenizer.ggml.eos_token_id", 258);
  return w;
}

std::unique_ptr<Tokenizer> open_tokenizer(const gguf::Writer& w, const std::string& name,
                                          std::unique_ptr<gguf::File>& file) {
  const std::string path = temp_path(name);
  w.write(path);
  file = gguf::File::open(path);
  return Tokenizer::from_gguf(*file);
}

void expect_tokenizer_error(const gguf::Writer& w, const std::vector<std::string>& fragments) {
  std::unique_ptr<gguf::File> file;
  try {
    open_tokenizer(w, "bad-tokenizer.gguf", file);
    ADD_FAILURE() << "no error; expected one mentioning " << fragments[0];
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("bad-tokenizer.gguf"), std::string::npos) << "message does not name the file: " << msg;
    for (const auto& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
  }
}

}  // namespace

TEST(TokenizerSynthetic, TinyBpeMerges) {
  std::unique_ptr<gguf::File> file;
  auto t = open_tokenizer(tiny_bpe_writer(), "tiny-bpe.gguf", file);
  EXPECT_EQ(t->n_vocab(), 259);
  EXPECT_EQ(t->bos(), -1);
  EXPECT_EQ(t->eos(), 258);
  EXPECT_TRUE(t->is_eog(258));
  // "hello": h+e -> he, he+l -> hel, then l, o bytes.
  EXPECT_EQ(t->encode("hello", true, false), (std::vector<TokenId>{257, 'l', 'o'}));
  EXPECT_EQ(t->decode(t->encode("hello there", false, false)), "hello there");
  EXPECT_EQ(t->encode("<|endoftext|>", false, true), (std::vector<TokenId>{258}));
}

// A SentencePiece vocabulary with a space prefix (Llama 2 style): ids 0..2 <unk> <s> </s>, 3..258 the
// byte tokens, then scored pieces.
gguf::Writer tiny_spm_writer(bool add_space_prefix) {
  gguf::Writer w;
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {2, 3, 3};
  std::vector<float> scores = {0, 0, 0};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    tokens.push_back(name);
    types.push_back(6);
    scores.push_back(0);
  }
  const std::vector<std::pair<std::string, float>> pieces = {
      {"\xE2\x96\x81", -10}, {"h", -20}, {"e", -20}, {"l", -20}, {"o", -20},
      {"\xE2\x96\x81h", -5}, {"\xE2\x96\x81he", -4}, {"\xE2\x96\x81hel", -3}, {"\xE2\x96\x81hell", -2},
      {"\xE2\x96\x81hello", -1}, {"lo", -6}, {"ll", -7}};
  for (const auto& [t, sc] : pieces) {
    tokens.push_back(t);
    types.push_back(1);
    scores.push_back(sc);
  }
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_f32_array("tokenizer.ggml.scores", scores);
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);
  w.set_bool("tokenizer.ggml.add_space_prefix", add_space_prefix);
  return w;
}

TEST(TokenizerSynthetic, SpmMergesBestScoreFirst) {
  std::unique_ptr<gguf::File> file;
  auto t = open_tokenizer(tiny_spm_writer(true), "tiny-spm.gguf", file);
  const TokenId hello = *t->find_token("\xE2\x96\x81hello");
  const TokenId he = *t->find_token("\xE2\x96\x81he");
  // "▁hello": ▁h, ▁he, ▁hel, ▁hell, ▁hello win over the competing "ll" and "lo" merges.
  EXPECT_EQ(t->encode("hello", true, false), (std::vector<TokenId>{1, hello}));  // BOS by default
  EXPECT_EQ(t->decode(t->encode("hello", false, false)), " hello");
  // "x" is not a piece: it is spelled as its byte. Inside "llo", "lo" (-6) beats "ll" (-7).
  EXPECT_EQ(t->encode("hex", false, false), (std::vector<TokenId>{he, *t->find_token("<0x78>")}));
  EXPECT_EQ(t->encode("hexllo", false, false),
            (std::vector<TokenId>{he, *t->find_token("<0x78>"), *t->find_token("l"), *t->find_token("lo")}));
  // The space prefix goes at the start and after each special token, not before plain text elsewhere.
  EXPECT_EQ(t->encode("hello</s>hello", false, true), (std::vector<TokenId>{hello, 2, hello}));
  EXPECT_EQ(t->encode("</s>", false, true), (std::vector<TokenId>{2}));
  // Without the prefix "hello" has no "▁": h e + "llo" -> h e l lo.
  auto t2 = open_tokenizer(tiny_spm_writer(false), "tiny-spm2.gguf", file);
  EXPECT_EQ(t2->encode("hello", false, false),
            (std::vector<TokenId>{*t2->find_token("h"), *t2->find_token("e"), *t2->find_token("l"), *t2->find_token("lo")}));
  EXPECT_EQ(t2->token_to_piece(0), "");
  EXPECT_EQ(t2->token_to_piece(0, true), "<unk>");
}

TEST(TokenizerSynthetic, Llama3IgnoresMergesForWholeWordsAndAddsBos) {
  gguf::Writer w = tiny_bpe_writer();
  w.set_string("tokenizer.ggml.pre", "llama-bpe");
  std::vector<std::string> tokens;
  std::unique_ptr<gguf::File> file;
  auto base = open_tokenizer(tiny_bpe_writer(), "tiny-bpe-base.gguf", file);
  for (TokenId i = 0; i < base->n_vocab(); ++i) tokens.push_back(base->token_text(i));
  tokens.push_back("hello");  // a word no merge sequence builds
  std::vector<int32_t> types(tokens.size(), 1);
  types[258] = 3;
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_u32("tokenizer.ggml.bos_token_id", 258);
  auto t = open_tokenizer(w, "tiny-bpe-llama3.gguf", file);
  // llama3 vocabularies add BOS unless told otherwise, and take a whole word that is a token as is.
  EXPECT_EQ(t->encode("hello", true, false), (std::vector<TokenId>{258, 259}));
  // " hello" is not a token: merges apply (Ġ, hel, l, o).
  EXPECT_EQ(t->encode(" hello", false, false), (std::vector<TokenId>{*t->find_token("\xC4\xA0"), 257, 'l', 'o'}));
}

TEST(TokenizerErrors, MissingTokens) {
  gguf::Writer w;
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string_array("tokenizer.ggml.merges", {});
  expect_tokenizer_error(w, {"tokenizer.ggml.tokens"});
}

TEST(TokenizerErrors, UnknownModel) {
  gguf::Writer w = tiny_bpe_writer();
  w.set_string("tokenizer.ggml.model", "wordpiece-xl");
  expect_tokenizer_error(w, {"tokenizer.ggml.model", "wordpiece-xl"});
}

TEST(TokenizerErrors, MissingModel) {
  gguf::Writer w;
  w.set_string_array("tokenizer.ggml.tokens", {"a"});
  expect_tokenizer_error(w, {"tokenizer.ggml.model"});
}

TEST(TokenizerErrors, MissingMerges) {
  gguf::Writer w;
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", "gpt2");
  w.set_string_array("tokenizer.ggml.tokens", {"a", "b"});
  expect_tokenizer_error(w, {"tokenizer.ggml.merges"});
}

TEST(TokenizerErrors, UnknownPreTokenizer) {
  gguf::Writer w = tiny_bpe_writer();
  w.set_string("tokenizer.ggml.pre", "klingon");
  expect_tokenizer_error(w, {"tokenizer.ggml.pre", "klingon"});
}

TEST(TokenizerErrors, BadTokenTypesAndIds) {
  {
    gguf::Writer w = tiny_bpe_writer();
    w.set_i32_array("tokenizer.ggml.token_type", {1, 1});
    expect_tokenizer_error(w, {"tokenizer.ggml.token_type"});
  }
  {
    gguf::Writer w = tiny_bpe_writer();
    w.set_u32("tokenizer.ggml.eos_token_id", 999);
    expect_tokenizer_error(w, {"tokenizer.ggml.eos_token_id", "999"});
  }
  {
    gguf::Writer w = tiny_bpe_writer();
    w.set_string_array("tokenizer.ggml.merges", {"he"});
    expect_tokenizer_error(w, {"tokenizer.ggml.merges"});
  }
}

TEST(TokenizerErrors, SpmWithoutScores) {
  gguf::Writer w;
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a"});
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  expect_tokenizer_error(w, {"tokenizer.ggml.scores"});
}
