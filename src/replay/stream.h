// One streamed completion as the client sees it: SSE events in (vLLM's OpenAI stream format),
// the times of its token chunks, its usage and how it ended out. Pure: the caller passes the
// time each piece arrived.
//
// A chunk whose `choices` is non-empty is a token chunk (vLLM sends one per decode step); the
// usage chunk (`choices: []`, from stream_options.include_usage) carries prompt, completion and
// cached tokens (`usage.prompt_tokens_details.cached_tokens`); `data: [DONE]` ends the stream.
// An event `{"error": ...}` (the gateway's way to end a stream that failed after its first
// byte), malformed JSON or a body that ends before [DONE] fails it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "replay/sse.h"

namespace kvr::replay {

struct StreamUsage {
  bool reported = false;
  uint64_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
};

class CompletionStream {
 public:
  // Body bytes that arrived at `now`. Ignored once done or failed.
  void Feed(std::string_view bytes, TimeNs now);
  // The body ended cleanly: a stream without [DONE] fails.
  void End();
  // Fails the stream from outside (a transport error); the first error is kept.
  void Fail(std::string message);

  bool done() const { return done_; }
  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  uint64_t token_chunks() const { return token_chunks_; }
  TimeNs first_token() const { return first_token_; }  // valid when token_chunks() > 0
  TimeNs last_token() const { return last_token_; }
  const StreamUsage& usage() const { return usage_; }

 private:
  void Event(std::string_view data, TimeNs now);

  SseParser parser_;
  bool done_ = false;
  std::string error_;
  uint64_t token_chunks_ = 0;
  TimeNs first_token_ = 0, last_token_ = 0;
  StreamUsage usage_;
};

// The message of an OpenAI-style error body ({"error":{"message":...}} or {"error":"..."}, or
// vLLM's {"message":...}); else the body itself, cut to 200 bytes.
std::string ErrorMessage(std::string_view body);

}  // namespace kvr::replay
