// Mooncake JSONL traces (kvcache-ai/Mooncake FAST25-release/traces): one request per line,
//   {"timestamp": ms, "input_length": n, "output_length": m, "hash_ids": [h0, h1, ...]}
// where hash_ids name the prompt's 512-token blocks (equal ids = equal block content AND prefix).
// Traces carry no tokens, so each hash id is expanded into a deterministic pseudo-random block
// of token ids; the last block is partial (input_length - B*(n-1) tokens). Identical hash ids
// therefore produce identical token blocks in every request, and the router's chained block
// hashes see exactly the sharing the trace describes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/ids.h"
#include "common/status.h"
#include "sim/workload.h"

namespace kvr::sim {

struct TraceOptions {
  double rate_scale = 1.0;            // > 0; arrival = timestamp_ms / rate_scale
  uint32_t trace_block_tokens = 512;  // tokens per hash id in the trace
  size_t max_requests = 0;            // 0 = all; else the first N lines
  uint64_t seed = 0;                  // mixed into token synthesis
};

// Writes the first out.size() tokens of hash id `hash_id`'s block. Prefix-consistent: a shorter
// `out` receives a prefix of what a longer one would (partial last blocks agree with full ones).
void SynthesizeBlockTokens(uint64_t hash_id, uint64_t seed, std::span<TokenId> out);

// Parses a whole trace held in memory. Blank lines are skipped; any other malformed line fails
// the whole parse with InvalidArgument naming its 1-based line number. Requests are sorted by
// arrival (stable) and numbered; session is 0 (the trace has no session ids); an output_length
// of 0 becomes 1 (an engine always emits at least one token).
absl::StatusOr<Workload> ParseMooncakeTrace(std::string_view text, const TraceOptions& options,
                                            std::string name = "mooncake");

// Reads `path` and parses it; the workload is named after the file's stem with a "_trace"
// suffix dropped (mooncake_conversation_trace.jsonl -> "mooncake_conversation").
absl::StatusOr<Workload> LoadMooncakeTrace(const std::string& path, const TraceOptions& options);

}  // namespace kvr::sim
