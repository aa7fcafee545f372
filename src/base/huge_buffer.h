// Zero-initialized memory for large working sets (the KV cache, the packed weights), 2 MiB-aligned and mapped with transparent huge pages
// requested (madvise MADV_HUGEPAGE): decode streams every weight once per token and a layer's KV cache
// spans megabytes; with 2 MiB pages either is a handful of TLB entries instead of a page walk per 4 KiB.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tokenscope {

// Where HugeBuffers get their pages (`--hugepages`, process-wide):
//   off       - 4 KiB pages (MADV_NOHUGEPAGE, so even a machine with THP "always" gives none);
//   thp       - transparent huge pages asked for with MADV_HUGEPAGE (the default; the kernel gives 2 MiB pages
//               where it has them, else 4 KiB ones);
//   hugetlbfs - MAP_HUGETLB from the pages reserved in /proc/sys/vm/nr_hugepages; a buffer that does not fit the
//               free reserved pages falls back to thp, and huge_pages_notes() says so, with the numbers.
enum class HugePages { off, thp, hugetlbfs };
const char* huge_pages_name(HugePages m);
std::optional<HugePages> huge_pages_from_name(std::string_view name);
void set_huge_pages(HugePages m);
HugePages huge_pages();
// Free reserved huge pages (HugePages_Free in /proc/meminfo; 0 when unreadable) and their size in bytes.
int64_t hugetlb_pages_free();
size_t hugetlb_page_bytes();
// The fallbacks taken so far, one line each ("" when none).
std::string huge_pages_notes();

class HugeBuffer {
 public:
  HugeBuffer() = default;
  // Maps `bytes` (rounded up to 2 MiB), zero-filled. Throws tokenscope::Error naming `what` if the mapping fails.
  // prefault: fault every page in now rather than at first touch (the KV cache: otherwise the first prompt's
  // attention pays for the kernel clearing ~100 MB of pages, and a profile would show it as attention time).
  HugeBuffer(size_t bytes, const char* what, bool prefault = false);
  ~HugeBuffer();
  HugeBuffer(HugeBuffer&& o) noexcept;
  HugeBuffer& operator=(HugeBuffer&& o) noexcept;
  HugeBuffer(const HugeBuffer&) = delete;
  HugeBuffer& operator=(const HugeBuffer&) = delete;

  void* data() const { return data_; }
  size_t size() const { return size_; }
  // The kind of pages it asked for: off (4 KiB), thp (advised) or hugetlbfs (reserved pages).
  HugePages pages() const { return pages_; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
  HugePages pages_ = HugePages::thp;
};

// Maps the pages of [p, p + bytes) of a read-only file mapping now (MADV_POPULATE_READ, Linux 5.14+), so that
// first reads do not fault one page at a time; advice only (ignored where unsupported). The embedding table
// stays in the model file and decode reads one row of it per token: without this each new token id faulted in
// its page (measured 1 to 220 us per token on the Qwen1.5-0.5B shape, depending on the page cache).
void prefault_read(const void* p, size_t bytes);

// Drops the pages lying wholly inside [p, p + bytes) of a read-only file mapping from the process
// (MADV_DONTNEED): they leave its resident set, the page cache keeps them, and a later read maps them again
// from there. The range is rounded inward to page boundaries, so pages it shares with bytes outside are
// kept. On anonymous memory (a file read into memory) the pages are freed and read back as zeros: only for
// bytes nothing reads again. Returns the bytes advised (0 where nothing whole was inside, or the advice failed).
size_t release_file_pages(const void* p, size_t bytes);

// The system's page size (4 KiB on x86, 4, 16 or 64 KiB on Arm).
size_t page_bytes();

}  // namespace tokenscope
