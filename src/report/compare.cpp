#include "report/compare.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/error.h"
#include "report/html_report.h"

namespace tokenscope::report {

namespace {

using nlohmann::json;

double num(const json& j, const char* k) { return j.contains(k) && j[k].is_number() ? j[k].get<double>() : 0.0; }
std::string str(const json& j, const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : ""; }

// A summary.json object, an array of bench records, or null.
json parse_run(const std::string& text, const std::string& label, std::string* kind) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    // bench -o jsonl: one record per line.
    json arr = json::array();
    std::istringstream ss(text);
    std::string line;
    while (std::getline(ss, line)) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      json r = json::parse(line, nullptr, false);
      if (r.is_discarded() || !r.is_object()) fail("%s: neither a profile's summary.json nor bench JSON", label.c_str());
      arr.push_back(r);
    }
    j = arr;
  }
  if (j.is_object() && j.contains("stages") && j["stages"].is_array()) {
    *kind = "profile";
    return j;
  }
  if (j.is_array() && !j.empty() && j[0].is_object() && (j[0].contains("avg_ts") || j[0].contains("speed_tg"))) {
    *kind = "bench";
    return j;
  }
  fail("%s: neither a profile's summary.json (no \"stages\") nor bench JSON (records with avg_ts or speed_tg)",
       label.c_str());
}

std::string machine_of(const json& S) {
  const json& M = S.contains("machine") ? S["machine"] : json::object();
  return strfmt("%s, %d threads, %s", str(M, "cpu").c_str(), static_cast<int>(num(M, "threads")), str(M, "isa").c_str());
}

// "L3 bandwidth 81%"; a share above 100% is starred (the run's report says which roof and why).
std::string roof_of(const json& o) {
  if (str(o, "roof").empty()) return "";
  return strfmt("%s %.0f%%%s", str(o, "roof").c_str(), 100 * num(o, "roof_share"), str(o, "over_note").empty() ? "" : "*");
}

CompareRow row(const std::string& group, const std::string& stage, const std::string& name, const std::string& unit,
               bool higher_is_better) {
  CompareRow r;
  r.group = group;
  r.stage = stage;
  r.name = name;
  r.unit = unit;
  r.higher_is_better = higher_is_better;
  return r;
}

void add(std::vector<CompareRow>& rows, std::map<std::string, size_t>& at, const CompareRow& proto, bool is_a,
         double v, const std::string& roof = "", double spread = 0) {
  const std::string key = proto.group + "|" + proto.stage + "|" + proto.name;
  auto it = at.find(key);
  if (it == at.end()) {
    at[key] = rows.size();
    rows.push_back(proto);
    it = at.find(key);
  }
  CompareRow& r = rows[it->second];
  if (is_a) {
    r.in_a = true;
    r.a = v;
    r.a_roof = roof;
    r.a_spread = spread;
  } else {
    r.in_b = true;
    r.b = v;
    r.b_roof = roof;
    r.b_spread = spread;
  }
}

void profile_rows(const json& S, bool is_a, std::vector<CompareRow>& rows, std::map<std::string, size_t>& at) {
  if (S.contains("headline") && S["headline"].is_object()) {
    const json& h = S["headline"];
    add(rows, at, row("headline", "", "time to first token (ms)", "ms", false), is_a, num(h, "ttft_ms"));
    add(rows, at, row("headline", "", "prefill (tok/s)", "tok/s", true), is_a, num(h, "prefill_tok_s"));
    add(rows, at, row("headline", "", "decode (tok/s)", "tok/s", true), is_a, num(h, "decode_tok_s"));
  }
  for (const json& st : S["stages"]) {
    const std::string stage = str(st, "stage");
    const double tokens = std::max(1.0, num(st, "tokens"));
    add(rows, at, row("stage", stage, stage + " (whole stage)", "ms/token", false), is_a, num(st, "ms") / tokens, roof_of(st));
    if (st.contains("by_name"))
      for (const json& o : st["by_name"])
        add(rows, at, row("op", stage, str(o, "kind"), "ms/token", false), is_a, num(o, "ms") / tokens, roof_of(o));
    if (st.contains("layers"))
      for (const json& l : st["layers"])
        add(rows, at, row("layer", stage, strfmt("layer %d", static_cast<int>(num(l, "layer"))), "ms/token", false), is_a,
            num(l, "ms") / tokens);
  }
}

// The test ("tg128 @ d512", "pp 512, tg 128, B 8") and the model file: what a row measures.
std::string bench_test(const json& r) {
  std::string k;
  if (r.contains("speed_tg"))
    k = strfmt("pp %d, tg %d, B %d", static_cast<int>(num(r, "pp")), static_cast<int>(num(r, "tg")),
               static_cast<int>(num(r, "pl")));
  else if (num(r, "n_gen") > 0 && num(r, "n_prompt") == 0)
    k = strfmt("tg%d", static_cast<int>(num(r, "n_gen")));
  else if (num(r, "n_gen") == 0)
    k = strfmt("pp%d", static_cast<int>(num(r, "n_prompt")));
  else
    k = strfmt("pp%d+tg%d", static_cast<int>(num(r, "n_prompt")), static_cast<int>(num(r, "n_gen")));
  if (num(r, "n_depth") > 0) k += strfmt(" @ d%d", static_cast<int>(num(r, "n_depth")));
  std::string model = str(r, "model_filename");
  model = model.substr(model.find_last_of('/') + 1);
  if (model.empty()) model = str(r, "model_type");
  return k + ", " + model;
}

// How it was run: threads, ISA, KV type, barrier.
std::string bench_config(const json& r) {
  return strfmt("%d threads, %s, kv %s", static_cast<int>(num(r, "n_threads")), str(r, "isa").c_str(),
                str(r, "type_k").c_str()) +
         (str(r, "barrier").empty() ? "" : ", " + str(r, "barrier"));
}

// Rows of the same test and configuration are compared; a test that is in each run once but under different
// configurations (1 thread in A, 2 in B; another ISA) is compared too, its name saying what differs.
void bench_rows(const json& A, const json& B, Comparison& c) {
  struct Rec {
    const json* r;
    std::string test, config;
    bool used = false;
  };
  auto recs = [](const json& run) {
    std::vector<Rec> v;
    for (const json& r : run) v.push_back({&r, bench_test(r), bench_config(r)});
    return v;
  };
  std::vector<Rec> a = recs(A), b = recs(B);
  auto value = [](const json& r, double* sd) {
    const bool batched = r.contains("speed_tg");
    *sd = batched ? num(r, "stddev_speed_tg") : num(r, "stddev_ts");
    return batched ? num(r, "speed_tg") : num(r, "avg_ts");
  };
  auto make = [&](const Rec* x, const Rec* y, const std::string& name) {
    const json& any = x ? *x->r : *y->r;
    CompareRow r = row("test", "", name, any.contains("speed_tg") ? "decode tok/s" : "tok/s", true);
    if (x) {
      r.in_a = true;
      r.a = value(*x->r, &r.a_spread);
    }
    if (y) {
      r.in_b = true;
      r.b = value(*y->r, &r.b_spread);
    }
    c.rows.push_back(r);
  };
  auto count = [](const std::vector<Rec>& v, const std::string& test) {
    int n = 0;
    for (const Rec& x : v) n += !x.used && x.test == test;
    return n;
  };
  for (Rec& x : a)
    for (Rec& y : b)
      if (!x.used && !y.used && x.test == y.test && x.config == y.config) {
        x.used = y.used = true;
        make(&x, &y, x.test + ", " + x.config);
      }
  for (Rec& x : a) {
    if (x.used || count(a, x.test) != 1 || count(b, x.test) != 1) continue;
    for (Rec& y : b)
      if (!y.used && y.test == x.test) {
        x.used = y.used = true;
        make(&x, &y, x.test + " (A: " + x.config + "; B: " + y.config + ")");
      }
  }
  for (Rec& x : a)
    if (!x.used) make(&x, nullptr, x.test + ", " + x.config);
  for (Rec& y : b)
    if (!y.used) make(nullptr, &y, y.test + ", " + y.config);
  for (const auto& [run, label] : {std::pair<const std::vector<Rec>&, const std::string&>{a, c.label_a}, {b, c.label_b}})
    for (const Rec& x : run)
      if (x.r->contains("load") && (*x.r)["load"].is_object() && (*x.r)["load"].value("disturbed", false))
        c.notes.push_back(label + ": " + x.test + ", " + x.config + " was measured on a busy machine: " +
                          (*x.r)["load"].value("line", std::string()));
}

std::string ratio_text(const CompareRow& r) {
  if (!(r.in_a && r.in_b)) return r.in_a ? "only in A" : "only in B";
  if (r.a <= 0 || r.b <= 0) return "-";
  const double x = r.ratio();
  // Better or worse for B, as a factor.
  const bool better = r.higher_is_better ? x > 1 : x < 1;
  const double f = x >= 1 ? x : 1 / x;
  if (f < 1.005) return "same";
  return strfmt("%.2fx %s", f, better ? "better" : "worse");
}

}  // namespace

Comparison compare_runs(const std::string& a_text, const std::string& b_text, const std::string& label_a,
                        const std::string& label_b) {
  Comparison c;
  c.label_a = label_a;
  c.label_b = label_b;
  std::string ka, kb;
  const json A = parse_run(a_text, label_a, &ka);
  const json B = parse_run(b_text, label_b, &kb);
  if (ka != kb)
    fail("%s is a %s and %s a %s: compare two profiles or two bench outputs", label_a.c_str(), ka.c_str(),
         label_b.c_str(), kb.c_str());
  c.kind = ka;
  std::map<std::string, size_t> at;
  if (c.kind == "profile") {
    profile_rows(A, true, c.rows, at);
    profile_rows(B, false, c.rows, at);
    c.machine_a = machine_of(A);
    c.machine_b = machine_of(B);
    if (c.machine_a != c.machine_b)
      c.notes.push_back("the runs are from different machines or thread counts: A " + c.machine_a + "; B " + c.machine_b);
    for (const auto& [S, label] : {std::pair<const json&, const std::string&>{A, label_a}, {B, label_b}})
      if (S.contains("load") && S["load"].is_object() && S["load"].value("disturbed", false))
        c.notes.push_back(label + " was measured on a busy machine: " + S["load"].value("line", std::string()));
  } else {
    bench_rows(A, B, c);
    c.machine_a = A[0].value("cpu_info", std::string());
    c.machine_b = B[0].value("cpu_info", std::string());
    if (c.machine_a != c.machine_b) c.notes.push_back("the runs are from different CPUs: A " + c.machine_a + "; B " + c.machine_b);
  }
  // Layers in order after the ops; otherwise the order of A (then B's extras).
  return c;
}

std::string comparison_table(const Comparison& c) {
  std::string out = strfmt("A: %s (%s)\nB: %s (%s)\n", c.label_a.c_str(), c.machine_a.c_str(), c.label_b.c_str(),
                           c.machine_b.c_str());
  for (const std::string& n : c.notes) out += "note: " + n + "\n";
  if (c.kind == "profile")
    out += "(* a share above 100%: each run's report names the roof exceeded and why)\n";
  std::string group;
  for (const CompareRow& r : c.rows) {
    const std::string g = r.group + (r.stage.empty() ? "" : " " + r.stage);
    if (g != group) {
      group = g;
      const bool roofs = r.group == "stage" || r.group == "op";
      const std::string unit = r.group == "headline" ? "" : " " + r.unit;
      out += strfmt("\n%-44s %12s %12s %-14s%s\n", (r.group == "test" ? "test" : g).c_str(), ("A" + unit).c_str(),
                    ("B" + unit).c_str(), "  B vs A", roofs ? "  roof share A -> B" : "");
    }
    std::string a = r.in_a ? strfmt("%.3f", r.a) : "-", b = r.in_b ? strfmt("%.3f", r.b) : "-";
    if (r.a_spread > 0) a = strfmt("%.2f±%.2f", r.a, r.a_spread);
    if (r.b_spread > 0) b = strfmt("%.2f±%.2f", r.b, r.b_spread);
    std::string roof;
    if (!r.a_roof.empty() || !r.b_roof.empty()) roof = "  " + (r.a_roof.empty() ? "-" : r.a_roof) + " -> " +
                                                       (r.b_roof.empty() ? "-" : r.b_roof);
    if (r.group == "test")  // bench: the name in full on its own line, the figures below it
      out += r.name + "\n" + strfmt("%-44s %12s %12s   %-12s\n", "", a.c_str(), b.c_str(), ratio_text(r).c_str());
    else
      out += strfmt("%-44s %12s %12s   %-12s%s\n", r.name.substr(0, 44).c_str(), a.c_str(), b.c_str(),
                    ratio_text(r).c_str(), roof.c_str());
  }
  return out;
}

namespace {

constexpr const char* kCompareScript = R"JS(
(function () {
  const body = document.body;
  window.addEventListener('error', function (e) { body.dataset.error = String(e.message || e); });
  const C = JSON.parse(document.getElementById('compare-data').textContent);
  if (typeof Chart === 'undefined') {
    body.dataset.error = 'Chart.js is not in this page';
    document.getElementById('nocharts').style.display = 'block';
    body.dataset.chartsTotal = 0; body.dataset.chartsDrawn = 0;
    return;
  }
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  const colA = '#8c8c8c', colB = '#2f6db5';
  const charts = [];
  const both = function (rows) { return rows.filter(function (r) { return r.in_a || r.in_b; }); };
  const bars = function (id, rows, title, unit, horizontal) {
    charts.push(new Chart(document.getElementById(id), {
      type: 'bar',
      data: {labels: rows.map(function (r) { return r.name; }),
             datasets: [{label: 'A: ' + C.label_a, backgroundColor: colA, data: rows.map(function (r) { return r.in_a ? r.a : null; })},
                        {label: 'B: ' + C.label_b, backgroundColor: colB, data: rows.map(function (r) { return r.in_b ? r.b : null; })}]},
      options: {indexAxis: horizontal ? 'y' : 'x', plugins: {title: {display: true, text: title}},
                scales: horizontal ? {x: {title: {display: true, text: unit}}} : {y: {title: {display: true, text: unit}}}}
    }));
  };
  const rows = C.rows;
  if (C.kind === 'bench') {
    bars('chart1', both(rows), 'Tokens per second per test (higher is better)', 't/s', true);
    bars('chart2', both(rows).map(function (r) { return {name: r.name, in_a: true, in_b: true, a: 1, b: r.in_a && r.in_b && r.a > 0 ? r.b / r.a : null}; }),
         'B / A throughput (1 = same)', 'ratio', true);
    document.getElementById('chart3').parentNode.style.display = 'none';
  } else {
    const stage = rows.some(function (r) { return r.group === 'op' && r.stage === 'decode'; }) ? 'decode' : 'prefill';
    bars('chart1', rows.filter(function (r) { return r.group === 'headline' && r.unit === 'tok/s'; }),
         'Throughput (higher is better)', 'tok/s', false);
    bars('chart2', rows.filter(function (r) { return r.group === 'op' && r.stage === stage; }),
         stage + ': time per token per op (lower is better)', 'ms/token', true);
    const layers = rows.filter(function (r) { return r.group === 'layer' && r.stage === stage; });
    if (layers.length) bars('chart3', layers, stage + ': time per token per layer', 'ms/token', false);
    else document.getElementById('chart3').parentNode.style.display = 'none';
  }
)JS";

}  // namespace

std::string comparison_html(const Comparison& c, const std::string& chartjs_source) {
  const auto& e = html_escape;
  std::string h = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>tokenscope: " +
                  e(c.label_a) + " vs " + e(c.label_b) + "</title>\n<style>\n"
                  "body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1250px;color:#222;padding:0 1em}"
                  "table{border-collapse:collapse;font-size:13px;margin:0.4em 0}"
                  "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}td:first-child,th:first-child{text-align:left}"
                  "tr.better td.ratio{color:#1a7f37;font-weight:bold}tr.worse td.ratio{color:#b3261e;font-weight:bold}"
                  ".chart{position:relative;height:380px;margin:0.5em 0 1.5em}.note{color:#a40}#nocharts{display:none;color:#a40}"
                  "\n</style>\n";
  if (!chartjs_source.empty()) h += "<script>" + script_safe(chartjs_source) + "</script>\n";
  h += "</head>\n<body>\n<h1>tokenscope: " + std::string(c.kind == "bench" ? "bench" : "profile") + " comparison</h1>\n";
  h += "<p>A: <b>" + e(c.label_a) + "</b> (" + e(c.machine_a) + ")<br>B: <b>" + e(c.label_b) + "</b> (" +
       e(c.machine_b) + ")</p>\n";
  for (const std::string& n : c.notes) h += "<p class=\"note\">note: " + e(n) + "</p>\n";
  h += "<p id=\"nocharts\">Charts unavailable: Chart.js was not found (install libjs-chart.js or set "
       "TOKENSCOPE_CHARTJS).</p>\n";
  h += "<div class=\"chart\"><canvas id=\"chart1\"></canvas></div>\n<div class=\"chart\"><canvas id=\"chart2\"></canvas>"
       "</div>\n<div class=\"chart\"><canvas id=\"chart3\"></canvas></div>\n";
  std::string group;
  json rows = json::array();
  for (const CompareRow& r : c.rows) {
    const std::string g = r.group + (r.stage.empty() ? "" : " " + r.stage);
    if (g != group) {
      if (!group.empty()) h += "</table>\n";
      group = g;
      h += "<h2>" + e(g) + "</h2>\n<table class=\"cmp\"><tr><th>" + e(r.group == "test" ? "test" : r.group) +
           "</th><th>A " + e(r.unit) + "</th><th>B " + e(r.unit) + "</th><th>B vs A</th><th>roof share A</th>"
           "<th>roof share B</th></tr>\n";
    }
    const std::string ratio = ratio_text(r);
    const char* cls = ratio.find("better") != std::string::npos ? "better"
                      : ratio.find("worse") != std::string::npos ? "worse" : "";
    h += strfmt("<tr class=\"%s\"><td>%s</td><td>%s</td><td>%s</td><td class=\"ratio\">%s</td><td>%s</td><td>%s</td></tr>\n",
                cls, e(r.name).c_str(), r.in_a ? strfmt("%.3f", r.a).c_str() : "-",
                r.in_b ? strfmt("%.3f", r.b).c_str() : "-", e(ratio).c_str(), e(r.a_roof).c_str(), e(r.b_roof).c_str());
    rows.push_back({{"group", r.group}, {"stage", r.stage}, {"name", r.name}, {"unit", r.unit}, {"in_a", r.in_a},
                    {"in_b", r.in_b}, {"a", r.a}, {"b", r.b}});
  }
  if (!group.empty()) h += "</table>\n";
  const json data = {{"kind", c.kind}, {"label_a", c.label_a}, {"label_b", c.label_b}, {"rows", rows}};
  h += "<script type=\"application/json\" id=\"compare-data\">" + script_safe(data.dump()) + "</script>\n";
  h += "<script>" + std::string(kCompareScript) + kMarkChartsDrawnJs + "</script>\n</body></html>\n";
  return h;
}

}  // namespace tokenscope::report
