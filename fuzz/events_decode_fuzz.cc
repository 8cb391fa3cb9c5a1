// libFuzzer target for the vLLM KV-event codec: arbitrary bytes go through DecodeBatch, which
// must never crash, throw or allocate without bound. What decodes must survive a round trip:
// re-encoded in every format and hash kind, it decodes to the same batch.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

#include "events/codec.h"
#include "events/test_util.h"

namespace {

using kvr::events::DecodedBatch;

// The encoder carries a cache salt in the first block's extra keys, so a store without blocks
// cannot carry one.
void DropUncarriableSalt(DecodedBatch& batch) {
  for (kvr::KvEvent& event : batch.events) {
    auto* stored = std::get_if<kvr::KvStored>(&event);
    if (stored != nullptr && stored->block_hashes.empty()) stored->cache_salt.clear();
  }
}

bool SameTs(double a, double b) { return a == b || (a != a && b != b); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvr::events;
  const kvr::WorkerId worker(1);
  auto decoded = DecodeBatch(std::string_view(reinterpret_cast<const char*>(data), size), worker);
  if (!decoded.ok()) return 0;
  DropUncarriableSalt(*decoded);
  for (WireFormat format : {WireFormat::kMap, WireFormat::kArray}) {
    for (HashKind kind : {HashKind::kInt, HashKind::kBytes}) {
      const std::string payload =
          EncodeBatch(decoded->ts, decoded->events, {format, kind, decoded->dp_rank});
      auto again = DecodeBatch(payload, worker);
      if (!again.ok() || again->skipped != 0 || again->dp_rank != decoded->dp_rank ||
          !SameTs(again->ts, decoded->ts) ||
          testing::Describe(again->events) != testing::Describe(decoded->events)) {
        std::abort();
      }
    }
  }
  return 0;
}
