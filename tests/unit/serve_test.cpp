// The server's pieces that need no model: stop strings and UTF-8 in streamed text, OpenAI request parsing and
// response shapes, Prometheus rendering.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "serve/metrics.h"
#include "serve/openai.h"
#include "serve/text_stream.h"

namespace tokenscope::serve {
namespace {

using nlohmann::json;

// Feeds text to a TextStream split at every given byte offset; returns what was released, piece by piece.
std::vector<std::string> stream_in_pieces(TextStream& ts, const std::string& text, std::vector<size_t> cuts) {
  std::vector<std::string> out;
  size_t at = 0;
  cuts.push_back(text.size());
  for (size_t c : cuts) {
    out.push_back(ts.push(std::string_view(text).substr(at, c - at)));
    at = c;
  }
  out.push_back(ts.finish());
  return out;
}

TEST(TextStream, StopStringSplitAcrossPiecesIsNeverSent) {
  // "END" arrives as "E", "N", "D": nothing of it may be released, and the text before it must be.
  const std::string text = "hello WORLD END tail";
  for (size_t a = 1; a < text.size(); ++a)
    for (size_t b = a + 1; b < text.size(); ++b) {
      TextStream ts({"END"});
      const auto pieces = stream_in_pieces(ts, text, {a, b});
      std::string all;
      for (const auto& p : pieces) all += p;
      EXPECT_EQ(all, "hello WORLD ") << "cuts " << a << "," << b;
      EXPECT_TRUE(ts.stopped());
      EXPECT_EQ(ts.text(), "hello WORLD ");
    }
}

TEST(TextStream, PartialStopIsHeldThenReleasedWhenItDiverges) {
  TextStream ts({"\nUser:"});
  EXPECT_EQ(ts.push("Answer.\nUs"), "Answer.");  // "\nUs" could start the stop string
  EXPECT_EQ(ts.push("ually"), "\nUsually");       // it did not
  EXPECT_FALSE(ts.stopped());
  EXPECT_EQ(ts.finish(), "");
  EXPECT_EQ(ts.text(), "Answer.\nUsually");
}

TEST(TextStream, EarliestOfSeveralStopsWins) {
  TextStream ts({"bb", "a"});
  EXPECT_EQ(ts.push("xxbbya"), "xx");
  EXPECT_TRUE(ts.stopped());
  EXPECT_EQ(ts.push("more"), "");
  EXPECT_EQ(ts.finish(), "");
}

TEST(TextStream, StopAtTheVeryStartGivesEmptyText) {
  TextStream ts({"<|end|>"});
  EXPECT_EQ(ts.push("<|e"), "");
  EXPECT_EQ(ts.push("nd|>after"), "");
  EXPECT_TRUE(ts.stopped());
  EXPECT_EQ(ts.text(), "");
}

TEST(TextStream, EmptyStopStringsAreIgnored) {
  TextStream ts({""});
  EXPECT_EQ(ts.push("abc"), "abc");
  EXPECT_FALSE(ts.stopped());
}

TEST(TextStream, MultiByteCharactersAreReleasedWhole) {
  // "é" (C3 A9), "€" (E2 82 AC), "😀" (F0 9F 98 80) split at every byte: every released piece is valid UTF-8
  // and the concatenation is the input.
  const std::string text = "a\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80!";
  for (size_t a = 1; a < text.size(); ++a) {
    TextStream ts;
    std::string all;
    for (const auto& p : stream_in_pieces(ts, text, {a})) {
      EXPECT_EQ(utf8_sanitize(p), p) << "piece not valid UTF-8 at cut " << a;
      all += p;
    }
    EXPECT_EQ(all, text);
  }
  // One byte at a time.
  TextStream ts;
  std::string all;
  for (char c : text) {
    const std::string p = ts.push(std::string(1, c));
    EXPECT_EQ(utf8_sanitize(p), p);
    all += p;
  }
  EXPECT_EQ(all + ts.finish(), text);
}

TEST(TextStream, InvalidBytesBecomeReplacementCharacters) {
  TextStream ts;
  std::string out = ts.push("x\xFFy\xC3");  // FF is never valid; C3 may still be completed
  EXPECT_EQ(out, "x\xEF\xBF\xBDy");
  EXPECT_EQ(ts.finish(), "\xEF\xBF\xBD");  // the stream ended inside the character
}

TEST(Utf8, CompletePrefixAndSanitize) {
  EXPECT_EQ(utf8_complete_prefix("abc"), 3u);
  EXPECT_EQ(utf8_complete_prefix("ab\xE2\x82"), 2u);
  EXPECT_EQ(utf8_complete_prefix("ab\xE2\x82\xAC"), 5u);
  EXPECT_EQ(utf8_complete_prefix("ab\xF0"), 2u);
  EXPECT_EQ(utf8_complete_prefix("ab\x82"), 3u);  // a stray continuation byte can never complete
  EXPECT_EQ(utf8_sanitize("\xE0\x80\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong
  EXPECT_EQ(utf8_sanitize("\xED\xA0\x80").substr(0, 3), "\xEF\xBF\xBD");             // surrogate
  EXPECT_EQ(utf8_sanitize("ok \xE2\x82\xAC"), "ok \xE2\x82\xAC");
}

SamplerParams defaults() {
  SamplerParams p;
  p.temperature = 0.8f;
  p.top_k = 40;
  return p;
}

// The ApiError a body raises (fails the test if none).
ApiError error_of(const std::string& body, bool chat) {
  try {
    parse_completion_request(body, chat, defaults());
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "no error for " << body;
  return ApiError(0, "", "");
}

TEST(OpenAiRequest, ParsesChatFields) {
  const auto r = parse_completion_request(
      R"({"model":"m","messages":[{"role":"system","content":"S"},{"role":"user","content":[{"type":"text","text":"A"},{"type":"text","text":"B"}]}],
          "max_tokens":7,"temperature":0,"top_p":0.5,"top_k":3,"min_p":0.1,"seed":42,"stop":"X","stream":true,
          "stream_options":{"include_usage":true}})",
      true, defaults());
  EXPECT_TRUE(r.chat);
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].content, "AB");
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.max_tokens.value_or(-1), 7);
  EXPECT_EQ(r.sampling.temperature, 0.0f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.5f);
  EXPECT_EQ(r.sampling.top_k, 3);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.1f);
  EXPECT_EQ(r.sampling.seed, 42u);
  EXPECT_EQ(r.stop, std::vector<std::string>{"X"});
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
}

TEST(OpenAiRequest, DefaultsComeFromTheServer) {
  const auto r = parse_completion_request(R"({"prompt":"hi","stop":["a","b"]})", false, defaults());
  EXPECT_EQ(r.prompt, "hi");
  EXPECT_FALSE(r.max_tokens.has_value());
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.8f);
  EXPECT_EQ(r.sampling.top_k, 40);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(r.stream);
}

TEST(OpenAiRequest, ErrorsNameTheField) {
  struct Case {
    const char* body;
    bool chat;
    const char* param;
  };
  const Case cases[] = {
      {R"({"prompt": 5})", false, "prompt"},
      {R"({"prompt": "x", "max_tokens": "ten"})", false, "max_tokens"},
      {R"({"prompt": "x", "max_tokens": -1})", false, "max_tokens"},
      {R"({"prompt": "x", "temperature": "hot"})", false, "temperature"},
      {R"({"prompt": "x", "temperature": 9})", false, "temperature"},
      {R"({"prompt": "x", "top_p": 1.5})", false, "top_p"},
      {R"({"prompt": "x", "stop": [1]})", false, "stop[0]"},
      {R"({"prompt": "x", "stream": "yes"})", false, "stream"},
      {R"({"prompt": "x", "model": 3})", false, "model"},
      {R"({"messages": "hi"})", true, "messages"},
      {R"({"messages": []})", true, "messages"},
      {R"({"messages": [{"content": "x"}]})", true, "messages[0].role"},
      {R"({"messages": [{"role": "user", "content": 7}]})", true, "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": "x"}], "n": 2})", true, "n"},
  };
  for (const Case& c : cases) {
    const ApiError e = error_of(c.body, c.chat);
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.param, c.param) << c.body << ": " << e.what();
    const json j = e.body();
    EXPECT_EQ(j["error"]["type"], "invalid_request_error");
    EXPECT_EQ(j["error"]["param"], c.param);
    EXPECT_NE(std::string(j["error"]["message"]).find(c.param), std::string::npos) << j.dump();
  }
}

TEST(OpenAiRequest, MalformedJsonIs400) {
  for (const char* body : {"", "{", "[1,2]", "null", "{\"prompt\": \"x\",}"}) {
    const ApiError e = error_of(body, false);
    EXPECT_EQ(e.status, 400) << body;
  }
}

TEST(OpenAiResponse, ShapesOfResponsesAndChunks) {
  const CompletionIds ids{"chatcmpl-1", 123, "m"};
  const json r = completion_response(ids, true, "hi", "stop", 5, 2);
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(r["choices"][0]["message"]["content"], "hi");
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(r["usage"]["prompt_tokens"], 5);
  EXPECT_EQ(r["usage"]["completion_tokens"], 2);
  EXPECT_EQ(r["usage"]["total_tokens"], 7);
  const json first = completion_chunk(ids, true, "a", true, nullptr);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  const std::string len = "length";
  const json last = completion_chunk(ids, false, "", false, &len);
  EXPECT_EQ(last["object"], "text_completion");
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
  const json u = usage_chunk(ids, true, 5, 2);
  EXPECT_TRUE(u["choices"].empty());
  EXPECT_EQ(u["usage"]["total_tokens"], 7);
  EXPECT_EQ(sse(json{{"a", 1}}), "data: {\"a\":1}\n\n");
  EXPECT_EQ(finish_reason_of("length"), "length");
  EXPECT_EQ(finish_reason_of("eos"), "stop");
  EXPECT_EQ(finish_reason_of("stop"), "stop");
}

TEST(Prometheus, HistogramBucketsAreCumulative) {
  Histogram h({0.1, 1.0});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(0.5);
  h.observe(7);
  std::string out;
  h.render(out, "x_seconds", "");
  EXPECT_NE(out.find("x_seconds_bucket{le=\"0.1\"} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_bucket{le=\"1\"} 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_bucket{le=\"+Inf\"} 4\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_count 4\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_sum 8.05"), std::string::npos) << out;
  std::string labelled;
  h.render(labelled, "y", "stage=\"decode\"");
  EXPECT_NE(labelled.find("y_bucket{stage=\"decode\",le=\"1\"} 3\n"), std::string::npos) << labelled;
  EXPECT_NE(labelled.find("y_count{stage=\"decode\"} 4\n"), std::string::npos) << labelled;
}

TEST(Prometheus, MetricsRenderEveryFamilyOnceWithHelpAndType) {
  Metrics m;
  m.set_ready(true);
  m.request(200);
  m.request(400);
  m.request(200);
  m.generation(10, 4, 3, 0.2, 0.01, 0.25, 0.001, "stop");
  m.step("decode", 3, 0.02);
  m.step("mixed", 40, 0.1);
  EngineGauges g;
  g.running = 2;
  g.kv_pages_used = 5;
  g.prefix_hits = 1;
  m.set_gauges(g);
  const std::string out = m.render();
  EXPECT_NE(out.find("tokenscope_requests_total{status=\"200\"} 2\n"), std::string::npos);
  EXPECT_NE(out.find("tokenscope_requests_total{status=\"400\"} 1\n"), std::string::npos);
  EXPECT_NE(out.find("tokenscope_prompt_tokens_total 10\n"), std::string::npos);
  EXPECT_NE(out.find("tokenscope_generation_tokens_total 3\n"), std::string::npos);
  EXPECT_NE(out.find("tokenscope_requests_running 2\n"), std::string::npos);
  EXPECT_NE(out.find("tokenscope_kv_blocks_used 5\n"), std::string::npos);
  EXPECT_NE(out.find("tokenscope_prefix_cache_hits_total 1\n"), std::string::npos);
  EXPECT_NE(out.find("tokenscope_step_seconds_count{stage=\"mixed\"} 1\n"), std::string::npos);
  // Every sample line belongs to a family declared by # TYPE before it, and no family is declared twice.
  std::vector<std::string> families;
  size_t pos = 0;
  while (pos < out.size()) {
    const size_t nl = out.find('\n', pos);
    ASSERT_NE(nl, std::string::npos) << "the exposition must end with a newline";
    const std::string line = out.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.rfind("# TYPE ", 0) == 0) {
      const std::string name = line.substr(7, line.find(' ', 7) - 7);
      for (const auto& f : families) EXPECT_NE(f, name) << "declared twice";
      families.push_back(name);
    } else if (!line.empty() && line[0] != '#') {
      ASSERT_FALSE(families.empty()) << line;
      const std::string& fam = families.back();
      EXPECT_EQ(line.rfind(fam, 0), 0u) << line << " is not in family " << fam;
    }
  }
  EXPECT_GE(families.size(), 15u);
}

}  // namespace
}  // namespace tokenscope::serve
