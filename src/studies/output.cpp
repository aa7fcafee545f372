#include "studies/study.h"

#include <cmath>
#include <cstdio>

#include "base/error.h"
#include "report/html_report.h"

namespace tokenscope::studies {

namespace {

std::string num(double v) {
  const double a = std::fabs(v);
  if (a == 0) return "0";
  if (a < 1e15 && v == std::floor(v)) return strfmt("%.0f", v);
  if (a >= 1000) return strfmt("%.0f", v);
  if (a >= 100) return strfmt("%.1f", v);
  if (a >= 10) return strfmt("%.2f", v);
  if (a >= 1) return strfmt("%.3f", v);
  return strfmt("%.3g", v);
}

std::string cell(const ConfigResult& c, const Metric& m) {
  const auto st = c.stat(m.key);
  if (!st) return "-";
  if (st->n == 1 || st->min == st->max) return num(st->median);
  return num(st->median) + " [" + num(st->min) + "-" + num(st->max) + "]";
}

std::string machine_line(const Machine& m) {
  return strfmt("%s | isa %s | %d CPUs | %s | THP %s | DRAM read %.1f GB/s | int8 peak %.0f GOP/s", m.cpu.c_str(),
                m.isa.c_str(), m.cpus, m.kernel.c_str(), m.thp.c_str(), m.dram_gbs, m.peak_int8_gops);
}

std::string pad(const std::string& s, size_t w) { return s.size() >= w ? s : s + std::string(w - s.size(), ' '); }

std::string column_title(const Metric& m) { return m.label + (m.unit.empty() ? "" : " (" + m.unit + ")"); }

// Columns aligned to their widest cell (cells cut at max_cell); a row with fewer cells than headers (a skipped
// configuration and its reason) is written as it is, without widening the columns.
std::string text_table(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows,
                       size_t max_cell = std::string::npos) {
  std::vector<size_t> w(headers.size());
  for (size_t i = 0; i < headers.size(); ++i) w[i] = headers[i].size();
  for (const auto& row : rows)
    if (row.size() == headers.size())
      for (size_t i = 0; i < row.size(); ++i) w[i] = std::max(w[i], std::min(row[i].size(), max_cell));
  std::string out;
  for (size_t i = 0; i < headers.size(); ++i) out += pad(headers[i], w[i] + 2);
  out += "\n";
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i)
      out += row.size() == headers.size() ? pad(row[i].substr(0, max_cell), w[i] + 2) : row[i] + "  ";
    out += "\n";
  }
  return out;
}

}  // namespace

std::string terminal_table(const StudyResult& r) {
  const Study& s = *r.study;
  std::string out = "study " + s.name + ": " + s.title + "\n";
  out += "machine: " + machine_line(r.machine) + "\n";
  out += "model: " + r.model_file + " | " + std::to_string(r.options.rounds) + " rounds, interleaved" +
         (r.options.quick ? " (quick)" : "") + "\n\n";
  std::vector<std::string> headers{"configuration"};
  for (const Metric& m : s.metrics) headers.push_back(column_title(m));
  std::vector<std::vector<std::string>> rows;
  for (const ConfigResult& c : r.configs) {
    std::vector<std::string> row{c.config.name};
    if (!c.skipped.empty()) {
      row.push_back("skipped: " + c.skipped);
    } else {
      for (const Metric& m : s.metrics) row.push_back(cell(c, m));
    }
    rows.push_back(row);
  }
  out += text_table(headers, rows);
  for (const ExtraTable& t : r.extra) out += "\n" + t.title + "\n" + text_table(t.headers, t.rows, 70);
  bool any_note = false;
  for (const ConfigResult& c : r.configs)
    for (const std::string& n : c.notes) {
      if (!any_note) out += "\nnotes:\n";
      any_note = true;
      out += "  " + c.config.name + ": " + n + "\n";
    }
  out += "\nclassic finding: " + s.finding + "\n";
  if (!s.caveat.empty()) out += "caveat: " + s.caveat + "\n";
  out += "this run: " + r.verdict.text + ": " + r.verdict.status + "\n";
  return out;
}

std::string result_markdown(const StudyResult& r) {
  const Study& s = *r.study;
  std::string out = "**" + s.name + "**: " + s.title + " (" + std::to_string(r.options.rounds) + " rounds" +
                    (r.options.quick ? ", quick" : "") + "; " + machine_line(r.machine) + ")\n\n| configuration |";
  for (const Metric& m : s.metrics) out += " " + column_title(m) + " |";
  out += "\n|---|";
  for (size_t i = 0; i < s.metrics.size(); ++i) out += "---|";
  out += "\n";
  for (const ConfigResult& c : r.configs) {
    out += "| " + c.config.name + " |";
    if (!c.skipped.empty()) {
      out += " skipped: " + c.skipped + " |";
      for (size_t i = 1; i < s.metrics.size(); ++i) out += " |";
    } else {
      for (const Metric& m : s.metrics) out += " " + cell(c, m) + " |";
    }
    out += "\n";
  }
  out += "\nClassic finding: " + s.finding + ". This run: " + r.verdict.text + ": **" + r.verdict.status + "**.\n";
  return out;
}

json result_json(const StudyResult& r) {
  const Study& s = *r.study;
  json j;
  j["study"] = s.name;
  j["title"] = s.title;
  j["finding"] = s.finding;
  j["caveat"] = s.caveat;
  j["verdict"] = {{"status", r.verdict.status}, {"text", r.verdict.text}};
  json levels = json::array();
  for (const auto& [name, gbs] : r.machine.levels) levels.push_back({{"name", name}, {"read_gbs", gbs}});
  j["machine"] = {{"cpu", r.machine.cpu},   {"isa", r.machine.isa},         {"cpus", r.machine.cpus},
                  {"kernel", r.machine.kernel}, {"thp", r.machine.thp},     {"dram_read_gbs", r.machine.dram_gbs},
                  {"peak_int8_gops", r.machine.peak_int8_gops}, {"levels", levels}};
  j["model"] = r.model_file;
  j["rounds"] = r.options.rounds;
  j["quick"] = r.options.quick;
  j["threads"] = r.options.threads;
  j["seconds"] = r.seconds;
  j["x_label"] = s.x_label;
  j["charts"] = s.charts;
  json metrics = json::array();
  for (const Metric& m : s.metrics)
    metrics.push_back({{"key", m.key}, {"label", m.label}, {"unit", m.unit}, {"higher_is_better", m.higher_is_better}});
  j["metrics"] = metrics;
  json configs = json::array();
  for (const ConfigResult& c : r.configs) {
    json cj = {{"name", c.config.name}, {"series", c.config.series}, {"x", c.config.x}, {"args", c.config.args},
               {"notes", c.notes}, {"skipped", c.skipped}};
    json env = json::object();
    for (const auto& [k, v] : c.config.env) env[k] = v;
    cj["env"] = env;
    json ms = json::object();
    for (const Metric& m : s.metrics) {
      const auto st = c.stat(m.key);
      if (!st) continue;
      ms[m.key] = {{"median", st->median}, {"min", st->min}, {"max", st->max}, {"n", st->n},
                   {"samples", c.samples.at(m.key)}};
    }
    cj["metrics"] = ms;
    configs.push_back(cj);
  }
  j["configs"] = configs;
  json extra = json::array();
  for (const ExtraTable& t : r.extra) extra.push_back({{"title", t.title}, {"headers", t.headers}, {"rows", t.rows}});
  j["tables"] = extra;
  return j;
}

namespace {

constexpr const char* kStudyScript = R"JS(
(function () {
  const body = document.body;
  window.addEventListener('error', function (e) { body.dataset.error = String(e.message || e); });
  const S = JSON.parse(document.getElementById('study-data').textContent);
  const charts = [];
  if (typeof Chart === 'undefined') {
    document.getElementById('nocharts').style.display = 'block';
    body.dataset.chartsTotal = 0; body.dataset.chartsDrawn = 0;
    return;
  }
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  const palette = ['#2f6db5', '#d9822b', '#1a7f37', '#b3261e', '#7b4fb8', '#8c8c8c', '#c2a000', '#17a2b8'];
  const ran = S.configs.filter(function (c) { return !c.skipped && Object.keys(c.metrics).length; });
  S.charts.forEach(function (key, ci) {
    const m = S.metrics.find(function (x) { return x.key === key; });
    if (!m) return;
    const canvas = document.getElementById('chart' + ci);
    const title = m.label + (m.unit ? ' (' + m.unit + ')' : '') + (m.higher_is_better ? ', higher is better' : ', lower is better');
    if (S.x_label) {
      const series = [];
      ran.forEach(function (c) { if (series.indexOf(c.series) < 0) series.push(c.series); });
      const datasets = series.map(function (name, i) {
        const pts = ran.filter(function (c) { return c.series === name && c.metrics[key]; })
                       .map(function (c) { return {x: c.x, y: c.metrics[key].median}; });
        return {label: name || m.label, data: pts, borderColor: palette[i % palette.length],
                backgroundColor: palette[i % palette.length], showLine: true, fill: false};
      }).filter(function (d) { return d.data.length; });
      charts.push(new Chart(canvas, {type: 'scatter', data: {datasets: datasets},
        options: {plugins: {title: {display: true, text: title}},
                  scales: {x: {title: {display: true, text: S.x_label}}, y: {title: {display: true, text: m.unit}}}}}));
    } else {
      const rows = ran.filter(function (c) { return c.metrics[key]; });
      charts.push(new Chart(canvas, {type: 'bar',
        data: {labels: rows.map(function (c) { return c.name; }),
               datasets: [{label: 'median', data: rows.map(function (c) { return c.metrics[key].median; }),
                           backgroundColor: palette[0]},
                          {label: 'min', data: rows.map(function (c) { return c.metrics[key].min; }),
                           backgroundColor: '#b9cde6'},
                          {label: 'max', data: rows.map(function (c) { return c.metrics[key].max; }),
                           backgroundColor: '#1d4272'}]},
        options: {plugins: {title: {display: true, text: title}}, scales: {y: {beginAtZero: true}}}}));
    }
  });
)JS";

}  // namespace

std::string result_html(const StudyResult& r, const std::string& chartjs_source) {
  using report::html_escape;
  const Study& s = *r.study;
  const auto& e = html_escape;
  std::string h = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>tokenscope study " +
                  e(s.name) + "</title>\n<style>\n"
                  "body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1250px;color:#222;padding:0 1em}"
                  "table{border-collapse:collapse;font-size:13px;margin:0.4em 0}"
                  "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}td:first-child,th:first-child{text-align:left}"
                  ".chart{position:relative;height:360px;margin:0.5em 0 1.5em}.note{color:#a40}#nocharts{display:none;color:#a40}"
                  ".verdict{font-size:1.1em;padding:0.5em 0.8em;border-left:4px solid #2f6db5;background:#f3f6fb}"
                  ".reproduced{border-color:#1a7f37}.not{border-color:#b3261e}"
                  "\n</style>\n";
  if (!chartjs_source.empty()) h += "<script>" + report::script_safe(chartjs_source) + "</script>\n";
  h += "</head>\n<body>\n<h1>tokenscope study " + e(s.name) + ": " + e(s.title) + "</h1>\n";
  h += "<p>Machine: " + e(machine_line(r.machine)) + "<br>Model: " + e(r.model_file) + "<br>" +
       std::to_string(r.options.rounds) + " rounds, configurations interleaved (order alternating), after a warm-up" +
       (r.options.quick ? " (quick mode)" : "") + "; " + strfmt("%.0f", r.seconds) + " s.</p>\n";
  const std::string vclass = r.verdict.status == "reproduced" ? "reproduced" : r.verdict.status == "not reproduced" ? "not" : "";
  h += "<p class=\"verdict " + vclass + "\"><b>Classic finding:</b> " + e(s.finding) + "<br><b>This run:</b> " +
       e(r.verdict.text) + ": <b>" + e(r.verdict.status) + "</b></p>\n";
  if (!s.caveat.empty()) h += "<p class=\"note\">Caveat: " + e(s.caveat) + "</p>\n";
  h += "<table><tr><th>configuration</th>";
  for (const Metric& m : s.metrics) h += "<th>" + e(column_title(m)) + "</th>";
  h += "</tr>\n";
  for (const ConfigResult& c : r.configs) {
    h += "<tr><td>" + e(c.config.name) + "</td>";
    if (!c.skipped.empty()) {
      h += "<td colspan=\"" + std::to_string(s.metrics.size()) + "\" class=\"note\">skipped: " + e(c.skipped) + "</td>";
    } else {
      for (const Metric& m : s.metrics) h += "<td>" + e(cell(c, m)) + "</td>";
    }
    h += "</tr>\n";
  }
  h += "</table>\n<p>Cells: median [min-max] over the rounds.</p>\n";
  for (const ConfigResult& c : r.configs)
    for (const std::string& n : c.notes) h += "<p class=\"note\">" + e(c.config.name) + ": " + e(n) + "</p>\n";
  h += "<p id=\"nocharts\">Charts unavailable: Chart.js was not found (install libjs-chart.js or set "
       "TOKENSCOPE_CHARTJS).</p>\n";
  for (size_t i = 0; i < s.charts.size(); ++i)
    h += "<div class=\"chart\"><canvas id=\"chart" + std::to_string(i) + "\"></canvas></div>\n";
  for (const ExtraTable& t : r.extra) {
    h += "<h2>" + e(t.title) + "</h2>\n<table><tr>";
    for (const std::string& hd : t.headers) h += "<th>" + e(hd) + "</th>";
    h += "</tr>\n";
    for (const auto& row : t.rows) {
      h += "<tr>";
      for (const std::string& c : row) h += "<td>" + e(c) + "</td>";
      h += "</tr>\n";
    }
    h += "</table>\n";
  }
  h += "<details><summary>Command lines</summary><ul>";
  for (const ConfigResult& c : r.configs) {
    std::string cmd;
    for (const auto& [k, v] : c.config.env) cmd += k + "=" + v + " ";
    cmd += "tokenscope";
    for (const std::string& a : c.config.args) cmd += " " + a;
    h += "<li><b>" + e(c.config.name) + "</b>: <code>" + e(cmd) + "</code></li>";
  }
  h += "</ul></details>\n";
  h += "<script type=\"application/json\" id=\"study-data\">" + report::script_safe(result_json(r).dump()) + "</script>\n";
  h += "<script>" + std::string(kStudyScript) + report::kMarkChartsDrawnJs + "</script>\n</body></html>\n";
  return h;
}

}  // namespace tokenscope::studies
