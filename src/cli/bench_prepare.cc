// kvrouter bench prepare --tokenizer PATH --bodies F [--endpoint completions|chat] [--block-size N]
//                        [--repeat N] [--json]
// What the gateway's request path costs before routing, phase by phase, in CPU time per request
// on one thread: parsing the body (ParseApiRequest), the prompt's token ids (chat rendering and
// tokenization, PromptTokens), the block hashes (SequenceHashes), and the whole of
// gateway::PreparePrompt. F holds one request body per line; every pass goes over all of them, so
// the tokenizer's word cache is as warm as a gateway's that sees those prompts again.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "api/openai.h"
#include "api/text_model.h"
#include "cli/bench_clock.h"
#include "cli/commands.h"
#include "gateway/prepare.h"
#include "index/block_hash.h"

namespace kvr::cli {
namespace {

struct BenchPrepareFlags {
  std::string tokenizer;
  std::string bodies;
  std::string endpoint = "completions";
  uint32_t block_size = 16;
  bool forward_tokens = false;
  int repeat = 5;
  bool json = false;
};

// The best (lowest) CPU µs per body over `repeat` passes of `fn` over every body.
double BestCpuUs(size_t bodies, int repeat, const std::function<void(size_t)>& fn) {
  double best = 1e300;
  for (int r = 0; r < repeat; ++r) {
    const double c0 = ThreadCpuUs();
    for (size_t i = 0; i < bodies; ++i) fn(i);
    best = std::min(best, (ThreadCpuUs() - c0) / static_cast<double>(bodies));
  }
  return best;
}

// The non-empty lines of `path`: one request body each.
absl::StatusOr<std::vector<std::string>> ReadBodies(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError("cannot open " + path);
  std::vector<std::string> bodies;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) bodies.push_back(std::move(line));
  }
  if (bodies.empty()) return absl::InvalidArgumentError(path + " holds no bodies");
  return bodies;
}

// Every body parsed, and its prompt's token ids: all must be valid, and the timed phases start
// from these.
struct Parsed {
  std::vector<api::ApiRequest> requests;
  std::vector<std::vector<TokenId>> ids;
  size_t body_bytes = 0, tokens = 0;
};

absl::StatusOr<Parsed> ParseAll(const std::vector<std::string>& bodies, api::Endpoint endpoint,
                                const api::TextModel& model) {
  Parsed p;
  p.requests.resize(bodies.size());
  p.ids.resize(bodies.size());
  for (size_t i = 0; i < bodies.size(); ++i) {
    std::optional<api::ApiError> e = api::ParseApiRequest(endpoint, bodies[i], &p.requests[i]);
    if (!e) e = api::PromptTokens(model, p.requests[i], &p.ids[i]);
    if (e) return absl::InvalidArgumentError(absl::StrCat("body ", i + 1, ": ", e->message));
    p.body_bytes += bodies[i].size();
    p.tokens += p.ids[i].size();
  }
  return p;
}

int RunBench(const BenchPrepareFlags& f) {
  const auto fail = [](const std::string& message) {
    std::fprintf(stderr, "bench prepare: %s\n", message.c_str());
    return 1;
  };
  const absl::StatusOr<std::vector<std::string>> read = ReadBodies(f.bodies);
  if (!read.ok()) return fail(std::string(read.status().message()));
  const std::vector<std::string>& bodies = *read;
  auto model = api::TextModel::Load({.tokenizer_path = f.tokenizer});
  if (!model.ok()) return fail(model.status().ToString());  // with its code
  const api::Endpoint endpoint =
      f.endpoint == "chat" ? api::Endpoint::kChat : api::Endpoint::kCompletions;
  const absl::StatusOr<Parsed> parsed = ParseAll(bodies, endpoint, **model);
  if (!parsed.ok()) return fail(std::string(parsed.status().message()));
  const std::vector<api::ApiRequest>& requests = parsed->requests;
  const std::vector<std::vector<TokenId>>& ids = parsed->ids;

  const gateway::ModelLookup lookup = [&](std::string_view) {
    return std::optional<gateway::ModelText>(
        gateway::ModelText{.name = "m",
                           .text = model->get(),
                           .block_size = f.block_size,
                           .forward_tokens = f.forward_tokens});
  };
  size_t sink = 0;  // keeps the optimizer from dropping the work
  const size_t n = bodies.size();
  const double parse_us = BestCpuUs(n, f.repeat, [&](size_t i) {
    api::ApiRequest r;
    sink += api::ParseApiRequest(endpoint, bodies[i], &r).has_value();
  });
  const double tokens_us = BestCpuUs(n, f.repeat, [&](size_t i) {
    std::vector<TokenId> out;
    sink += api::PromptTokens(**model, requests[i], &out).has_value() + out.size();
  });
  const double hash_us = BestCpuUs(n, f.repeat, [&](size_t i) {
    sink += SequenceHashes(ids[i], f.block_size).size();
  });
  const double prepare_us = BestCpuUs(n, f.repeat, [&](size_t i) {
    sink += gateway::PreparePrompt(endpoint, bodies[i], lookup).index();
  });

  const nlohmann::json out = {
      {"tokenizer", f.tokenizer},
      {"endpoint", f.endpoint},
      {"bodies", n},
      {"body_bytes_mean", static_cast<double>(parsed->body_bytes) / static_cast<double>(n)},
      {"prompt_tokens_mean", static_cast<double>(parsed->tokens) / static_cast<double>(n)},
      {"block_size", f.block_size},
      {"forward_tokens", f.forward_tokens},
      {"repeat", f.repeat},
      {"parse_cpu_us", parse_us},
      {"tokens_cpu_us", tokens_us},
      {"hash_cpu_us", hash_us},
      {"prepare_cpu_us", prepare_us},
      {"checksum", sink % 1000}};
  std::printf("%s\n", f.json ? out.dump().c_str() : out.dump(2).c_str());
  return 0;
}

}  // namespace

void RegisterBenchPrepare(CLI::App& bench, int* exit_code) {
  auto f = std::make_shared<BenchPrepareFlags>();
  auto* cmd = bench.add_subcommand(
      "prepare", "the gateway's per-request CPU before routing: parse, tokenize, hash");
  cmd->add_option("--tokenizer", f->tokenizer, "tokenizer.json or its directory (empty: bytes)");
  cmd->add_option("--bodies", f->bodies, "request bodies, one JSON object per line")->required();
  cmd->add_option("--endpoint", f->endpoint, "completions or chat")
      ->check(CLI::IsMember({"completions", "chat"}));
  cmd->add_option("--block-size", f->block_size, "tokens per KV block")
      ->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--repeat", f->repeat, "passes over the bodies; the best is reported")
      ->check(CLI::Range(1, 1000));
  cmd->add_flag("--forward-tokens", f->forward_tokens,
                "prepare also writes the body with the prompt as token ids (forward_tokens)");
  cmd->add_flag("--json", f->json, "one-line JSON output");
  cmd->callback([f, exit_code] { *exit_code = RunBench(*f); });
}

}  // namespace kvr::cli
