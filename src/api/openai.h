// The OpenAI-compatible surface of engine-sim, as vLLM serves it: request parsing and validation
// (vLLM's pydantic rules: unknown keys ignored, wrong types and bad values are 400), and the
// response bodies and SSE chunks. Pure: no sockets, so it is fuzzed directly
// (fuzz/enginesim_request_fuzz.cc). The facts follow vLLM's vllm/entrypoints/openai.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ids.h"
#include "api/text_model.h"

namespace kvr::api {

// vLLM's error shape (v0.10.1 on): {"error":{"message","type","param","code"}}.
struct ApiError {
  int status = 400;
  std::string type = "BadRequestError";
  std::string message;
  std::string param;  // "" -> null
};
std::string ErrorBody(const ApiError& error);

enum class Endpoint { kCompletions, kChat };

struct ApiRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string model;  // as sent; "" when absent or null (the served model)
  std::string request_id;
  bool stream = false;
  bool include_usage = false;     // stream_options.include_usage
  bool continuous_usage = false;  // stream_options.continuous_usage_stats
  bool ignore_eos = false;
  std::optional<uint32_t> max_tokens;  // absent: 16 for completions, the rest of the context for chat
  bool add_special_tokens = true;      // chat: false unless set
  // Completions: the prompt as text, or as token ids when `prompt_is_ids`.
  std::string prompt_text;
  std::vector<TokenId> prompt_ids;
  bool prompt_is_ids = false;
  ChatRender chat;  // chat: messages (content parts joined as vLLM's "string" format does)
};

// Parses a /v1/completions or /v1/chat/completions body. On failure returns the error vLLM
// would answer (and leaves *out unspecified).
std::optional<ApiError> ParseApiRequest(Endpoint endpoint, std::string_view body,
                                        ApiRequest* out);

// The prompt's token ids as the engine computes them: token-id prompts as given (each checked
// against the vocabulary), text prompts encoded, chat messages rendered through the template and
// encoded. A template's raise_exception is a 400 carrying its message.
std::optional<ApiError> PromptTokens(const TextModel& text, const ApiRequest& request,
                                     std::vector<TokenId>* ids);

struct TokenizeRequest {
  bool is_chat = false;
  std::string prompt;
  ChatRender chat;
  bool add_special_tokens = true;  // chat: false unless set
};
std::optional<ApiError> ParseTokenizeRequest(std::string_view body, TokenizeRequest* out);
std::optional<ApiError> ParseDetokenizeRequest(std::string_view body, std::vector<TokenId>* out);

struct Usage {
  uint32_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
};

// What every body of one response repeats.
struct ResponseHead {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string id;  // "cmpl-..." or "chatcmpl-..."
  int64_t created = 0;
  std::string model;
};

std::string CompletionBody(const ResponseHead& head, const std::string& text,
                           std::string_view finish_reason, const Usage& usage);
// One SSE event ("data: {...}\n\n"). `finish_reason` empty: not the last chunk. `role` makes
// the chat role chunk. `usage` (continuous_usage_stats) rides on the chunk when given.
std::string StreamChunk(const ResponseHead& head, std::string_view text,
                        std::string_view finish_reason, bool role, const Usage* usage);
std::string UsageChunk(const ResponseHead& head, const Usage& usage);
std::string StreamError(const ApiError& error);
inline constexpr std::string_view kStreamDone = "data: [DONE]\n\n";

}  // namespace kvr::api
