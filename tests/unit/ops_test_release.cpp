// ops: pack_weights releases the file pages of the rows it copied (Weight::release_source), keeps the pages
// still read from the file (a packed weight's rows past its last full group, weights without the flag and
// their aliases), and the copies multiply as the rows do.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "base/huge_buffer.h"
#include "formats/tensor_type.h"
#include "kernels/kernels.h"
#include "ops/ops.h"
#include "runtime/thread_pool.h"
#include "test_util.h"

using namespace tokenscope;

namespace {

// Whether the page holding p is mapped in this process (/proc/self/pagemap bit 63); -1 if unreadable.
int page_present(int pagemap_fd, const void* p) {
  uint64_t e = 0;
  const off_t at = static_cast<off_t>(reinterpret_cast<uintptr_t>(p) / page_bytes() * 8);
  if (pread(pagemap_fd, &e, 8, at) != 8) return -1;
  return static_cast<int>(e >> 63);
}

// The numbers of present pages among those lying wholly inside [b, e) and among those touching it.
struct Presence {
  size_t inside = 0, inside_present = 0, touching = 0, touching_present = 0;
};
Presence presence(int fd, const uint8_t* b, const uint8_t* e) {
  const uintptr_t page = page_bytes();
  Presence r;
  for (uintptr_t a = reinterpret_cast<uintptr_t>(b) & ~(page - 1); a < reinterpret_cast<uintptr_t>(e); a += page) {
    const int present = page_present(fd, reinterpret_cast<const void*>(a));
    const bool inside = a >= reinterpret_cast<uintptr_t>(b) && a + page <= reinterpret_cast<uintptr_t>(e);
    ++r.touching;
    r.touching_present += present == 1;
    if (inside) {
      ++r.inside;
      r.inside_present += present == 1;
    }
  }
  return r;
}

std::vector<uint8_t> quantized_rows(TensorType t, int64_t cols, int64_t rows, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 0.05f);
  std::vector<float> x(static_cast<size_t>(cols));
  const size_t rb = row_size(t, cols);
  std::vector<uint8_t> out(rb * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    for (auto& v : x) v = nd(rng);
    quantize_row(t, x.data(), out.data() + static_cast<size_t>(r) * rb, cols);
  }
  return out;
}

ops::Weight weight(const char* name, TensorType t, int64_t cols, int64_t rows, const uint8_t* data) {
  ops::Weight w;
  w.name = name;
  w.type = t;
  w.data = data;
  w.cols = cols;
  w.rows = rows;
  w.row_bytes = row_size(t, cols);
  return w;
}

TEST(PackWeights, ReleasesTheCopiedRowsOfTheFileMappingOnly) {
  constexpr int64_t K = 1024;
  // A: packed, 300 full groups and 5 rows past them; B: no packed layout (a plain copy); C: kept in the file
  // (no release_source), and C2 the same bytes with the flag, as a tied output projection would be.
  const int64_t rows_a = 300 * kernels::kPackRows + 5, rows_b = 1500, rows_c = 2000;
  const auto a = quantized_rows(TensorType::Q8_0, K, rows_a, 1);
  const auto b = quantized_rows(TensorType::F16, K, rows_b, 2);
  const auto c = quantized_rows(TensorType::Q4_0, K, rows_c, 3);
  // 128 KiB of filler around each, standing for other tensors, wider than the kernel's fault-around (64 KiB):
  // reading one weight does not map the pages of another. The weights start and end inside pages.
  auto align = [](size_t x) { return (x + 31) / 32 * 32; };
  constexpr size_t kGap = size_t{128} << 10;
  const size_t off_a = kGap + 96, off_b = align(off_a + a.size()) + kGap + 64, off_c = align(off_b + b.size()) + kGap + 32;
  const size_t size = off_c + c.size() + kGap + 100;
  std::vector<uint8_t> file(size, 0x5a);
  std::memcpy(file.data() + off_a, a.data(), a.size());
  std::memcpy(file.data() + off_b, b.data(), b.size());
  std::memcpy(file.data() + off_c, c.data(), c.size());
  const std::string path = tokenscope::testing::temp_path("pack-release.bin");
  {
    FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_TRUE(f);
    ASSERT_EQ(std::fwrite(file.data(), 1, size, f), size);
    std::fclose(f);
  }
  const int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  void* m = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  std::remove(path.c_str());
  ASSERT_NE(m, MAP_FAILED);
  // 4 KiB mappings: a file's large folios may otherwise be mapped whole (2 MiB), and releasing part of one
  // unmaps all of it (refaulted when read), which would blur which pages were released.
  madvise(m, size, MADV_NOHUGEPAGE);
  const auto* base = static_cast<const uint8_t*>(m);
  volatile uint8_t sink = 0;
  for (size_t i = 0; i < size; i += page_bytes()) sink = sink + base[i];  // every page mapped

  ops::Weight wa = weight("a", TensorType::Q8_0, K, rows_a, base + off_a);
  ops::Weight wb = weight("b", TensorType::F16, K, rows_b, base + off_b);
  ops::Weight wc = weight("c", TensorType::Q4_0, K, rows_c, base + off_c);
  ops::Weight wc2 = wc;
  wc2.name = "c2";
  wa.release_source = wb.release_source = wc2.release_source = true;
  ops::pack_weights({&wa, &wb, &wc, &wc2});
  const bool packed_a = wa.packed != nullptr;
  EXPECT_EQ(wa.data, base + off_a);  // the rows past the last group are read from here
  EXPECT_NE(wb.data, base + off_b);  // copied
  EXPECT_FALSE(wa.release_source || wb.release_source || wc2.release_source) << "the flag is spent by packing";

  const int pm = ::open("/proc/self/pagemap", O_RDONLY);
  if (pm >= 0 && page_present(pm, base) >= 0) {
    const size_t body_a = (packed_a ? static_cast<size_t>(rows_a / kernels::kPackRows * kernels::kPackRows)
                                    : static_cast<size_t>(rows_a)) * wa.row_bytes;
    const Presence pa = presence(pm, base + off_a, base + off_a + body_a);
    const Presence tail = presence(pm, base + off_a + body_a, base + off_a + a.size());
    const Presence pb = presence(pm, base + off_b, base + off_b + b.size());
    const Presence pc = presence(pm, base + off_c, base + off_c + c.size());
    std::printf("pages present after packing: A %zu of %zu (A's tail rows %zu of %zu), B %zu of %zu, C %zu of %zu\n",
                pa.inside_present, pa.inside, tail.touching_present, tail.touching, pb.inside_present, pb.inside,
                pc.touching_present, pc.touching);
    EXPECT_GT(pa.inside, 500u);
    EXPECT_EQ(pa.inside_present, 0u) << "the packed rows' pages are released";
    EXPECT_EQ(pb.inside_present, 0u) << "the copied rows' pages are released";
    if (packed_a) {
      EXPECT_EQ(tail.touching_present, tail.touching) << "the pages of the rows left in the file stay";
    }
    EXPECT_EQ(pc.touching_present, pc.touching) << "a weight read from the file keeps its pages, aliases or not";
    // The pages a released weight shares with the bytes around it stay.
    ASSERT_NE(off_a % page_bytes(), 0u);
    ASSERT_NE((off_b + b.size()) % page_bytes(), 0u);
    EXPECT_EQ(page_present(pm, base + off_a), 1);
    EXPECT_EQ(page_present(pm, base + off_b + b.size() - 1), 1);
  } else {
    std::printf("/proc/self/pagemap is not readable: page presence not checked\n");
  }
  if (pm >= 0) ::close(pm);

  // The copies and the rows left in the file multiply exactly as the same weights packed from ordinary memory.
  ThreadPool pool(2);
  ops::Context ctx(pool, kernels::active());
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(static_cast<size_t>(3 * K));
  for (auto& v : x) v = nd(rng);
  struct Case {
    ops::Weight* w;
    const std::vector<uint8_t>* bytes;
  };
  for (Case cs : {Case{&wa, &a}, Case{&wb, &b}, Case{&wc2, &c}}) {
    ops::Weight ref = weight("ref", cs.w->type, K, cs.w->rows, cs.bytes->data());
    ops::pack_weight(ref);
    std::vector<float> y(static_cast<size_t>(3 * cs.w->rows)), yr(y.size());
    ops::matmul(ctx, *cs.w, x.data(), 3, y.data());
    ops::matmul(ctx, ref, x.data(), 3, yr.data());
    EXPECT_EQ(0, std::memcmp(y.data(), yr.data(), y.size() * sizeof(float))) << cs.w->name;
  }
  EXPECT_EQ(0, std::memcmp(base, file.data(), size)) << "the mapping reads back the file";
  munmap(m, size);
}

}  // namespace
