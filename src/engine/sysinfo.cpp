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
#include <vector>

#include "base/error.h"
#include "base/huge_buffer.h"
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
constexpr int kSysinfoMethod = 2;
}  // namespace

std::string sysinfo_cache_path() {
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/tmp") + "/.cache/tokenscope/sysinfo.json";
}

MachineInfo measure_machine(int threads, kernels::Isa isa) {
  MachineInfo m;
  m.cpu = cpu_name();
  m.threads = threads;
  m.isa = kernels::isa_name(isa);
  ThreadPool pool(threads);
  const kernels::KernelTable& k = kernels::table(isa);

  // Read bandwidth: 512 MiB on huge pages (as the packed weights are), each thread streams its share through
  // the SIMD f32 dot kernel (the data dotted with itself: one read per cache line); best of 3 passes.
  {
    const size_t bytes = size_t{512} << 20;
    const int64_t n = static_cast<int64_t>(bytes / sizeof(float));
    HugeBuffer mem(bytes, "the bandwidth measurement");
    auto* buf = static_cast<float*>(mem.data());
    constexpr int64_t kChunk = 16384;  // floats per dot call (64 KiB)
    pool.parallel_for(n, kChunk, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) buf[i] = static_cast<float>(i & 7) * 0.125f;
    });
    std::vector<double> sink(static_cast<size_t>(threads));
    double best = 0;
    for (int pass = 0; pass < 3; ++pass) {
      const auto t0 = std::chrono::steady_clock::now();
      pool.parallel_for(n, kChunk, [&](int64_t b, int64_t e, int ith) {
        double acc = 0;
        for (int64_t i = b; i < e; i += kChunk) acc += k.dot_f32(std::min(kChunk, e - i), buf + i, buf + i);
        sink[static_cast<size_t>(ith)] += acc;
      });
      best = std::max(best, static_cast<double>(bytes) / seconds_since(t0) / 1e9);
    }
    m.read_gbs = best;
    if (sink[0] == 42) std::fprintf(stderr, " ");  // keep the sums alive
  }

  // Peak int8: the fastest packed GEMM kernel as prefill calls it (the 16-row pair kernel with its full token
  // count where the table has one, else 8 rows x 4 tokens), K = 2048, data in L1/L2, each kernel run for at
  // least 0.2 s on every thread.
  {
    const int64_t K = 2048;
    std::vector<float> x(static_cast<size_t>(K));
    for (int64_t i = 0; i < K; ++i) x[static_cast<size_t>(i)] = std::sin(0.1f * static_cast<float>(i));
    for (TensorType wt : {TensorType::Q4_0, TensorType::Q4_1, TensorType::Q8_0}) {
      const kernels::WeightKernels& wk = k.for_type(wt);
      if (!wk.gemm_packed) continue;
      const bool pair = wk.gemm_packed2 != nullptr;
      const int rows = pair ? 2 * kernels::kPackRows : kernels::kPackRows;
      const int nt = pair ? kernels::kPacked2MaxTokens : 4;
      const size_t rb = row_size(wt, K), ab = row_size(wk.act_type, K);
      std::vector<uint8_t> wrows(rb * static_cast<size_t>(rows)), act(ab * static_cast<size_t>(nt));
      for (int r = 0; r < rows; ++r) quantize_row(wt, x.data(), wrows.data() + r * rb, K);
      for (int t = 0; t < nt; ++t) wk.quantize_act(x.data(), act.data() + t * ab, K);
      const size_t gb = wk.packed_group_bytes(K);
      std::vector<uint8_t> groups(gb * static_cast<size_t>(rows / kernels::kPackRows));
      for (int g = 0; g < rows / kernels::kPackRows; ++g)
        wk.pack_rows(wrows.data() + static_cast<size_t>(g * kernels::kPackRows) * rb, rb, K, groups.data() + g * gb);
      std::vector<int32_t> sums(static_cast<size_t>(nt * K / 32), 0);
      int64_t calls = 0;
      const auto t0 = std::chrono::steady_clock::now();
      while (seconds_since(t0) < 0.2) {
        pool.run([&](int, int) {
          std::vector<float> y(static_cast<size_t>(nt * rows));
          for (int c = 0; c < 200; ++c) {
            if (pair) wk.gemm_packed2(K, groups.data(), gb, act.data(), ab, sums.data(), nt, y.data(), rows);
            else wk.gemm_packed(K, groups.data(), act.data(), ab, sums.data(), nt, y.data(), rows);
          }
        });
        calls += 200;
      }
      const double gops = 2.0 * rows * nt * K * static_cast<double>(calls) * threads / seconds_since(t0) / 1e9;
      m.peak_int8_gops = std::max(m.peak_int8_gops, gops);
    }
  }

  // Peak f32: the attention tiles' small GEMM (gemm_f32_f16t, 32 x 64 x 64, in L1).
  {
    const int64_t M = 32, N = 64, Kd = 64;
    std::vector<float> a(static_cast<size_t>(M * Kd), 0.5f);
    std::vector<uint16_t> b(static_cast<size_t>(N * Kd), 0x3C00);  // f16 1.0
    int64_t calls = 0;
    const auto t0 = std::chrono::steady_clock::now();
    while (seconds_since(t0) < 0.2) {
      pool.run([&](int, int) {
        std::vector<float> c(static_cast<size_t>(M * N));
        for (int r = 0; r < 500; ++r) k.gemm_f32_f16t(M, N, Kd, a.data(), Kd, b.data(), Kd, kernels::F16Chunks{}, c.data(), N, false);
      });
      calls += 500;
    }
    m.peak_f32_gflops = 2.0 * M * N * Kd * static_cast<double>(calls) * threads / seconds_since(t0) / 1e9;
  }
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  m.measured_at = buf;
  return m;
}

MachineInfo machine_info(int threads, kernels::Isa isa, bool refresh) {
  const std::string path = sysinfo_cache_path();
  nlohmann::json all = nlohmann::json::array();
  if (std::filesystem::exists(path)) {
    try {
      all = nlohmann::json::parse(std::ifstream(path));
      if (!all.is_array()) all = nlohmann::json::array();
    } catch (const std::exception&) {
      all = nlohmann::json::array();  // a damaged cache is re-measured
    }
  }
  const std::string cpu = cpu_name(), isa_s = kernels::isa_name(isa);
  if (!refresh) {
    for (const auto& e : all) {
      // Entries of an older measuring method (e.g. before the bandwidth moved to huge pages and the peaks to
      // the widest kernels) are measured again.
      if (e.value("cpu", "") == cpu && e.value("threads", 0) == threads && e.value("isa", "") == isa_s &&
          e.value("method", 1) == kSysinfoMethod) {
        MachineInfo m;
        m.cpu = cpu;
        m.threads = threads;
        m.isa = isa_s;
        m.read_gbs = e.value("read_gbs", 0.0);
        m.peak_int8_gops = e.value("peak_int8_gops", 0.0);
        m.peak_f32_gflops = e.value("peak_f32_gflops", 0.0);
        m.measured_at = e.value("measured_at", "");
        m.from_cache = true;
        if (m.read_gbs > 0 && m.peak_int8_gops > 0 && m.peak_f32_gflops > 0) return m;
      }
    }
  }
  MachineInfo m = measure_machine(threads, isa);
  nlohmann::json kept = nlohmann::json::array();
  for (const auto& e : all)
    if (!(e.value("cpu", "") == cpu && e.value("threads", 0) == threads && e.value("isa", "") == isa_s)) kept.push_back(e);
  auto entry = nlohmann::json::parse(machine_info_json(m));
  entry["method"] = kSysinfoMethod;
  kept.push_back(entry);
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  std::ofstream(path) << kept.dump(2) << "\n";
  return m;
}

}  // namespace tokenscope
