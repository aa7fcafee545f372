#include "engine/sysinfo.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <sys/utsname.h>
#include <unistd.h>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "base/error.h"
#include "base/huge_buffer.h"
#include "profile/load.h"
#include "formats/tensor_type.h"
#include "runtime/thread_pool.h"

namespace tokenscope {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string cpu_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

}  // namespace

namespace {

// Version of how measure_machine measures; cached entries of another version are not used.
constexpr int kSysinfoMethod = 4;
// Repeats of each figure (its median and range are kept).
constexpr int kRepeats = 7;

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string read_line(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return trim(line);
}

// "32K" / "1024K" / "32M" -> bytes; 0 if unreadable.
double parse_size(const std::string& s) {
  if (s.empty()) return 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str()) return 0;
  const char u = *end;
  return u == 'K' ? v * 1024 : u == 'M' ? v * 1024 * 1024 : u == 'G' ? v * 1024 * 1024 * 1024 : v;
}

// "0-1,4" -> 3 CPUs.
int count_cpu_list(const std::string& s) {
  int n = 0;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ',')) {
    if (part.empty()) continue;
    const size_t dash = part.find('-');
    if (dash == std::string::npos) ++n;
    else n += std::atoi(part.c_str() + dash + 1) - std::atoi(part.c_str()) + 1;
  }
  return std::max(1, n);
}

std::string kernel_release() {
  utsname u{};
  return uname(&u) == 0 ? u.release : "unknown";
}

// Measures fn (which returns a rate) kRepeats times.
profile::Spread repeat(const std::function<double()>& fn) {
  std::vector<double> v;
  for (int i = 0; i < kRepeats; ++i) v.push_back(fn());
  return profile::spread_of(v);
}

}  // namespace

namespace {

nlohmann::json spread_json(const profile::Spread& s) {
  return {{"median", s.median}, {"lo", s.lo}, {"hi", s.hi}, {"n", s.n}};
}

profile::Spread spread_from(const nlohmann::json& j) {
  profile::Spread s;
  if (!j.is_object()) return s;
  s.median = j.value("median", 0.0);
  s.lo = j.value("lo", 0.0);
  s.hi = j.value("hi", 0.0);
  s.n = j.value("n", 0);
  return s;
}

}  // namespace

std::string machine_info_json(const MachineInfo& m) {
  nlohmann::json levels = nlohmann::json::array();
  for (const profile::MemoryLevel& l : m.levels)
    levels.push_back({{"name", l.name},
                      {"capacity", l.capacity},
                      {"working_set", l.working_set},
                      {"gbs", spread_json(l.gbs)},
                      {"stream_gbs", spread_json(l.stream_gbs)},
                      {"gemv_gbs", spread_json(l.gemv_gbs)}});
  nlohmann::json j = {{"cpu", m.cpu},
                      {"threads", m.threads},
                      {"isa", m.isa},
                      {"read_gbs", m.read_gbs},
                      {"peak_int8_gops", m.peak_int8_gops},
                      {"peak_f32_gflops", m.peak_f32_gflops},
                      {"int8_spread", spread_json(m.int8_spread)},
                      {"f32_spread", spread_json(m.f32_spread)},
                      {"levels", levels},
                      {"key", m.key},
                      {"disturbed", m.disturbed},
                      {"load", m.load},
                      {"measured_at", m.measured_at}};
  return j.dump(2);
}

MachineInfo machine_info_from_json(const std::string& text) {
  const nlohmann::json j = nlohmann::json::parse(text);
  MachineInfo m;
  if (!j.is_object()) return m;
  m.cpu = j.value("cpu", "");
  m.threads = j.value("threads", 0);
  m.isa = j.value("isa", "");
  m.read_gbs = j.value("read_gbs", 0.0);
  m.peak_int8_gops = j.value("peak_int8_gops", 0.0);
  m.peak_f32_gflops = j.value("peak_f32_gflops", 0.0);
  if (j.contains("int8_spread")) m.int8_spread = spread_from(j["int8_spread"]);
  if (j.contains("f32_spread")) m.f32_spread = spread_from(j["f32_spread"]);
  m.key = j.value("key", "");
  m.disturbed = j.value("disturbed", false);
  m.load = j.value("load", "");
  m.measured_at = j.value("measured_at", "");
  m.from_cache = j.value("from_cache", false);
  if (j.contains("levels") && j["levels"].is_array()) {
    for (const auto& e : j["levels"]) {
      profile::MemoryLevel l;
      l.name = e.value("name", "");
      l.capacity = e.value("capacity", 0.0);
      l.working_set = e.value("working_set", 0.0);
      if (e.contains("gbs")) l.gbs = spread_from(e["gbs"]);
      if (e.contains("stream_gbs")) l.stream_gbs = spread_from(e["stream_gbs"]);
      if (e.contains("gemv_gbs")) l.gemv_gbs = spread_from(e["gemv_gbs"]);
      m.levels.push_back(l);
    }
  }
  return m;
}

std::string sysinfo_cache_path() {
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/tmp") + "/.cache/tokenscope/sysinfo.json";
}

std::string CpuDescription::key() const {
  std::string c;
  for (const CacheInfo& ci : caches)
    c += strfmt("%sL%d %.0fK/%d", c.empty() ? "" : " ", ci.level, ci.size / 1024, ci.shared_cpus);
  return strfmt("cpu=%s; cpus=%d; caches=%s; kernel=%s; isa=%s; threads=%d; method=%d", cpu.c_str(), cpus,
                c.c_str(), kernel.c_str(), isa.c_str(), threads, kSysinfoMethod);
}

std::vector<CacheInfo> sysfs_caches(const std::string& dir) {
  std::vector<CacheInfo> out;
  for (int i = 0; i < 16; ++i) {
    const std::string d = dir + "/index" + std::to_string(i);
    if (!std::filesystem::exists(d)) break;
    const std::string type = read_line(d + "/type");
    if (type != "Data" && type != "Unified") continue;
    CacheInfo c;
    c.level = std::atoi(read_line(d + "/level").c_str());
    c.size = parse_size(read_line(d + "/size"));
    const std::string shared = read_line(d + "/shared_cpu_list");
    c.shared_cpus = shared.empty() ? 1 : count_cpu_list(shared);
    if (c.level > 0 && c.size > 0) out.push_back(c);
  }
  std::sort(out.begin(), out.end(), [](const CacheInfo& a, const CacheInfo& b) { return a.level < b.level; });
  return out;
}

std::vector<CacheInfo> cpuid_caches() {
  std::vector<CacheInfo> out;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  __cpuid(0, a, b, c, d);
  const bool amd = b == 0x68747541;  // "Auth"enticAMD
  unsigned leaf = 4;
  if (amd) {
    __cpuid(0x80000000, a, b, c, d);
    if (a < 0x8000001D) return out;
    leaf = 0x8000001D;
  } else if (a < 4) {
    return out;
  }
  for (unsigned i = 0; i < 16; ++i) {
    __cpuid_count(leaf, i, a, b, c, d);
    const unsigned type = a & 0x1f;
    if (type == 0) break;
    if (type != 1 && type != 3) continue;  // data or unified
    CacheInfo ci;
    ci.level = static_cast<int>((a >> 5) & 7);
    ci.shared_cpus = static_cast<int>(((a >> 14) & 0xfff) + 1);
    ci.size = static_cast<double>(((b >> 22) + 1) * (((b >> 12) & 0x3ff) + 1) * ((b & 0xfff) + 1)) * (c + 1.0);
    out.push_back(ci);
  }
  std::sort(out.begin(), out.end(), [](const CacheInfo& x, const CacheInfo& y) { return x.level < y.level; });
#endif
  return out;
}

CpuDescription describe_cpu(int threads, kernels::Isa isa) {
  CpuDescription d;
  d.cpu = cpu_name();
  d.cpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  d.caches = sysfs_caches("/sys/devices/system/cpu/cpu0/cache");
  if (d.caches.empty()) d.caches = cpuid_caches();
  d.kernel = kernel_release();
  const char* features = kernels::table(isa).features;
  d.isa = std::string(kernels::isa_name(isa)) + (features && *features ? std::string("+") + features : "");
  d.threads = threads;
  return d;
}

std::vector<profile::MemoryLevel> roofline_levels(const CpuDescription& d) {
  std::vector<profile::MemoryLevel> out;
  double below = 0;  // capacity of the level below (faster)
  const int threads = std::max(1, d.threads);
  for (const CacheInfo& c : d.caches) {
    const int instances_total = std::max(1, d.cpus / std::max(1, c.shared_cpus));
    const int used = std::min(instances_total, (threads + c.shared_cpus - 1) / std::max(1, c.shared_cpus));
    const double cap = c.size * std::max(1, used);
    if (cap <= below) continue;
    profile::MemoryLevel l;
    l.name = "L" + std::to_string(c.level);
    l.capacity = cap;
    l.working_set = below > 0 ? std::max(cap / 2, std::min(2 * below, 0.75 * cap)) : cap / 2;
    out.push_back(l);
    below = cap;
  }
  profile::MemoryLevel dram;
  dram.name = "DRAM";
  dram.working_set = std::min(2048.0 * 1024 * 1024, std::max(512.0 * 1024 * 1024, 4 * below));
  out.push_back(dram);
  return out;
}

MachineInfo measure_machine(const CpuDescription& d, kernels::Isa isa) {
  MachineInfo m;
  m.cpu = d.cpu;
  m.threads = d.threads;
  m.isa = kernels::isa_name(isa);
  m.key = d.key();
  const int threads = std::max(1, d.threads);
  ThreadPool pool(threads);
  const kernels::KernelTable& k = kernels::table(isa);
  const profile::LoadWatch load_watch;

  // Each level: a buffer of the level's working set, each thread reading its own contiguous share over and over
  // (so a private cache holds the thread's share), timed over enough passes for ~20 ms.
  // Decode's GEMV: the packed kernel of the default model's format (Q4_1, else another packed format), one token.
  const kernels::WeightKernels* gw = nullptr;
  TensorType gtype = TensorType::Q4_1;
  for (TensorType t : {TensorType::Q4_1, TensorType::Q4_0, TensorType::Q8_0})
    if (k.for_type(t).gemm_packed && k.for_type(t).pack_rows) {
      gw = &k.for_type(t);
      gtype = t;
      break;
    }
  constexpr int64_t kGemvK = 512;
  std::vector<uint8_t> group, act;
  if (gw) {
    std::vector<float> x(kGemvK);
    for (int64_t i = 0; i < kGemvK; ++i) x[static_cast<size_t>(i)] = std::sin(0.37f * static_cast<float>(i));
    const size_t rb = row_size(gtype, kGemvK);
    std::vector<uint8_t> rows(rb * kernels::kPackRows);
    for (int r = 0; r < kernels::kPackRows; ++r) quantize_row(gtype, x.data(), rows.data() + r * rb, kGemvK);
    group.resize(gw->packed_group_bytes(kGemvK));
    gw->pack_rows(rows.data(), rb, kGemvK, group.data());
    act.resize(gw->act.row_bytes(kGemvK));
    gw->act.quantize(x.data(), act.data(), kGemvK);
  }
  const std::vector<int32_t> sums(kGemvK / 32, 0);
  std::vector<double> sink(static_cast<size_t>(threads) * 16, 0.0);
  for (profile::MemoryLevel& l : roofline_levels(d)) {
    const size_t per_thread = static_cast<size_t>(l.working_set / threads) / 4096 * 4096;
    if (per_thread < 4096) continue;
    HugeBuffer mem(per_thread * static_cast<size_t>(threads), "the bandwidth measurement");
    auto* base = static_cast<uint8_t*>(mem.data());
    // Stream: the f32 dot kernel, the buffer dotted with itself (one read per cache line).
    pool.run([&](int ith, int) {
      auto* f = reinterpret_cast<float*>(base + per_thread * static_cast<size_t>(ith));
      for (size_t i = 0; i < per_thread / 4; ++i) f[i] = static_cast<float>(i & 7) * 0.125f;
    });
    auto stream_pass = [&](int reps) {
      pool.run([&](int ith, int) {
        const auto* f = reinterpret_cast<const float*>(base + per_thread * static_cast<size_t>(ith));
        const int64_t n = static_cast<int64_t>(per_thread / 4);
        constexpr int64_t kChunk = 16384;
        double acc = 0;
        for (int r = 0; r < reps; ++r)
          for (int64_t i = 0; i < n; i += kChunk) acc += k.dot_f32(std::min(kChunk, n - i), f + i, f + i);
        sink[static_cast<size_t>(ith) * 16] += acc;
      });
    };
    // GEMV: the same buffer filled with copies of one packed group; each call reads one group's weight bytes.
    const size_t groups = gw ? per_thread / group.size() : 0;
    if (groups > 0)
      pool.run([&](int ith, int) {
        uint8_t* p = base + per_thread * static_cast<size_t>(ith);
        for (size_t g = 0; g < groups; ++g) std::memcpy(p + g * group.size(), group.data(), group.size());
      });
    auto gemv_pass = [&](int reps) {
      pool.run([&](int ith, int) {
        const uint8_t* p = base + per_thread * static_cast<size_t>(ith);
        float y[kernels::kPackRows];
        float acc = 0;
        for (int r = 0; r < reps; ++r)
          for (size_t g = 0; g < groups; ++g) {
            gw->gemm_packed(kGemvK, p + g * group.size(), act.data(), act.size(), sums.data(), 1, y, kernels::kPackRows);
            acc += y[0];
          }
        sink[static_cast<size_t>(ith) * 16] += acc;
      });
    };
    auto rate = [&](const std::function<void(int)>& pass, double bytes_per_pass) {
      pass(1);  // warm: the level is filled, pages are mapped
      auto t0 = std::chrono::steady_clock::now();
      pass(1);
      const double once = std::max(1e-6, seconds_since(t0));
      const int reps = std::max(1, static_cast<int>(0.02 / once));
      return repeat([&] {
        const auto t = std::chrono::steady_clock::now();
        pass(reps);
        return bytes_per_pass * reps / seconds_since(t) / 1e9;
      });
    };
    l.stream_gbs = rate(stream_pass, static_cast<double>(per_thread) * threads);
    if (groups > 0) l.gemv_gbs = rate(gemv_pass, static_cast<double>(groups * group.size()) * threads);
    l.gbs = l.gemv_gbs.median > l.stream_gbs.median ? l.gemv_gbs : l.stream_gbs;
    m.levels.push_back(l);
  }
  if (!m.levels.empty()) m.read_gbs = m.levels.back().gbs.median;
  if (sink[0] == 42) std::fprintf(stderr, " ");  // keep the sums alive

  // Peak int8: the fastest packed GEMM kernel as prefill calls it (the 16-row pair kernel with its full token
  // count where the table has one, else 8 rows x 4 tokens), K = 2048, data in L1/L2, every thread busy. The
  // ternary I2_S kernel is a candidate: its multiply-adds are int8 ones with no scales per block in between. One
  // 50 ms run per format picks the fastest; that one is measured kRepeats times, each for at least 50 ms.
  {
    const int64_t K = 2048;
    std::vector<float> x(static_cast<size_t>(K));
    for (int64_t i = 0; i < K; ++i) x[static_cast<size_t>(i)] = std::sin(0.1f * static_cast<float>(i));
    auto gemm_rate = [&](TensorType wt, int repeats) {
      const kernels::WeightKernels& wk = k.for_type(wt);
      const bool pair = wk.gemm_packed2 != nullptr;
      const int rows = pair ? 2 * kernels::kPackRows : kernels::kPackRows;
      const int nt = pair ? kernels::kPacked2MaxTokens : 4;
      const size_t rb = row_size(wt, K), ab = wk.act.row_bytes(K);
      std::vector<uint8_t> wrows(tensor_bytes(wt, K, rows)), a(ab * static_cast<size_t>(nt));
      std::vector<float> xr;  // the same row `rows` times, quantized as one tensor (I2_S's scale follows the rows)
      for (int r = 0; r < rows; ++r) xr.insert(xr.end(), x.begin(), x.end());
      quantize_tensor(wt, xr.data(), wrows.data(), rows, K);
      for (int t = 0; t < nt; ++t) wk.act.quantize(x.data(), a.data() + t * ab, K);
      const size_t gb = wk.packed_group_bytes(K);
      std::vector<uint8_t> groups(gb * static_cast<size_t>(rows / kernels::kPackRows));
      for (int g = 0; g < rows / kernels::kPackRows; ++g)
        wk.pack_rows(wrows.data() + static_cast<size_t>(g * kernels::kPackRows) * rb, rb, K, groups.data() + g * gb);
      std::vector<int32_t> s8(static_cast<size_t>(nt * K / 32), 0);
      std::vector<double> rates;
      for (int i = 0; i < repeats; ++i) rates.push_back([&] {
        int64_t calls = 0;
        const auto t0 = std::chrono::steady_clock::now();
        while (seconds_since(t0) < 0.05) {
          pool.run([&](int, int) {
            std::vector<float> y(static_cast<size_t>(nt * rows));
            for (int c = 0; c < 200; ++c) {
              if (pair) wk.gemm_packed2(K, groups.data(), gb, a.data(), ab, s8.data(), nt, y.data(), rows);
              else wk.gemm_packed(K, groups.data(), a.data(), ab, s8.data(), nt, y.data(), rows);
            }
          });
          calls += 200;
        }
        return 2.0 * rows * nt * K * static_cast<double>(calls) * threads / seconds_since(t0) / 1e9;
      }());
      return profile::spread_of(rates);
    };
    TensorType best = TensorType::Q4_0;
    double best_rate = -1;
    for (TensorType wt : {TensorType::Q4_0, TensorType::Q4_1, TensorType::Q8_0, TensorType::I2_S}) {
      if (!k.for_type(wt).gemm_packed) continue;
      const double r = gemm_rate(wt, 1).median;
      if (r > best_rate) {
        best_rate = r;
        best = wt;
      }
    }
    if (best_rate > 0) m.int8_spread = gemm_rate(best, kRepeats);
    m.peak_int8_gops = m.int8_spread.median;
  }

  // Peak f32: the attention tiles' small GEMM (gemm_f32_f16t, 32 x 64 x 64, in L1).
  {
    const int64_t M = 32, N = 64, Kd = 64;
    std::vector<float> a(static_cast<size_t>(M * Kd), 0.5f);
    std::vector<uint16_t> b(static_cast<size_t>(N * Kd), 0x3C00);  // f16 1.0
    m.f32_spread = repeat([&] {
      int64_t calls = 0;
      const auto t0 = std::chrono::steady_clock::now();
      while (seconds_since(t0) < 0.05) {
        pool.run([&](int, int) {
          std::vector<float> c(static_cast<size_t>(M * N));
          for (int r = 0; r < 500; ++r)
            k.gemm_f32_f16t(M, N, Kd, a.data(), Kd, b.data(), Kd, kernels::F16Chunks{}, c.data(), N, false);
        });
        calls += 500;
      }
      return 2.0 * M * N * Kd * static_cast<double>(calls) * threads / seconds_since(t0) / 1e9;
    });
    m.peak_f32_gflops = m.f32_spread.median;
  }
  const profile::LoadReport load = load_watch.stop(threads);
  m.disturbed = load.disturbed;
  m.load = load.line();
  for (const std::string& w : load.warnings) m.load += "; " + w;
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  m.measured_at = buf;
  return m;
}

MachineInfo machine_info_cached(const std::string& path, const CpuDescription& d, bool refresh,
                                const std::function<MachineInfo(const CpuDescription&)>& measure,
                                const std::function<bool()>& quiet_now) {
  nlohmann::json all = nlohmann::json::array();
  if (std::filesystem::exists(path)) {
    try {
      all = nlohmann::json::parse(std::ifstream(path));
      if (!all.is_array()) all = nlohmann::json::array();
    } catch (const std::exception&) {
      all = nlohmann::json::array();  // a damaged cache is measured again
    }
  }
  const std::string key = d.key();
  if (!refresh) {
    for (const auto& e : all) {
      if (!e.is_object() || e.value("key", "") != key) continue;
      MachineInfo m = machine_info_from_json(e.dump());
      m.from_cache = true;
      if (!(m.peak_int8_gops > 0 && m.peak_f32_gflops > 0 && !m.levels.empty())) continue;
      // Figures measured on a disturbed machine are measured again once the machine is quiet.
      if (m.disturbed && quiet_now && quiet_now()) break;
      return m;
    }
  }
  MachineInfo m = measure(d);
  m.key = key;
  // Entries of other keys stay (another thread count or ISA on this machine, or an older version's entries
  // without a key, which that version still reads), the newest 16 of them.
  nlohmann::json kept = nlohmann::json::array();
  for (const auto& e : all)
    if (e.is_object() && e.value("key", "") != key) kept.push_back(e);
  while (kept.size() > 16) kept.erase(kept.begin());
  kept.push_back(nlohmann::json::parse(machine_info_json(m)));
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream f(tmp);
    f << kept.dump(2) << "\n";
  }
  std::filesystem::rename(tmp, path, ec);  // atomic: concurrent runs never read half a file
  if (ec) std::filesystem::remove(tmp, ec);
  return m;
}

MachineInfo machine_info(int threads, kernels::Isa isa, bool refresh) {
  // Quiet: over 100 ms, other tasks used less than a tenth of a CPU beyond the ones the run leaves free.
  auto quiet = [threads] {
    const profile::LoadWatch w;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const profile::LoadReport r = w.stop(threads);
    return r.measured && r.others_cpus < std::max(0, r.cpus - threads) + 0.1 && r.steal_share < 0.02;
  };
  return machine_info_cached(sysinfo_cache_path(), describe_cpu(threads, isa), refresh,
                             [isa](const CpuDescription& d) { return measure_machine(d, isa); }, quiet);
}

}  // namespace tokenscope
