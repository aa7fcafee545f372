// base: resident-memory statistics and the release of a file mapping's pages.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "base/huge_buffer.h"
#include "base/memory_stats.h"
#include "test_util.h"

using namespace tokenscope;

namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

// Reads one byte of every page of [p, p + n); returns their sum, so the reads are not optimized away.
uint64_t touch_read(const uint8_t* p, size_t n) {
  uint64_t s = 0;
  for (size_t i = 0; i < n; i += page_bytes()) s += static_cast<const volatile uint8_t*>(p)[i];
  return s;
}

TEST(MemoryStats, CurrentAndPeakFollowAFreshAllocation) {
  const uint64_t rss0 = current_rss_bytes(), peak0 = peak_rss_bytes();
  ASSERT_GT(rss0, 0u);
  ASSERT_GE(peak0, rss0);
  const size_t n = 64 * kMiB;
  void* m = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  auto* p = static_cast<uint8_t*>(m);
  for (size_t i = 0; i < n; i += 4096) p[i] = static_cast<uint8_t>(i >> 12 | 1);
  const uint64_t rss1 = current_rss_bytes(), peak1 = peak_rss_bytes();
  std::printf("rss %.1f -> %.1f MiB, peak %.1f -> %.1f MiB\n", rss0 / double(kMiB), rss1 / double(kMiB),
              peak0 / double(kMiB), peak1 / double(kMiB));
  EXPECT_GE(rss1, rss0 + 60 * kMiB);
  EXPECT_GE(peak1, rss1);
  EXPECT_GE(peak1, rss0 + 60 * kMiB);
  munmap(m, n);
  const uint64_t rss2 = current_rss_bytes();
  EXPECT_LE(rss2 + 60 * kMiB, rss1);  // unmapped: gone from the resident set
  EXPECT_GE(peak_rss_bytes() + kMiB, peak1);  // the peak stays (the kernel's counts lag by a few pages)
  if (reset_peak_rss()) {
    const uint64_t peak3 = peak_rss_bytes();
    std::printf("after reset_peak_rss: peak %.1f MiB, rss %.1f MiB\n", peak3 / double(kMiB), rss2 / double(kMiB));
    EXPECT_LT(peak3 + 50 * kMiB, peak1);  // back near the current size
  } else {
    std::printf("reset_peak_rss is not allowed here\n");
  }
}

TEST(ReleaseFilePages, DropsTheWholePagesOfTheRangeAndKeepsTheContents) {
  const std::string path = tokenscope::testing::temp_path("release-pages.bin");
  const size_t n = 32 * kMiB;
  std::vector<uint8_t> bytes(n);
  for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<uint8_t>(i * 2654435761u >> 13);
  {
    FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_TRUE(f);
    ASSERT_EQ(std::fwrite(bytes.data(), 1, n, f), n);
    std::fclose(f);
  }
  const int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  void* m = mmap(nullptr, n, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  std::remove(path.c_str());
  ASSERT_NE(m, MAP_FAILED);
  const auto* p = static_cast<const uint8_t*>(m);
  const size_t page = page_bytes();

  const uint64_t rss0 = current_rss_bytes();
  const uint64_t sum = touch_read(p, n);
  const uint64_t rss1 = current_rss_bytes();
  EXPECT_GE(rss1, rss0 + 30 * kMiB) << "reading the mapping should map its pages";

  // Rounded inward: nothing whole inside a page's interior, one page for exactly one page.
  EXPECT_EQ(release_file_pages(p + 1, page - 2), 0u);
  EXPECT_EQ(release_file_pages(p + page, page), page);
  EXPECT_EQ(release_file_pages(nullptr, n), 0u);
  // All but the first and the last page, which the range only partly covers.
  EXPECT_EQ(release_file_pages(p + 1, n - 2), n - 2 * page);
  const uint64_t rss2 = current_rss_bytes();
  std::printf("rss %.1f MiB, %.1f after reading 32 MiB of a file mapping, %.1f after releasing it\n",
              rss0 / double(kMiB), rss1 / double(kMiB), rss2 / double(kMiB));
  EXPECT_LE(rss2 + 30 * kMiB, rss1);
  // The contents come back from the page cache (or the file).
  EXPECT_EQ(touch_read(p, n), sum);
  EXPECT_EQ(std::memcmp(p, bytes.data(), n), 0);
  munmap(m, n);
}

}  // namespace
