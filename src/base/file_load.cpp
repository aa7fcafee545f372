#include "base/file_load.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>
#include <vector>

#if defined(TOKENSCOPE_HAVE_URING)
#include <liburing.h>
#endif

#include "base/error.h"
#include "base/memory_stats.h"

namespace tokenscope {

namespace {

constexpr size_t kReadChunk = size_t{4} << 20;  // per read() / io_uring request
constexpr unsigned kUringDepth = 16;             // requests in flight
constexpr size_t kDirectAlign = 4096;            // O_DIRECT: offsets, lengths and the buffer aligned to this

// Reads [off, off + n) of fd into dst with pread, retrying short reads; for O_DIRECT n is rounded up to the
// alignment (the buffer has room) and a short read at the end of the file is the end.
void pread_all(int fd, uint8_t* dst, uint64_t off, uint64_t n, uint64_t file_size, const std::string& path) {
  while (n > 0) {
    const ssize_t got = ::pread(fd, dst, static_cast<size_t>(n), static_cast<off_t>(off));
    if (got < 0) {
      if (errno == EINTR) continue;
      fail("%s: read at offset %llu failed: %s", path.c_str(), static_cast<unsigned long long>(off), std::strerror(errno));
    }
    if (got == 0) {
      if (off >= file_size) return;
      fail("%s: file ended at %llu while reading (it is %llu bytes): changed while loading?", path.c_str(),
           static_cast<unsigned long long>(off), static_cast<unsigned long long>(file_size));
    }
    dst += got;
    off += static_cast<uint64_t>(got);
    n -= static_cast<uint64_t>(got);
  }
}

void read_chunks(int fd, uint8_t* dst, uint64_t size, uint64_t align, const std::string& path,
                 const ProgressFn& progress) {
  const uint64_t total = (size + align - 1) / align * align;
  for (uint64_t off = 0; off < total; off += kReadChunk) {
    pread_all(fd, dst + off, off, std::min<uint64_t>(kReadChunk, total - off), size, path);
    if (progress) progress("reading", std::min(size, off + kReadChunk), size);
  }
}

#if defined(TOKENSCOPE_HAVE_URING)
void uring_read(int fd, uint8_t* dst, uint64_t size, const std::string& path, const ProgressFn& progress) {
  io_uring ring;
  if (const int e = io_uring_queue_init(kUringDepth, &ring, 0); e < 0)
    fail("%s: --load uring: io_uring_queue_init failed: %s (io_uring may be disabled: see "
         "/proc/sys/kernel/io_uring_disabled)", path.c_str(), std::strerror(-e));
  struct Req {
    uint64_t off, len;
  };
  std::vector<Req> reqs(kUringDepth);
  uint64_t next = 0, completed = 0;
  unsigned in_flight = 0;
  auto queue = [&](unsigned slot, uint64_t off, uint64_t len) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    reqs[slot] = {off, len};
    io_uring_prep_read(sqe, fd, dst + off, static_cast<unsigned>(len), off);
    io_uring_sqe_set_data64(sqe, slot);
    ++in_flight;
  };
  try {
    for (unsigned slot = 0; slot < kUringDepth && next < size; ++slot) {
      const uint64_t len = std::min<uint64_t>(kReadChunk, size - next);
      queue(slot, next, len);
      next += len;
    }
    while (in_flight > 0) {
      io_uring_submit(&ring);
      io_uring_cqe* cqe = nullptr;
      int e = io_uring_wait_cqe(&ring, &cqe);
      if (e == -EINTR) continue;
      if (e < 0) fail("%s: --load uring: waiting for a read failed: %s", path.c_str(), std::strerror(-e));
      const unsigned slot = static_cast<unsigned>(io_uring_cqe_get_data64(cqe));
      const int res = cqe->res;
      io_uring_cqe_seen(&ring, cqe);
      --in_flight;
      Req r = reqs[slot];
      if (res < 0 && res != -EINTR && res != -EAGAIN)
        fail("%s: --load uring: read at offset %llu failed: %s", path.c_str(), static_cast<unsigned long long>(r.off),
             std::strerror(-res));
      if (res == 0) fail("%s: --load uring: file ended at %llu: changed while loading?", path.c_str(),
                         static_cast<unsigned long long>(r.off));
      const uint64_t done = res > 0 ? static_cast<uint64_t>(res) : 0;
      completed += done;
      if (progress) progress("reading", completed, size);
      if (done < r.len) {  // a short read: the rest again
        queue(slot, r.off + done, r.len - done);
      } else if (next < size) {
        const uint64_t len = std::min<uint64_t>(kReadChunk, size - next);
        queue(slot, next, len);
        next += len;
      }
    }
  } catch (...) {
    io_uring_queue_exit(&ring);
    throw;
  }
  io_uring_queue_exit(&ring);
}
#endif

}  // namespace

const char* load_mode_name(LoadMode m) {
  switch (m) {
    case LoadMode::mmap: return "mmap";
    case LoadMode::read: return "read";
    case LoadMode::uring: return "uring";
    case LoadMode::direct: return "direct";
  }
  return "?";
}

std::optional<LoadMode> load_mode_from_name(std::string_view name) {
  for (LoadMode m : {LoadMode::mmap, LoadMode::read, LoadMode::uring, LoadMode::direct})
    if (name == load_mode_name(m)) return m;
  return std::nullopt;
}

bool uring_available() {
#if defined(TOKENSCOPE_HAVE_URING)
  return true;
#else
  return false;
#endif
}

FileImage FileImage::load(const std::string& path, const LoadOptions& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  const PageFaults f0 = page_faults_now();
  FileImage img;
  img.stats_.mode = opts.mode;
  if (opts.mode == LoadMode::uring && !uring_available())
    fail("--load uring: this build has no io_uring support (install liburing-dev and rebuild)");
  int flags = O_RDONLY | O_CLOEXEC;
  int fd = -1;
  if (opts.mode == LoadMode::direct) {
    fd = ::open(path.c_str(), flags | O_DIRECT);
    if (fd < 0 && errno == EINVAL) {  // the file system does not do O_DIRECT (tmpfs, some overlays)
      img.stats_.note = "--load direct: the file system refuses O_DIRECT (" + std::string(std::strerror(errno)) +
                        "): loaded with read() instead";
      img.stats_.mode = LoadMode::read;
    }
  }
  if (fd < 0) fd = ::open(path.c_str(), flags);
  if (fd < 0) fail("%s: cannot open: %s", path.c_str(), std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    fail("%s: cannot stat: %s", path.c_str(), std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("%s: not a regular file", path.c_str());
  }
  img.size_ = static_cast<uint64_t>(st.st_size);
  try {
    if (img.size_ == 0) {
      // Nothing to map or read: an empty image, for the caller to judge (a GGUF reader says it is too short).
    } else if (img.stats_.mode == LoadMode::mmap) {
      void* m = ::mmap(nullptr, img.size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (m == MAP_FAILED) fail("%s: cannot map: %s", path.c_str(), std::strerror(errno));
      img.data_ = static_cast<const uint8_t*>(m);
      img.mapped_ = true;
      if (opts.prefault) prefault_read(img.data_, img.size_);
    } else {
      // Rounded up so that O_DIRECT may read whole aligned blocks past the end of the file.
      img.copy_ = HugeBuffer(img.size_ + kDirectAlign, "the model file's bytes");
      auto* dst = static_cast<uint8_t*>(img.copy_.data());
      if (img.stats_.mode == LoadMode::uring) {
#if defined(TOKENSCOPE_HAVE_URING)
        uring_read(fd, dst, img.size_, path, opts.progress);
#endif
      } else {
        read_chunks(fd, dst, img.size_, img.stats_.mode == LoadMode::direct ? kDirectAlign : 1, path, opts.progress);
      }
      img.data_ = dst;
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  const PageFaults f1 = page_faults_now();
  img.stats_.minor_faults = f1.minor - f0.minor;
  img.stats_.major_faults = f1.major - f0.major;
  img.stats_.bytes = img.size_;
  img.stats_.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return img;
}

FileImage::~FileImage() {
  if (mapped_ && data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

FileImage::FileImage(FileImage&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      mapped_(std::exchange(o.mapped_, false)),
      copy_(std::move(o.copy_)),
      stats_(std::move(o.stats_)) {}

FileImage& FileImage::operator=(FileImage&& o) noexcept {
  if (this != &o) {
    if (mapped_ && data_) ::munmap(const_cast<uint8_t*>(data_), size_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    mapped_ = std::exchange(o.mapped_, false);
    copy_ = std::move(o.copy_);
    stats_ = std::move(o.stats_);
  }
  return *this;
}

void lock_memory() {
  if (::mlockall(MCL_CURRENT) == 0) return;
  const int e = errno;
  rlimit rl{};
  getrlimit(RLIMIT_MEMLOCK, &rl);
  const std::string limit = rl.rlim_cur == RLIM_INFINITY ? "unlimited" : std::to_string(rl.rlim_cur / 1024) + " KiB";
  fail("--mlock: cannot lock the model in memory: %s (RLIMIT_MEMLOCK is %s; raise it with ulimit -l, or run with "
       "CAP_IPC_LOCK)", std::strerror(e), limit.c_str());
}

bool evict_from_page_cache(const std::string& path, std::string* why) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (why) *why = std::strerror(errno);
    return false;
  }
  const int e = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  if (e != 0 && why) *why = std::strerror(e);
  return e == 0;
}

double page_cache_share(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size == 0) {
    ::close(fd);
    return 0;
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* m = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) return 0;
  const size_t page = page_bytes(), n = (size + page - 1) / page;
  std::vector<unsigned char> v(n);
  double share = 0;
  if (mincore(m, size, v.data()) == 0) {
    size_t in = 0;
    for (unsigned char c : v) in += c & 1;
    share = static_cast<double>(in) / static_cast<double>(n);
  }
  ::munmap(m, size);
  return share;
}

}  // namespace tokenscope
