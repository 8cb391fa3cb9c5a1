// What engine-sim knows of text: the tokenizer (a Hugging Face tokenizer.json through our exact
// tokenizer, or one token per UTF-8 byte when none is given), the chat template (from
// --chat-template, else the tokenizer_config.json's, else a ChatML template), and the
// deterministic filler that generated tokens decode to.
//
// Thread-safety: immutable after Load; every method may run concurrently. Encode keeps a word
// cache per thread and model (tokenizer::EncodeCache), so repeated words skip BPE merging.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "chat/chat_template.h"
#include "chat/value.h"
#include "common/ids.h"
#include "tokenizer/tokenizer.h"

namespace kvr::api {

struct TextModelOptions {
  std::string tokenizer_path;      // tokenizer.json or a folder; empty: byte tokens
  std::string chat_template_file;  // empty: the tokenizer folder's config, else ChatML
};

struct ChatRender {
  chat::Value messages;  // a list of dicts
  chat::Value tools = chat::Value::None();
  bool add_generation_prompt = true;
  chat::Dict extra_kwargs;  // chat_template_kwargs
};

class TextModel {
 public:
  static absl::StatusOr<std::unique_ptr<TextModel>> Load(const TextModelOptions& options);

  absl::StatusOr<std::vector<TokenId>> Encode(std::string_view text, bool add_special) const;
  std::string Decode(const std::vector<TokenId>& ids) const;
  absl::StatusOr<std::string> RenderChat(const ChatRender& request) const;

  // The k-th generated token of every request, and its text. Generation is filler: the same
  // readable sentence over and over, so responses are deterministic and identical across runs.
  TokenId FillerToken(uint64_t k) const { return filler_ids_[k % filler_ids_.size()]; }
  const std::string& FillerText(uint64_t k) const { return filler_text_[k % filler_text_.size()]; }
  // Ids beyond the vocabulary are rejected as prompts.
  uint32_t vocab_size() const { return vocab_size_; }

 private:
  TextModel();
  absl::Status LoadTemplate(const TextModelOptions& options);

  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;  // null: one token per byte
  std::shared_ptr<const chat::ChatTemplate> template_;
  std::shared_ptr<const chat::ChatTemplate> tool_template_;  // null: template_ serves tools too
  chat::Dict special_tokens_;
  std::vector<TokenId> filler_ids_;
  std::vector<std::string> filler_text_;
  uint32_t vocab_size_ = 256;
  uint64_t cache_key_;  // never reused: names this model's word caches in each thread
};

}  // namespace kvr::api
