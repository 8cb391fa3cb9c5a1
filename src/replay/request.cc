#include "replay/request.h"

#include <charconv>

#include "nlohmann/json.hpp"

namespace kvr::replay {

std::string CompletionBody(std::string_view model, const sim::SimRequest& request) {
  // Built by hand: prompts run to 100k ids, and this is the replay's hot path.
  std::string out = "{\"model\":";
  out += nlohmann::json(std::string(model))
             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  out += ",\"prompt\":[";
  out.reserve(out.size() + request.prompt.size() * 7 + 128);
  char digits[16];
  for (size_t i = 0; i < request.prompt.size(); ++i) {
    if (i) out += ',';
    out.append(digits, std::to_chars(digits, digits + sizeof digits, request.prompt[i]).ptr);
  }
  out += "],\"max_tokens\":";
  out += std::to_string(request.output_tokens);
  out += ",\"ignore_eos\":true,\"stream\":true,\"stream_options\":{\"include_usage\":true}}";
  return out;
}

}  // namespace kvr::replay
