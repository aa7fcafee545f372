// The operating-system knobs take effect: load modes give the same bytes, huge-page modes show in smaps, the
// scheduling policy and nice value read back from the threads, the OpenMP pool runs every share and gives the
// engine's tokens.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "base/file_load.h"
#include "base/huge_buffer.h"
#include "engine/session.h"
#include "gguf/gguf.h"
#include "runtime/thread_pool.h"
#include "test_util.h"

using namespace tokenscope;
using tokenscope::testing::kSmolLM2;
using tokenscope::testing::model_path;

namespace {

// A file of n pseudo-random bytes in the build tree (a disk file system: /tmp may be tmpfs, which refuses
// O_DIRECT).
std::string write_test_file(size_t n, const std::string& name) {
  const std::string p = std::string(TS_BINARY_DIR) + "/" + name;
  std::ofstream f(p, std::ios::binary);
  uint32_t x = 12345;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    f.put(static_cast<char>(x >> 24));
  }
  return p;
}

std::vector<LoadMode> all_modes() { return {LoadMode::mmap, LoadMode::read, LoadMode::uring, LoadMode::direct}; }

// The smaps entry of the mapping holding p: its field (e.g. "AnonHugePages", "KernelPageSize") in kB, -1 if absent.
long smaps_kb(const void* p, const std::string& field) {
  std::ifstream f("/proc/self/smaps");
  std::string line;
  const auto a = reinterpret_cast<uintptr_t>(p);
  bool in = false;
  while (std::getline(f, line)) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find(' ')) {
      in = a >= lo && a < hi;
      continue;
    }
    if (in && line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

std::string thp_setting() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string s;
  std::getline(f, s);
  return s;
}

}  // namespace

TEST(LoadModes, EveryModeReadsTheSameBytes) {
  // Not a multiple of the page or the O_DIRECT block: the tail must come in too.
  const size_t n = (size_t{9} << 20) + 4097;
  const std::string path = write_test_file(n, "load_modes_test.bin");
  const FileImage ref = FileImage::load(path, {LoadMode::mmap});
  ASSERT_EQ(ref.size(), n);
  EXPECT_TRUE(ref.mapped());
  for (LoadMode m : all_modes()) {
    SCOPED_TRACE(load_mode_name(m));
    if (m == LoadMode::uring && !uring_available()) {
      std::printf("skipped: --load uring (this build has no liburing)\n");
      continue;
    }
    const FileImage img = FileImage::load(path, {m});
    ASSERT_EQ(img.size(), n);
    EXPECT_EQ(std::memcmp(img.data(), ref.data(), n), 0);
    EXPECT_EQ(img.mapped(), m == LoadMode::mmap);
    if (m == LoadMode::direct && img.stats().mode != LoadMode::direct) {
      // The only allowed fallback, and it must say why.
      EXPECT_EQ(img.stats().mode, LoadMode::read);
      EXPECT_NE(img.stats().note.find("O_DIRECT"), std::string::npos) << img.stats().note;
      std::printf("note: %s\n", img.stats().note.c_str());
    } else {
      EXPECT_EQ(img.stats().mode, m);
      EXPECT_TRUE(img.stats().note.empty()) << img.stats().note;
    }
    EXPECT_EQ(img.stats().bytes, n);
    EXPECT_GT(img.stats().ms, 0.0);
  }
  std::remove(path.c_str());
}

TEST(LoadModes, ModelTensorsAreByteIdenticalInEveryMode) {
  const std::string path = model_path(kSmolLM2);
  ASSERT_FALSE(path.empty()) << "default model missing: run scripts/fetch-models.sh";
  auto ref = gguf::File::open(path, {LoadMode::mmap});
  for (LoadMode m : all_modes()) {
    if (m == LoadMode::mmap || (m == LoadMode::uring && !uring_available())) continue;
    SCOPED_TRACE(load_mode_name(m));
    auto f = gguf::File::open(path, {m});
    ASSERT_EQ(f->tensors().size(), ref->tensors().size());
    for (size_t i = 0; i < f->tensors().size(); ++i) {
      const gguf::TensorInfo& t = f->tensors()[i];
      ASSERT_EQ(t.name, ref->tensors()[i].name);
      ASSERT_EQ(std::memcmp(f->tensor_data(t), ref->tensor_data(ref->tensors()[i]), t.size_bytes), 0) << t.name;
    }
  }
}

TEST(LoadModes, MissingAndEmptyFilesAreNamedErrors) {
  for (LoadMode m : all_modes()) {
    if (m == LoadMode::uring && !uring_available()) continue;
    try {
      FileImage::load("/nonexistent/model.gguf", {m});
      ADD_FAILURE() << "no error for a missing file";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("/nonexistent/model.gguf"), std::string::npos) << e.what();
    }
  }
  const std::string empty = write_test_file(0, "load_modes_empty.bin");
  for (LoadMode m : {LoadMode::mmap, LoadMode::read}) EXPECT_EQ(FileImage::load(empty, {m}).size(), 0u);
  std::remove(empty.c_str());
}

TEST(LoadModes, PageCacheEvictionMakesTheFileCold) {
  const std::string path = write_test_file(size_t{4} << 20, "load_modes_cold.bin");
  FileImage::load(path, {LoadMode::read});  // now in the page cache
  const double warm = page_cache_share(path);
  std::string why;
  // Written pages must reach the disk before they can be dropped.
  sync();
  ASSERT_TRUE(evict_from_page_cache(path, &why)) << why;
  const double cold = page_cache_share(path);
  if (warm < 0.5) GTEST_SKIP() << "the file was not cached after a read (share " << warm << "): cannot test eviction";
  if (cold > 0.5)
    GTEST_SKIP() << "this file system keeps the file's pages after POSIX_FADV_DONTNEED (share " << cold
                 << "; e.g. tmpfs or an overlay)";
  EXPECT_LT(cold, warm);
  std::remove(path.c_str());
}

TEST(HugePages, ModesShowInSmaps) {
  const HugePages before = huge_pages();
  const size_t bytes = size_t{8} << 20;
  set_huge_pages(HugePages::off);
  {
    HugeBuffer b(bytes, "test buffer", /*prefault=*/true);
    EXPECT_EQ(b.pages(), HugePages::off);
    EXPECT_EQ(smaps_kb(b.data(), "AnonHugePages"), 0);
  }
  set_huge_pages(HugePages::thp);
  {
    HugeBuffer b(bytes, "test buffer", /*prefault=*/true);
    EXPECT_EQ(b.pages(), HugePages::thp);
    const std::string thp = thp_setting();
    if (thp.find("[never]") != std::string::npos) {
      std::printf("skipped: THP is off on this machine (%s): no AnonHugePages to see\n", thp.c_str());
    } else {
      // The kernel gives huge pages where it has free 2 MiB blocks; a fragmented machine may give fewer.
      EXPECT_GT(smaps_kb(b.data(), "AnonHugePages"), 0) << "THP: " << thp;
    }
  }
  set_huge_pages(HugePages::hugetlbfs);
  {
    const int64_t free_pages = hugetlb_pages_free();
    HugeBuffer b(bytes, "test buffer", /*prefault=*/true);
    if (free_pages >= static_cast<int64_t>(bytes / hugetlb_page_bytes())) {
      EXPECT_EQ(b.pages(), HugePages::hugetlbfs);
      EXPECT_EQ(smaps_kb(b.data(), "KernelPageSize"), static_cast<long>(hugetlb_page_bytes() / 1024));
    } else {
      // Not enough reserved pages: it must fall back to THP and say so with the numbers.
      EXPECT_EQ(b.pages(), HugePages::thp);
      EXPECT_NE(huge_pages_notes().find("test buffer: 4 reserved"), std::string::npos) << huge_pages_notes();
      std::printf("hugetlbfs: %lld reserved pages free, so the fallback was tested: %s", static_cast<long long>(free_pages),
                  huge_pages_notes().c_str());
    }
    std::memset(b.data(), 1, b.size());
  }
  set_huge_pages(before);
}

// Runs f on a thread of its own (a pool's policy and nice value also apply to the thread that makes it).
template <class F>
void on_own_thread(F f) {
  std::thread t(f);
  t.join();
}

TEST(PoolSched, PolicyAndNiceReadBackFromEveryThread) {
  on_own_thread([] {
    PoolOptions o;
    o.sched = SchedPolicy::fifo;
    o.priority = 1;
    std::unique_ptr<ThreadPool> pool;
    try {
      pool = std::make_unique<ThreadPool>(3, o);
    } catch (const Error& e) {
      // Refused (no CAP_SYS_NICE, no RLIMIT_RTPRIO, a cgroup without real-time budget): the error says what is missing.
      EXPECT_NE(std::string(e.what()).find("CAP_SYS_NICE"), std::string::npos) << e.what();
      std::printf("skipped: SCHED_FIFO is not permitted here: %s\n", e.what());
    }
    if (pool) {
      std::vector<int> policy(3, -1);
      pool->run([&](int ith, int) { policy[static_cast<size_t>(ith)] = sched_getscheduler(0); });
      for (int p : policy) EXPECT_EQ(p, SCHED_FIFO);
    }
  });
  on_own_thread([] {
    PoolOptions o;
    o.sched = SchedPolicy::other;
    o.nice = 5;
    ThreadPool pool(3, o);
    std::vector<int> nice(3, -100), policy(3, -1);
    pool.run([&](int ith, int) {
      nice[static_cast<size_t>(ith)] = getpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()));
      policy[static_cast<size_t>(ith)] = sched_getscheduler(0);
    });
    for (int n : nice) EXPECT_EQ(n, 5);
    for (int p : policy) EXPECT_EQ(p, SCHED_OTHER);
  });
  PoolOptions bad;
  bad.sched = SchedPolicy::other;
  bad.priority = 3;
  EXPECT_THROW(ThreadPool(2, bad), Error);
}

#if defined(__SANITIZE_THREAD__)
constexpr bool kTsan = true;
#else
constexpr bool kTsan = false;
#endif

TEST(PoolOpenMP, EveryShareRunsOnceAndMatchesTheOwnPool) {
  if (!openmp_available()) GTEST_SKIP() << "this build has no OpenMP";
  if (kTsan) GTEST_SKIP() << "libgomp is not built with ThreadSanitizer: its barrier would be reported";
  PoolOptions o;
  o.backend = PoolBackend::openmp;
  for (int n : {1, 2, 3, 5}) {
    ThreadPool pool(n, o);
    std::vector<std::atomic<int>> runs(static_cast<size_t>(n));
    for (int rep = 0; rep < 50; ++rep) pool.run([&](int ith, int nth) {
      EXPECT_EQ(nth, n);
      runs[static_cast<size_t>(ith)]++;
    });
    for (auto& r : runs) EXPECT_EQ(r.load(), 50);
    std::vector<int> hit(1000, 0);
    pool.parallel_for_stealing(1000, 7, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) hit[static_cast<size_t>(i)]++;
    });
    for (int h : hit) ASSERT_EQ(h, 1);
  }
}

TEST(PoolOpenMP, EngineGivesTheOwnPoolsTokens) {
  if (!openmp_available()) GTEST_SKIP() << "this build has no OpenMP";
  if (kTsan) GTEST_SKIP() << "libgomp is not built with ThreadSanitizer";
  const std::string path = model_path(kSmolLM2);
  ASSERT_FALSE(path.empty()) << "default model missing: run scripts/fetch-models.sh";
  std::vector<std::vector<TokenId>> out;
  for (PoolBackend b : {PoolBackend::own, PoolBackend::openmp}) {
    EngineOptions o;
    o.model_path = path;
    o.n_threads = 2;
    o.kv_tokens = 256;
    o.pool.backend = b;
    o.load.mode = b == PoolBackend::own ? LoadMode::mmap : LoadMode::read;  // and a load mode across
    Session s(Engine::open(o));
    GenerateOptions g;
    g.n_predict = 16;
    g.ignore_eos = true;
    g.sampling.temperature = 0;
    out.push_back(s.generate(s.tokenize("The capital of France is"), g).tokens);
  }
  EXPECT_EQ(out[0], out[1]);
}

namespace {
// Share of [p, p + n)'s pages resident in this process (mincore).
double resident_share(const void* p, size_t n) {
  const size_t page = page_bytes();
  const auto b = reinterpret_cast<uintptr_t>(p) & ~(page - 1);
  const size_t len = reinterpret_cast<uintptr_t>(p) + n - b;
  std::vector<unsigned char> v((len + page - 1) / page);
  if (mincore(reinterpret_cast<void*>(b), len, v.data()) != 0) return -1;
  size_t in = 0;
  for (unsigned char c : v) in += c & 1;
  return static_cast<double>(in) / static_cast<double>(v.size());
}

long status_kb(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::strlen(field)));
  return -1;
}
}  // namespace

TEST(LoadModes, PrefaultMapsTheWholeFileAtLoad) {
  const std::string path = write_test_file(size_t{16} << 20, "load_modes_prefault.bin");
  sync();
  evict_from_page_cache(path);
  const FileImage lazy = FileImage::load(path, {LoadMode::mmap, /*prefault=*/false});
  const double lazy_share = resident_share(lazy.data(), lazy.size());
  const FileImage eager = FileImage::load(path, {LoadMode::mmap, /*prefault=*/true});
  const double eager_share = resident_share(eager.data(), eager.size());
  EXPECT_GT(eager_share, 0.99);
  if (lazy_share > 0.5)
    GTEST_SKIP() << "this file system kept the file cached after POSIX_FADV_DONTNEED (" << lazy_share
                 << " resident): a lazy mapping cannot be told from a prefaulted one";
  // A fresh mapping has nothing mapped in until touched (mincore on a file mapping reports the page cache, so
  // after the eager load the lazy one may show pages too: compare before).
  EXPECT_LT(lazy_share, eager_share);
  std::remove(path.c_str());
}

TEST(LoadModes, MlockLocksOrNamesTheLimit) {
  std::vector<char> mem(size_t{1} << 20, 1);
  try {
    lock_memory();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("RLIMIT_MEMLOCK"), std::string::npos) << e.what();
    GTEST_SKIP() << "locking is not allowed here: " << e.what();
  }
  EXPECT_GT(status_kb("VmLck:"), 1000);
  munlockall();
}
