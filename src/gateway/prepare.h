// The pure part of the gateway's request path: from a request body to the prompt's KV block
// hashes (parse, pick the pool, render, tokenize, hash), and from an engine's answer to what it
// says about the prompt (usage, including cached tokens) and from its /metrics to its load.
// No sockets: fuzzed directly (fuzz/gateway_request_fuzz.cc).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "api/openai.h"
#include "api/text_model.h"
#include "common/ids.h"
#include "scheduler/worker.h"

namespace kvr::gateway {

// What the request path needs of a pool to prepare a prompt.
struct ModelText {
  std::string_view name;  // the pool's model name
  const api::TextModel* text = nullptr;
  uint32_t block_size = 16;
  bool forward_tokens = false;  // the pool forwards text prompts as token ids
};
// Finds a pool by the request's model name ("" when the request names none); nullopt: none.
using ModelLookup = std::function<std::optional<ModelText>(std::string_view model)>;

struct PreparedPrompt {
  std::string model;  // the pool's name
  bool stream = false;
  uint32_t prompt_tokens = 0;
  std::vector<BlockHash> blocks;  // chained hashes of the prompt's full blocks
  // forward_tokens: the body with its text prompt replaced by the router's token ids; empty
  // when the body is forwarded as sent (see WithTokenPrompt).
  std::string token_body;
};

// The error is what the client gets: vLLM's 400s for bad requests, 404 for an unknown model.
std::variant<PreparedPrompt, api::ApiError> PreparePrompt(api::Endpoint endpoint,
                                                          std::string_view body,
                                                          const ModelLookup& lookup);

// A completions body with its top-level `"prompt": "<text>"` replaced by `"prompt": [ids]`, every
// other byte as sent. nullopt, to forward the body as sent, when its prompt is not one string,
// when a top-level key is escaped or repeated (the engine's JSON reader might pick another
// value than the router's), or when it asks for `echo` (the engine would echo the ids' text).
// `body` has been parsed as JSON already; anything else only yields nullopt.
std::optional<std::string> WithTokenPrompt(std::string_view body, std::span<const TokenId> ids);

// An engine's report on one request (OpenAI `usage`).
struct EngineUsage {
  int64_t prompt_tokens = -1;  // < 0: not reported
  int64_t cached_tokens = -1;  // usage.prompt_tokens_details.cached_tokens
  int64_t completion_tokens = -1;
};
// From a whole (unstreamed) response body.
EngineUsage UsageFromBody(std::string_view body);

// Watches an SSE stream as it passes and keeps the last usage it carried (vLLM sends it with
// stream_options.include_usage). Memory is bounded: an over-long line is skipped.
class UsageScanner {
 public:
  void Feed(std::string_view bytes);
  const EngineUsage& usage() const { return usage_; }
  // Data events that carried output (not `[DONE]`, not a usage-only chunk with no choices):
  // about one per token when the engine streams token by token.
  uint64_t output_events() const { return output_events_; }
  // The answer's tokens: the engine's usage when it reported it, else output_events().
  uint64_t OutputTokens() const;

 private:
  void Line(std::string_view line);
  std::string partial_;
  bool skipping_ = false;  // inside a line longer than the bound
  EngineUsage usage_;
  uint64_t output_events_ = 0;
};

// llama.cpp's /props `total_slots` (its -np); nullopt: absent or not a positive count.
std::optional<uint32_t> ParseTotalSlots(std::string_view props);

// The most prompt tokens an engine prefills in one step, from SGLang's /server_info (older
// builds: /get_server_info; the server arguments at the top level): both its
// chunked_prefill_size (absent, null or <= 0 when chunked prefill is off) and its
// max_prefill_tokens bound a prefill batch, so the smaller of those given. nullopt: neither is
// there as a positive integer (any other engine's answer), or the result exceeds `limit`.
std::optional<uint32_t> ParseMaxBatchedTokens(std::string_view server_info, uint32_t limit);

// An engine's load from its Prometheus /metrics: vLLM's (V1 and V0 names), SGLang's or
// llama.cpp's (`llamacpp:requests_processing`, `llamacpp:requests_deferred`; no KV usage) gauges,
// summed over the series of `dp_rank` where the engine labels ranks. nullopt: none found.
std::optional<EngineMetrics> ParseEngineMetrics(std::string_view text, int64_t dp_rank);

}  // namespace kvr::gateway
