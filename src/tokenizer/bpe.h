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

// The word cache's hash. Its keys are pre-tokens, nearly all under 17 bytes: two overlapping
// loads and one 128-bit multiply (wyhash's short-input scheme) instead of the generic string
// hash, which was about a fifth of a cached word's cost. Longer words take the generic one.
struct WordHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const {
    const size_t n = s.size();
    const char* p = s.data();
    uint64_t a = 0, b = 0;
    if (n > 16) return StringViewHash{}(s);
    if (n >= 8) {
      std::memcpy(&a, p, 8);
      std::memcpy(&b, p + n - 8, 8);
    } else if (n >= 4) {
      uint32_t x, y;
      std::memcpy(&x, p, 4);
      std::memcpy(&y, p + n - 4, 4);
      a = x;
      b = y;
    } else if (n > 0) {
      a = (uint64_t{static_cast<uint8_t>(p[0])} << 16) |
          (uint64_t{static_cast<uint8_t>(p[n >> 1])} << 8) | static_cast<uint8_t>(p[n - 1]);
    }
    const unsigned __int128 m = static_cast<unsigned __int128>(a ^ 0x9E3779B97F4A7C15ull ^ n) *
                                (b ^ 0xC2B2AE3D27D4EB4Full);
    return static_cast<size_t>(static_cast<uint64_t>(m) ^ static_cast<uint64_t>(m >> 64));
  }
};

class BpeModel;
class JsonNode;

// Per-thread memo of word -> ids (words repeat heavily in real text) plus merge scratch space.
// Not thread-safe: one per thread. Bounded: cleared when it reaches max_entries.
class BpeCache {
 public:
  explicit BpeCache(size_t max_entries = 1 << 16) : max_entries_(max_entries) {}

 private:
  friend class BpeModel;
  struct Entry {
    uint32_t offset, length;
  };
  const BpeModel* owner_ = nullptr;
  size_t max_entries_;
  absl::flat_hash_map<std::string, Entry, WordHash, StringViewEq> map_;
  std::vector<uint32_t> ids_;
  std::vector<uint32_t> syms_, lens_, ranks_;  // merge scratch, reused across words
};

class BpeModel {
 public:
  // `model` is tokenizer.json's "model" object (type BPE). `byte_level` re-keys the vocab.
  // Errors name the offending field (bpe_load.cc).
  static absl::StatusOr<std::unique_ptr<BpeModel>> FromJson(const JsonNode& model, bool byte_level);

  // Appends the ids of one pre-token (non-empty, valid UTF-8). `cache` may be null.
  void Tokenize(std::string_view word, std::vector<uint32_t>* out, BpeCache* cache) const;

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
