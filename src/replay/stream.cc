#include "replay/stream.h"

#include <utility>

#include "nlohmann/json.hpp"

namespace kvr::replay {
namespace {

using Json = nlohmann::json;

uint64_t Count(const Json& object, const char* key) {
  if (!object.is_object()) return 0;
  const auto it = object.find(key);
  return it != object.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

// The message of an error value: {"message": ...} or a plain string; else its JSON text.
std::string ErrorText(const Json& error) {
  if (error.is_string()) return error.get<std::string>();
  if (error.is_object()) {
    const auto it = error.find("message");
    if (it != error.end() && it->is_string()) return it->get<std::string>();
  }
  return error.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

void CompletionStream::Feed(std::string_view bytes, TimeNs now) {
  if (done_ || failed()) return;
  for (const std::string& data : parser_.Feed(bytes)) {
    Event(data, now);
    if (done_ || failed()) return;
  }
  if (parser_.overflowed()) Fail("an SSE line longer than the bound");
}

void CompletionStream::End() {
  if (!done_) Fail(parser_.pending() ? "stream cut inside an event" : "stream ended before [DONE]");
}

void CompletionStream::Fail(std::string message) {
  if (error_.empty()) error_ = message.empty() ? "failed" : std::move(message);
}

void CompletionStream::Event(std::string_view data, TimeNs now) {
  if (data == "[DONE]") {
    done_ = true;
    return;
  }
  const Json event = Json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (!event.is_object()) return Fail("malformed stream event");
  if (const auto error = event.find("error"); error != event.end() && !error->is_null()) {
    return Fail(ErrorText(*error));
  }
  if (const auto choices = event.find("choices");
      choices != event.end() && choices->is_array() && !choices->empty()) {
    if (token_chunks_++ == 0) first_token_ = now;
    last_token_ = now;
  }
  if (const auto usage = event.find("usage"); usage != event.end() && usage->is_object()) {
    usage_.reported = true;
    usage_.prompt_tokens = Count(*usage, "prompt_tokens");
    usage_.completion_tokens = Count(*usage, "completion_tokens");
    const auto details = usage->find("prompt_tokens_details");
    usage_.cached_tokens = details != usage->end() ? Count(*details, "cached_tokens") : 0;
  }
}

std::string ErrorMessage(std::string_view body) {
  const Json json = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_object()) {
    if (const auto error = json.find("error"); error != json.end()) return ErrorText(*error);
    if (const auto message = json.find("message"); message != json.end() && message->is_string()) {
      return message->get<std::string>();
    }
  }
  return std::string(body.substr(0, 200));
}

}  // namespace kvr::replay
