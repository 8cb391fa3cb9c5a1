// The gateway's request path up to the routing decision, on outside bytes: a request body is
// parsed, its pool found, its prompt rendered, tokenized and hashed, and a real scheduler routes
// it over a small index; then the same bytes as an engine's answer (usage in a body or an SSE
// stream, split anywhere), as an engine's /metrics and as its answer to a tokenizer probe. Nothing may crash, throw or hang.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <variant>
#include <vector>

#include "api/text_model.h"
#include "common/clock.h"
#include "gateway/config.h"
#include "gateway/prepare.h"
#include "gateway/tokenizer_check.h"
#include "index/kv_index.h"
#include "scheduler/scheduler.h"

namespace {

using namespace kvr;

constexpr uint32_t kBlockSize = 4;

struct Fixture {
  Fixture() {
    text = *api::TextModel::Load({});
    index = std::make_unique<KvIndex>(IndexConfig{.block_size = kBlockSize}, clock);
    scheduler = *Scheduler::Create(SchedulerConfig{}, *index, clock);
    for (uint32_t w = 0; w < 3; ++w) {
      (void)scheduler->AddWorker({.id = WorkerId(w), .block_size = kBlockSize});
    }
  }
  ManualClock clock;
  std::unique_ptr<api::TextModel> text;
  std::unique_ptr<KvIndex> index;
  std::unique_ptr<Scheduler> scheduler;
};

Fixture& F() {
  static Fixture* f = new Fixture();
  return *f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Fixture& f = F();
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  gateway::ModelLookup lookup = [&f](std::string_view model) -> std::optional<gateway::ModelText> {
    if (!model.empty() && model != "m") return std::nullopt;
    return gateway::ModelText{
        .name = "m", .text = f.text.get(), .block_size = kBlockSize, .forward_tokens = true};
  };
  for (api::Endpoint e : {api::Endpoint::kCompletions, api::Endpoint::kChat}) {
    auto prepared = gateway::PreparePrompt(e, bytes, lookup);
    const auto* p = std::get_if<gateway::PreparedPrompt>(&prepared);
    if (p == nullptr) continue;
    const std::vector<WorkerId> excluded = {WorkerId(1)};
    auto d = f.scheduler->Route({.blocks = p->blocks,
                                 .prompt_tokens = p->prompt_tokens,
                                 .excluded = excluded,
                                 .explain = true});
    if (d.ok()) {
      d->ticket.FirstToken(1000);
      d->ticket.Finish();
    }
  }
  (void)gateway::UsageFromBody(bytes);
  gateway::UsageScanner scanner;
  scanner.Feed(bytes.substr(0, size / 2));
  scanner.Feed(bytes.substr(size / 2));
  (void)gateway::ParseEngineMetrics(bytes, 0);
  // An engine's /props (llama.cpp) and /server_info (SGLang).
  (void)gateway::ParseTotalSlots(bytes);
  if (auto tokens = gateway::ParseMaxBatchedTokens(bytes, gateway::kMaxBatchedTokens)) {
    if (*tokens == 0 || *tokens > gateway::kMaxBatchedTokens) __builtin_trap();
  }
  // An engine's answer to a tokenizer probe, compared with the router's ids.
  for (const gateway::TokenizerProbe& probe : gateway::TokenizerProbes()) {
    for (gateway::EngineApi api : {gateway::EngineApi::kVllm, gateway::EngineApi::kLlamaCpp}) {
      auto answer = gateway::ParseProbeAnswer(api, probe, bytes);
      if (answer.ok()) (void)gateway::CompareProbe(probe, {.ids = {1, 2}, .rendered = "x"}, *answer);
    }
  }
  return 0;
}
