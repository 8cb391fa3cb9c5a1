// LineCache: the ids of whole lines of text, for tokenizers whose pre-tokenizer can be cut after
// a line (PreTokenizer::CutsAfterNewline). Prompts repeat lines far more than they repeat whole
// texts: a shared system prompt, a document asked about again, a conversation sent again with
// one more turn. A line seen before costs a hash, a byte comparison and a copy of its ids,
// instead of pre-tokenizing it and looking up each of its words; a line that follows the one
// found last, as they were cached, costs only the comparison and the copy.
//
// Exact: an entry is found by its hash (or as the next one cached) and then compared byte for
// byte, so a hash collision or a wrong guess is only a miss. Bounded: the text and ids held
// stay under `max_bytes`; past it the cache starts over. Not thread-safe (it lives in an
// EncodeCache, one per thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace kvr::tokenizer {

class LineCache {
 public:
  // 0: off (nothing is cached, Find always misses).
  explicit LineCache(size_t max_bytes) : max_bytes_(max_bytes) {}

  bool enabled() const { return max_bytes_ > 0; }
  // Lines longer than this are tokenized every time (a long line rarely repeats whole).
  static constexpr size_t kMaxLineBytes = 8192;

  // Empties the cache when `owner` (the tokenizer) is not the one it holds lines of.
  void Own(const void* owner) {
    if (owner_ != owner) {
      Clear();
      owner_ = owner;
    }
  }
  // Appends the ids of `line` to *ids if it is cached. `*next` (start it at kNoHint) carries the
  // line cached after the one found last, tried before the hash lookup: a document's lines were
  // cached in order, and a prompt that repeats it repeats them in order, so most lines are found
  // by one comparison with text next to the last one's, without a hash or a probe.
  static constexpr uint32_t kNoHint = UINT32_MAX;
  bool Find(std::string_view line, std::vector<uint32_t>* ids, uint32_t* next) const;
  // Caches `line`, whose ids are ids[before, end).
  void Insert(std::string_view line, const std::vector<uint32_t>& ids, size_t before);
  size_t lines() const { return entries_.size(); }

 private:
  struct Entry {
    uint32_t text_at, text_len, ids_at, ids_len;
  };
  static uint64_t Hash(std::string_view line);
  void Clear();

  // Appends entry `i`'s ids; whether its text is `line`.
  bool Take(uint32_t i, std::string_view line, std::vector<uint32_t>* ids) const;

  size_t max_bytes_;
  const void* owner_ = nullptr;
  std::vector<Entry> entries_;                       // in insertion order
  absl::flat_hash_map<uint64_t, uint32_t> by_hash_;  // each cached line's entry
  std::string text_;
  std::vector<uint32_t> ids_;
};

}  // namespace kvr::tokenizer
