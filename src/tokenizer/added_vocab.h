// Added tokens (tokenizer.json "added_tokens"): found in the text before normalization
// (normalized=false) or in each normalized segment (normalized=true), with leftmost-longest
// matching like the aho-corasick automaton Hugging Face builds, then single_word / lstrip /
// rstrip applied per match. Matching walks a byte trie from each candidate start, so it costs
// O(n * longest token) at worst and O(n) for text with no candidate first byte.
// Thread-safety: immutable after Build.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "tokenizer/bpe.h"

namespace kvr::tokenizer {

class Normalizer;

struct AddedToken {
  std::string content;
  uint32_t id = 0;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool single_word = false;
};

// One piece of a split: plain text, or an added token (id >= 0).
struct Segment {
  size_t begin, end;
  int64_t id;
};

class AddedVocab {
 public:
  // `normalizer` (may be null) rewrites the content of normalized tokens before matching.
  void Build(std::vector<AddedToken> tokens, const Normalizer* normalizer);

  // Splits `text` with the non-normalized (normalized_set=false) or normalized token set.
  // Segments cover `text` in order; empty text gives no segment.
  void Split(std::string_view text, bool normalized_set, std::vector<Segment>* out) const;

  bool HasNormalizedTokens() const { return sets_[1].roots_used; }
  const AddedToken* FindById(uint32_t id) const;
  std::optional<uint32_t> FindByContent(std::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  struct Trie {
    // (node << 8 | byte) -> child node; node 0 is the root.
    absl::flat_hash_map<uint64_t, uint32_t> edges;
    std::vector<int32_t> token_at;  // per node: index into tokens_, or -1
    bool first_byte[256] = {};
    // The byte every pattern starts with ('<' for most models' special tokens), found with
    // memchr; -1 before any pattern, -2 when they start with different bytes.
    int single_first_byte = -1;
    bool roots_used = false;
  };
  void Insert(Trie* t, std::string_view pattern, int32_t token_index);
  // Longest pattern starting at text[i]: its end, or npos.
  size_t LongestAt(const Trie& t, std::string_view text, size_t i, int32_t* token) const;

  std::vector<AddedToken> tokens_;
  absl::flat_hash_map<uint32_t, size_t> by_id_;
  StringMap<std::string, uint32_t> by_content_;
  Trie sets_[2];  // [0] non-normalized, [1] normalized
};

}  // namespace kvr::tokenizer
