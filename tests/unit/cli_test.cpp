// The tokenscope binary end to end: bad input gives exit code 1 and a message naming the problem
// (never a crash); the happy path prints text, the stage summary and valid JSON.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <vector>
#include <nlohmann/json.hpp>

#include "model_builder.h"
#include "test_util.h"

using namespace tokenscope;
using namespace tokenscope::testing;

namespace {

struct Result {
  int code = -1;
  std::string out;  // stdout and stderr together
};

Result run(const std::string& args, const std::string& redirect = "2>&1") {
  const std::string cmd = std::string(TS_TOKENSCOPE_BIN) + " " + args + " " + redirect;
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// Bad input (a file, a prompt) exits with status 1, bad usage (a flag or its value) with 2.
void expect_clean_error(const Result& r, const std::string& needle, int code = 1) {
  EXPECT_EQ(r.code, code) << r.out;
  EXPECT_NE(r.out.find("error"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.out;
}

// One JSON value per line of output.
std::vector<nlohmann::json> json_lines(const std::string& out) {
  std::vector<nlohmann::json> v;
  for (size_t at = 0; at < out.size();) {
    const size_t e = out.find('\n', at);
    v.push_back(nlohmann::json::parse(out.substr(at, e - at)));
    at = e == std::string::npos ? out.size() : e + 1;
  }
  return v;
}

std::string write_bytes(const std::string& name, const std::string& bytes) {
  const std::string p = temp_path(name);
  std::ofstream(p, std::ios::binary) << bytes;
  return p;
}

TEST(Cli, MissingFile) {
  expect_clean_error(run("run -m /nonexistent/model.gguf -p hi -n 1"), "/nonexistent/model.gguf");
}

TEST(Cli, NotAGgufFile) {
  const std::string p = write_bytes("not-gguf.gguf", "this is not a gguf file at all, just text");
  expect_clean_error(run("run -m " + p + " -p hi -n 1"), p);
  expect_clean_error(run("inspect " + p), "magic");
}

TEST(Cli, TruncatedModelAtManyPoints) {
  TinyModelSpec spec;
  const std::vector<uint8_t> full = build_tiny_model(spec).to_bytes();
  for (size_t cut : {size_t{3}, size_t{8}, size_t{20}, size_t{200}, full.size() / 3, full.size() - 1}) {
    const std::string p = write_bytes("truncated.gguf", std::string(full.begin(), full.begin() + static_cast<long>(cut)));
    Result r = run("run -m " + p + " -p hi -n 1");
    expect_clean_error(r, p);
  }
}

TEST(Cli, UnsupportedArchitectureAndMissingKey) {
  TinyModelSpec spec;
  gguf::Writer w = build_tiny_model(spec);
  w.set_string("general.architecture", "mamba9");
  const std::string p = temp_path("arch.gguf");
  w.write(p);
  expect_clean_error(run("run -m " + p + " -p hi -n 1"), "mamba9");

  gguf::Writer m;
  m.set_string("general.architecture", "llama");
  const std::string p2 = temp_path("nokeys.gguf");
  m.write(p2);
  expect_clean_error(run("run -m " + p2 + " -p hi -n 1"), "llama.block_count");
}

TEST(Cli, BadFlags) {
  TinyModelSpec spec;
  const std::string p = temp_path("tiny-flags.gguf");
  build_tiny_model(spec).write(p);
  expect_clean_error(run("run -m " + p + " -p hi -n 1 --temp -1"), "--temp", 2);
  expect_clean_error(run("run -m " + p + " -p hi -n 1 --top-p 2"), "--top-p", 2);
  expect_clean_error(run("run -m " + p + " -p hi -n -7"), "-n", 2);
  expect_clean_error(run("run -m " + p + " -p hi -n 1 -t -2"), "-t", 2);
  expect_clean_error(run("run -m " + p + " -p hi -n 1 --isa sse9"), "sse9", 2);
  // CLI11's own parse errors: bad usage, status 2
  Result r = run("run -m " + p + " -p hi -n notanumber");
  EXPECT_EQ(r.code, 2) << r.out;
  r = run("frobnicate");
  EXPECT_EQ(r.code, 2) << r.out;
}

TEST(Cli, TinyModelRunsAndPrintsJson) {
  TinyModelSpec spec;
  spec.wtype = TensorType::Q4_1;
  const std::string p = temp_path("tiny-json.gguf");
  build_tiny_model(spec).write(p);
  Result r = run("run -m " + p + " -p 'Hello' -n 5 --temp 0 --ignore-eos --json", "2>/dev/null");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tokens"].size(), 5u);
  EXPECT_EQ(j["prompt_tokens"].get<int>(), 5);  // 'Hello' is 5 byte tokens: the tiny vocabulary has no merges
  EXPECT_EQ(j["prefill"]["tokens"].get<int>(), 5);
  EXPECT_EQ(j["decode"]["tokens"].get<int>(), 4);
  EXPECT_GT(j["decode"]["tok_s"].get<double>(), 0.0);
  // greedy is deterministic: same tokens again, and with one thread
  Result r2 = run("run -m " + p + " -p 'Hello' -n 5 --temp 0 --ignore-eos --json -t 1", "2>/dev/null");
  ASSERT_EQ(r2.code, 0);
  EXPECT_EQ(nlohmann::json::parse(r2.out)["tokens"], j["tokens"]);
}

TEST(Cli, SummaryNamesStages) {
  TinyModelSpec spec;
  const std::string p = temp_path("tiny-summary.gguf");
  build_tiny_model(spec).write(p);
  Result r = run("run -m " + p + " -p 'Hi there' -n 4 --temp 0 --ignore-eos");
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* s : {"prefill", "decode", "tok/s", "ms/token", "load"}) EXPECT_NE(r.out.find(s), std::string::npos) << s;
}

TEST(Cli, TokenizeDefaultModelPrintsJsonArray) {
  ASSERT_FALSE(model_path(kSmolLM2).empty()) << "default model missing: run scripts/fetch-models.sh";
  Result r = run("tokenize -m " + model_path(kSmolLM2) + " -p 'Hello world'", "2>/dev/null");
  ASSERT_EQ(r.code, 0);
  auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 2u);
  // decode check happens in the tokenizer tests; here the two ids must differ and be in the vocabulary
  EXPECT_NE(j[0], j[1]);
  EXPECT_LT(j[0].get<int>(), 49152);
}

}  // namespace

namespace {

TEST(CliBench, JsonRecordsUseLlamaBenchFieldNames) {
  TinyModelSpec spec;
  spec.wtype = TensorType::Q8_0;
  const std::string p = temp_path("tiny-bench.gguf");
  build_tiny_model(spec).write(p);
  Result r = run("bench -m " + p + " -p 16 -n 4 -d 0,8 -t 1,2 -r 3 -o json", "2>/dev/null");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 8u);  // (pp16, tg4) x depths (0, 8) x threads (1, 2)
  int pp = 0, tg = 0;
  for (const auto& rec : j) {
    for (const char* k : {"n_prompt", "n_gen", "n_threads", "avg_ts", "stddev_ts", "samples_ts", "n_depth",
                          "model_filename", "cpu_info", "isa"})
      EXPECT_TRUE(rec.contains(k)) << k;
    EXPECT_EQ(rec["samples_ts"].size(), 3u);
    EXPECT_GT(rec["avg_ts"].get<double>(), 0.0);
    pp += rec["n_prompt"].get<int>() == 16 && rec["n_gen"].get<int>() == 0;
    tg += rec["n_prompt"].get<int>() == 0 && rec["n_gen"].get<int>() == 4;
  }
  EXPECT_EQ(pp, 4);
  EXPECT_EQ(tg, 4);
  EXPECT_EQ(j[0]["n_threads"].get<int>(), 1);
  EXPECT_EQ(j[7]["n_threads"].get<int>(), 2);
  EXPECT_EQ(j[7]["n_depth"].get<int>(), 8);
}

TEST(CliBench, MarkdownAndCsvAndBadFlags) {
  TinyModelSpec spec;
  const std::string p = temp_path("tiny-bench2.gguf");
  build_tiny_model(spec).write(p);
  Result md = run("bench -m " + p + " -p 8 -n 2 -r 1 --barrier spin,futex", "2>/dev/null");
  ASSERT_EQ(md.code, 0) << md.out;
  EXPECT_NE(md.out.find("| pp8"), std::string::npos - 1);
  EXPECT_NE(md.out.find("pp8"), std::string::npos) << md.out;
  EXPECT_NE(md.out.find("tg2"), std::string::npos) << md.out;
  EXPECT_NE(md.out.find("futex"), std::string::npos) << md.out;
  Result csv = run("bench -m " + p + " -p 8 -n 0 -r 1 -o csv", "2>/dev/null");
  ASSERT_EQ(csv.code, 0);
  EXPECT_EQ(std::count(csv.out.begin(), csv.out.end(), '\n'), 2) << csv.out;  // header + one record
  expect_clean_error(run("bench -m " + p + " -r 0"), "-r", 2);
  expect_clean_error(run("bench -m " + p + " -o xml"), "xml", 2);
  expect_clean_error(run("bench -m " + p + " -p 0 -n 0"), "nothing to run", 2);
  expect_clean_error(run("bench -m " + p + " -p 8 -n 0 --barrier nap"), "nap", 2);
  expect_clean_error(run("bench -m " + p + " -p 100000 -n 0"), "context");
  expect_clean_error(run("bench -m " + p + " -p 8 -n 0 --kv-type q4_0"), "q4_0", 2);
  // The tiny model's heads are 16 wide: a Q8_0 cache (blocks of 32) is refused by name, before the f16 tests
  // listed first have run (no record printed).
  const Result kv = run("bench -m " + p + " -p 8 -n 0 --kv-type f16,q8_0");
  expect_clean_error(kv, "multiple of 32");
  EXPECT_EQ(kv.out.find("pp8"), std::string::npos) << kv.out;
  expect_clean_error(run("run -m " + p + " -p hi -n 1 --kv-type bf16"), "bf16", 2);
}

TEST(CliBench, KvTypesAreTestParametersWithLlamaBenchFieldNames) {
  TinyModelSpec spec;
  spec.n_head = 2;  // heads of 32: Q8_0 blocks fit
  const std::string p = temp_path("tiny-bench-kv.gguf");
  build_tiny_model(spec).write(p);
  Result r = run("bench -m " + p + " -p 8 -n 2 -r 1 --kv-type f16,q8_0 -o json", "2>/dev/null");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 4u);  // (pp8, tg2) x (f16, q8_0)
  EXPECT_EQ(j[0]["type_k"], "f16");
  EXPECT_EQ(j[1]["type_v"], "f16");
  EXPECT_EQ(j[2]["type_k"], "q8_0");
  EXPECT_EQ(j[3]["type_v"], "q8_0");
  Result run_q8 = run("run -m " + p + " -p hello -n 3 --temp 0 --kv-type q8_0", "2>&1");
  ASSERT_EQ(run_q8.code, 0) << run_q8.out;
  EXPECT_NE(run_q8.out.find("kv q8_0"), std::string::npos) << run_q8.out;
}

}  // namespace

namespace {

TEST(CliSynth, BadShapesTypesAndFiles) {
  expect_clean_error(run("synth --shape gpt-5 --type q4_0 -o " + temp_path("x.gguf")), "gpt-5");
  expect_clean_error(run("synth --shape smollm2-135m --type q9_9 -o " + temp_path("x.gguf")), "q9_9", 2);
  expect_clean_error(run("synth --type q4_0 -o " + temp_path("x.gguf")), "--shape");
  expect_clean_error(run("quantize /nonexistent/in.gguf " + temp_path("y.gguf") + " q8_0"), "/nonexistent/in.gguf");
  TinyModelSpec spec;
  const std::string p = temp_path("tiny-quant.gguf");
  build_tiny_model(spec).write(p);
  expect_clean_error(run("quantize " + p + " " + temp_path("y.gguf") + " iq2_xxs"), "IQ2_XXS");
  // and a working conversion of the tiny model, which then runs
  const std::string q = temp_path("tiny-q8.gguf");
  Result r = run("quantize " + p + " " + q + " q8_0");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("converted to Q8_0"), std::string::npos) << r.out;
  r = run("run -m " + q + " -p hi -n 3 --temp 0 --ignore-eos --json", "2>/dev/null");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["tokens"].size(), 3u);
}

}  // namespace

namespace {

// run --prompts: every prompt's result in input order, one JSON object per line with the fields of run --json, the
// same greedy tokens as a single run of the same prompt; a JSON line's n_predict applies to it alone.
TEST(CliBatch, PromptsFileGivesEachPromptsResultInOrder) {
  TinyModelSpec spec;
  spec.wtype = TensorType::Q4_1;
  const std::string p = temp_path("tiny-batch.gguf");
  build_tiny_model(spec).write(p);
  const std::vector<std::string> prompts = {"Hello", "What a long day it has been, said the cat", "ab",
                                            "The end is near"};
  const std::string file = write_bytes("prompts.txt", prompts[0] + "\n" + prompts[1] + "\n\n{\"prompt\": \"" +
                                                          prompts[2] + "\", \"n_predict\": 3}\n" + prompts[3] + "\n");
  Result r = run("run -m " + p + " --prompts " + file + " --parallel 3 -n 6 --temp 0 --ignore-eos --json", "2>/dev/null");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::vector<nlohmann::json> lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), prompts.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["index"].get<size_t>(), i);
    const size_t want = i == 2 ? 3 : 6;
    EXPECT_EQ(lines[i]["tokens"].size(), want) << i;
    for (const char* k : {"text", "prompt_tokens", "prompt_ids", "prefill", "decode", "stop_reason", "peak_rss_bytes"})
      EXPECT_TRUE(lines[i].contains(k)) << k;
    Result one = run("run -m " + p + " -p '" + prompts[i] + "' -n " + std::to_string(want) +
                         " --temp 0 --ignore-eos --json", "2>/dev/null");
    ASSERT_EQ(one.code, 0) << one.out;
    EXPECT_EQ(nlohmann::json::parse(one.out)["tokens"], lines[i]["tokens"]) << "prompt " << i;
  }
  // n_predict 0: nothing generated (and nothing evaluated), the others unaffected.
  Result z = run("run -m " + p + " --prompts " + write_bytes("zero.jsonl", "{\"prompt\": \"ab\", \"n_predict\": 0}\nHello\n") +
                     " -n 2 --temp 0 --ignore-eos --json", "2>/dev/null");
  ASSERT_EQ(z.code, 0) << z.out;
  const auto zl = json_lines(z.out);
  ASSERT_EQ(zl.size(), 2u);
  EXPECT_EQ(zl[0]["tokens"].size(), 0u);
  EXPECT_EQ(zl[0]["stop_reason"], "length");
  ASSERT_EQ(zl[1]["tokens"].size(), 2u);
  EXPECT_EQ(zl[1]["tokens"][0], lines[0]["tokens"][0]);  // "Hello" again: greedy, the same first tokens
  EXPECT_EQ(zl[1]["tokens"][1], lines[0]["tokens"][1]);
  // Bad input names the file and line.
  expect_clean_error(run("run -m " + p + " --prompts /nonexistent/prompts.txt"), "cannot open");
  expect_clean_error(run("run -m " + p + " --prompts " + write_bytes("bad.jsonl", "hi\n{\"prompt\": 3}\n")), ":2:");
  expect_clean_error(run("run -m " + p + " --prompts " + write_bytes("bad2.jsonl", "{\"prompt\": \"x\"\n")), "not valid JSON");
  expect_clean_error(run("run -m " + p + " --prompts " + write_bytes("empty.txt", "\n\n")), "no prompts");
  expect_clean_error(run("run -m " + p + " --prompts " + file + " --parallel 0 -p hi"), "and --prompts go alone", 2);
  expect_clean_error(run("run -m " + p + " -p hi --parallel 2"), "--parallel goes with --prompts", 2);
  expect_clean_error(run("run -m " + p + " -n 2"), "no prompt", 2);
}

// bench --batch: llama-batched-bench's fields, aggregate speeds consistent with the times, N_KV = B (PP + TG).
TEST(CliBatch, BenchBatchUsesBatchedBenchFields) {
  TinyModelSpec spec;
  spec.wtype = TensorType::Q8_0;
  const std::string p = temp_path("tiny-bbench.gguf");
  build_tiny_model(spec).write(p);
  Result r = run("bench -m " + p + " --batch 1,3 -p 9 -n 4 -r 2 -o jsonl", "2>/dev/null");
  ASSERT_EQ(r.code, 0) << r.out;
  int n = 0;
  for (const nlohmann::json& j : json_lines(r.out)) {
    ++n;
    const int B = j["pl"].get<int>();
    EXPECT_EQ(j["pp"].get<int>(), 9);
    EXPECT_EQ(j["tg"].get<int>(), 4);
    EXPECT_EQ(j["n_kv"].get<int>(), B * 13);
    EXPECT_NEAR(j["t"].get<double>(), j["t_pp"].get<double>() + j["t_tg"].get<double>(), 1e-9);
    for (const char* k : {"speed_pp", "speed_tg", "speed"}) EXPECT_GT(j[k].get<double>(), 0.0) << k;
    EXPECT_EQ(j["samples_speed_tg"].size(), 2u);
  }
  EXPECT_EQ(n, 2);
  expect_clean_error(run("bench -m " + p + " --batch 0 -p 9 -n 4"), "--batch", 2);
  expect_clean_error(run("bench -m " + p + " --batch 2 -p 9 -n 4 -d 16"), "-d", 2);
}

// Peak RSS of a single-sequence run stays within the model file plus the KV cache plus 15% (the packed copy of
// the weights replaces the file's pages instead of adding to them). The Qwen1.5-0.5B shape (untied output, a
// 449 MiB file), 4096 tokens of f16 cache.
TEST(CliMemory, SingleSequencePeakRssIsModelPlusKvCachePlus15Percent) {
  const std::string p = temp_path("qwen-rss.gguf");
  Result s = run("synth --shape qwen1.5-0.5b --type q4_0 -o " + p);
  ASSERT_EQ(s.code, 0) << s.out;
  Result r = run("run -m " + p + " -p hello -n 4 -c 4096 --temp 0 --json", "2>/dev/null");
  ASSERT_EQ(r.code, 0) << r.out;
  const double peak = nlohmann::json::parse(r.out)["peak_rss_bytes"].get<double>();
  std::ifstream f(p, std::ios::binary | std::ios::ate);
  const double file = static_cast<double>(f.tellg());
  const double kv = 24.0 * 2 * 4096 * 16 * 64 * 2;  // layers x (K, V) x positions x KV heads x head size x f16
  const double bound = 1.15 * (file + kv);
  std::printf("peak RSS %.1f MiB; file %.1f MiB + KV cache %.1f MiB = %.1f MiB; bound (+15%%) %.1f MiB\n",
              peak / (1 << 20), file / (1 << 20), kv / (1 << 20), (file + kv) / (1 << 20), bound / (1 << 20));
  EXPECT_GT(peak, file + kv * 0.5) << "peak_rss_bytes looks wrong";
  EXPECT_LE(peak, bound);
  std::remove(p.c_str());
}

}  // namespace
