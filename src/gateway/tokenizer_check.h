// Tokenizer drift: a router that tokenizes or renders a prompt differently from its engine gets
// almost no cache hits while every health check is green. The router asks each engine for the
// token ids of a fixed set of probes (texts that stress normalization, pre-tokenization and
// byte fallback, and one conversation through the chat template) and compares them with the ids
// its own request path computes. The pure part: the probes, the requests that ask an engine for
// its ids, the parsing of its answers, and the comparison. The gateway (monitor.cc) sends them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "api/text_model.h"
#include "common/ids.h"
#include "gateway/config.h"

namespace kvr::gateway {

struct TokenizerProbe {
  std::string name;
  // The probe as a generation request's body: a completion's text prompt, or a chat's
  // messages. The router's ids come from its own request path on this body.
  std::string request_body;
  bool chat = false;
};

// The fixed probes, in the order they are tried.
const std::vector<TokenizerProbe>& TokenizerProbes();

// The router's ids for `probe`, exactly as its request path computes them for the same request
// (and, for the chat probe, the rendered text).
struct RouterIds {
  std::vector<TokenId> ids;
  std::string rendered;  // chat: the template's output
};
absl::StatusOr<RouterIds> RouterProbeIds(const api::TextModel& text, const TokenizerProbe& probe);

// One request to an engine (POST, JSON body) that a probe needs.
struct ProbeCall {
  std::string target;
  std::string body;
};

// How to ask an engine of kind `api` for a probe's ids.
// - vLLM (and engine-sim): one /tokenize call with the same `prompt` or `messages`.
// - llama.cpp: a text probe is one /tokenize call (with the BOS its completions add); the chat
//   probe is an /apply-template call, then (FollowUpRequest) a /tokenize call on the text it
//   rendered, which yields the ids llama-server's chat endpoint computes.
ProbeCall ProbeRequest(EngineApi api, const TokenizerProbe& probe);

// What the engine answered: its ids (vLLM, llama.cpp /tokenize) or its rendered text
// (llama.cpp /apply-template; `ids` then come from the follow-up call).
struct EngineAnswer {
  std::vector<TokenId> ids;
  std::optional<std::string> rendered;
};

// The second call a probe needs after its first answer, or nullopt. llama.cpp's chat probe:
// /tokenize of the rendered text with add_special and parse_special, as llama-server tokenizes a
// chat. The ids, not the texts, are compared: llama.cpp's rendering drops a leading BOS that the
// template wrote when the vocabulary adds one at tokenization (Llama 3), so its text lacks the
// router's `<|begin_of_text|>` while its ids are the same. The follow-up's answer is parsed by
// ParseTokenizeAnswer and its ids set on the first answer.
std::optional<ProbeCall> FollowUpRequest(EngineApi api, const TokenizerProbe& probe,
                                         const EngineAnswer& first);

absl::StatusOr<EngineAnswer> ParseProbeAnswer(EngineApi api, const TokenizerProbe& probe,
                                              std::string_view body);
// A /tokenize answer's `tokens` (vLLM and llama.cpp alike).
absl::StatusOr<std::vector<TokenId>> ParseTokenizeAnswer(std::string_view body);

// nullopt when the engine agrees; else what differs, naming the probe and the first differing
// position, e.g. "probe 'decomposed-accents': token 3 differs (router 1234, engine 5678)".
// Ids are compared when the engine gave ids; a rendering alone is compared as text.
std::optional<std::string> CompareProbe(const TokenizerProbe& probe, const RouterIds& router,
                                        const EngineAnswer& engine);

}  // namespace kvr::gateway
