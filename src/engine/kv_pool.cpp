#include "engine/kv_pool.h"

#include <algorithm>
#include <cstring>

#include "base/error.h"

namespace tokenscope {

KVPool::KVPool(const ModelConfig& cfg, int64_t capacity_tokens, TensorType type) {
  check_kv_type(cfg, type);
  if (capacity_tokens < 1) fail("the KV cache needs room for at least one token (got %lld)", static_cast<long long>(capacity_tokens));
  ops::KVLayout& L = store_.layout;
  L.type = type;
  L.n_layer = cfg.n_layer;
  L.n_head_kv = cfg.n_head_kv;
  L.head_dim = cfg.head_dim;
  L.n_pages = (capacity_tokens + ops::kAttnPad - 1) / ops::kAttnPad;
  if (L.n_pages > (int64_t{1} << 30)) fail("-c %lld is too large", static_cast<long long>(capacity_tokens));
  buf_ = HugeBuffer(L.bytes(), "the KV cache (lower the context size with -c)", /*prefault=*/true);
  store_.base = static_cast<uint8_t*>(buf_.data());
  const size_t n = static_cast<size_t>(L.n_pages);
  refs_.assign(n, 0);
  hash_of_.assign(n, std::nullopt);
  entry_.assign(n, Entry{});
  cached_pos_.assign(n, free_cached_.end());
  free_plain_.reserve(n);
  for (int64_t p = L.n_pages - 1; p >= 0; --p) free_plain_.push_back(static_cast<int32_t>(p));
}

void KVPool::zero_values(int32_t page) {
  if (type() != TensorType::F16) return;
  const ops::KVLayout& L = store_.layout;
  for (int64_t il = 0; il < L.n_layer; ++il)
    for (int64_t h = 0; h < L.n_head_kv; ++h) std::memset(store_.value_page(il, h, page), 0, L.page_bytes());
}

int32_t KVPool::allocate() {
  int32_t p;
  if (!free_plain_.empty()) {
    p = free_plain_.back();
    free_plain_.pop_back();
  } else if (!free_cached_.empty()) {
    p = free_cached_.front();  // the least recently freed published page
    free_cached_.pop_front();
    cached_pos_[static_cast<size_t>(p)] = free_cached_.end();
    unpublish(p);
  } else {
    return -1;
  }
  refs_[static_cast<size_t>(p)] = 1;
  zero_values(p);
  return p;
}

void KVPool::retain(int32_t page) {
  TS_CHECK(page >= 0 && page < n_pages() && refs_[static_cast<size_t>(page)] > 0);
  ++refs_[static_cast<size_t>(page)];
}

void KVPool::release(int32_t page) {
  TS_CHECK(page >= 0 && page < n_pages() && refs_[static_cast<size_t>(page)] > 0);
  if (--refs_[static_cast<size_t>(page)] > 0) return;
  if (hash_of_[static_cast<size_t>(page)]) {
    cached_pos_[static_cast<size_t>(page)] = free_cached_.insert(free_cached_.end(), page);
  } else {
    free_plain_.push_back(page);
  }
}

int32_t KVPool::copy(int32_t page) {
  const int32_t p = allocate();
  if (p < 0) return -1;
  const ops::KVLayout& L = store_.layout;
  for (int64_t il = 0; il < L.n_layer; ++il)
    for (int64_t h = 0; h < L.n_head_kv; ++h) {
      std::memcpy(store_.key_page(il, h, p), store_.key_page(il, h, page), L.page_bytes());
      std::memcpy(store_.value_page(il, h, p), store_.value_page(il, h, page), L.page_bytes());
    }
  return p;
}

uint64_t KVPool::page_hash(uint64_t prev, const int32_t* tokens) {
  // FNV-1a over the previous hash and the page's tokens, then a final mix (splitmix64's) so that nearby
  // inputs spread over the table. Collisions are harmless: lookup compares the tokens.
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 0x100000001b3ull;
    }
  };
  mix(prev);
  for (int64_t i = 0; i < ops::kAttnPad; ++i) mix(static_cast<uint32_t>(tokens[i]));
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

void KVPool::publish(int32_t page, uint64_t prev_hash, const int32_t* tokens) {
  TS_CHECK(page >= 0 && page < n_pages() && refs_[static_cast<size_t>(page)] > 0);
  if (hash_of_[static_cast<size_t>(page)]) return;
  const uint64_t h = page_hash(prev_hash, tokens);
  if (by_hash_.count(h)) return;  // another page holds these tokens already
  by_hash_[h] = page;
  hash_of_[static_cast<size_t>(page)] = h;
  entry_[static_cast<size_t>(page)] = Entry{prev_hash, std::vector<int32_t>(tokens, tokens + ops::kAttnPad)};
}

void KVPool::unpublish(int32_t page) {
  auto& h = hash_of_[static_cast<size_t>(page)];
  if (!h) return;
  by_hash_.erase(*h);
  h.reset();
  entry_[static_cast<size_t>(page)] = Entry{};
}

int32_t KVPool::find(uint64_t prev_hash, const int32_t* tokens) const {
  const auto it = by_hash_.find(page_hash(prev_hash, tokens));
  if (it == by_hash_.end()) return -1;
  const int32_t p = it->second;
  const Entry& e = entry_[static_cast<size_t>(p)];
  if (e.prev != prev_hash || !std::equal(e.tokens.begin(), e.tokens.end(), tokens)) return -1;
  return p;
}

int32_t KVPool::lookup(uint64_t prev_hash, const int32_t* tokens) {
  ++lookups_;
  const int32_t p = find(prev_hash, tokens);
  if (p < 0) return -1;
  auto& pos = cached_pos_[static_cast<size_t>(p)];
  if (refs_[static_cast<size_t>(p)] == 0) {  // free but still holding its contents: revive it
    free_cached_.erase(pos);
    pos = free_cached_.end();
  }
  ++refs_[static_cast<size_t>(p)];
  ++hits_;
  return p;
}

}  // namespace tokenscope
