// The self-contained HTML report of a profile (no network needed to view it): per-step latency timeline with
// prefill/decode marked, per-stage op breakdown, the roofline with each op placed per stage, counters per
// stage, and the stage table (stage, main operations, bottleneck, key observations). Built from summary.json,
// so `tokenscope report DIR` can rebuild it. Charts use Chart.js, inlined from Debian's libjs-chart.js.
//
// When the charts are drawn the page marks <body> with data-charts-total and data-charts-drawn (a chart
// counts as drawn when its canvas holds painted pixels and data elements), and data-error on a script error,
// so a headless browser can check it (tests/unit/profile_test_html.cpp).
#pragma once

#include <string>

namespace tokenscope::report {

// Chart.js on this machine: $TOKENSCOPE_CHARTJS, else Debian's libjs-chart.js; "" when there is none.
std::string find_chartjs();
// The report page from summary.json's text; chartjs_source is inlined (empty: tables only, with a note).
// Throws Error if summary_json is not a tokenscope summary.
std::string html_report(const std::string& summary_json, const std::string& chartjs_source);
// Text for HTML element content and attribute values (< > & " escaped).
std::string html_escape(const std::string& s);
// Text placed inside <script>: no "</" may close the element early.
std::string script_safe(const std::string& s);
// Reads a whole file ("" if it cannot be read).
std::string read_text_file(const std::string& path);
// The closing part of a report page's script function (which holds `charts` and `body`): once the charts are
// painted it sets data-charts-total and data-charts-drawn on <body> (the headless-browser tests read them).
extern const char* const kMarkChartsDrawnJs;

}  // namespace tokenscope::report
