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

  // Peak int8: the fastest packed GEMM kernel (8 rows x 4 tokens per call), K = 2048, data in L1/L2,
  // each kernel run for at least 0.2 s on every thread.
  {
    const int64_t K = 2048;
    std::vector<float> x(static_cast<size_t>(K));
    for (int64_t i = 0; i < K; ++i) x[static_cast<size_t>(i)] = std::sin(0.1f * static_cast<float>(i));
    for (TensorType wt : {TensorType::Q4_0, TensorType::Q4_1, TensorType::Q8_0}) {
      const kernels::WeightKernels& wk = k.for_type(wt);
      if (!wk.gemm_packed) continue;
      const size_t rb = row_size(wt, K), ab = row_size(wk.act_type, K);
      std::vector<uint8_t> rows(rb * kernels::kPackRows), act(ab * 4);
      for (int r = 0; r < kernels::kPackRows; ++r) quantize_row(wt, x.data(), rows.data() + r * rb, K);
      for (int t = 0; t < 4; ++t) wk.quantize_act(x.data(), act.data() + t * ab, K);
      std::vector<uint8_t> group(wk.packed_group_bytes(K));
      wk.pack_rows(rows.data(), rb, K, group.data());
      std::vector<int32_t> sums(static_cast<size_t>(4 * K / 32), 0);
      int64_t calls = 0;
      const auto t0 = std::chrono::steady_clock::now();
      while (seconds_since(t0) < 0.2) {
        pool.run([&](int, int) {
          float y[4 * kernels::kPackRows];
          for (int c = 0; c < 500; ++c)
            wk.gemm_packed(K, group.data(), act.data(), ab, sums.data(), 4, y, kernels::kPackRows);
        });
        calls += 500;
      }
      const double gops = 2.0 * kernels::kPackRows * 4 * K * static_cast<double>(calls) * threads / seconds_since(t0) / 1e9;
      m.peak_int8_gops = std::max(m.peak_int8_gops, gops);
    }
  }

  // Peak f32: dot_f32 over 2 x 4096 floats (in L1/L2).
  {
    const int64_t n = 4096;
    std::vector<float> a(static_cast<size_t>(n), 1.0f), b(static_cast<size_t>(n), 0.5f);
    std::vector<float> sink(static_cast<size_t>(threads));
    int64_t calls = 0;
    const auto t0 = std::chrono::steady_clock::now();
    while (seconds_since(t0) < 0.2) {
      pool.run([&](int ith, int) {
        float s = 0;
        for (int c = 0; c < 2000; ++c) s += k.dot_f32(n, a.data(), b.data());
        sink[static_cast<size_t>(ith)] += s;
      });
      calls += 2000;
    }
    m.peak_f32_gflops = 2.0 * n * static_cast<double>(calls) * threads / seconds_since(t0) / 1e9;
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
      if (e.value("cpu", "") == cpu && e.value("threads", 0) == threads && e.value("isa", "") == isa_s) {
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
  kept.push_back(nlohmann::json::parse(machine_info_json(m)));
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  std::ofstream(path) << kept.dump(2) << "\n";
  return m;
}

}  // namespace tokenscope
