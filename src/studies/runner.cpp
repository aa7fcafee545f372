#include "studies/study.h"

#include <sys/utsname.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "base/error.h"

namespace tokenscope::studies {

Stat stat_of(std::vector<double> v) {
  TS_CHECK(!v.empty());
  std::sort(v.begin(), v.end());
  Stat s;
  s.n = static_cast<int>(v.size());
  s.min = v.front();
  s.max = v.back();
  const size_t h = v.size() / 2;
  s.median = v.size() % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
  return s;
}

std::optional<Stat> ConfigResult::stat(const std::string& key) const {
  const auto it = samples.find(key);
  if (it == samples.end() || it->second.empty()) return std::nullopt;
  return stat_of(it->second);
}

namespace {

std::string first_line_of(const std::string& path, const std::string& prefix) {
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (prefix.empty() || line.rfind(prefix, 0) == 0) return line;
  return "";
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\t')) s.pop_back();
  size_t b = 0;
  while (b < s.size() && (s[b] == ' ' || s[b] == '\t')) ++b;
  return s.substr(b);
}

std::string substitute(const std::string& s, const std::string& out) {
  std::string r = s;
  for (size_t p; (p = r.find("{out}")) != std::string::npos;) r.replace(p, 5, out);
  return r;
}

// The non-empty lines of a child's output, trimmed.
std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> ls;
  for (size_t b = 0; b < text.size();) {
    size_t e = text.find('\n', b);
    if (e == std::string::npos) e = text.size();
    std::string l = trim(text.substr(b, e - b));
    if (!l.empty()) ls.push_back(std::move(l));
    b = e + 1;
  }
  return ls;
}

// The last lines of a child's stderr, for an error message.
std::string tail_of(const std::string& err, size_t lines = 3) {
  const std::vector<std::string> ls = lines_of(err);
  std::string r;
  for (size_t i = ls.size() > lines ? ls.size() - lines : 0; i < ls.size(); ++i) r += (r.empty() ? "" : " | ") + ls[i];
  return r;
}

}  // namespace

Machine describe_machine(const std::string& bin) {
  Machine m;
  const ChildResult r = run_child(bin, {"sysinfo", "--json"}, {}, 600);
  if (!r.ok) fail("tokenscope sysinfo failed: %s", tail_of(r.err).c_str());
  try {
    m.sysinfo = json::parse(r.out);
  } catch (const std::exception& e) {
    fail("tokenscope sysinfo --json printed no JSON: %s", e.what());
  }
  m.cpu = m.sysinfo.value("cpu", "");
  const std::string model_name = first_line_of("/proc/cpuinfo", "model name");
  if (const size_t c = model_name.find(':'); c != std::string::npos) m.cpu = trim(model_name.substr(c + 1));
  m.isa = m.sysinfo.value("isa", "");
  m.cpus = m.sysinfo.value("threads", 0);
  m.dram_gbs = m.sysinfo.value("read_gbs", 0.0);
  m.peak_int8_gops = m.sysinfo.value("peak_int8_gops", 0.0);
  if (m.sysinfo.contains("levels"))
    for (const json& l : m.sysinfo["levels"]) {
      m.levels.emplace_back(l.value("name", "?"), l.contains("gbs") ? l["gbs"].value("median", 0.0) : 0.0);
      m.capacities.emplace_back(l.value("name", "?"), l.value("capacity", 0.0));
    }
  utsname u{};
  if (uname(&u) == 0) m.kernel = std::string(u.sysname) + " " + u.release;
  const std::string thp = first_line_of("/sys/kernel/mm/transparent_hugepage/enabled", "");
  const size_t a = thp.find('['), b = thp.find(']');
  m.thp = a != std::string::npos && b > a ? thp.substr(a + 1, b - a - 1) : "unknown";
  return m;
}

StudyResult run_study(const Study& s, const Options& o, const Machine& m) {
  const auto t0 = std::chrono::steady_clock::now();
  StudyResult res;
  res.study = &s;
  res.machine = m;
  res.options = o;
  std::filesystem::create_directories(o.work_dir);
  const std::vector<Config> configs = s.configs(o, m);
  for (const Config& c : configs) res.configs.push_back({c, {}, {}, "", json(), {}});
  int run_no = 0;
  // One run of configuration i; measured ones go into the results.
  auto run_one = [&](size_t i, bool measured) {
    ConfigResult& cr = res.configs[i];
    if (!cr.skipped.empty()) return;
    const Config& c = cr.config;
    const std::string out = o.work_dir + "/run-" + std::to_string(run_no++);
    std::filesystem::remove_all(out);
    std::filesystem::create_directories(out);
    std::vector<std::string> args;
    for (const std::string& a : c.args) args.push_back(substitute(a, out));
    std::string before_note;
    if (c.before) before_note = c.before();
    const ChildResult r = run_child(o.bin, args, c.env, o.timeout_s);
    auto note = [&](const std::string& n) {
      if (!n.empty() && std::find(cr.notes.begin(), cr.notes.end(), n) == cr.notes.end()) cr.notes.push_back(n);
    };
    note(before_note);
    if (!r.ok) {
      // A configuration this machine cannot run (e.g. a real-time policy without permission) is skipped with the
      // child's own words; the others go on.
      cr.skipped = "exit " + std::to_string(r.exit_code) + ": " + tail_of(r.err);
      std::filesystem::remove_all(out);
      return;
    }
    // The child's notes (fallbacks of its knobs) and warnings, once each; a disturbed run is noted from its JSON.
    for (std::string l : lines_of(r.err)) {
      if (l.rfind("tokenscope: ", 0) == 0) l = l.substr(12);
      if (l.find("disturbed") != std::string::npos) continue;
      if (l.rfind("note: ", 0) == 0) note(l.substr(6));
      else if (l.rfind("warning:", 0) == 0) note(l);
    }
    json j;
    try {
      if (c.json_file.empty()) {
        const size_t start = r.out.find_first_of("[{");
        j = json::parse(start == std::string::npos ? r.out : r.out.substr(start));
      } else {
        std::ifstream f(substitute(c.json_file, out));
        j = json::parse(f);
      }
    } catch (const std::exception& e) {
      cr.skipped = std::string("its output was not the JSON expected: ") + e.what();
      std::filesystem::remove_all(out);
      return;
    }
    std::filesystem::remove_all(out);
    if (!measured) return;
    // bench records and profile summaries say when the machine was busy while they ran.
    auto disturbed = [&](const json& x) {
      if (!x.is_object() || !x.contains("load") || !x["load"].is_object() || !x["load"].value("disturbed", false)) return;
      for (const std::string& n : cr.notes)
        if (n.rfind("disturbed", 0) == 0) return;  // once per configuration: the first such run's figures
      note("disturbed (another load on the machine) in at least one run: " + x["load"].value("line", std::string()));
    };
    disturbed(j);
    if (j.is_array())
      for (const json& x : j) disturbed(x);
    std::vector<std::string> notes;
    const Sample smp = s.extract(j, r, c, m, notes);
    for (const std::string& n : notes) note(n);
    for (const auto& [k, v] : smp) cr.samples[k].push_back(v);
    cr.last = j;
    cr.runs.push_back(std::move(j));
  };
  const size_t n = configs.size();
  std::fprintf(stderr, "study %s: %zu configurations, warm-up then %d rounds\n", s.name.c_str(), n, o.rounds);
  for (size_t i = 0; i < n; ++i) run_one(i, false);
  for (int round = 0; round < o.rounds; ++round) {
    std::fprintf(stderr, "\rstudy %s: round %d of %d ", s.name.c_str(), round + 1, o.rounds);
    std::fflush(stderr);
    for (size_t k = 0; k < n; ++k) run_one(round % 2 == 0 ? k : n - 1 - k, true);
  }
  std::fprintf(stderr, "\r\033[K");
  res.verdict = s.judge(res.configs, m);
  if (s.extra_tables) res.extra = s.extra_tables(res.configs);
  res.model_file = o.model;
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace tokenscope::studies
