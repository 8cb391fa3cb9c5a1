#include "engine/block_pool.h"

#include "common/check.h"

namespace kvr::engine {

BlockPool::BlockPool(uint32_t num_blocks) : blocks_(num_blocks) {
  for (uint32_t b = 0; b < num_blocks; ++b) PushBack(b);
}

uint32_t BlockPool::Lookup(uint64_t hash) const {
  auto it = cached_.find(hash);
  return it == cached_.end() ? kNone : it->second;
}

void BlockPool::Touch(uint32_t block) {
  Block& b = blocks_[block];
  if (b.ref == 0) Unlink(block);
  ++b.ref;
}

uint32_t BlockPool::Allocate(std::vector<uint64_t>* evicted) {
  KVR_CHECK(head_ != kNone);  // the caller checks free_blocks() first
  const uint32_t block = head_;
  Unlink(block);
  Block& b = blocks_[block];
  b.ref = 1;
  if (b.cached && Uncache(block)) evicted->push_back(b.hash);
  return block;
}

bool BlockPool::Cache(uint32_t block, uint64_t hash) {
  Block& b = blocks_[block];
  KVR_CHECK(!b.cached);  // caching twice would lose the first hash's eviction event
  b.hash = hash;
  b.cached = true;
  b.dup_prev = b.dup_next = kNone;
  auto [it, inserted] = cached_.try_emplace(hash, block);
  if (inserted) return true;
  // Later copies go second in the chain so the first copy (the one prefix lookups have been
  // handing out) stays the representative.
  const uint32_t first = it->second;
  b.dup_prev = first;
  b.dup_next = blocks_[first].dup_next;
  if (b.dup_next != kNone) blocks_[b.dup_next].dup_prev = block;
  blocks_[first].dup_next = block;
  return false;
}

void BlockPool::Release(uint32_t block) {
  Block& b = blocks_[block];
  if (KVR_BUG_IF(b.ref == 0)) return;  // released more often than touched: keep it free
  if (--b.ref == 0) PushBack(block);
}

void BlockPool::DropAllHashes() {
  for (Block& b : blocks_) {
    b.cached = false;
    b.dup_prev = b.dup_next = kNone;
  }
  cached_.clear();
}

std::vector<uint32_t> BlockPool::FreeQueueForTest() const {
  std::vector<uint32_t> order;
  for (uint32_t b = head_; b != kNone; b = blocks_[b].next) order.push_back(b);
  return order;
}

void BlockPool::PushBack(uint32_t block) {
  Block& b = blocks_[block];
  b.prev = tail_;
  b.next = kNone;
  if (tail_ != kNone) {
    blocks_[tail_].next = block;
  } else {
    head_ = block;
  }
  tail_ = block;
  ++free_count_;
}

void BlockPool::Unlink(uint32_t block) {
  Block& b = blocks_[block];
  if (b.prev != kNone) {
    blocks_[b.prev].next = b.next;
  } else {
    head_ = b.next;
  }
  if (b.next != kNone) {
    blocks_[b.next].prev = b.prev;
  } else {
    tail_ = b.prev;
  }
  b.prev = b.next = kNone;
  --free_count_;
}

bool BlockPool::Uncache(uint32_t block) {
  Block& b = blocks_[block];
  b.cached = false;
  if (b.dup_next != kNone) blocks_[b.dup_next].dup_prev = b.dup_prev;
  if (b.dup_prev != kNone) {
    blocks_[b.dup_prev].dup_next = b.dup_next;
  } else if (b.dup_next != kNone) {
    cached_[b.hash] = b.dup_next;  // the next copy represents the hash
  } else {
    cached_.erase(b.hash);  // the last copy: the hash is gone
    return true;
  }
  b.dup_prev = b.dup_next = kNone;
  return false;
}

}  // namespace kvr::engine
