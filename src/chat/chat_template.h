// Chat templates rendered byte for byte as transformers renders them with Jinja2
// (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, {% generation %},
// json.dumps-style tojson, raise_exception, strftime_now).
//
//   KVR_ASSIGN_OR_RETURN(auto tmpl, cache.Get(source));        // compiled once per source
//   KVR_ASSIGN_OR_RETURN(std::string prompt, tmpl->Render(ctx, options));
//
// Thread-safety: a ChatTemplate is immutable; Render may run concurrently from any thread.
// TemplateCache is internally synchronized.
#pragma once

#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "chat/interpreter.h"
#include "chat/value.h"
#include "common/status.h"

namespace kvr::chat {

struct Program;

struct RenderOptions {
  RenderLimits limits;
  // What strftime_now() formats. The module has no wall clock; callers pass one in.
  std::tm now = {};
};

class ChatTemplate {
 public:
  // Compiles template source; a syntax error names its line and column.
  static absl::StatusOr<std::shared_ptr<const ChatTemplate>> Compile(std::string_view source);

  // Renders with the entries of `context` (a dict) as top-level variables. A template's
  // raise_exception(msg) gives InvalidArgument with exactly `msg`; other template errors give
  // InvalidArgument "template error at line L, column C: ..."; exceeding a limit gives
  // ResourceExhausted.
  absl::StatusOr<std::string> Render(const Value& context, const RenderOptions& opt) const;
  // Same with the context as JSON text (key order kept).
  absl::StatusOr<std::string> RenderJson(std::string_view context_json,
                                         const RenderOptions& opt) const;

  ~ChatTemplate();

 private:
  explicit ChatTemplate(std::unique_ptr<Program> prog);
  std::unique_ptr<Program> prog_;
};

// Compiled templates by source text, so each model's template is parsed once.
class TemplateCache {
 public:
  absl::StatusOr<std::shared_ptr<const ChatTemplate>> Get(std::string_view source);
  size_t size() const;

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<const ChatTemplate>> by_source_
      ABSL_GUARDED_BY(mu_);
};

// The chat-related part of a tokenizer_config.json.
struct TokenizerChatConfig {
  // Named templates: a single string template is named "default".
  std::vector<std::pair<std::string, std::string>> templates;
  // transformers' special_tokens_map: only the tokens that are set (bos_token, eos_token, ...).
  Dict special_tokens;

  // transformers' choice: `name` if given; else "tool_use" when tools are passed and such a
  // template exists; else "default" (or the only template).
  absl::StatusOr<std::string_view> Select(std::optional<std::string_view> name,
                                          bool has_tools) const;
};

absl::StatusOr<TokenizerChatConfig> ParseTokenizerConfig(std::string_view json_text);

// The render context transformers' apply_chat_template builds: messages, tools, documents,
// add_generation_prompt, the special tokens, then extra keyword arguments (enable_thinking,
// ...), later entries overriding earlier ones.
Value BuildRenderContext(const Value& messages, const Value& tools, const Value& documents,
                         bool add_generation_prompt, const Dict& special_tokens,
                         const Dict& extra_kwargs);

}  // namespace kvr::chat
