#include "tokenizer/bpe.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "tokenizer/unicode.h"

namespace kvr::tokenizer {
namespace {

constexpr size_t kMaxCachedWord = 64;  // longer words are rare and would bloat the cache
constexpr size_t kSmallWord = 48;      // below this a rank scan beats a heap
constexpr uint32_t kNoRank = ~0u;

}  // namespace

bool BpeModel::ToKey(std::string_view token, std::string* key) const {
  if (!byte_level_) {
    key->assign(token);
    return true;
  }
  return ByteLevelToBytes(token, key);
}

std::optional<uint32_t> BpeModel::KeyToId(std::string_view key) const {
  auto it = to_id_.find(key);
  if (it == to_id_.end()) return std::nullopt;
  return it->second;
}

std::optional<uint32_t> BpeModel::TokenToId(std::string_view token) const {
  std::string key;
  if (ToKey(token, &key)) return KeyToId(key);
  auto it = unmapped_to_id_.find(token);
  if (it == unmapped_to_id_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> BpeModel::IdToToken(uint32_t id) const {
  if (id >= present_.size() || !present_[id]) return std::nullopt;
  if (!byte_level_ || unmapped_[id]) return std::string(Key(id));
  return BytesToByteLevel(Key(id));
}

size_t BpeModel::ApproxMemoryBytes() const {
  return keys_.capacity() + key_off_.capacity() * 4 + present_.capacity() / 4 +
         to_id_.capacity() * (sizeof(std::string_view) + 5) +
         merges_.capacity() * (sizeof(uint64_t) * 2 + 1);
}

// Builds the initial symbols of `word` exactly like Hugging Face's BPE::merge_word: one symbol
// per char (per byte in byte-level mode), with the continuing prefix / end suffix, byte
// fallback, and unk (fused when fuse_unk). `lens` holds each symbol's byte length.
void BpeModel::InitialSymbols(std::string_view word, std::vector<uint32_t>* syms,
                              std::vector<uint32_t>* lens) const {
  const bool plain = prefix_.empty() && suffix_.empty();
  std::optional<std::pair<uint32_t, uint32_t>> unk;  // pending (id, byte length)
  std::string key;
  for (size_t i = 0; i < word.size();) {
    size_t len = byte_level_ ? 1 : Utf8Len(static_cast<unsigned char>(word[i]));
    std::string_view unit = word.substr(i, len);
    std::optional<uint32_t> id;
    if (plain && byte_level_) {
      int32_t b = byte_ids_[static_cast<unsigned char>(word[i])];
      if (b >= 0) id = static_cast<uint32_t>(b);
    } else if (plain) {
      id = KeyToId(unit);
    } else {
      key.clear();
      if (i > 0) key += prefix_;
      key += unit;
      if (i + len == word.size()) key += suffix_;
      id = KeyToId(key);
    }
    std::string_view bytes = plain ? unit : std::string_view(key);
    i += len;
    if (id) {
      if (unk) syms->push_back(unk->first), lens->push_back(unk->second), unk.reset();
      syms->push_back(*id);
      lens->push_back(static_cast<uint32_t>(len));
      continue;
    }
    if (byte_fallback_ && !byte_level_) {
      bool all = std::all_of(bytes.begin(), bytes.end(),
                             [&](char c) { return byte_ids_[static_cast<unsigned char>(c)] >= 0; });
      if (all) {
        for (char c : bytes) {
          syms->push_back(static_cast<uint32_t>(byte_ids_[static_cast<unsigned char>(c)]));
          lens->push_back(1);
        }
        continue;
      }
    }
    if (!unk_id_) continue;  // no unk token: Hugging Face drops the char
    if (unk && fuse_unk_) {
      unk->second += static_cast<uint32_t>(len);
    } else {
      if (unk) syms->push_back(unk->first), lens->push_back(unk->second);
      unk = std::pair{*unk_id_, static_cast<uint32_t>(len)};
    }
  }
  if (unk) syms->push_back(unk->first), lens->push_back(unk->second);
}

uint32_t BpeModel::PairRank(uint32_t a, uint32_t b, uint32_t* merged) const {
  auto it = merges_.find(PairKey(a, b));
  if (it == merges_.end()) return kNoRank;
  *merged = static_cast<uint32_t>(it->second);
  return static_cast<uint32_t>(it->second >> 32);
}

void BpeModel::MergeSmall(std::vector<uint32_t>* syms, std::vector<uint32_t>* ranks) const {
  std::vector<uint32_t>& ids = *syms;
  std::vector<uint32_t>& rk = *ranks;
  uint32_t unused;
  rk.resize(ids.size());
  for (size_t i = 0; i + 1 < ids.size(); ++i) rk[i] = PairRank(ids[i], ids[i + 1], &unused);
  while (ids.size() > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < ids.size(); ++i) {
      if (rk[i] < rk[best]) best = i;  // strict: the leftmost of equal ranks wins
    }
    if (rk[best] == kNoRank) break;
    PairRank(ids[best], ids[best + 1], &ids[best]);
    ids.erase(ids.begin() + static_cast<ptrdiff_t>(best) + 1);
    rk.erase(rk.begin() + static_cast<ptrdiff_t>(best) + 1);
    if (best + 1 < ids.size()) rk[best] = PairRank(ids[best], ids[best + 1], &unused);
    if (best > 0) rk[best - 1] = PairRank(ids[best - 1], ids[best], &unused);
  }
}

void BpeModel::MergeLarge(std::vector<uint32_t>* syms) const {
  std::vector<uint32_t>& ids = *syms;
  const size_t n = ids.size();
  std::vector<int32_t> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  struct Cand {
    uint32_t rank, pos, new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> queue;
  auto push = [&](size_t pos) {
    if (next[pos] < 0) return;
    uint32_t merged;
    uint32_t rank = PairRank(ids[pos], ids[static_cast<size_t>(next[pos])], &merged);
    if (rank != kNoRank) queue.push({rank, static_cast<uint32_t>(pos), merged});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(i);
  while (!queue.empty()) {
    Cand top = queue.top();
    queue.pop();
    size_t pos = top.pos;
    if (!alive[pos] || next[pos] < 0) continue;
    size_t right = static_cast<size_t>(next[pos]);
    uint32_t merged;
    if (PairRank(ids[pos], ids[right], &merged) == kNoRank || merged != top.new_id) continue;
    ids[pos] = top.new_id;  // an entry made stale by an earlier merge was skipped above
    alive[right] = false;
    next[pos] = next[right];
    if (next[right] >= 0) prev[static_cast<size_t>(next[right])] = static_cast<int32_t>(pos);
    if (prev[pos] >= 0) push(static_cast<size_t>(prev[pos]));
    push(pos);
  }
  size_t w = 0;
  for (size_t i = 0; i < n; ++i) {
    if (alive[i]) ids[w++] = ids[i];
  }
  ids.resize(w);
}

void BpeModel::MergeWord(std::string_view word, std::vector<uint32_t>* out,
                         BpeCache* scratch) const {
  std::vector<uint32_t>& syms = scratch->syms_;
  syms.clear();
  scratch->lens_.clear();
  InitialSymbols(word, &syms, &scratch->lens_);
  if (syms.size() <= kSmallWord) {
    MergeSmall(&syms, &scratch->ranks_);
  } else {
    MergeLarge(&syms);
  }
  out->insert(out->end(), syms.begin(), syms.end());
}

void BpeCache::Reset(const BpeModel* owner) {
  owner_ = owner;
  entries_ = short_entries_ = 0;
  slots_.assign(kMinSlots, Slot{});
  mask_ = kMinSlots - 1;
  long_.clear();
  ids_.clear();
}

void BpeCache::InsertShort(const ShortWord& key, uint16_t n, uint32_t value, uint16_t count) {
  size_t i = key.Hash(n) & mask_;
  while (slots_[i].n != 0) i = (i + 1) & mask_;
  slots_[i] = Slot{key, value, n, count};
  ++short_entries_;
}

void BpeCache::Grow() {
  std::vector<Slot> old(slots_.size() * 2);
  old.swap(slots_);
  mask_ = slots_.size() - 1;
  short_entries_ = 0;
  for (const Slot& s : old) {
    if (s.n != 0) InsertShort(s.key, s.n, s.value, s.count);
  }
}

void BpeCache::Insert(std::string_view word, const std::vector<uint32_t>& out, size_t before) {
  if (entries_ >= max_entries_) Reset(owner_);
  const size_t count = out.size() - before;
  uint32_t value = count == 1 ? out[before] : static_cast<uint32_t>(ids_.size());
  if (count != 1) ids_.insert(ids_.end(), out.begin() + static_cast<ptrdiff_t>(before), out.end());
  if (word.size() <= ShortWord::kMaxBytes) {
    if ((short_entries_ + 1) * 2 > slots_.size()) Grow();
    InsertShort(ShortWord::Of(word), static_cast<uint16_t>(word.size()), value,
                static_cast<uint16_t>(count));
  } else {
    long_.emplace(std::string(word), Entry{value, static_cast<uint32_t>(count)});
  }
  ++entries_;
}

void BpeModel::TokenizeUncached(std::string_view word, std::vector<uint32_t>* out,
                                BpeCache* cache) const {
  if (!marker_cuts_ || word.size() <= kMaxCachedWord) {
    TokenizeWord(word, out, cache);
    return;
  }
  // Cut before each ▁ whose preceding char is a vocab token that no token glues to a ▁ (an
  // unknown char would become byte/unk symbols: never cut there).
  size_t start = 0;
  for (size_t p = word.find(kMarker, 1); p != std::string_view::npos;
       p = word.find(kMarker, p + 1)) {
    size_t c = p - 1;
    while (c > start && (static_cast<unsigned char>(word[c]) & 0xC0) == 0x80) --c;
    std::string_view prev = word.substr(c, p - c);
    if (p > start && KeyToId(prev) && !glued_before_marker_.contains(prev)) {
      TokenizePart(word.substr(start, p - start), out, cache);
      start = p;
    }
  }
  TokenizePart(word.substr(start), out, cache);
}

// A part of a cut word: it has no cut left, so it is never cut again.
void BpeModel::TokenizePart(std::string_view part, std::vector<uint32_t>* out,
                            BpeCache* cache) const {
  if (part.size() <= ShortWord::kMaxBytes) {
    Tokenize(part, out, cache);  // the inline probe first
  } else {
    TokenizeWord(part, out, cache);
  }
}

// A word not found by Tokenize's inline probe: a long word, or one not cached yet.
void BpeModel::TokenizeWord(std::string_view word, std::vector<uint32_t>* out,
                            BpeCache* cache) const {
  if (word.empty()) return;
  BpeCache local(0);
  const bool cacheable = cache != nullptr && word.size() <= kMaxCachedWord;
  if (cache == nullptr) cache = &local;
  if (cacheable) {
    if (cache->owner_ != this) cache->Reset(this);
    if (word.size() > ShortWord::kMaxBytes) {
      auto it = cache->long_.find(word);
      if (it != cache->long_.end()) {
        const uint32_t* p = it->second.length == 1 ? &it->second.offset
                                                   : cache->ids_.data() + it->second.offset;
        out->insert(out->end(), p, p + it->second.length);
        return;
      }
    }
  }
  const size_t before = out->size();
  std::optional<uint32_t> whole = ignore_merges_ ? KeyToId(word) : std::nullopt;
  if (whole) {
    out->push_back(*whole);
  } else {
    MergeWord(word, out, cache);
  }
  if (cacheable) cache->Insert(word, *out, before);
}

}  // namespace kvr::tokenizer
