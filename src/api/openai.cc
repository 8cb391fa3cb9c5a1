#include "api/openai.h"

#include <simdjson.h>

#include <limits>
#include <memory>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace kvr::api {
namespace {

namespace dom = simdjson::dom;
using Json = nlohmann::ordered_json;  // the response bodies

// Deeper documents are refused by the parser: nothing vLLM accepts nests this deep, and the
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

// A request body parsed with simdjson's DOM. The elements point into the parser, which lives as
// long as the Body. Bodies up to kReusedBytes reuse one parser per thread (no allocation per
// request); larger ones get their own, so a thread does not keep a huge buffer afterwards.
class Body {
 public:
  std::optional<ApiError> Parse(std::string_view text) {
    constexpr size_t kReusedBytes = size_t{1} << 20;
    thread_local std::unique_ptr<dom::parser> reused;
    if (text.size() <= kReusedBytes) {
      if (!reused) reused = NewParser(kReusedBytes);
      parser_ = reused.get();
    } else {
      own_ = NewParser(text.size());
      parser_ = own_.get();
    }
    dom::element root;
    const simdjson::error_code error =
        parser_ ? parser_->parse(text.data(), text.size()).get(root) : simdjson::MEMALLOC;
    if (error == simdjson::DEPTH_ERROR) return Invalid("body", "JSON nested too deeply");
    if (error != simdjson::SUCCESS) {
      // Also integers beyond 64 bits: Python reads them exactly, which a router cannot render.
      return ApiError{.status = 400, .type = "Bad Request",
                      .message = "1 validation error: body: JSON decode error", .param = "body"};
    }
    if (root.get(root_) != simdjson::SUCCESS) {
      return Invalid("body", "Input should be a valid dictionary");
    }
    return std::nullopt;
  }
  dom::object root() const { return root_; }

 private:
  static std::unique_ptr<dom::parser> NewParser(size_t capacity) {
    auto parser = std::make_unique<dom::parser>();
    if (parser->allocate(capacity, kMaxDepth) != simdjson::SUCCESS) return nullptr;
    return parser;
  }
  dom::parser* parser_ = nullptr;
  std::unique_ptr<dom::parser> own_;
  dom::object root_;
};

// A field of an object; nullopt when absent or null. A repeated key reads its last value, as
// Python's json.loads keeps it.
std::optional<dom::element> Find(dom::object o, std::string_view key) {
  std::optional<dom::element> found;
  for (dom::key_value_pair field : o) {
    if (field.key == key) found = field.value;
  }
  if (found && found->is_null()) return std::nullopt;
  return found;
}

bool IsInteger(dom::element v) { return v.is_int64() || v.is_uint64(); }
// Non-negative integers (JSON "unsigned": what nlohmann and Python's int >= 0 agree on).
std::optional<uint64_t> Unsigned(dom::element v) {
  if (v.type() == dom::element_type::UINT64) return v.get_uint64().value_unsafe();
  if (v.type() == dom::element_type::INT64 && v.get_int64().value_unsafe() >= 0) {
    return static_cast<uint64_t>(v.get_int64().value_unsafe());
  }
  return std::nullopt;
}

// Reads an optional field of type bool / string (null counts as absent).
std::optional<ApiError> GetBool(dom::object j, const char* key, bool* out) {
  const std::optional<dom::element> v = Find(j, key);
  if (!v) return std::nullopt;
  if (!v->is_bool()) return Invalid(key, "Input should be a valid boolean");
  *out = v->get_bool().value_unsafe();
  return std::nullopt;
}

std::optional<ApiError> GetString(dom::object j, const char* key, std::string* out) {
  const std::optional<dom::element> v = Find(j, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) return Invalid(key, "Input should be a valid string");
  *out = std::string(v->get_string().value_unsafe());
  return std::nullopt;
}

std::optional<ApiError> GetPositive(dom::object j, const char* key,
                                    std::optional<uint32_t>* out) {
  const std::optional<dom::element> v = Find(j, key);
  if (!v) return std::nullopt;
  if (!IsInteger(*v)) return Invalid(key, "Input should be a valid integer");
  if (const std::optional<uint64_t> u = Unsigned(*v); u && *u >= 1) {
    *out = static_cast<uint32_t>(std::min<uint64_t>(*u, std::numeric_limits<uint32_t>::max()));
    return std::nullopt;
  }
  return BadRequest(absl::StrCat(key, " must be at least 1, got ", simdjson::minify(*v), "."),
                    key);
}

std::optional<ApiError> ParseStreamOptions(dom::object j, ApiRequest* r) {
  if (auto e = GetBool(j, "stream", &r->stream)) return e;
  const std::optional<dom::element> v = Find(j, "stream_options");
  if (!v) return std::nullopt;
  dom::object options;
  if (v->get(options) != simdjson::SUCCESS) {
    return Invalid("stream_options", "Input should be a valid dictionary");
  }
  if (!r->stream) {
    return Invalid("stream_options", "Stream options can only be defined when `stream=True`.");
  }
  r->include_usage = true;  // vLLM's default once the object is sent
  if (auto e = GetBool(options, "include_usage", &r->include_usage)) return e;
  if (auto e = GetBool(options, "continuous_usage_stats", &r->continuous_usage)) return e;
  return std::nullopt;
}

std::optional<ApiError> ParseIds(dom::array list, std::vector<TokenId>* out) {
  out->reserve(list.size());
  for (dom::element v : list) {
    const std::optional<uint64_t> id = Unsigned(v);
    if (!id || *id > std::numeric_limits<TokenId>::max()) {
      return Invalid("prompt", "token ids must be integers in [0, 2^32)");
    }
    out->push_back(static_cast<TokenId>(*id));
  }
  return std::nullopt;
}

// prompt: str | [int] | [str] | [[int]]; a list of prompts must hold exactly one here.
std::optional<ApiError> ParsePrompt(dom::object j, ApiRequest* r) {
  const ApiError empty = BadRequest("Either prompt or prompt_embeds must be provided and non-empty.");
  std::optional<dom::element> p = Find(j, "prompt");
  if (!p) return empty;
  dom::array list;
  if (p->get(list) == simdjson::SUCCESS && list.size() == 1 &&
      (list.at(0).is_string() || list.at(0).is_array())) {
    p = list.at(0).value_unsafe();  // a batch of one
  } else if (p->is_array() && list.size() > 0 && !list.at(0).is_number()) {
    return BadRequest("engine-sim serves one prompt per request", "prompt");
  }
  if (p->is_string()) {
    r->prompt_text = std::string(p->get_string().value_unsafe());
    if (r->prompt_text.empty()) return empty;
    return std::nullopt;
  }
  if (p->get(list) != simdjson::SUCCESS) {
    return Invalid("prompt", "Input should be a string or a list of token ids");
  }
  if (list.size() == 0) return empty;
  r->prompt_is_ids = true;
  return ParseIds(list, &r->prompt_ids);
}

// JSON -> chat Value, as chat::FromJson does: integers stay int (above 2^63, float), reals are
// float; a repeated key keeps its first position and its last value. Depth is bounded by the
// parser (kMaxDepth).
chat::Value ToValue(dom::element v) {
  switch (v.type()) {
    case dom::element_type::NULL_VALUE:
      return chat::Value::None();
    case dom::element_type::BOOL:
      return chat::Value(v.get_bool().value_unsafe());
    case dom::element_type::INT64:
      return chat::Value(v.get_int64().value_unsafe());
    case dom::element_type::UINT64: {
      const uint64_t u = v.get_uint64().value_unsafe();
      if (u > static_cast<uint64_t>(INT64_MAX)) return chat::Value(static_cast<double>(u));
      return chat::Value(static_cast<int64_t>(u));
    }
    case dom::element_type::DOUBLE:
      return chat::Value(v.get_double().value_unsafe());
    case dom::element_type::STRING:
      return chat::Value(v.get_string().value_unsafe());
    case dom::element_type::ARRAY: {
      const dom::array array = v.get_array().value_unsafe();
      chat::List l;
      l.reserve(array.size());
      for (dom::element x : array) l.push_back(ToValue(x));
      return chat::Value::FromList(std::move(l));
    }
    case dom::element_type::OBJECT: {
      const dom::object object = v.get_object().value_unsafe();
      chat::Dict d;
      for (dom::key_value_pair field : object) {
        d.Set(field.key, ToValue(field.value));
      }
      return chat::Value::FromDict(std::move(d));
    }
  }
  return chat::Value();
}

// vLLM's "string" content format: text parts joined by newlines; other parts are refused.
std::optional<ApiError> ContentValue(dom::element content, chat::Value* out) {
  if (content.is_null() || content.is_string()) {
    *out = ToValue(content);
    return std::nullopt;
  }
  dom::array parts;
  if (content.get(parts) != simdjson::SUCCESS) {
    return Invalid("messages.content", "Input should be a string or a list");
  }
  std::string joined;
  bool first = true;
  for (dom::element part : parts) {
    dom::object fields;
    const bool object = part.get(fields) == simdjson::SUCCESS;
    const std::optional<dom::element> type = object ? Find(fields, "type") : std::nullopt;
    const std::optional<dom::element> text = object ? Find(fields, "text") : std::nullopt;
    if (!type || !type->is_string() || type->get_string().value_unsafe() != "text" || !text ||
        !text->is_string()) {
      return BadRequest("engine-sim accepts only text content parts", "messages");
    }
    if (!first) joined += '\n';
    first = false;
    joined += text->get_string().value_unsafe();
  }
  *out = chat::Value(std::move(joined));
  return std::nullopt;
}

std::optional<ApiError> ParseMessages(dom::array list, chat::Value* out) {
  chat::List messages;
  messages.reserve(list.size());
  for (dom::element m : list) {
    dom::object message;
    const std::optional<dom::element> role =
        m.get(message) == simdjson::SUCCESS ? Find(message, "role") : std::nullopt;
    if (!role || !role->is_string()) return Invalid("messages", "each message needs a string role");
    chat::Dict d;
    for (dom::key_value_pair field : message) {
      if (field.key != "content") {
        d.Set(field.key, ToValue(field.value));
        continue;
      }
      chat::Value content;
      if (auto e = ContentValue(field.value, &content)) return e;
      d.Set(field.key, std::move(content));
    }
    messages.push_back(chat::Value::FromDict(std::move(d)));
  }
  *out = chat::Value::FromList(std::move(messages));
  return std::nullopt;
}

std::optional<ApiError> ParseChatRender(dom::object j, ChatRender* chat) {
  const std::optional<dom::element> v = Find(j, "messages");
  dom::array list;
  if (!v || v->get(list) != simdjson::SUCCESS) {
    return Invalid("messages", "Field required (a list)");
  }
  if (list.size() == 0) return BadRequest("messages must not be empty", "messages");
  if (auto e = ParseMessages(list, &chat->messages)) return e;
  if (auto e = GetBool(j, "add_generation_prompt", &chat->add_generation_prompt)) return e;
  bool continue_final = false;
  if (auto e = GetBool(j, "continue_final_message", &continue_final)) return e;
  if (continue_final && chat->add_generation_prompt) {
    return BadRequest(
        "Cannot set both `continue_final_message` and `add_generation_prompt` to True.");
  }
  if (const std::optional<dom::element> t = Find(j, "tools")) {
    if (!t->is_array()) return Invalid("tools", "Input should be a valid list");
    chat->tools = ToValue(*t);
  }
  if (const std::optional<dom::element> k = Find(j, "chat_template_kwargs")) {
    if (!k->is_object()) return Invalid("chat_template_kwargs", "Input should be a dictionary");
    chat->extra_kwargs = ToValue(*k).dict();
  }
  return std::nullopt;
}

std::optional<ApiError> ParseLimits(dom::object j, ApiRequest* r) {
  if (auto e = GetPositive(j, "max_tokens", &r->max_tokens)) return e;
  if (r->endpoint == Endpoint::kChat) {
    std::optional<uint32_t> completion;
    if (auto e = GetPositive(j, "max_completion_tokens", &completion)) return e;
    if (completion) r->max_tokens = completion;  // wins over the deprecated max_tokens
  } else if (!r->max_tokens) {
    r->max_tokens = 16;
  }
  if (const std::optional<dom::element> n = Find(j, "n")) {
    if (!IsInteger(*n)) return Invalid("n", "Input should be a valid integer");
    if (Unsigned(*n) != std::optional<uint64_t>(1)) {
      return BadRequest("engine-sim serves n=1 only", "n");
    }
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
  Body parsed;
  if (auto e = parsed.Parse(body)) return e;
  const dom::object j = parsed.root();
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
  Body parsed;
  if (auto e = parsed.Parse(body)) return e;
  const dom::object j = parsed.root();
  r->is_chat = false;
  for (dom::key_value_pair field : j) r->is_chat |= field.key == "messages";
  r->add_special_tokens = !r->is_chat;
  if (auto e = GetBool(j, "add_special_tokens", &r->add_special_tokens)) return e;
  if (r->is_chat) return ParseChatRender(j, &r->chat);
  const std::optional<dom::element> prompt = Find(j, "prompt");
  if (!prompt || !prompt->is_string()) return Invalid("prompt", "Input should be a string");
  r->prompt = std::string(prompt->get_string().value_unsafe());
  return std::nullopt;
}

std::optional<ApiError> ParseDetokenizeRequest(std::string_view body, std::vector<TokenId>* out) {
  Body parsed;
  if (auto e = parsed.Parse(body)) return e;
  const std::optional<dom::element> tokens = Find(parsed.root(), "tokens");
  dom::array list;
  if (!tokens || tokens->get(list) != simdjson::SUCCESS) {
    return Invalid("tokens", "Input should be a valid list");
  }
  if (auto e = ParseIds(list, out)) {
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
