#include "gateway/tokenizer_check.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "api/openai.h"
#include "nlohmann/json.hpp"

namespace kvr::gateway {
namespace {

using Json = nlohmann::json;

TokenizerProbe TextProbe(std::string name, std::string text) {
  return {.name = std::move(name),
          .request_body = Json{{"prompt", std::move(text)}, {"max_tokens", 1}}.dump(),
          .chat = false};
}

// The probe's request as the router parses it (the same parser as the request path).
absl::StatusOr<api::ApiRequest> Parse(const TokenizerProbe& probe) {
  api::ApiRequest request;
  const api::Endpoint endpoint = probe.chat ? api::Endpoint::kChat : api::Endpoint::kCompletions;
  if (auto e = api::ParseApiRequest(endpoint, probe.request_body, &request)) {
    return absl::InternalError(absl::StrCat("probe '", probe.name, "': ", e->message));
  }
  return request;
}

std::string Shown(const std::string& text, size_t at) {
  const size_t begin = at > 12 ? at - 12 : 0;
  // Escaped, so invisible differences show. The cut can split a UTF-8 sequence, and an engine's
  // rendering need not be UTF-8 at all: invalid bytes are shown as U+FFFD, not thrown on.
  return Json(text.substr(begin, 24)).dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

const std::vector<TokenizerProbe>& TokenizerProbes() {
  static const auto* probes = [] {
    auto* p = new std::vector<TokenizerProbe>{
        TextProbe("plain", "The quick brown fox jumps over the lazy dog. It's 2026, isn't it?"),
        TextProbe("code", "def f(x):\n    return x**2  # square\n\n\tif x != 0: print(f'{x:>8}')"),
        TextProbe("numbers", "1234567890 3.14159 -42 1e10 0x1F 1,000,000"),
        TextProbe("unicode", "Gr\u00fc\u00dfe, \u4f60\u597d\u4e16\u754c! \U0001F600\U0001F44D\U0001F3FD "
                             "na\u00efve caf\u00e9 \ufb01 \u2126"),
        // NFD: a tokenizer with an NFC normalizer (Qwen's) composes these; one without does not.
        TextProbe("decomposed-accents", "Cafe\u0301 nai\u0308ve re\u0301sume\u0301 "
                                        "A\u030angstro\u0308m Se\u0301bastien"),
        TextProbe("whitespace", "  leading and   multiple   spaces\n\n\nand newlines\r\n\t "),
    };
    Json messages = Json::array(
        {{{"role", "system"}, {"content", "You are a helpful assistant."}},
         {{"role", "user"}, {"content", "Hello! What is 2+2?"}},
         {{"role", "assistant"}, {"content", "4."}},
         {{"role", "user"}, {"content", "And 3+3?"}}});
    p->push_back({.name = "chat",
                  .request_body = Json{{"messages", messages}, {"max_tokens", 1}}.dump(),
                  .chat = true});
    return p;
  }();
  return *probes;
}

absl::StatusOr<RouterIds> RouterProbeIds(const api::TextModel& text, const TokenizerProbe& probe) {
  absl::StatusOr<api::ApiRequest> request = Parse(probe);
  if (!request.ok()) return request.status();
  RouterIds out;
  if (auto e = api::PromptTokens(text, *request, &out.ids)) {
    return absl::InvalidArgumentError(absl::StrCat("probe '", probe.name, "': ", e->message));
  }
  if (probe.chat) {
    absl::StatusOr<std::string> rendered = text.RenderChat(request->chat);
    if (!rendered.ok()) return rendered.status();
    out.rendered = *std::move(rendered);
  }
  return out;
}

ProbeCall ProbeRequest(EngineApi api, const TokenizerProbe& probe) {
  const Json body = Json::parse(probe.request_body);
  if (api == EngineApi::kLlamaCpp) {
    if (probe.chat) return {"/apply-template", Json{{"messages", body["messages"]}}.dump()};
    return {"/tokenize",
            Json{{"content", body["prompt"]}, {"add_special", true}, {"parse_special", true}}.dump()};
  }
  if (probe.chat) {
    return {"/tokenize", Json{{"messages", body["messages"]}, {"add_generation_prompt", true}}.dump()};
  }
  return {"/tokenize", Json{{"prompt", body["prompt"]}}.dump()};
}

std::optional<ProbeCall> FollowUpRequest(EngineApi api, const TokenizerProbe& probe,
                                         const EngineAnswer& first) {
  if (api != EngineApi::kLlamaCpp || !probe.chat || !first.rendered) return std::nullopt;
  return ProbeCall{"/tokenize", Json{{"content", *first.rendered},
                                     {"add_special", true},
                                     {"parse_special", true}}
                                    .dump()};
}

namespace {

// The ids of a `/tokenize` answer (vLLM's, engine-sim's and llama.cpp's: {"tokens": [...]}).
absl::StatusOr<std::vector<TokenId>> TokensFrom(const Json& j) {
  auto it = j.find("tokens");
  if (it == j.end() || !it->is_array()) return absl::InvalidArgumentError("no `tokens` list");
  std::vector<TokenId> out;
  out.reserve(it->size());
  for (const Json& id : *it) {
    if (!id.is_number_unsigned() || id.get<uint64_t>() > UINT32_MAX) {
      return absl::InvalidArgumentError("`tokens` holds something other than token ids");
    }
    out.push_back(static_cast<TokenId>(id.get<uint64_t>()));
  }
  return out;
}

}  // namespace

absl::StatusOr<EngineAnswer> ParseProbeAnswer(EngineApi api, const TokenizerProbe& probe,
                                              std::string_view body) {
  const Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::InvalidArgumentError("the answer is not a JSON object");
  EngineAnswer out;
  if (api == EngineApi::kLlamaCpp && probe.chat) {
    auto it = j.find("prompt");
    if (it == j.end() || !it->is_string()) return absl::InvalidArgumentError("no `prompt` string");
    out.rendered = it->get<std::string>();
    return out;
  }
  absl::StatusOr<std::vector<TokenId>> ids = TokensFrom(j);
  if (!ids.ok()) return ids.status();
  out.ids = *std::move(ids);
  return out;
}

absl::StatusOr<std::vector<TokenId>> ParseTokenizeAnswer(std::string_view body) {
  const Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::InvalidArgumentError("the answer is not a JSON object");
  return TokensFrom(j);
}

std::optional<std::string> CompareProbe(const TokenizerProbe& probe, const RouterIds& router,
                                        const EngineAnswer& engine) {
  const std::string name = absl::StrCat("probe '", probe.name, "': ");
  if (engine.rendered && engine.ids.empty()) {
    const std::string& a = router.rendered;
    const std::string& b = *engine.rendered;
    if (a == b) return std::nullopt;
    const size_t at = size_t(std::mismatch(a.begin(), a.end(), b.begin(), b.end()).first - a.begin());
    return absl::StrCat(name, "the chat template renders differently from byte ", at, " (router ",
                        Shown(a, at), ", engine ", Shown(b, at), ")");
  }
  const std::vector<TokenId>& a = router.ids;
  const std::vector<TokenId>& b = engine.ids;
  if (a == b) return std::nullopt;
  const size_t at = size_t(std::mismatch(a.begin(), a.end(), b.begin(), b.end()).first - a.begin());
  const auto id = [](const std::vector<TokenId>& v, size_t i) {
    return i < v.size() ? absl::StrCat(v[i]) : std::string("none");
  };
  return absl::StrCat(name, "token ", at, " differs (router ", id(a, at), ", engine ", id(b, at),
                      "; ", a.size(), " vs ", b.size(), " tokens)");
}

}  // namespace kvr::gateway
