// kvr::tokenizer::Tokenizer: loads a Hugging Face tokenizer.json and produces exactly the ids
// the official `tokenizers` library does, for BPE models (byte-level and byte-fallback).
//
//   KVR_ASSIGN_OR_RETURN(auto tok, Tokenizer::FromPath("models/"));      // dir or tokenizer.json
//   EncodeCache cache;                                                // one per thread
//   KVR_ASSIGN_OR_RETURN(std::vector<uint32_t> ids, tok->Encode(text, true, &cache));
//
// Pipeline (as in Hugging Face): added tokens are cut out of the raw text; each remaining
// segment is normalized, cut again on normalized added tokens, pre-tokenized, and each
// pre-token is run through the BPE model; add_special_tokens applies the post-processor.
// Anything unsupported in the file is rejected at load time with an error naming it.
//
// Thread-safety: a loaded Tokenizer is immutable; Encode/Decode are const and may run
// concurrently, each thread with its own EncodeCache (or none).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "tokenizer/added_vocab.h"
#include "tokenizer/bpe.h"
#include "tokenizer/line_cache.h"
#include "tokenizer/pre_tokenizer.h"

namespace kvr::tokenizer {

class Normalizer;
class Decoder;
class JsonNode;

struct LoadOptions {
  // transformers' rule for Llama/Gemma tokenizer classes: tokenizer_config.json's
  // add_bos_token / add_eos_token replace the post-processor (LlamaTokenizerFast's
  // update_post_processor). vLLM tokenizes through transformers, so for DeepSeek V3 (whose
  // tokenizer.json adds no BOS but whose config says add_bos_token) the engine sees a BOS.
  // Needs tokenizer_config.json (FromPath with a directory, or FromJson's config argument).
  bool transformers_bos_rule = false;
};

// Per-thread scratch and word cache for Encode. Not thread-safe; reusable across calls and
// tokenizers (it resets itself when used with another one).
class EncodeCache {
 public:
  static constexpr size_t kDefaultWords = size_t{1} << 16;
  static constexpr size_t kDefaultLineBytes = size_t{16} << 20;
  EncodeCache() = default;
  // At most `max_words` cached words and `max_line_bytes` of cached lines (LineCache; 0: lines
  // are not cached); past either the cache starts over.
  explicit EncodeCache(size_t max_words, size_t max_line_bytes = kDefaultLineBytes)
      : bpe(max_words), lines(max_line_bytes) {}
  size_t cached_lines() const { return lines.lines(); }

 private:
  friend class Tokenizer;
  BpeCache bpe{kDefaultWords};
  LineCache lines{kDefaultLineBytes};
  std::vector<Segment> raw_segments, norm_segments;
  std::vector<Piece> pieces, scratch;
  std::vector<Span> spans;
  PieceArena arena;
  std::string normalized;
};

class Tokenizer {
 public:
  // `path`: a tokenizer.json file, or a directory holding tokenizer.json and optionally
  // tokenizer_config.json.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromPath(const std::string& path,
                                                             const LoadOptions& options = {});
  // `config_json` may be empty (no tokenizer_config.json).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(std::string_view tokenizer_json,
                                                             std::string_view config_json,
                                                             const LoadOptions& options = {});
  ~Tokenizer();

  // Token ids of `text` (must be valid UTF-8, else InvalidArgument). `cache` may be null.
  absl::StatusOr<std::vector<uint32_t>> Encode(std::string_view text, bool add_special_tokens,
                                               EncodeCache* cache = nullptr) const;
  // Appending variant; on error *ids is left unchanged.
  absl::Status EncodeInto(std::string_view text, bool add_special_tokens, EncodeCache* cache,
                          std::vector<uint32_t>* ids) const;

  // Text of `ids` through the decoder (unknown ids are skipped, as Hugging Face does).
  std::string Decode(const std::vector<uint32_t>& ids, bool skip_special_tokens) const;

  std::optional<uint32_t> TokenToId(std::string_view token) const;
  std::optional<std::string> IdToToken(uint32_t id) const;
  // Largest id + 1 over the model vocabulary and the added tokens.
  uint32_t VocabSize() const;
  size_t ApproxMemoryBytes() const { return model_->ApproxMemoryBytes(); }

 private:
  Tokenizer();
  absl::Status Load(const JsonNode& root);
  absl::Status LoadAddedTokens(const JsonNode& root);
  absl::Status LoadPostProcessor(const JsonNode& j);
  absl::Status ApplyTransformersRule(std::string_view config_json);
  void EncodeSegment(std::string_view text, bool at_start, EncodeCache* cache,
                     std::vector<uint32_t>* ids) const;
  void EncodeNormalized(std::string_view text, bool at_start, EncodeCache* cache,
                        std::vector<uint32_t>* ids) const;
  // The isolated split's pieces of `text`, each through the model.
  void EncodeSpans(std::string_view text, EncodeCache* cache, std::vector<uint32_t>* ids) const;

  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  const PreTokenizer::SpanFinder* isolated_split_ = nullptr;  // pre_tokenizer_'s, if that shape
  bool cuts_after_newline_ = false;  // pre_tokenizer_->CutsAfterNewline(): lines are cached
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Decoder> decoder_;
  AddedVocab added_;
  std::vector<uint32_t> prefix_ids_, suffix_ids_;  // post-processor, single sequence
};

}  // namespace kvr::tokenizer
