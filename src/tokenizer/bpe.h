// The BPE model of tokenizer.json, both families:
//  - byte-level (GPT-2 / Llama 3 / Qwen / DeepSeek): the vocabulary is re-keyed at load from the
//    byte-to-char alphabet to raw bytes, so encoding never materialises the mapped string;
//  - SentencePiece-style (Mistral, Gemma): symbols are UTF-8 chars, unknown chars fall back to
//    <0xXX> byte tokens (byte_fallback) or to unk (fuse_unk).
// Merging follows Hugging Face's Word::merge_all exactly: repeatedly apply the adjacent pair with
// the lowest merge rank, leftmost first. `ignore_merges` returns a whole-word vocab hit first.
// Thread-safety: immutable after FromJson; Tokenize is const and safe to call concurrently
// with distinct caches.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "common/status.h"

namespace kvr::tokenizer {

// Transparent hashing for maps keyed by std::string / std::string_view (Debian's Abseil has its
// own string_view type, so its default hasher does not accept std::string_view lookups).
struct StringViewHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const {
    return absl::Hash<absl::string_view>{}(absl::string_view(s.data(), s.size()));
  }
};
struct StringViewEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};
template <typename K, typename V>
using StringMap = absl::flat_hash_map<K, V, StringViewHash, StringViewEq>;

// A word of at most 16 bytes, exactly: two overlapping loads (the first and last 8 or 4 bytes,
// or three single bytes under 4) which, with the length, determine the bytes. The word cache
// keys short words by it, so a probe compares two integers and a length, never bytes, and hashes
// it with one 128-bit multiply (wyhash's short-input scheme).
struct ShortWord {
  static constexpr size_t kMaxBytes = 16;
  uint64_t a = 0, b = 0;

  // REQUIRES: 0 < s.size() <= kMaxBytes.
  static ShortWord Of(std::string_view s) {
    const size_t n = s.size();
    const char* p = s.data();
    ShortWord w;
    if (n >= 8) {
      std::memcpy(&w.a, p, 8);
      std::memcpy(&w.b, p + n - 8, 8);
    } else if (n >= 4) {
      uint32_t x, y;
      std::memcpy(&x, p, 4);
      std::memcpy(&y, p + n - 4, 4);
      w.a = x;
      w.b = y;
    } else {
      w.a = (uint64_t{static_cast<uint8_t>(p[0])} << 16) |
            (uint64_t{static_cast<uint8_t>(p[n >> 1])} << 8) | static_cast<uint8_t>(p[n - 1]);
    }
    return w;
  }
  size_t Hash(size_t n) const {
    const unsigned __int128 m = static_cast<unsigned __int128>(a ^ 0x9E3779B97F4A7C15ull ^ n) *
                                (b ^ 0xC2B2AE3D27D4EB4Full);
    return static_cast<size_t>(static_cast<uint64_t>(m) ^ static_cast<uint64_t>(m >> 64));
  }
};

class BpeModel;
class JsonNode;

// Per-thread memo of word -> ids (words repeat heavily in real text) plus merge scratch space.
// Not thread-safe: one per thread. Bounded: cleared when it reaches max_entries.
// Words of up to 16 bytes (nearly all pre-tokens) live in an open-addressing table of ShortWord
// keys probed inline by BpeModel::Tokenize; longer cacheable ones in a hash map.
class BpeCache {
 public:
  explicit BpeCache(size_t max_entries = 1 << 16) : max_entries_(max_entries) {}

 private:
  friend class BpeModel;
  struct Entry {
    uint32_t offset, length;
  };
  struct Slot {
    ShortWord key;
    uint32_t value;  // the id when count == 1, else the offset of the ids in ids_
    uint16_t n;      // the word's length; 0: an empty slot
    uint16_t count;  // how many ids
  };
  static constexpr size_t kMinSlots = 1024;

  // Empties the cache and makes it `owner`'s.
  void Reset(const BpeModel* owner);
  // Caches the ids of `word` (not cached yet): out[before, end).
  void Insert(std::string_view word, const std::vector<uint32_t>& out, size_t before);
  void InsertShort(const ShortWord& key, uint16_t n, uint32_t value, uint16_t count);
  void Grow();

  const BpeModel* owner_ = nullptr;
  size_t max_entries_;
  size_t entries_ = 0;         // short and long words
  size_t short_entries_ = 0;
  std::vector<Slot> slots_;    // a power of two, at most half full; empty until Reset
  size_t mask_ = 0;
  absl::flat_hash_map<std::string, Entry, StringViewHash, StringViewEq> long_;
  std::vector<uint32_t> ids_;  // the ids of the words of more than one id
  std::vector<uint32_t> syms_, lens_, ranks_;  // merge scratch, reused across words
};

class BpeModel {
 public:
  // `model` is tokenizer.json's "model" object (type BPE). `byte_level` re-keys the vocab.
  // Errors name the offending field (bpe_load.cc).
  static absl::StatusOr<std::unique_ptr<BpeModel>> FromJson(const JsonNode& model, bool byte_level);

  // Appends the ids of one pre-token (non-empty, valid UTF-8). `cache` may be null.
  // A short word already cached is found here, inline; the rest goes to TokenizeUncached.
  void Tokenize(std::string_view word, std::vector<uint32_t>* out, BpeCache* cache) const {
    const size_t n = word.size();
    if (cache != nullptr && cache->owner_ == this && n - 1 < ShortWord::kMaxBytes) {
      const ShortWord key = ShortWord::Of(word);
      for (size_t i = key.Hash(n) & cache->mask_;; i = (i + 1) & cache->mask_) {
        const BpeCache::Slot& slot = cache->slots_[i];
        if (slot.n == n && slot.key.a == key.a && slot.key.b == key.b) {
          if (slot.count == 1) {
            out->push_back(slot.value);  // most words are one token
          } else {
            const uint32_t* p = cache->ids_.data() + slot.value;
            out->insert(out->end(), p, p + slot.count);
          }
          return;
        }
        if (slot.n == 0) break;
      }
    }
    TokenizeUncached(word, out, cache);
  }

  // Lookups use the token strings as written in tokenizer.json.
  std::optional<uint32_t> TokenToId(std::string_view token) const;
  std::optional<std::string> IdToToken(uint32_t id) const;
  uint32_t VocabSize() const { return static_cast<uint32_t>(present_.size()); }
  bool byte_level() const { return byte_level_; }
  size_t ApproxMemoryBytes() const;

 private:
  // Token strings as written in the file -> id, pointing into the parsed document; only alive
  // while loading. Merges are resolved through it, in token space, as Hugging Face does.
  using TokenIds = StringMap<std::string_view, uint32_t>;
  static constexpr std::string_view kMarker = "\xE2\x96\x81";  // ▁, SentencePiece's space
  static uint64_t PairKey(uint32_t a, uint32_t b) { return (uint64_t{a} << 32) | b; }

  BpeModel() = default;
  absl::Status LoadFlags(const JsonNode& model);
  absl::Status LoadVocab(const JsonNode& vocab, TokenIds* token_ids);
  void LoadKeys(const std::vector<std::string_view>& by_id);
  void LoadByteIds();
  absl::Status LoadMerges(const JsonNode& merges, const TokenIds& token_ids,
                          std::string_view token_prefix);
  std::optional<uint32_t> KeyToId(std::string_view key) const;
  bool ToKey(std::string_view token, std::string* key) const;
  std::string_view Key(uint32_t id) const {
    return std::string_view(keys_).substr(key_off_[id], key_off_[id + 1] - key_off_[id]);
  }
  void InitialSymbols(std::string_view word, std::vector<uint32_t>* syms,
                      std::vector<uint32_t>* lens) const;
  // Merges `syms` in place (lowest rank first, leftmost on ties). Short words use a rank array
  // scanned for its minimum (O(n^2) compares, no heap); long ones a priority queue
  // (O(n log n)), as Hugging Face's Word::merge_all.
  void MergeSmall(std::vector<uint32_t>* syms, std::vector<uint32_t>* ranks) const;
  void MergeLarge(std::vector<uint32_t>* syms) const;
  uint32_t PairRank(uint32_t a, uint32_t b, uint32_t* merged) const;
  void MergeWord(std::string_view word, std::vector<uint32_t>* out, BpeCache* scratch) const;
  void TokenizeUncached(std::string_view word, std::vector<uint32_t>* out, BpeCache* cache) const;
  void TokenizePart(std::string_view part, std::vector<uint32_t>* out, BpeCache* cache) const;
  void TokenizeWord(std::string_view word, std::vector<uint32_t>* out, BpeCache* cache) const;
  void FindMarkerCuts();
  // SentencePiece-style models: a boundary "c|▁" that no vocab token spans can never be crossed
  // by a merge, so long words (whole sentences there) are cut before such ▁ and each part is
  // merged (and cached) alone; the result is identical. The chars c that some token has right
  // before a ▁ are listed here, as UTF-8.
  bool marker_cuts_ = false;
  absl::flat_hash_set<std::string, StringViewHash, StringViewEq> glued_before_marker_;

  bool byte_level_ = false;
  bool ignore_merges_ = false;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  std::optional<uint32_t> unk_id_;
  std::string prefix_;  // continuing_subword_prefix, in key space ("" = none)
  std::string suffix_;  // end_of_word_suffix, in key space
  // Vocabulary in key space (raw bytes when byte_level_): keys_[key_off_[id], key_off_[id+1]).
  std::string keys_;
  std::vector<uint32_t> key_off_;
  std::vector<bool> present_;
  std::vector<bool> unmapped_;  // byte-level token whose string is not in the byte alphabet
  StringMap<std::string_view, uint32_t> to_id_;
  StringMap<std::string_view, uint32_t> unmapped_to_id_;
  int32_t byte_ids_[256];  // byte-level: id of each single byte, -1 if absent
  // (left id << 32 | right id) -> (rank << 32 | merged id).
  absl::flat_hash_map<uint64_t, uint64_t> merges_;
};

}  // namespace kvr::tokenizer
