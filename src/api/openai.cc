#include "api/openai.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "chat/json.h"
#include "nlohmann/json.hpp"

namespace kvr::api {
namespace {

using Json = nlohmann::ordered_json;

// Deeper documents are refused before parsing: nothing vLLM accepts nests this deep, and the
// chat Value conversion recurses.
constexpr int kMaxDepth = 64;

ApiError Invalid(std::string_view field, std::string_view what) {
  return {.status = 400,
          .type = "Bad Request",
          .message = absl::StrCat("1 validation error: body.", std::string(field), ": ",
                                 std::string(what)),
          .param = std::string(field)};
}

ApiError BadRequest(std::string message, std::string param = "") {
  return {.status = 400, .type = "BadRequestError", .message = std::move(message),
          .param = std::move(param)};
}

bool TooDeep(std::string_view text) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char ch : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (ch == '\\') {
        escaped = true;
      } else if (ch == '"') {
        in_string = false;
      }
    } else if (ch == '"') {
      in_string = true;
    } else if (ch == '[' || ch == '{') {
      if (++depth > kMaxDepth) return true;
    } else if (ch == ']' || ch == '}') {
      --depth;
    }
  }
  return false;
}

std::optional<ApiError> ParseObject(std::string_view body, Json* out) {
  if (TooDeep(body)) return Invalid("body", "JSON nested too deeply");
  *out = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (out->is_discarded()) {
    return ApiError{.status = 400, .type = "Bad Request",
                    .message = "1 validation error: body: JSON decode error", .param = "body"};
  }
  if (!out->is_object()) return Invalid("body", "Input should be a valid dictionary");
  return std::nullopt;
}

// Reads an optional field of type bool / string (null counts as absent).
std::optional<ApiError> GetBool(const Json& j, const char* key, bool* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) return Invalid(key, "Input should be a valid boolean");
  *out = it->get<bool>();
  return std::nullopt;
}

std::optional<ApiError> GetString(const Json& j, const char* key, std::string* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) return Invalid(key, "Input should be a valid string");
  *out = it->get<std::string>();
  return std::nullopt;
}

std::optional<ApiError> GetPositive(const Json& j, const char* key,
                                    std::optional<uint32_t>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer()) return Invalid(key, "Input should be a valid integer");
  if (it->is_number_unsigned()) {
    const uint64_t v = it->get<uint64_t>();
    if (v >= 1) {
      *out = static_cast<uint32_t>(std::min<uint64_t>(v, std::numeric_limits<uint32_t>::max()));
      return std::nullopt;
    }
  }
  return BadRequest(absl::StrCat(key, " must be at least 1, got ", it->dump(), "."), key);
}

std::optional<ApiError> ParseStreamOptions(const Json& j, ApiRequest* r) {
  if (auto e = GetBool(j, "stream", &r->stream)) return e;
  auto it = j.find("stream_options");
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_object()) return Invalid("stream_options", "Input should be a valid dictionary");
  if (!r->stream) {
    return Invalid("stream_options", "Stream options can only be defined when `stream=True`.");
  }
  r->include_usage = true;  // vLLM's default once the object is sent
  if (auto e = GetBool(*it, "include_usage", &r->include_usage)) return e;
  if (auto e = GetBool(*it, "continuous_usage_stats", &r->continuous_usage)) return e;
  return std::nullopt;
}

std::optional<ApiError> ParseIds(const Json& list, std::vector<TokenId>* out) {
  for (const Json& v : list) {
    if (!v.is_number_unsigned() || v.get<uint64_t>() > std::numeric_limits<TokenId>::max()) {
      return Invalid("prompt", "token ids must be integers in [0, 2^32)");
    }
    out->push_back(static_cast<TokenId>(v.get<uint64_t>()));
  }
  return std::nullopt;
}

// prompt: str | [int] | [str] | [[int]]; a list of prompts must hold exactly one here.
std::optional<ApiError> ParsePrompt(const Json& j, ApiRequest* r) {
  auto it = j.find("prompt");
  const ApiError empty = BadRequest("Either prompt or prompt_embeds must be provided and non-empty.");
  if (it == j.end() || it->is_null()) return empty;
  const Json* p = &*it;
  if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) {
    p = &(*p)[0];  // a batch of one
  } else if (p->is_array() && !p->empty() && !(*p)[0].is_number()) {
    return BadRequest("engine-sim serves one prompt per request", "prompt");
  }
  if (p->is_string()) {
    r->prompt_text = p->get<std::string>();
    if (r->prompt_text.empty()) return empty;
    return std::nullopt;
  }
  if (!p->is_array()) return Invalid("prompt", "Input should be a string or a list of token ids");
  if (p->empty()) return empty;
  r->prompt_is_ids = true;
  return ParseIds(*p, &r->prompt_ids);
}

// vLLM's "string" content format: text parts joined by newlines; other parts are refused.
std::optional<ApiError> NormalizeContent(Json* message) {
  auto it = message->find("content");
  if (it == message->end() || it->is_null() || it->is_string()) return std::nullopt;
  if (!it->is_array()) return Invalid("messages.content", "Input should be a string or a list");
  std::string joined;
  for (const Json& part : *it) {
    const auto type = part.is_object() ? part.find("type") : part.end();
    const auto text = part.is_object() ? part.find("text") : part.end();
    if (type == part.end() || *type != "text" || text == part.end() || !text->is_string()) {
      return BadRequest("engine-sim accepts only text content parts", "messages");
    }
    if (!joined.empty()) joined += '\n';
    joined += text->get<std::string>();
  }
  *it = joined;
  return std::nullopt;
}

std::optional<ApiError> ParseChatRender(const Json& j, ChatRender* chat) {
  auto it = j.find("messages");
  if (it == j.end() || !it->is_array()) return Invalid("messages", "Field required (a list)");
  if (it->empty()) return BadRequest("messages must not be empty", "messages");
  Json messages = *it;
  for (Json& m : messages) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      return Invalid("messages", "each message needs a string role");
    }
    if (auto e = NormalizeContent(&m)) return e;
  }
  chat->messages = chat::FromJson(messages);
  if (auto e = GetBool(j, "add_generation_prompt", &chat->add_generation_prompt)) return e;
  bool continue_final = false;
  if (auto e = GetBool(j, "continue_final_message", &continue_final)) return e;
  if (continue_final && chat->add_generation_prompt) {
    return BadRequest(
        "Cannot set both `continue_final_message` and `add_generation_prompt` to True.");
  }
  if (auto t = j.find("tools"); t != j.end() && !t->is_null()) {
    if (!t->is_array()) return Invalid("tools", "Input should be a valid list");
    chat->tools = chat::FromJson(*t);
  }
  if (auto k = j.find("chat_template_kwargs"); k != j.end() && !k->is_null()) {
    if (!k->is_object()) return Invalid("chat_template_kwargs", "Input should be a dictionary");
    chat->extra_kwargs = chat::FromJson(*k).dict();
  }
  return std::nullopt;
}

std::optional<ApiError> ParseLimits(const Json& j, ApiRequest* r) {
  if (auto e = GetPositive(j, "max_tokens", &r->max_tokens)) return e;
  if (r->endpoint == Endpoint::kChat) {
    std::optional<uint32_t> completion;
    if (auto e = GetPositive(j, "max_completion_tokens", &completion)) return e;
    if (completion) r->max_tokens = completion;  // wins over the deprecated max_tokens
  } else if (!r->max_tokens) {
    r->max_tokens = 16;
  }
  if (auto it = j.find("n"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer()) return Invalid("n", "Input should be a valid integer");
    if (*it != 1) return BadRequest("engine-sim serves n=1 only", "n");
  }
  return GetBool(j, "ignore_eos", &r->ignore_eos);
}

Json UsageJson(const Usage& u, bool details) {
  Json usage = {{"prompt_tokens", u.prompt_tokens},
                {"total_tokens", u.prompt_tokens + u.completion_tokens},
                {"completion_tokens", u.completion_tokens}};
  if (details) usage["prompt_tokens_details"] = {{"cached_tokens", u.cached_tokens}};
  return usage;
}

Json HeadJson(const ResponseHead& head, bool chunk) {
  const bool chat = head.endpoint == Endpoint::kChat;
  const char* object = chat ? (chunk ? "chat.completion.chunk" : "chat.completion")
                            : "text_completion";
  return {{"id", head.id}, {"object", object}, {"created", head.created}, {"model", head.model}};
}

Json FinishJson(std::string_view finish_reason) {
  return finish_reason.empty() ? Json(nullptr) : Json(std::string(finish_reason));
}

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

std::string Event(const Json& j) { return absl::StrCat("data: ", Dump(j), "\n\n"); }

}  // namespace

std::string ErrorBody(const ApiError& e) {
  Json error = {{"message", e.message},
                {"type", e.type},
                {"param", e.param.empty() ? Json(nullptr) : Json(e.param)},
                {"code", e.status}};
  return Dump(Json{{"error", std::move(error)}});
}

std::optional<ApiError> ParseApiRequest(Endpoint endpoint, std::string_view body,
                                        ApiRequest* r) {
  Json j;
  if (auto e = ParseObject(body, &j)) return e;
  r->endpoint = endpoint;
  r->add_special_tokens = endpoint == Endpoint::kCompletions;
  if (auto e = GetString(j, "model", &r->model)) return e;
  if (auto e = GetString(j, "request_id", &r->request_id)) return e;
  if (auto e = ParseStreamOptions(j, r)) return e;
  if (auto e = ParseLimits(j, r)) return e;
  if (auto e = GetBool(j, "add_special_tokens", &r->add_special_tokens)) return e;
  if (endpoint == Endpoint::kChat) return ParseChatRender(j, &r->chat);
  return ParsePrompt(j, r);
}

std::optional<ApiError> ParseTokenizeRequest(std::string_view body, TokenizeRequest* r) {
  Json j;
  if (auto e = ParseObject(body, &j)) return e;
  r->is_chat = j.contains("messages");
  r->add_special_tokens = !r->is_chat;
  if (auto e = GetBool(j, "add_special_tokens", &r->add_special_tokens)) return e;
  if (r->is_chat) return ParseChatRender(j, &r->chat);
  auto it = j.find("prompt");
  if (it == j.end() || !it->is_string()) return Invalid("prompt", "Input should be a string");
  r->prompt = it->get<std::string>();
  return std::nullopt;
}

std::optional<ApiError> ParseDetokenizeRequest(std::string_view body, std::vector<TokenId>* out) {
  Json j;
  if (auto e = ParseObject(body, &j)) return e;
  auto it = j.find("tokens");
  if (it == j.end() || !it->is_array()) return Invalid("tokens", "Input should be a valid list");
  if (auto e = ParseIds(*it, out)) {
    e->param = "tokens";
    return e;
  }
  return std::nullopt;
}

std::string CompletionBody(const ResponseHead& head, const std::string& text,
                           std::string_view finish_reason, const Usage& usage) {
  Json choice;
  if (head.endpoint == Endpoint::kChat) {
    choice = {{"index", 0},
              {"message", {{"role", "assistant"}, {"content", text}, {"refusal", nullptr},
                           {"tool_calls", Json::array()}, {"reasoning_content", nullptr}}},
              {"logprobs", nullptr},
              {"finish_reason", FinishJson(finish_reason)},
              {"stop_reason", nullptr}};
  } else {
    choice = {{"index", 0},
              {"text", text},
              {"logprobs", nullptr},
              {"finish_reason", FinishJson(finish_reason)},
              {"stop_reason", nullptr},
              {"prompt_logprobs", nullptr}};
  }
  Json body = HeadJson(head, false);
  body["choices"] = Json::array({std::move(choice)});
  body["usage"] = UsageJson(usage, /*details=*/true);
  body["prompt_logprobs"] = nullptr;
  body["kv_transfer_params"] = nullptr;
  return Dump(body);
}

std::string StreamChunk(const ResponseHead& head, std::string_view text,
                        std::string_view finish_reason, bool role, const Usage* usage) {
  Json choice = {{"index", 0}};
  if (head.endpoint == Endpoint::kChat) {
    Json delta = Json::object();
    if (role) delta["role"] = "assistant";
    if (role || !text.empty()) delta["content"] = std::string(text);
    choice["delta"] = std::move(delta);
  } else {
    choice["text"] = std::string(text);
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = FinishJson(finish_reason);
  if (!finish_reason.empty() || head.endpoint == Endpoint::kCompletions) {
    choice["stop_reason"] = nullptr;
  }
  Json chunk = HeadJson(head, true);
  chunk["choices"] = Json::array({std::move(choice)});
  if (usage) chunk["usage"] = UsageJson(*usage, false);
  return Event(chunk);
}

std::string UsageChunk(const ResponseHead& head, const Usage& usage) {
  Json chunk = HeadJson(head, true);
  chunk["choices"] = Json::array();
  chunk["usage"] = UsageJson(usage, /*details=*/true);
  return Event(chunk);
}

std::string StreamError(const ApiError& error) {
  return absl::StrCat("data: ", ErrorBody(error), "\n\n");
}

std::optional<ApiError> PromptTokens(const TextModel& text, const ApiRequest& api,
                                     std::vector<TokenId>* ids) {
  if (api.endpoint == Endpoint::kCompletions && api.prompt_is_ids) {
    for (TokenId t : api.prompt_ids) {
      if (t >= text.vocab_size()) {
        return ApiError{.message = absl::StrCat("Token id ", t, " is out of vocabulary"),
                        .param = "prompt"};
      }
    }
    *ids = api.prompt_ids;
    return std::nullopt;
  }
  absl::StatusOr<std::string> prompt = api.prompt_text;
  if (api.endpoint == Endpoint::kChat) prompt = text.RenderChat(api.chat);
  if (!prompt.ok()) return ApiError{.message = std::string(prompt.status().message())};
  absl::StatusOr<std::vector<TokenId>> encoded = text.Encode(*prompt, api.add_special_tokens);
  if (!encoded.ok()) return ApiError{.message = std::string(encoded.status().message())};
  *ids = std::move(*encoded);
  if (ids->empty()) return ApiError{.message = "The prompt is empty after tokenization."};
  return std::nullopt;
}

}  // namespace kvr::api
