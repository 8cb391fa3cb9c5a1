// libFuzzer target for the Mooncake JSONL trace reader: arbitrary bytes must give a workload or an
// InvalidArgument status, never a crash, and a returned workload must hold its invariants.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "sim/trace.h"
#include "sim/workload.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  kvr::sim::TraceOptions options;
  options.trace_block_tokens = 16;  // small blocks: more block boundaries per input byte
  options.max_requests = 256;
  auto workload = kvr::sim::ParseMooncakeTrace(text, options);
  if (!workload.ok()) {
    if (workload.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  const auto& requests = workload->requests;
  for (size_t i = 0; i < requests.size(); ++i) {
    const kvr::sim::SimRequest& r = requests[i];
    if (r.id != i || r.prompt.empty() || r.output_tokens == 0 || r.arrival < 0) std::abort();
    if (i > 0 && r.arrival < requests[i - 1].arrival) std::abort();
    for (kvr::TokenId t : r.prompt) {
      if (t >= kvr::sim::kSyntheticVocab) std::abort();
    }
  }
  const double oracle = kvr::sim::OracleHitRate(*workload, 16);
  if (!(oracle >= 0 && oracle < 1) && !requests.empty()) std::abort();
  return 0;
}
