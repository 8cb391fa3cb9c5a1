// engine-sim's request bodies (what vLLM's pydantic models validate), end to end up to the prompt
// ids: parse and validate, render the chat template, tokenize; then the response builders.
// Nothing from the network may crash, throw or hang.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "api/openai.h"
#include "api/text_model.h"

namespace {

const kvr::api::TextModel& Model() {
  static const auto* model = kvr::api::TextModel::Load({})->release();
  return *model;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvr::api;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  for (Endpoint e : {Endpoint::kCompletions, Endpoint::kChat}) {
    ApiRequest r;
    if (ParseApiRequest(e, body, &r)) continue;
    if (e == Endpoint::kChat) {
      auto text = Model().RenderChat(r.chat);
      if (text.ok()) (void)Model().Encode(*text, r.add_special_tokens);
    } else if (!r.prompt_is_ids) {
      (void)Model().Encode(r.prompt_text, r.add_special_tokens);
    }
    ResponseHead head{.endpoint = e, .id = r.request_id, .model = r.model};
    (void)CompletionBody(head, r.prompt_text, "length", {});
    (void)StreamChunk(head, r.prompt_text, "", true, nullptr);
  }
  TokenizeRequest t;
  (void)ParseTokenizeRequest(body, &t);
  std::vector<kvr::TokenId> ids;
  if (!ParseDetokenizeRequest(body, &ids)) (void)Model().Decode(ids);
  return 0;
}
