// The KV cache as a pool of pages shared by all sequences (vLLM's paged attention, on the CPU).
//
// Memory: one huge-page buffer laid out as ops::KVStore describes (per layer, keys then values, each
// [n_head_kv][n_pages][page of ops::kAttnPad positions]). Capacity is given in tokens and rounded up to pages.
// Each page has a reference count: a sequence holds a reference to every page of its page table, and sequences
// that share a prefix share its pages. A page written while shared is copied first (copy on write).
//
// Prefix cache: a page that a sequence has filled (all kAttnPad positions) is published under a hash of its
// tokens and of everything before them (the hash of the previous page), so a later sequence whose prompt starts
// with the same tokens takes the page instead of computing and storing it again. When its last reference goes,
// a published page joins the free pages but keeps its contents and entry: it can still be found until the
// pool hands it out again (free pages without an entry go first, then the least recently freed).
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <unordered_map>
#include <vector>

#include "base/huge_buffer.h"
#include "model/model.h"
#include "ops/ops.h"

namespace tokenscope {

class KVPool {
 public:
  // capacity_tokens >= 1; type: F16 or Q8_0 (check_kv_type). Throws Error if the memory cannot be had.
  KVPool(const ModelConfig& cfg, int64_t capacity_tokens, TensorType type);

  const ops::KVStore& store() const { return store_; }
  TensorType type() const { return store_.layout.type; }
  int64_t n_pages() const { return store_.layout.n_pages; }
  int64_t capacity_tokens() const { return n_pages() * ops::kAttnPad; }
  uint64_t bytes() const { return store_.layout.bytes(); }
  // Pages no sequence holds (including published ones kept for the prefix cache).
  int64_t free_pages() const { return static_cast<int64_t>(free_plain_.size() + free_cached_.size()); }
  int64_t used_pages() const { return n_pages() - free_pages(); }
  int64_t cached_pages() const { return static_cast<int64_t>(by_hash_.size()); }

  // A free page with one reference; -1 if none is left. An F16 page's values are zeroed (ops.h: the one-query
  // attention multiplies whole pages, so the slots past a sequence's end must hold finite values).
  int32_t allocate();
  void retain(int32_t page);
  void release(int32_t page);
  int refs(int32_t page) const { return refs_[static_cast<size_t>(page)]; }
  // Whether writing into the page needs a private copy first: another sequence holds it, or it is published.
  bool shared(int32_t page) const { return refs(page) > 1 || hash_of_[static_cast<size_t>(page)].has_value(); }
  // A new page (one reference) holding a copy of `page`'s keys and values, or -1 if none is free.
  int32_t copy(int32_t page);

  // The hash a full page of tokens publishes under, chained to the previous page's (0 for the first page).
  static uint64_t page_hash(uint64_t prev, const int32_t* tokens);
  // Publishes a full page (its tokens, and the hash of the page before it) if no page is published with that
  // hash yet.
  void publish(int32_t page, uint64_t prev_hash, const int32_t* tokens);
  // The published page for these tokens after prev_hash, with a new reference (revived from the free pages if
  // none held it), or -1.
  int32_t lookup(uint64_t prev_hash, const int32_t* tokens);
  // The published page for these tokens after prev_hash, or -1; takes no reference and counts no lookup.
  int32_t find(uint64_t prev_hash, const int32_t* tokens) const;
  // Prefix-cache statistics: pages found by lookup, and looked for.
  int64_t hits() const { return hits_; }
  int64_t lookups() const { return lookups_; }

 private:
  struct Entry {
    uint64_t prev;
    std::vector<int32_t> tokens;
  };
  void unpublish(int32_t page);
  void zero_values(int32_t page);

  ops::KVStore store_;
  HugeBuffer buf_;
  std::vector<int> refs_;
  std::vector<int32_t> free_plain_;  // free pages without a published entry (a stack: low numbers first)
  std::list<int32_t> free_cached_;   // free published pages, least recently freed first
  std::vector<std::list<int32_t>::iterator> cached_pos_;  // where a page sits in free_cached_
  std::vector<std::optional<uint64_t>> hash_of_;          // per page: the hash it is published under
  std::vector<Entry> entry_;                              // per published page: what it holds
  std::unordered_map<uint64_t, int32_t> by_hash_;
  int64_t hits_ = 0, lookups_ = 0;
};

}  // namespace tokenscope
