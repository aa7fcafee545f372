#include "base/huge_buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <utility>

#include "base/error.h"
#include "base/memory_stats.h"

namespace tokenscope {

namespace {
constexpr size_t kHugePage = size_t{2} << 20;
std::atomic<HugePages> g_pages{HugePages::thp};
std::mutex g_notes_m;
std::string g_notes;

void add_note(const std::string& line) {
  std::lock_guard<std::mutex> l(g_notes_m);
  if (g_notes.find(line) == std::string::npos) g_notes += line + "\n";
}
}  // namespace

const char* huge_pages_name(HugePages m) {
  switch (m) {
    case HugePages::off: return "off";
    case HugePages::thp: return "thp";
    case HugePages::hugetlbfs: return "hugetlbfs";
  }
  return "?";
}

std::optional<HugePages> huge_pages_from_name(std::string_view name) {
  for (HugePages m : {HugePages::off, HugePages::thp, HugePages::hugetlbfs})
    if (name == huge_pages_name(m)) return m;
  return std::nullopt;
}

void set_huge_pages(HugePages m) { g_pages = m; }
HugePages huge_pages() { return g_pages; }
int64_t hugetlb_pages_free() { return static_cast<int64_t>(proc_field("/proc/meminfo", "HugePages_Free")); }
size_t hugetlb_page_bytes() {
  const uint64_t kib = proc_field("/proc/meminfo", "Hugepagesize");
  return kib > 0 ? static_cast<size_t>(kib) * 1024 : kHugePage;
}

std::string huge_pages_notes() {
  std::lock_guard<std::mutex> l(g_notes_m);
  return g_notes;
}

size_t page_bytes() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

void prefault_read(const void* p, size_t bytes) {
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
  if (!p || bytes == 0) return;
  const uintptr_t page = page_bytes();
  const uintptr_t b = reinterpret_cast<uintptr_t>(p) & ~(page - 1);
  const uintptr_t e = reinterpret_cast<uintptr_t>(p) + bytes;
  if (madvise(reinterpret_cast<void*>(b), e - b, MADV_POPULATE_READ) != 0)
    madvise(reinterpret_cast<void*>(b), e - b, MADV_WILLNEED);  // older kernels: at least start reading it in
}

size_t release_file_pages(const void* p, size_t bytes) {
  if (!p || bytes == 0) return 0;
  const uintptr_t page = page_bytes();
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(page - 1);
  if (e <= b) return 0;
  return madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED) == 0 ? e - b : 0;
}

HugeBuffer::HugeBuffer(size_t bytes, const char* what, bool prefault) {
  if (bytes == 0) return;
  pages_ = huge_pages();
  if (pages_ == HugePages::hugetlbfs) {
    const size_t hp = hugetlb_page_bytes();
    const size_t n = (bytes + hp - 1) / hp * hp;
    void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    if (p != MAP_FAILED) {
      data_ = p;
      size_ = n;
      if (prefault)
        for (size_t off = 0; off < n; off += hp) static_cast<volatile uint8_t*>(p)[off] = 0;
      return;
    }
    const int err = errno;
    char line[320];
    std::snprintf(line, sizeof line,
                  "--hugepages hugetlbfs: %s: %zu reserved %zu KiB pages needed, %lld free (%s): using transparent "
                  "huge pages instead (reserve more: echo N > /proc/sys/vm/nr_hugepages)",
                  what, n / hp, hp / 1024, static_cast<long long>(hugetlb_pages_free()), std::strerror(err));
    add_note(line);
    pages_ = HugePages::thp;
  }
  size_ = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  // One huge page more than needed, then the unaligned head and tail are unmapped: transparent huge pages
  // only back 2 MiB-aligned ranges.
  void* p = mmap(nullptr, size_ + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    size_ = 0;
    fail("cannot map %zu bytes for %s: %s", bytes, what, std::strerror(err));
  }
  const auto base = reinterpret_cast<uintptr_t>(p);
  const uintptr_t aligned = (base + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > base) munmap(p, aligned - base);
  if (const size_t tail = base + size_ + kHugePage - (aligned + size_)) munmap(reinterpret_cast<void*>(aligned + size_), tail);
  data_ = reinterpret_cast<void*>(aligned);
  // Advice only: with THP "never" a thp buffer keeps 4 KiB pages.
  if (pages_ == HugePages::thp) madvise(data_, size_, MADV_HUGEPAGE);
  else madvise(data_, size_, MADV_NOHUGEPAGE);
  if (prefault) {
    // Fault the pages in now (huge ones where THP gives them), so the first use does not pay for the
    // kernel clearing them; MADV_POPULATE_WRITE (Linux 5.14), else a write per 4 KiB page.
#if defined(MADV_POPULATE_WRITE)
    if (madvise(data_, size_, MADV_POPULATE_WRITE) == 0) return;
#endif
    auto* p8 = static_cast<volatile uint8_t*>(data_);
    for (size_t off = 0; off < size_; off += 4096) p8[off] = 0;
  }
}

HugeBuffer::~HugeBuffer() {
  if (data_) munmap(data_, size_);
}

HugeBuffer::HugeBuffer(HugeBuffer&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)), pages_(o.pages_) {}

HugeBuffer& HugeBuffer::operator=(HugeBuffer&& o) noexcept {
  if (this != &o) {
    if (data_) munmap(data_, size_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    pages_ = o.pages_;
  }
  return *this;
}

}  // namespace tokenscope
