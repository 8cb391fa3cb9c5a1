#include "tokenizer/line_cache.h"

#include <cstring>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace kvr::tokenizer {

// XXH3: a line of prose (about 70 bytes) in a few dozen instructions; the standard library's
// string hash, which absl::HashOf reached here, took about 380 per line.
uint64_t LineCache::Hash(std::string_view line) { return XXH3_64bits(line.data(), line.size()); }

bool LineCache::Take(uint32_t i, std::string_view line, std::vector<uint32_t>* ids) const {
  const Entry& e = entries_[i];
  if (e.text_len != line.size() || std::memcmp(text_.data() + e.text_at, line.data(), line.size()) != 0) {
    return false;
  }
  ids->insert(ids->end(), ids_.begin() + e.ids_at, ids_.begin() + e.ids_at + e.ids_len);
  return true;
}

bool LineCache::Find(std::string_view line, std::vector<uint32_t>* ids, uint32_t* next) const {
  if (entries_.empty() || line.size() > kMaxLineBytes) return false;  // never cached
  if (*next < entries_.size() && Take(*next, line, ids)) {
    ++*next;
    return true;
  }
  const auto it = by_hash_.find(Hash(line));
  if (it == by_hash_.end() || !Take(it->second, line, ids)) {
    *next = kNoHint;
    return false;
  }
  *next = it->second + 1;
  return true;
}

void LineCache::Insert(std::string_view line, const std::vector<uint32_t>& ids, size_t before) {
  if (!enabled() || line.size() > kMaxLineBytes) return;
  const size_t n = ids.size() - before;
  if (text_.size() + line.size() + (ids_.size() + n) * sizeof(uint32_t) > max_bytes_) Clear();
  const Entry e{static_cast<uint32_t>(text_.size()), static_cast<uint32_t>(line.size()),
                static_cast<uint32_t>(ids_.size()), static_cast<uint32_t>(n)};
  // The same line, or another with its hash: the first one stays.
  if (!by_hash_.try_emplace(Hash(line), static_cast<uint32_t>(entries_.size())).second) return;
  entries_.push_back(e);
  text_.append(line);
  ids_.insert(ids_.end(), ids.begin() + static_cast<std::ptrdiff_t>(before), ids.end());
}

void LineCache::Clear() {
  by_hash_.clear();
  entries_.clear();
  text_.clear();
  ids_.clear();
}

}  // namespace kvr::tokenizer
