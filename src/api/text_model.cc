#include "api/text_model.h"

#include <atomic>
#include <ctime>
#include <filesystem>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file.h"

namespace kvr::api {
namespace {

// The prompt format of Qwen, Hermes and many fine-tunes; used when nothing else is configured.
constexpr std::string_view kChatMl =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

constexpr std::string_view kFiller =
    " The simulated engine writes this sentence again and again, one token at a time, so that "
    "every response is deterministic.";

std::atomic<uint64_t> next_cache_key{1};

// This thread's encode cache (word cache and scratch) for the model with this key. A key is
// never reused, so a model loaded where a freed one lived never reads the old one's words.
// Models live as long as the servers that load them; a thread that has served more than a few
// drops its caches and starts over.
tokenizer::EncodeCache& ThreadCache(uint64_t key) {
  thread_local std::vector<std::pair<uint64_t, std::unique_ptr<tokenizer::EncodeCache>>> caches;
  for (auto& [k, cache] : caches) {
    if (k == key) return *cache;
  }
  if (caches.size() >= 8) caches.clear();
  caches.emplace_back(key, std::make_unique<tokenizer::EncodeCache>());
  return *caches.back().second;
}

}  // namespace

TextModel::TextModel() : cache_key_(next_cache_key.fetch_add(1, std::memory_order_relaxed)) {}

absl::StatusOr<std::unique_ptr<TextModel>> TextModel::Load(const TextModelOptions& options) {
  std::unique_ptr<TextModel> m(new TextModel());
  if (!options.tokenizer_path.empty()) {
    KVR_ASSIGN_OR_RETURN(
        m->tokenizer_,
        tokenizer::Tokenizer::FromPath(options.tokenizer_path, {.transformers_bos_rule = true}));
    m->vocab_size_ = m->tokenizer_->VocabSize();
  }
  KVR_RETURN_IF_ERROR(m->LoadTemplate(options));
  KVR_ASSIGN_OR_RETURN(m->filler_ids_, m->Encode(kFiller, /*add_special=*/false));
  if (m->filler_ids_.empty()) return absl::InternalError("the filler text encodes to no tokens");
  for (TokenId id : m->filler_ids_) m->filler_text_.push_back(m->Decode({id}));
  return m;
}

absl::Status TextModel::LoadTemplate(const TextModelOptions& options) {
  std::string source(kChatMl), tool_source;
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string config_path = options.tokenizer_path + "/tokenizer_config.json";
  if (!options.tokenizer_path.empty() && fs::is_directory(options.tokenizer_path, ec) &&
      fs::exists(config_path, ec)) {
    KVR_ASSIGN_OR_RETURN(std::string text, ReadFile(config_path));
    KVR_ASSIGN_OR_RETURN(chat::TokenizerChatConfig config, chat::ParseTokenizerConfig(text));
    special_tokens_ = config.special_tokens;
    // transformers' choice: the "tool_use" template when tools are passed, else "default".
    if (auto chosen = config.Select(std::nullopt, false); chosen.ok()) source = *chosen;
    if (auto tools = config.Select(std::nullopt, true); tools.ok() && *tools != source) {
      tool_source = *tools;
    }
  }
  if (!options.chat_template_file.empty()) {
    KVR_ASSIGN_OR_RETURN(source, ReadFile(options.chat_template_file));
    tool_source.clear();
  }
  KVR_ASSIGN_OR_RETURN(template_, chat::ChatTemplate::Compile(source));
  if (!tool_source.empty()) {
    KVR_ASSIGN_OR_RETURN(tool_template_, chat::ChatTemplate::Compile(tool_source));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TokenId>> TextModel::Encode(std::string_view text,
                                                       bool add_special) const {
  if (tokenizer_) return tokenizer_->Encode(text, add_special, &ThreadCache(cache_key_));
  std::vector<TokenId> ids;
  ids.reserve(text.size());
  for (char ch : text) ids.push_back(static_cast<unsigned char>(ch));
  return ids;
}

std::string TextModel::Decode(const std::vector<TokenId>& ids) const {
  if (tokenizer_) return tokenizer_->Decode(ids, /*skip_special_tokens=*/true);
  std::string out;
  for (TokenId id : ids) {
    if (id < 256) out += static_cast<char>(id);
  }
  return out;
}

absl::StatusOr<std::string> TextModel::RenderChat(const ChatRender& r) const {
  chat::RenderOptions options;
  const std::time_t now = std::time(nullptr);
  gmtime_r(&now, &options.now);
  chat::Value context =
      chat::BuildRenderContext(r.messages, r.tools, chat::Value::None(), r.add_generation_prompt,
                               special_tokens_, r.extra_kwargs);
  const bool has_tools = r.tools.is_list() && !r.tools.list().empty();
  const auto& chosen = has_tools && tool_template_ ? tool_template_ : template_;
  return chosen->Render(context, options);
}

}  // namespace kvr::api
