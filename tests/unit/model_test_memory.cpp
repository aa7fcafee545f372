// Model::load keeps the model resident once: the packed copies replace the file mapping's pages of the
// matrices as they are made, so neither the resident set after loading nor its peak during the load holds
// the weights twice.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "base/huge_buffer.h"
#include "base/memory_stats.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "model_builder.h"
#include "test_util.h"

using namespace tokenscope;
using namespace tokenscope::testing;

namespace {

constexpr double kMiB = 1 << 20;

// The resident bytes of the mapping holding p (its Rss line in /proc/self/smaps); -1 if not found.
double mapping_rss(const void* p) {
  std::ifstream f("/proc/self/smaps");
  std::string line;
  bool in = false;
  const auto a = reinterpret_cast<uintptr_t>(p);
  while (std::getline(f, line)) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find(' ')) {
      in = a >= lo && a < hi;
      continue;
    }
    unsigned long kib = 0;
    if (in && std::sscanf(line.c_str(), "Rss: %lu kB", &kib) == 1) return static_cast<double>(kib) * 1024;
  }
  return -1;
}

TEST(ModelMemory, LoadKeepsTheWeightsResidentOnce) {
  // ~57 MB of Q4_0 matrices: 8 layers of 1024 x (4 x 1024 + 3 x 2816), and an untied output of 257 rows,
  // one past its last group of kPackRows.
  TinyModelSpec s;
  s.n_layer = 8;
  s.n_embd = 1024;
  s.n_ff = 2816;
  s.n_head = 16;
  s.n_head_kv = 16;
  s.wtype = TensorType::Q4_0;
  s.tied = false;
  const std::string path = temp_path("memory-model.gguf");
  build_tiny_model(s).write(path);
  const double file_bytes = static_cast<double>(std::ifstream(path, std::ios::binary | std::ios::ate).tellg());

  const bool clean_peak = reset_peak_rss();
  const double rss0 = static_cast<double>(current_rss_bytes());
  const double peak0 = static_cast<double>(peak_rss_bytes());
  auto m = Model::load(path);
  const double rss1 = static_cast<double>(current_rss_bytes());
  const double peak1 = static_cast<double>(peak_rss_bytes());
  std::remove(path.c_str());
  ASSERT_GT(rss0, 0);

  // What stays in the file mapping: the embedding table, read by rows, and the rows past each packed matrix's
  // last full group; the copies take the packed buffer.
  const ModelConfig& c = m->config();
  double kept = static_cast<double>(m->token_embd().row_bytes * static_cast<size_t>(m->token_embd().rows));
  int n_matrices = 0;
  auto add = [&](const ops::Weight& w) {
    ++n_matrices;
    if (w.packed) kept += static_cast<double>(w.row_bytes * static_cast<size_t>(w.rows % kernels::kPackRows));
  };
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const LayerWeights& l = m->layer(i);
    for (const ops::Weight* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) add(*w);
  }
  add(m->output());
  ASSERT_TRUE(m->output().packed_owner);
  const double packed = static_cast<double>(m->output().packed_owner->size());
  // A page or two per matrix at its ends (shared with its neighbours), the header and the 1-D tensors, and 4 MiB
  // of allocator and thread slack.
  const double slack = 4 * kMiB + 2.0 * n_matrices * static_cast<double>(page_bytes()) * 2;
  const double bound = packed + kept + 0.15 * file_bytes + slack;
  const double map_rss = mapping_rss(m->token_embd().data);
  std::printf(
      "file %.1f MiB, packed copies %.1f MiB, kept in the file %.2f MiB\n"
      "load: rss %.1f -> %.1f MiB (+%.1f), peak +%.1f MiB (%s), the file mapping's rss %.2f MiB; bound +%.1f MiB\n",
      file_bytes / kMiB, packed / kMiB, kept / kMiB, rss0 / kMiB, rss1 / kMiB, (rss1 - rss0) / kMiB,
      (peak1 - rss0) / kMiB, clean_peak ? "since the load began" : "peak not resettable, not checked",
      map_rss / kMiB, bound / kMiB);
  RecordProperty("rss_growth_mib", static_cast<int>((rss1 - rss0) / kMiB));
  RecordProperty("peak_growth_mib", static_cast<int>((peak1 - rss0) / kMiB));
  EXPECT_GT(file_bytes, 50 * kMiB);
  EXPECT_LE(rss1 - rss0, bound) << "the file's pages of the packed matrices are still resident";
  if (clean_peak && peak0 <= rss0 + kMiB) {
    EXPECT_LE(peak1 - rss0, bound) << "the file's pages were released only at the end, or not at all";
  }
  if (map_rss >= 0) {
    EXPECT_LE(map_rss, kept + slack);
  }
}

}  // namespace
