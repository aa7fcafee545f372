#include "report/html_report.h"

#include <algorithm>
#include <cstdlib>
#include <vector>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/error.h"
#include "report/placement.h"

namespace tokenscope::report {

std::string html_escape(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string script_safe(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '<' && i + 1 < s.size() && s[i + 1] == '/') {
      o += "<\\/";
      ++i;
    } else {
      o += s[i];
    }
  }
  return o;
}

namespace {

using nlohmann::json;

std::string esc(const std::string& s) { return html_escape(s); }

double num(const json& j, const char* k) { return j.contains(k) && j[k].is_number() ? j[k].get<double>() : 0.0; }
std::string str(const json& j, const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : ""; }

std::string fmt_count(double v) {
  if (v >= 1e9) return strfmt("%.2fG", v / 1e9);
  if (v >= 1e6) return strfmt("%.2fM", v / 1e6);
  if (v >= 1e4) return strfmt("%.1fk", v / 1e3);
  return strfmt("%.4g", v);
}

// Per layer and stage: the layer's time and its largest ops (ms per token), prefill next to decode.
std::string layer_table(const json& S) {
  std::vector<const json*> stages;
  for (const json& st : S["stages"])
    if (st.contains("layers") && !st["layers"].empty()) stages.push_back(&st);
  if (stages.empty()) return "";
  std::string h = "<table id=\"layer-table\"><tr><th>layer</th>";
  for (const json* st : stages) h += "<th>" + esc(str(*st, "stage")) + " ms/token</th><th>largest ops</th>";
  h += "</tr>\n";
  const size_t n = (*stages[0])["layers"].size();
  for (size_t i = 0; i < n; ++i) {
    h += strfmt("<tr><td>%d</td>", static_cast<int>(num((*stages[0])["layers"][i], "layer")));
    for (const json* st : stages) {
      const double tokens = std::max(1.0, num(*st, "tokens"));
      if (i >= (*st)["layers"].size()) {
        h += "<td></td><td></td>";
        continue;
      }
      const json& l = (*st)["layers"][i];
      std::vector<std::pair<double, std::string>> ops;
      if (l.contains("ops"))
        for (const auto& [name, ms] : l["ops"].items()) ops.push_back({ms.get<double>(), name});
      std::sort(ops.rbegin(), ops.rend());
      std::string top;
      for (size_t k = 0; k < ops.size() && k < 3; ++k)
        top += strfmt("%s%s %.3f", k ? ", " : "", esc(ops[k].second).c_str(), ops[k].first / tokens);
      h += strfmt("<td>%.3f</td><td class=\"obs\">%s</td>", num(l, "ms") / tokens, top.c_str());
    }
    h += "</tr>\n";
  }
  return h + "</table>\n";
}

std::string tables(const json& S) {
  std::string h;
  h += "<h2>Stages</h2>\n<table id=\"stage-table\"><tr><th>stage</th><th>main operations</th><th>bottleneck</th>"
       "<th>key observations</th></tr>\n";
  for (const json& st : S["stages"])
    h += strfmt("<tr class=\"%s\"><td>%s</td><td>%s</td><td>%s</td><td class=\"obs\">%s</td></tr>\n",
                esc(str(st, "stage")).c_str(), esc(str(st, "stage")).c_str(), esc(str(st, "main_ops")).c_str(),
                esc(str(st, "bottleneck")).c_str(), esc(str(st, "observations")).c_str());
  h += "</table>\n";
  for (const json& st : S["stages"]) {
    // The verdict below the heading (summaries of older versions have only the bottleneck).
    h += strfmt("<h3>%s: %d steps, %.0f tokens, %.1f ms, %.1f tok/s, %.2f FLOP/byte%s%s</h3>\n",
                esc(str(st, "stage")).c_str(), static_cast<int>(num(st, "steps")), num(st, "tokens"), num(st, "ms"),
                num(st, "tok_s"), num(st, "ai"), str(st, "verdict").empty() ? ", " : "",
                str(st, "verdict").empty() ? esc(str(st, "bottleneck")).c_str() : "");
    if (!str(st, "verdict").empty())
      h += "<p class=\"verdict\">" + esc(str(st, "stage")) + ": " + esc(str(st, "verdict")) + "</p>\n";
    h += "<table class=\"ops\"><tr><th>op</th><th>kind</th><th>calls</th><th>ms</th><th>share</th><th>GFLOP/s</th>"
         "<th>GB/s</th><th>FLOP/byte</th><th>working set</th><th>roof</th><th>% of roof</th></tr>\n";
    const json& rows = st.contains("by_name") ? st["by_name"] : st["ops"];
    std::string over;
    for (const json& o : rows) {
      const bool has_level = !str(o, "roof").empty();
      const std::string roof = has_level ? str(o, "roof") : "DRAM bandwidth (old summary)";
      const double share = has_level ? num(o, "roof_share") : num(o, "roof_util");
      const std::string note = str(o, "over_note");
      h += strfmt("<tr%s><td>%s</td><td>%s</td><td>%d</td><td>%.2f</td><td>%.1f%%</td><td>%.1f</td><td>%.1f</td>"
                  "<td>%.2f</td><td>%s</td><td>%s</td><td>%.0f%%%s</td></tr>\n",
                  note.empty() ? "" : " class=\"over\"", esc(str(o, "kind")).c_str(), esc(str(o, "op_kind")).c_str(),
                  static_cast<int>(num(o, "count")), num(o, "ms"), 100 * num(o, "share"), num(o, "gflops_s"),
                  num(o, "gbs"), num(o, "ai"), num(o, "working_set") > 0 ? human_bytes(num(o, "working_set")).c_str() : "",
                  esc(roof).c_str(), 100 * share, note.empty() ? "" : " *");
      if (!note.empty()) over += "<li>" + esc(str(o, "kind")) + ": " + esc(note) + "</li>";
    }
    h += "</table>\n";
    if (!over.empty()) h += "<ul class=\"overnotes\">" + over + "</ul>\n";
  }
  if (!S["stages"].empty() && S["stages"][0].contains("counters") && !S["stages"][0]["counters"].empty()) {
    h += "<h3>Counters per stage (summed over threads; per token in parentheses)</h3>\n<table id=\"counter-table\">"
         "<tr><th>counter</th>";
    for (const json& st : S["stages"]) h += "<th>" + esc(str(st, "stage")) + "</th>";
    h += "</tr>\n";
    for (const auto& [name, v] : S["stages"][0]["counters"].items()) {
      h += "<tr><td>" + esc(name) + "</td>";
      for (const json& st : S["stages"]) {
        const double c = st["counters"].contains(name) ? st["counters"][name].get<double>() : 0.0;
        const double t = std::max(1.0, num(st, "tokens"));
        h += strfmt("<td>%s (%s)</td>", fmt_count(c).c_str(), fmt_count(c / t).c_str());
      }
      h += "</tr>\n";
    }
    h += "</table>\n";
  }
  return h;
}

constexpr const char* kStyle = R"CSS(
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5em auto;max-width:1250px;color:#222;padding:0 1em}
h1{font-size:1.5em} h2{margin-top:1.6em;border-bottom:1px solid #ddd} h3{font-size:1.05em;margin-top:1.4em}
.chart{position:relative;height:360px;margin:0.5em 0 1.5em}
.row{display:flex;gap:1.5em;flex-wrap:wrap} .row>.chart{flex:1 1 520px}
table{border-collapse:collapse;font-size:13px;margin:0.4em 0}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right;vertical-align:top}
td:first-child,th:first-child,td.obs,#stage-table td{text-align:left}
#stage-table td.obs{max-width:620px}
tr.prefill td:first-child{color:#c55a11;font-weight:bold} tr.decode td:first-child{color:#2f6db5;font-weight:bold} tr.mixed td:first-child{color:#6a8f2f;font-weight:bold}
.note{color:#a40} .warn{background:#fde8d8;border:1px solid #e0a080;padding:0.5em;color:#8a2a00}
.verdict{font-weight:bold;margin:0.3em 0} .runinfo th{text-align:left;background:#f4f4f4} .runinfo td{text-align:left}
.figs{display:flex;gap:1em;margin:1em 0} .fig{border:1px solid #ccc;border-radius:6px;padding:0.5em 1em;min-width:150px}
.fig .v{font-size:1.5em;font-weight:bold} .fig .l{color:#555;font-size:13px} tr.over td{background:#fff3e0} .overnotes{font-size:13px;color:#8a4a00} .meta{color:#555;font-size:13px} #nocharts{display:none;color:#a40}
)CSS";

constexpr const char* kScript = R"JS(
(function () {
  const body = document.body;
  window.addEventListener('error', function (e) { body.dataset.error = String(e.message || e); });
  const S = JSON.parse(document.getElementById('summary-data').textContent);
  if (typeof Chart === 'undefined') {
    body.dataset.error = 'Chart.js is not in this page';
    document.getElementById('nocharts').style.display = 'block';
    body.dataset.chartsTotal = 0; body.dataset.chartsDrawn = 0;
    return;
  }
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.size = 12;
  const stageColor = {prefill: '#c55a11', decode: '#2f6db5', mixed: '#6a8f2f'};
  const palette = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
  const charts = [];
  const canvas = function (id) { return document.getElementById(id); };
  const steps = S.steps || [];
  const stages = S.stages || [];

  // 1. Per-step latency: one bar per step (past N, n_eval M; a batch: its sequences), prefill, decode and mixed
  //    steps coloured apart; ms per token.
  charts.push(new Chart(canvas('timeline'), {
    type: 'bar',
    data: {
      labels: steps.map(function (s) { return s.index; }),
      datasets: ['prefill', 'decode', 'mixed'].filter(function (st) {
        return steps.some(function (s) { return s.stage === st; });
      }).map(function (st) {
        return {label: st + ' step (ms)', grouped: false, backgroundColor: stageColor[st],
                data: steps.map(function (s) { return s.stage === st ? s.ms : null; })};
      }).concat([{type: 'line', label: 'ms per token', yAxisID: 'y1', borderColor: '#555', borderWidth: 1,
                  pointRadius: 1.5, data: steps.map(function (s) { return s.ms / Math.max(1, s.n_eval); })}])
    },
    options: {
      scales: {
        x: {title: {display: true, text: 'step'}},
        y: {type: 'logarithmic', title: {display: true, text: 'ms per step (log)'}},
        y1: {type: 'logarithmic', position: 'right', grid: {drawOnChartArea: false},
             title: {display: true, text: 'ms per token (log)'}}
      },
      plugins: {
        title: {display: true, text: 'Per-step latency (prefill vs decode)'},
        tooltip: {callbacks: {title: function (items) {
          const s = steps[items[0].dataIndex];
          if ((s.batch || 1) > 1) return s.stage + ': ' + s.batch + ' sequences, n_eval ' + s.n_eval;
          return s.stage + ': past ' + s.past + ', n_eval ' + s.n_eval;
        }}}
      }
    }
  }));

  // 2. Per-stage op breakdown: share of the stage's time per op kind (the rest: outside op spans).
  const kinds = [];
  stages.forEach(function (st) { st.ops.forEach(function (o) { if (kinds.indexOf(o.kind) < 0) kinds.push(o.kind); }); });
  const breakdown = kinds.map(function (k, i) {
    return {label: k, backgroundColor: palette[i % palette.length], data: stages.map(function (st) {
      const o = st.ops.find(function (x) { return x.kind === k; });
      return o ? 100 * o.share : 0;
    })};
  });
  breakdown.push({label: 'outside ops', backgroundColor: '#dddddd', data: stages.map(function (st) {
    return st.ms > 0 ? Math.max(0, 100 * (1 - st.ops_ms / st.ms)) : 0;
  })});
  charts.push(new Chart(canvas('breakdown'), {
    type: 'bar',
    data: {labels: stages.map(function (st) { return st.stage; }), datasets: breakdown},
    options: {
      indexAxis: 'y',
      scales: {x: {stacked: true, max: 100, title: {display: true, text: '% of stage time'}}, y: {stacked: true}},
      plugins: {title: {display: true, text: 'Operator breakdown per stage'}}
    }
  }));

  // 3. Roofline: the measured roofs, each op (per name) and each stage placed at its FLOPs/byte and GFLOP/s.
  const M = S.machine || {};
  const pts = [];
  stages.forEach(function (st) {
    (st.by_name || st.ops).forEach(function (o) { if (o.ai > 0 && o.gflops_s > 0) pts.push(o.ai); });
    if (st.ai > 0) pts.push(st.ai);
  });
  // One memory roof per level of the hierarchy (cache-aware roofline), each meeting the int8 peak at its ridge.
  const levels = (M.levels && M.levels.length) ? M.levels.map(function (l) { return {name: l.name, gbs: l.gbs.median, cap: l.capacity}; })
                                               : [{name: 'DRAM', gbs: M.read_gbs || 1, cap: 0}];
  const ridges = levels.map(function (l) { return M.peak_int8_gops / l.gbs; });
  const ridge32 = M.peak_f32_gflops / levels[levels.length - 1].gbs;
  const xmin = Math.min.apply(null, pts.concat(ridges, [ridge32])) / 4;
  const xmax = Math.max.apply(null, pts.concat(ridges, [ridge32])) * 4;
  const levelColor = {L1: '#7b3294', L2: '#c2a5cf', L3: '#5aae61', DRAM: '#333333'};
  const rdata = levels.map(function (l, i) {
    const r = ridges[i];
    return {type: 'line', label: l.name + ' roof (' + l.gbs.toFixed(1) + ' GB/s)', showLine: true, fill: false, pointRadius: 0,
            borderColor: levelColor[l.name] || '#888', borderWidth: l.name === 'DRAM' ? 2 : 1.5, borderDash: l.name === 'DRAM' ? [] : [4, 3],
            data: [{x: xmin, y: xmin * l.gbs}, {x: r, y: M.peak_int8_gops}, {x: xmax, y: M.peak_int8_gops}]};
  });
  rdata.push({type: 'line', label: 'int8 peak (' + Math.round(M.peak_int8_gops) + ' GOP/s)', showLine: true, fill: false,
              pointRadius: 0, borderColor: '#000', borderWidth: 1, data: [{x: xmin, y: M.peak_int8_gops}, {x: xmax, y: M.peak_int8_gops}]});
  rdata.push({type: 'line', label: 'f32 peak (' + Math.round(M.peak_f32_gflops) + ' GFLOP/s)', showLine: true, fill: false,
              pointRadius: 0, borderColor: '#999', borderDash: [6, 4], borderWidth: 1.5,
              data: [{x: xmin, y: xmin * levels[levels.length - 1].gbs}, {x: ridge32, y: M.peak_f32_gflops}, {x: xmax, y: M.peak_f32_gflops}]});
  stages.forEach(function (st) {
    const label = st.stage + ((st.mean_batch || 1) > 1 ? ' (B = ' + Math.round(st.mean_batch * 10) / 10 + ')' : '');
    rdata.push({label: label + ' ops', labelPoints: true, pointStyle: st.stage === 'prefill' ? 'circle' : 'triangle', pointRadius: 5,
                backgroundColor: stageColor[st.stage] + 'aa', borderColor: stageColor[st.stage],
                data: (st.by_name || st.ops).filter(function (o) { return o.ai > 0 && o.gflops_s > 0; })
                  .map(function (o) { return {x: o.ai, y: o.gflops_s, name: o.kind, bound: o.bound, share: o.share,
                                              verdict: o.verdict || ''}; })});
    if (st.ai > 0 && st.gflops_s > 0)
      rdata.push({label: label + ' (whole stage)', labelPoints: true, pointStyle: 'rectRot', pointRadius: 10, borderWidth: 2,
                  backgroundColor: stageColor[st.stage], borderColor: '#000',
                  data: [{x: st.ai, y: st.gflops_s, name: st.stage, bound: st.bound, share: 1, verdict: st.verdict || ''}]});
  });
  // Each op's and stage's name next to its point.
  const pointLabels = {id: 'pointLabels', afterDatasetsDraw: function (chart) {
    const ctx = chart.ctx;
    ctx.save();
    ctx.font = '10px sans-serif';
    ctx.fillStyle = '#333';
    chart.data.datasets.forEach(function (ds, i) {
      if (!ds.labelPoints || !chart.isDatasetVisible(i)) return;
      chart.getDatasetMeta(i).data.forEach(function (el, j) { ctx.fillText(ds.data[j].name, el.x + 7, el.y - 5); });
    });
    ctx.restore();
  }};
  charts.push(new Chart(canvas('roofline'), {
    type: 'scatter',
    plugins: [pointLabels],
    data: {datasets: rdata},
    options: {
      scales: {
        x: {type: 'logarithmic', min: xmin, max: xmax, title: {display: true, text: 'arithmetic intensity (FLOP/byte, log)'}},
        y: {type: 'logarithmic', title: {display: true, text: 'GFLOP/s or GOP/s (log)'}}
      },
      plugins: {
        title: {display: true, text: 'Cache-aware roofline: ops per stage, one memory roof per level (left of a ridge: memory-bound)'},
        tooltip: {callbacks: {label: function (c) {
          const d = c.raw;
          if (!d.name) return c.dataset.label;
          return [d.name + ': ' + d.x.toFixed(2) + ' FLOP/B, ' + d.y.toFixed(1) + ' GFLOP/s, ' +
                  (100 * d.share).toFixed(1) + '% of stage', d.verdict];
        }}}
      }
    }
  }));

  // 4. Counters per stage, per token (log scale: counters differ by orders of magnitude).
  const cnames = (S.counter_names || []);
  charts.push(new Chart(canvas('counters'), {
    type: 'bar',
    data: {
      labels: cnames,
      datasets: stages.map(function (st) {
        return {label: st.stage + ' (per token)', backgroundColor: stageColor[st.stage],
                data: cnames.map(function (n) { const v = (st.counters || {})[n] || 0; return v > 0 ? v / Math.max(1, st.tokens) : null; })};
      })
    },
    options: {
      scales: {y: {type: 'logarithmic', title: {display: true, text: 'per token (log)'}}},
      plugins: {title: {display: true, text: 'Counters per stage' + (S.hardware_counters ? '' : ' (software only: no hardware counters here)')}}
    }
  }));

  // 5. Threads: each pool thread's busy share (task clock / wall time) per step.
  const ci = cnames.indexOf('task-clock-ms');
  const nthreads = (S.thread_ids || []).length;
  if (ci >= 0 && nthreads > 0 && steps.length && steps[0].thread_counters) {
    const ds = [];
    for (let t = 0; t < nthreads; ++t)
      ds.push({label: 'thread ' + t, borderColor: palette[t % palette.length], pointRadius: 1.5, borderWidth: 1.5,
               data: steps.map(function (s) { return s.ms > 0 ? 100 * s.thread_counters[t][ci] / s.ms : null; })});
    charts.push(new Chart(canvas('threads'), {
      type: 'line',
      data: {labels: steps.map(function (s) { return s.index; }), datasets: ds},
      options: {scales: {y: {min: 0, suggestedMax: 100, title: {display: true, text: '% of step on CPU'}},
                         x: {title: {display: true, text: 'step'}}},
                plugins: {title: {display: true, text: 'Pool threads busy per step (task clock)'}}}
    }));
  } else {
    canvas('threads').parentNode.style.display = 'none';
  }

  // 6. Per layer: each layer's time per token, stacked by op, for decode (prefill where there is no decode).
  const lst = stages.find(function (st) { return st.stage === 'decode' && st.layers && st.layers.length; }) ||
              stages.find(function (st) { return st.layers && st.layers.length; });
  if (lst) {
    const names = [];
    lst.layers.forEach(function (l) { Object.keys(l.ops || {}).forEach(function (n) { if (names.indexOf(n) < 0) names.push(n); }); });
    const tok = Math.max(1, lst.tokens);
    charts.push(new Chart(canvas('layers'), {
      type: 'bar',
      data: {labels: lst.layers.map(function (l) { return l.layer; }),
             datasets: names.map(function (n, i) {
               return {label: n, backgroundColor: palette[i % palette.length],
                       data: lst.layers.map(function (l) { return ((l.ops || {})[n] || 0) / tok; })};
             })},
      options: {scales: {x: {stacked: true, title: {display: true, text: 'layer'}},
                         y: {stacked: true, title: {display: true, text: 'ms per token'}}},
                plugins: {title: {display: true, text: lst.stage + ': time per token per layer, by op'}}}
    }));
  } else {
    canvas('layers').parentNode.style.display = 'none';
  }

)JS";

}  // namespace

// The end of a page script's function: once the charts in its `charts` array are painted (pixels on each canvas,
// data elements placed in its area), it marks `body` with data-charts-total and data-charts-drawn, which the
// headless-browser tests read; then it closes the function.
const char* const kMarkChartsDrawnJs = R"JS(
  setTimeout(function () {
    let drawn = 0;
    charts.forEach(function (ch) {
      const c = ch.canvas;
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let ink = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i] > 0) ++ink;
      let elements = 0;
      ch.data.datasets.forEach(function (ds, i) {
        ch.getDatasetMeta(i).data.forEach(function (el) { if (isFinite(el.x) && isFinite(el.y)) ++elements; });
      });
      c.dataset.ink = ink;
      c.dataset.elements = elements;
      if (ink > 1000 && elements > 0) ++drawn;
    });
    body.dataset.chartsTotal = charts.length;
    body.dataset.chartsDrawn = drawn;
  }, 0);
})();
)JS";

namespace {


}  // namespace

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "";
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string find_chartjs() {
  if (const char* e = std::getenv("TOKENSCOPE_CHARTJS"); e && *e) return std::ifstream(e) ? e : "";
  for (const char* p : {"/usr/share/javascript/chart.js/chart.umd.min.js", "/usr/share/javascript/chart.js/chart.umd.js",
                        "/usr/share/javascript/chart.js/chart.min.js", "/usr/share/javascript/chart.js/chart.js"})
    if (std::ifstream(p)) return p;
  return "";
}

std::string html_report(const std::string& summary_json, const std::string& chartjs_source) {
  json S;
  try {
    S = json::parse(summary_json);
  } catch (const std::exception& e) {
    fail("summary.json: not JSON (%s)", e.what());
  }
  if (!S.is_object() || !S.contains("stages") || !S["stages"].is_array() || !S.contains("steps"))
    fail("summary.json: not a tokenscope profile summary (no \"stages\" / \"steps\")");
  const json& M = S.contains("machine") ? S["machine"] : json::object();
  std::string h = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>tokenscope profile</title>\n";
  h += "<style>" + std::string(kStyle) + "</style>\n";
  if (!chartjs_source.empty()) h += "<script>" + script_safe(chartjs_source) + "</script>\n";
  h += "</head>\n<body>\n<h1>tokenscope profile: where the time goes, prefill vs decode</h1>\n";
  std::string roofs;
  if (M.contains("levels") && M["levels"].is_array() && !M["levels"].empty()) {
    for (const json& l : M["levels"]) {
      const json& g = l.contains("gbs") ? l["gbs"] : json::object();
      roofs += strfmt("%s%s%s %.1f GB/s (%.1f-%.1f); ", esc(str(l, "name")).c_str(), num(l, "capacity") > 0 ? " " : "",
                      num(l, "capacity") > 0 ? human_bytes(num(l, "capacity")).c_str() : "", num(g, "median"),
                      num(g, "lo"), num(g, "hi"));
    }
  } else {
    roofs = strfmt("read bandwidth %.1f GB/s; ", num(M, "read_gbs"));
  }
  h += "<table id=\"run\" class=\"runinfo\">";
  if (!str(S, "command").empty()) h += "<tr><th>command</th><td><code>" + esc(str(S, "command")) + "</code></td></tr>";
  h += "<tr><th>model</th><td>" + esc(str(S, "model")) + "</td></tr>";
  h += strfmt("<tr><th>machine</th><td>%s, %d threads, ISA %s</td></tr>", esc(str(M, "cpu")).c_str(),
              static_cast<int>(num(M, "threads")), esc(str(M, "isa")).c_str());
  h += strfmt("<tr><th>roofs</th><td>%sint8 peak %.0f GOP/s, f32 peak %.0f GFLOP/s (medians, range in parentheses; "
              "measured %s%s)</td></tr></table>\n",
              roofs.c_str(), num(M, "peak_int8_gops"), num(M, "peak_f32_gflops"), esc(str(M, "measured_at")).c_str(),
              M.value("disturbed", false) ? ", on a busy machine" : "");
  if (S.contains("headline") && S["headline"].is_object()) {
    const json& H = S["headline"];
    auto box = [](const std::string& v, const char* label) {
      return "<div class=\"fig\"><div class=\"v\">" + v + "</div><div class=\"l\">" + label + "</div></div>";
    };
    h += "<div id=\"headline\" class=\"figs\">" + box(strfmt("%.1f ms", num(H, "ttft_ms")), "time to first token") +
         box(strfmt("%.1f tok/s", num(H, "prefill_tok_s")), strfmt("prefill (%d tokens)", static_cast<int>(num(H, "prompt_tokens"))).c_str()) +
         box(strfmt("%.1f tok/s", num(H, "decode_tok_s")), strfmt("decode (%d tokens)", static_cast<int>(num(H, "generated_tokens"))).c_str()) +
         box(strfmt("%.2f ms", num(H, "decode_ms_per_token")), "per decoded token") + "</div>\n";
  }
  if (S.contains("load") && S["load"].is_object()) {
    const json& L = S["load"];
    h += "<p class=\"meta\" id=\"load\">" + esc(str(L, "line")) + "</p>\n";
    if (L.contains("warnings") && L["warnings"].is_array() && !L["warnings"].empty()) {
      h += "<div class=\"warn\" id=\"disturbed\"><b>Disturbed measurement:</b> the machine was busy while this ran, "
           "so the figures are not this machine's best.<ul>";
      for (const json& w : L["warnings"]) h += "<li>" + esc(w.is_string() ? w.get<std::string>() : w.dump()) + "</li>";
      h += "</ul></div>\n";
    }
  }
  if (S.contains("notes"))
    for (const json& n : S["notes"]) h += "<p class=\"note\">note: " + esc(n.is_string() ? n.get<std::string>() : n.dump()) + "</p>\n";
  h += "<p id=\"nocharts\">Charts unavailable: Chart.js was not found when this report was written "
       "(install Debian's libjs-chart.js, or set TOKENSCOPE_CHARTJS, and run <code>tokenscope report DIR</code>).</p>\n";
  h += tables(S);
  h += "<h2>Charts</h2>\n";
  h += "<div class=\"chart\"><canvas id=\"timeline\"></canvas></div>\n";
  h += "<div class=\"row\"><div class=\"chart\"><canvas id=\"breakdown\"></canvas></div>"
       "<div class=\"chart\"><canvas id=\"roofline\"></canvas></div></div>\n";
  h += "<div class=\"row\"><div class=\"chart\"><canvas id=\"counters\"></canvas></div>"
       "<div class=\"chart\"><canvas id=\"threads\"></canvas></div></div>\n";
  h += "<h2>Per layer</h2>\n<div class=\"chart\"><canvas id=\"layers\"></canvas></div>\n" + layer_table(S);
  if (S.contains("hotspots") && S["hotspots"].is_object() && S["hotspots"].contains("stages")) {
    const json& HS = S["hotspots"];
    h += strfmt("<h2 id=\"hotspots\">Hot functions</h2>\n<p class=\"meta\">Samples of each thread's CPU time every "
                "%.0f us (task clock), placed in the step they fell in; the top 20 per stage.%s</p>\n",
                num(HS, "period_us"), str(HS, "note").empty() ? "" : (" " + esc(str(HS, "note"))).c_str());
    for (const char* stage : {"prefill", "decode", "mixed", "other"}) {
      if (!HS["stages"].contains(stage)) continue;
      const json& st = HS["stages"][stage];
      h += strfmt("<h3>%s: %.0f samples</h3>\n<table class=\"hot\"><tr><th>function</th><th>module</th><th>samples"
                  "</th><th>share</th></tr>\n", stage, num(st, "samples"));
      int i = 0;
      for (const json& f : st["functions"]) {
        if (i++ >= 20) break;
        h += "<tr><td>" + esc(str(f, "function")) + "</td><td>" + esc(str(f, "module")) + "</td>" +
             strfmt("<td>%.0f</td><td>%.1f%%</td></tr>\n", num(f, "samples"), 100 * num(f, "share"));
      }
      h += "</table>\n";
    }
  }
  h += "<p class=\"meta\">How to read it: every op's FLOPs and bytes come from its shapes and formats (a matmul of T tokens "
       "by an N x K matrix: 2TNK FLOPs; its weight bytes once plus f32 activations in and out). An op or stage whose "
       "FLOPs per byte fall below the ridge point (peak / read bandwidth) is memory-bound, above it compute-bound. "
       "Matmuls are placed against the int8 peak, other ops against the f32 peak. The memory roof is the one of the "
       "level the working set lives in: the weights and KV cache a step reads (for ops that read them) or the op's own "
       "bytes (elementwise ops) against the cache sizes, moved to a faster level when the achieved rate is above the "
       "level's roof. <b>A share above 100%</b> is starred and explained in a line below its table: the rate was within "
       "the roof's measured spread, above the fastest level (the byte count overstates the traffic), or above a peak "
       "measured on a busier machine. <b>A missing counter</b> (no cycles, no LLC misses) means this machine gives no "
       "hardware PMU to the process (a VM without a virtual PMU, or perf_event_paranoid); the software counters "
       "remain. The trace (trace.json) opens in Perfetto.</p>\n";
  h += "<script type=\"application/json\" id=\"summary-data\">" + script_safe(S.dump()) + "</script>\n";
  h += "<script>" + std::string(kScript) + kMarkChartsDrawnJs + "</script>\n</body></html>\n";
  return h;
}

}  // namespace tokenscope::report
