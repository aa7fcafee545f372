// Zero-initialized memory for large working sets (the KV cache, the packed weights), 2 MiB-aligned and mapped with transparent huge pages
// requested (madvise MADV_HUGEPAGE): decode streams every weight once per token and a layer's KV cache
// spans megabytes; with 2 MiB pages either is a handful of TLB entries instead of a page walk per 4 KiB.
#pragma once

#include <cstddef>

namespace tokenscope {

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

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

// Maps the pages of [p, p + bytes) of a read-only file mapping now (MADV_POPULATE_READ, Linux 5.14+), so that
// first reads do not fault one page at a time; advice only (ignored where unsupported). The embedding table
// stays in the model file and decode reads one row of it per token: without this each new token id faulted in
// its page (measured 1 to 220 us per token on the Qwen1.5-0.5B shape, depending on the page cache).
void prefault_read(const void* p, size_t bytes);

// Drops the pages lying wholly inside [p, p + bytes) of a read-only file mapping from the process
// (MADV_DONTNEED): they leave its resident set, the page cache keeps them, and a later read maps them again
// from there. The range is rounded inward to page boundaries, so pages it shares with bytes outside are
// kept. Only for read-only file mappings: on anonymous or written private memory it would discard the
// contents. Returns the bytes advised (0 where nothing whole was inside, or the advice failed).
size_t release_file_pages(const void* p, size_t bytes);

// The system's page size (4 KiB on x86, 4, 16 or 64 KiB on Arm).
size_t page_bytes();

}  // namespace tokenscope
