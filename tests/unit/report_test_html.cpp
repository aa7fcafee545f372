// The HTML report: built from summary.json, self-contained, and its charts render in headless Chromium
// (the page marks <body data-charts-drawn=N data-charts-total=M> once each canvas holds painted pixels and
// placed data elements). The Chromium tests skip only when chromium is not installed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "base/error.h"
#include "report/compare.h"
#include "report/html_report.h"
#include "profile/profiler.h"
#include "report/report.h"
#include "test_util.h"

using namespace tokenscope;
using namespace tokenscope::profile;
using namespace tokenscope::report;
using namespace tokenscope::testing;

namespace {

// A summary with the shape of a real run: 2 layers, a 78-token prefill and 6 decode steps, counters of this thread.
std::string sample_summary() {
  Profiler p;
  p.open_counters({static_cast<int>(::gettid())});
  for (int s = 0; s < 7; ++s) {
    const int64_t n = s == 0 ? 78 : 1, past = s == 0 ? 0 : 77 + s;
    p.begin_step(s == 0 ? Stage::prefill : Stage::decode, past, n);
    for (int layer = 0; layer < 2; ++layer) {
      double t = p.now_us();
      burn_cpu(s == 0 ? 1.0 : 0.3);
      p.add_op(OpKind::matmul, layer, "attn_qkv", t, p.now_us(), matmul_cost(n, 1152, 576, 18 * 20), n, 1152, 576, "Q4_1");
      t = p.now_us();
      burn_cpu(0.1);
      p.add_op(OpKind::attention, layer, "attention", t, p.now_us(), attention_cost(n, past, 9, 3, 64), n, past + n, 64);
      t = p.now_us();
      burn_cpu(0.05);
      p.add_op(OpKind::rmsnorm, layer, "ffn_norm", t, p.now_us(), elementwise_cost(n * 576, 4, 1, 1));
    }
    const double t = p.now_us();
    burn_cpu(0.2);
    p.add_op(OpKind::output, -1, "output", t, p.now_us(), matmul_cost(1, 49152, 576, 18 * 20), 1, 49152, 576, "Q4_1");
    p.end_step();
  }
  MachineInfo m;
  m.cpu = "test <CPU> & co";
  m.threads = 1;
  m.isa = "avx2";
  m.read_gbs = 20;
  m.peak_int8_gops = 200;
  m.peak_f32_gflops = 50;
  auto level = [](const char* name, double cap, double gbs) {
    MemoryLevel l;
    l.name = name;
    l.capacity = cap;
    l.gbs = Spread{gbs, 0.9 * gbs, 1.1 * gbs, 7};
    return l;
  };
  m.levels = {level("L1", 64 << 10, 200), level("L2", 2 << 20, 100), level("L3", 32 << 20, 60), level("DRAM", 0, 20)};
  ProfileSummary sum = summarize(p, m);
  LoadSample a, b;
  a.have_stat = b.have_stat = true;
  a.stat_cpus = b.stat_cpus = 1;
  b.wall_s = 1;
  b.total_j = 100;  // others busy the whole second on the only CPU
  sum.load = compare_load(a, b, 1);
  return summary_json(sum, p, "tiny.gguf");
}

TEST(ProfileHtml, SelfContainedWithTheStageTable) {
  const std::string html = html_report(sample_summary(), "/* Chart.js would be here */");
  EXPECT_EQ(html.rfind("<!doctype html>", 0), 0u);
  EXPECT_NE(html.find("<table id=\"stage-table\">"), std::string::npos);
  // (Which op leads depends on the time each span took on this machine: not asserted.)
  EXPECT_NE(html.find("<tr class=\"prefill\"><td>prefill</td><td>"), std::string::npos);
  EXPECT_NE(html.find("<tr class=\"decode\"><td>decode</td>"), std::string::npos);
  for (const char* id : {"timeline", "breakdown", "roofline", "counters", "threads", "layers"})
    EXPECT_NE(html.find(std::string("<canvas id=\"") + id + "\">"), std::string::npos) << id;
  EXPECT_NE(html.find("test &lt;CPU&gt; &amp; co"), std::string::npos);  // escaped text
  // The roofs per level at the top, and the disturbed run's warning with its figure.
  EXPECT_NE(html.find("L3 32.0 MiB 60.0 GB/s"), std::string::npos);
  EXPECT_NE(html.find("id=\"disturbed\""), std::string::npos);
  EXPECT_NE(html.find("other tasks used 1.00 of the 1 CPUs"), std::string::npos);
  EXPECT_NE(html.find("class=\"verdict\">decode: bound by"), std::string::npos);
  // Headline figures, the per-layer table (both layers, both stages).
  EXPECT_NE(html.find("<div id=\"headline\""), std::string::npos);
  EXPECT_NE(html.find("time to first token"), std::string::npos);
  EXPECT_NE(html.find("<table id=\"layer-table\">"), std::string::npos);
  EXPECT_NE(html.find("<th>prefill ms/token</th>"), std::string::npos);
  EXPECT_NE(html.find("<tr><td>1</td>"), std::string::npos);
  EXPECT_NE(html.find("/* Chart.js would be here */"), std::string::npos);  // inlined
  // Nothing fetched from the network: no external scripts, styles or images.
  EXPECT_EQ(html.find("src=\"http"), std::string::npos);
  EXPECT_EQ(html.find("href=\"http"), std::string::npos);
  EXPECT_EQ(html.find("<script src"), std::string::npos);
}

TEST(ProfileHtml, InlinedTextCannotCloseItsScriptElement) {
  const std::string html = html_report(sample_summary(), "var s = '</script><b>x</b>';");
  EXPECT_EQ(html.find("'</script>"), std::string::npos);
  EXPECT_NE(html.find("'<\\/script><b>x<\\/b>'"), std::string::npos);
}

TEST(ProfileHtml, RejectsWhatIsNotASummary) {
  EXPECT_THROW(html_report("not json", ""), Error);
  EXPECT_THROW(html_report("{\"a\": 1}", ""), Error);
}

bool have_chromium(std::string* bin) {
  for (const char* b : {"chromium", "chromium-browser", "google-chrome"}) {
    if (std::system((std::string("command -v ") + b + " >/dev/null 2>&1").c_str()) == 0) {
      *bin = b;
      return true;
    }
  }
  return false;
}

// Loads the page in headless Chromium and returns the DOM after its scripts ran.
std::string render(const std::string& bin, const std::string& html_path) {
  const std::string cmd = bin +
                          " --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run"
                          " --virtual-time-budget=10000 --dump-dom 'file://" +
                          html_path + "' 2>/dev/null";
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return "";
  std::string out;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  pclose(f);
  return out;
}

std::string body_attr(const std::string& dom, const std::string& attr) {
  const std::smatch m = [&] {
    std::smatch r;
    std::regex_search(dom, r, std::regex("<body[^>]*\\b" + attr + "=\"([^\"]*)\""));
    return r;
  }();
  return m.empty() ? std::string("(absent)") : m[1].str();
}

TEST(ProfileHtml, ChartsRenderInHeadlessChromium) {
  std::string bin;
  if (!have_chromium(&bin)) GTEST_SKIP() << "chromium is not installed (scripts/install-deps.sh installs it)";
  const std::string chartjs = find_chartjs();
  ASSERT_FALSE(chartjs.empty()) << "Chart.js not found: install libjs-chart.js (scripts/install-deps.sh)";
  const std::string path = temp_path("report.html");
  std::ofstream(path) << html_report(sample_summary(), read_text_file(chartjs));
  const std::string dom = render(bin, path);
  ASSERT_FALSE(dom.empty()) << "chromium printed no DOM";
  EXPECT_EQ(body_attr(dom, "data-error"), "(absent)");
  EXPECT_EQ(body_attr(dom, "data-charts-total"), "6");
  EXPECT_EQ(body_attr(dom, "data-charts-drawn"), "6");
  // Every canvas holds painted pixels and placed data elements.
  const std::regex canvas("<canvas id=\"([a-z]+)\"[^>]*data-ink=\"([0-9]+)\" data-elements=\"([0-9]+)\"");
  int canvases = 0;
  for (auto it = std::sregex_iterator(dom.begin(), dom.end(), canvas); it != std::sregex_iterator(); ++it) {
    ++canvases;
    EXPECT_GT(std::stol((*it)[2].str()), 1000) << (*it)[1];
    EXPECT_GT(std::stol((*it)[3].str()), 0) << (*it)[1];
  }
  EXPECT_EQ(canvases, 6);
  std::filesystem::remove(path);
}

// A summary written before the cache-aware roofline (no levels, verdicts, layers, headline or load) still makes a
// page whose charts draw: the roofline falls back to one DRAM roof and the per-layer chart is left out.
TEST(ProfileHtml, OlderSummaryStillRenders) {
  std::string bin;
  if (!have_chromium(&bin)) GTEST_SKIP() << "chromium is not installed (scripts/install-deps.sh installs it)";
  const std::string chartjs = find_chartjs();
  ASSERT_FALSE(chartjs.empty()) << "Chart.js not found: install libjs-chart.js (scripts/install-deps.sh)";
  nlohmann::json j = nlohmann::json::parse(sample_summary());
  for (const char* k : {"levels", "int8_spread", "f32_spread", "key", "disturbed", "load"}) j["machine"].erase(k);
  for (const char* k : {"headline", "command", "load"}) j.erase(k);
  for (auto& st : j["stages"]) {
    for (const char* k : {"layers", "verdict", "roof", "roof_share", "level", "over_note", "working_set"}) st.erase(k);
    for (auto& o : st["by_name"])
      for (const char* k : {"verdict", "roof", "roof_share", "level", "over_note", "working_set"}) o.erase(k);
  }
  const std::string html = html_report(j.dump(), read_text_file(chartjs));
  EXPECT_NE(html.find("read bandwidth 20.0 GB/s"), std::string::npos);
  EXPECT_EQ(html.find("id=\"layer-table\""), std::string::npos);
  const std::string path = temp_path("report-old.html");
  std::ofstream(path) << html;
  const std::string dom = render(bin, path);
  ASSERT_FALSE(dom.empty()) << "chromium printed no DOM";
  EXPECT_EQ(body_attr(dom, "data-error"), "(absent)");
  EXPECT_EQ(body_attr(dom, "data-charts-total"), "5");
  EXPECT_EQ(body_attr(dom, "data-charts-drawn"), "5");
  std::filesystem::remove(path);
}

// The check above can fail: without Chart.js the page reports the error and no chart drawn.
TEST(ProfileHtml, ChromiumSeesAReportWithoutChartJsAsUndrawn) {
  std::string bin;
  if (!have_chromium(&bin)) GTEST_SKIP() << "chromium is not installed (scripts/install-deps.sh installs it)";
  const std::string path = temp_path("report-nochart.html");
  std::ofstream(path) << html_report(sample_summary(), "");
  const std::string dom = render(bin, path);
  ASSERT_FALSE(dom.empty());
  EXPECT_NE(body_attr(dom, "data-error"), "(absent)");
  EXPECT_EQ(body_attr(dom, "data-charts-drawn"), "0");
  EXPECT_NE(dom.find("Charts unavailable"), std::string::npos);
  std::filesystem::remove(path);
}

// --compare: two profiles side by side, per stage, op and layer, with the ratio.
// B: the same run with every decode time doubled (no timing in the test: the ratios are exact).
std::string slowed_decode(const std::string& summary) {
  nlohmann::json j = nlohmann::json::parse(summary);
  for (auto& st : j["stages"]) {
    if (st["stage"] != "decode") continue;
    st["ms"] = st["ms"].get<double>() * 2;
    for (auto& o : st["by_name"]) o["ms"] = o["ms"].get<double>() * 2;
    for (auto& l : st["layers"]) l["ms"] = l["ms"].get<double>() * 2;
  }
  j["headline"]["decode_tok_s"] = j["headline"]["decode_tok_s"].get<double>() / 2;
  return j.dump();
}

TEST(ProfileCompare, ProfilesSideBySide) {
  const std::string a = sample_summary(), b = slowed_decode(a);
  const Comparison c = compare_runs(a, b, "runA", "runB");
  EXPECT_EQ(c.kind, "profile");
  bool decode_qkv = false, layer1 = false, headline = false;
  for (const CompareRow& r : c.rows) {
    EXPECT_TRUE(r.in_a && r.in_b) << r.name;
    if (r.group == "op" && r.stage == "decode" && r.name == "attn_qkv") {
      decode_qkv = true;
      EXPECT_EQ(r.unit, "ms/token");
      EXPECT_DOUBLE_EQ(r.ratio(), 2.0);  // B / A time
      EXPECT_FALSE(r.a_roof.empty());
    }
    if (r.group == "layer" && r.stage == "decode" && r.name == "layer 1") {
      layer1 = true;
      EXPECT_DOUBLE_EQ(r.ratio(), 2.0);
    }
    if (r.group == "op" && r.stage == "prefill") {
      EXPECT_DOUBLE_EQ(r.ratio(), r.a > 0 ? 1.0 : 0.0) << r.name;
    }
    if (r.group == "headline" && r.name == "decode (tok/s)") {
      headline = true;
      EXPECT_TRUE(r.higher_is_better);
      EXPECT_DOUBLE_EQ(r.ratio(), 0.5);
    }
  }
  EXPECT_TRUE(decode_qkv && layer1 && headline);
  const std::string t = comparison_table(c);
  EXPECT_NE(t.find("A: runA"), std::string::npos);
  EXPECT_NE(t.find("op decode"), std::string::npos);
  EXPECT_NE(t.find("2.00x worse"), std::string::npos) << t;
  // The same run against itself: every ratio is 1.
  for (const CompareRow& r : compare_runs(a, a, "x", "y").rows) EXPECT_DOUBLE_EQ(r.ratio(), r.a > 0 ? 1.0 : 0.0);
}

TEST(ProfileCompare, BenchJsonSideBySideAndBadInput) {
  const std::string a = R"([{"n_prompt": 512, "n_gen": 0, "n_depth": 0, "avg_ts": 400, "stddev_ts": 5, "model_filename": "/models/m.gguf", "model_type": "llama m.gguf",
                            "n_threads": 2, "isa": "avx2", "type_k": "f16", "cpu_info": "cpu"},
                           {"n_prompt": 0, "n_gen": 128, "n_depth": 0, "avg_ts": 50, "stddev_ts": 1, "model_filename": "/models/m.gguf", "model_type": "llama m.gguf",
                            "n_threads": 2, "isa": "avx2", "type_k": "f16", "cpu_info": "cpu"}])";
  // B as JSON lines (bench -o jsonl), tg faster, pp absent, a new test, and its tg row disturbed.
  const std::string b =
      R"({"n_prompt": 0, "n_gen": 128, "n_depth": 0, "avg_ts": 60, "stddev_ts": 1, "model_filename": "/models/m.gguf", "model_type": "llama m.gguf", "n_threads": 2, "isa": "avx2", "type_k": "f16", "cpu_info": "cpu", "load": {"disturbed": true, "line": "load: busy"}})"
      "\n"
      R"({"n_prompt": 0, "n_gen": 128, "n_depth": 0, "avg_ts": 55, "stddev_ts": 1, "model_filename": "/models/m.gguf", "model_type": "llama m.gguf", "n_threads": 1, "isa": "avx2", "type_k": "f16", "cpu_info": "cpu"})"
      "\n";
  const Comparison c = compare_runs(a, b, "a.json", "b.jsonl");
  EXPECT_EQ(c.kind, "bench");
  ASSERT_EQ(c.rows.size(), 3u);
  auto find = [&](const Comparison& x, const std::string& prefix) -> const CompareRow* {
    for (const CompareRow& r : x.rows)
      if (r.name.rfind(prefix, 0) == 0) return &r;
    return nullptr;
  };
  const CompareRow* tg2 = find(c, "tg128, m.gguf, 2 threads");
  ASSERT_NE(tg2, nullptr);
  EXPECT_NEAR(tg2->ratio(), 1.2, 1e-12);  // 60 / 50, the same configuration
  const CompareRow* pp = find(c, "pp512");
  ASSERT_NE(pp, nullptr);
  EXPECT_TRUE(pp->in_a && !pp->in_b);
  const CompareRow* tg1 = find(c, "tg128, m.gguf, 1 threads");
  ASSERT_NE(tg1, nullptr);
  EXPECT_TRUE(!tg1->in_a && tg1->in_b);  // A has tg128 at 2 threads, already matched
  ASSERT_EQ(c.notes.size(), 1u);
  EXPECT_NE(c.notes[0].find("b.jsonl: tg128, m.gguf, 2 threads"), std::string::npos) << c.notes[0];
  const std::string t = comparison_table(c);
  EXPECT_NE(t.find("1.20x better"), std::string::npos) << t;
  EXPECT_NE(t.find("only in A"), std::string::npos) << t;
  // A test in each run once, under different configurations: compared, its name saying what differs.
  const std::string b1 =
      R"([{"n_prompt": 0, "n_gen": 128, "n_depth": 0, "avg_ts": 25, "stddev_ts": 1, "model_filename": "/models/m.gguf", "model_type": "llama m.gguf", "n_threads": 1, "isa": "avx2", "type_k": "f16"}])";
  const Comparison d = compare_runs(a, b1, "a.json", "b1.json");
  const CompareRow* diff = find(d, "tg128, m.gguf (A: 2 threads, avx2, kv f16; B: 1 threads, avx2, kv f16)");
  ASSERT_NE(diff, nullptr);
  EXPECT_NEAR(diff->ratio(), 0.5, 1e-12);
  // Bad input names the file and what is wrong.
  try {
    compare_runs(a, "{\"x\": 1}", "a.json", "weird.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("weird.json: neither"), std::string::npos) << e.what();
  }
  try {
    compare_runs(a, sample_summary(), "a.json", "prof/");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("compare two profiles or two bench outputs"), std::string::npos) << e.what();
  }
}

TEST(ProfileCompare, ComparisonRendersInHeadlessChromium) {
  std::string bin;
  if (!have_chromium(&bin)) GTEST_SKIP() << "chromium is not installed (scripts/install-deps.sh installs it)";
  const std::string chartjs = find_chartjs();
  ASSERT_FALSE(chartjs.empty()) << "Chart.js not found: install libjs-chart.js (scripts/install-deps.sh)";
  const std::string path = temp_path("compare.html");
  const Comparison c = compare_runs(sample_summary(), slowed_decode(sample_summary()), "A <one>", "B");
  const std::string html = comparison_html(c, read_text_file(chartjs));
  EXPECT_NE(html.find("A &lt;one&gt;"), std::string::npos);
  EXPECT_EQ(html.find("<script src"), std::string::npos);
  std::ofstream(path) << html;
  const std::string dom = render(bin, path);
  ASSERT_FALSE(dom.empty()) << "chromium printed no DOM";
  EXPECT_EQ(body_attr(dom, "data-error"), "(absent)");
  EXPECT_EQ(body_attr(dom, "data-charts-total"), "3");
  EXPECT_EQ(body_attr(dom, "data-charts-drawn"), "3");
  std::filesystem::remove(path);
}

}  // namespace
