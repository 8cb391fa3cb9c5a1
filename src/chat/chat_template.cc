#include "chat/chat_template.h"

#include "chat/ast.h"
#include "chat/json.h"
#include "chat/parser.h"

namespace kvr::chat {
namespace {

// The module's boundary. Nothing in it is expected to throw (numbers, JSON and allocation sizes
// are checked, see README.md); should an exception escape anyway (std::bad_alloc), it becomes an
// Internal error here instead of terminating the process. The fuzzers treat Internal as a crash.
template <typename F>
auto Guarded(F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::exception& e) {
    return absl::InternalError(std::string("chat template: unexpected exception: ") + e.what());
  }
}

}  // namespace

ChatTemplate::ChatTemplate(std::unique_ptr<Program> prog) : prog_(std::move(prog)) {}
ChatTemplate::~ChatTemplate() = default;

absl::StatusOr<std::shared_ptr<const ChatTemplate>> ChatTemplate::Compile(std::string_view source) {
  return Guarded([&]() -> absl::StatusOr<std::shared_ptr<const ChatTemplate>> {
    KVR_ASSIGN_OR_RETURN(std::unique_ptr<Program> prog, ParseTemplate(source));
    return std::shared_ptr<const ChatTemplate>(new ChatTemplate(std::move(prog)));
  });
}

absl::StatusOr<std::string> ChatTemplate::Render(const Value& context,
                                                 const RenderOptions& opt) const {
  if (!context.is_dict()) return absl::InvalidArgumentError("render context must be an object");
  return Guarded([&]() -> absl::StatusOr<std::string> {
    std::string out;
    Interp interp(*prog_, opt.limits, opt.now);
    KVR_RETURN_IF_ERROR(interp.Render(context.dict(), &out));
    return out;
  });
}

absl::StatusOr<std::string> ChatTemplate::RenderJson(std::string_view context_json,
                                                     const RenderOptions& opt) const {
  KVR_ASSIGN_OR_RETURN(Value ctx, Guarded([&] { return ParseJson(context_json); }));
  return Render(ctx, opt);
}

absl::StatusOr<std::shared_ptr<const ChatTemplate>> TemplateCache::Get(std::string_view source) {
  {
    absl::MutexLock lock(&mu_);
    auto it = by_source_.find(absl::string_view(source.data(), source.size()));
    if (it != by_source_.end()) return it->second;
  }
  // Compile outside the lock; a racing compile of the same source is harmless (first wins).
  KVR_ASSIGN_OR_RETURN(auto compiled, ChatTemplate::Compile(source));
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = by_source_.try_emplace(std::string(source), std::move(compiled));
  return it->second;
}

size_t TemplateCache::size() const {
  absl::MutexLock lock(&mu_);
  return by_source_.size();
}

absl::StatusOr<std::string_view> TokenizerChatConfig::Select(std::optional<std::string_view> name,
                                                             bool has_tools) const {
  auto find = [&](std::string_view n) -> const std::string* {
    for (const auto& [k, v] : templates) {
      if (k == n) return &v;
    }
    return nullptr;
  };
  if (templates.empty()) return absl::NotFoundError("tokenizer config has no chat_template");
  if (name.has_value()) {
    if (const std::string* t = find(*name)) return std::string_view(*t);
    return absl::NotFoundError("no chat template named '" + std::string(*name) + "'");
  }
  if (has_tools) {
    if (const std::string* t = find("tool_use")) return std::string_view(*t);
  }
  if (const std::string* t = find("default")) return std::string_view(*t);
  if (templates.size() == 1) return std::string_view(templates[0].second);
  return absl::NotFoundError("chat_template is a list without a 'default' entry");
}

absl::StatusOr<TokenizerChatConfig> ParseTokenizerConfig(std::string_view json_text) {
  JsonParseOptions options;
  options.big_ints_as_float = true;  // model_max_length: 1000000000000000019884624838656
  KVR_ASSIGN_OR_RETURN(Value cfg, Guarded([&] { return ParseJson(json_text, options); }));
  if (!cfg.is_dict()) return absl::InvalidArgumentError("tokenizer config is not an object");
  TokenizerChatConfig out;
  if (const Value* t = cfg.dict().Find("chat_template")) {
    if (t->is_string()) {
      out.templates.emplace_back("default", t->str());
    } else if (t->is_list()) {
      for (const Value& e : t->list()) {
        const Value* n = e.is_dict() ? e.dict().Find("name") : nullptr;
        const Value* s = e.is_dict() ? e.dict().Find("template") : nullptr;
        if (!n || !s || !n->is_string() || !s->is_string()) {
          return absl::InvalidArgumentError("chat_template list entries need name and template");
        }
        out.templates.emplace_back(n->str(), s->str());
      }
    }
  }
  // Special tokens may be strings or AddedToken objects ({"content": ...}); unset ones (null)
  // are left out, as transformers' special_tokens_map leaves them out.
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                          "cls_token", "mask_token"}) {
    const Value* v = cfg.dict().Find(key);
    if (v == nullptr) continue;
    if (v->is_string()) {
      out.special_tokens.Set(key, *v);
    } else if (v->is_dict()) {
      const Value* c = v->dict().Find("content");
      if (c && c->is_string()) out.special_tokens.Set(key, *c);
    }
  }
  return out;
}

Value BuildRenderContext(const Value& messages, const Value& tools, const Value& documents,
                         bool add_generation_prompt, const Dict& special_tokens,
                         const Dict& extra_kwargs) {
  Dict ctx;
  ctx.Set("messages", messages);
  ctx.Set("tools", tools.is_undefined() ? Value::None() : tools);
  ctx.Set("documents", documents.is_undefined() ? Value::None() : documents);
  ctx.Set("add_generation_prompt", Value(add_generation_prompt));
  for (const auto& [k, v] : special_tokens.items) ctx.Set(k, v);
  for (const auto& [k, v] : extra_kwargs.items) ctx.Set(k, v);
  return Value::FromDict(std::move(ctx));
}

}  // namespace kvr::chat
