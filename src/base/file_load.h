// Reading a model file into the process in one of four ways, to compare them (`--load`, the `load` study):
//   mmap   - map the file read-only; pages come in on first touch (page faults, readahead), the page cache is
//            the only copy;
//   read   - read() it into anonymous memory, a few MiB per call: one copy out of the page cache;
//   uring  - the same reads queued on an io_uring (liburing), many in flight at once;
//   direct - O_DIRECT reads into aligned memory, bypassing the page cache (falls back to `read` where the file
//            system refuses O_DIRECT, saying so).
// --prefault populates a mapping now (MADV_POPULATE_READ) instead of at first touch; --mlock locks the process's
// memory once the model is in place (lock_memory), so none of it is paged out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "base/huge_buffer.h"

namespace tokenscope {

enum class LoadMode { mmap, read, uring, direct };
const char* load_mode_name(LoadMode m);
std::optional<LoadMode> load_mode_from_name(std::string_view name);
// Whether this build can load with io_uring (it needs liburing at build time).
bool uring_available();

// How far a long piece of work has come, for a progress line: phase names the work ("reading", "packing"), done
// and total count its units (bytes). Called on the thread that started the work, done rising to total.
using ProgressFn = std::function<void(const char* phase, uint64_t done, uint64_t total)>;

struct LoadOptions {
  LoadMode mode = LoadMode::mmap;
  bool prefault = false;  // mmap: fault every page in at load
  bool mlock = false;     // for the caller: lock_memory() once the model is loaded (FileImage does not read it)
  ProgressFn progress = nullptr;  // when set: the reading (read, uring, direct) and, for a model, the packing of its weights
};

// Locks every page the process has now (mlockall MCL_CURRENT); throws Error naming RLIMIT_MEMLOCK when refused.
void lock_memory();

// What loading one file cost.
struct LoadStats {
  LoadMode mode = LoadMode::mmap;  // the mode used (after a fallback, not the one asked for)
  double ms = 0;                   // wall time of the load
  int64_t minor_faults = 0, major_faults = 0;  // of the whole process during the load
  uint64_t bytes = 0;
  std::string note;  // a fallback and its reason, else ""
};

// A file's bytes in memory, by one of the modes above. Read-only to its users.
class FileImage {
 public:
  // Throws Error naming the file and the failing call. An empty file gives an empty image (size 0, data null).
  static FileImage load(const std::string& path, const LoadOptions& opts = {});
  FileImage() = default;
  ~FileImage();
  FileImage(FileImage&& o) noexcept;
  FileImage& operator=(FileImage&& o) noexcept;
  FileImage(const FileImage&) = delete;
  FileImage& operator=(const FileImage&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  // True for a file mapping (mmap), false for a copy in anonymous memory.
  bool mapped() const { return mapped_; }
  const LoadStats& stats() const { return stats_; }

 private:
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  bool mapped_ = false;
  HugeBuffer copy_;  // read / uring / direct
  LoadStats stats_;
};

// Drops the file's pages from the page cache (posix_fadvise DONTNEED; needs no privilege, but only clean pages
// not mapped by anyone go), so that the next load reads from the disk. Returns false with errno's text in *why
// when the advice failed.
bool evict_from_page_cache(const std::string& path, std::string* why = nullptr);

// Fraction of the file's pages in the page cache now (mincore over a fresh mapping): 1 warm, near 0 cold.
double page_cache_share(const std::string& path);

}  // namespace tokenscope
