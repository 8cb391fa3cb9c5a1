// vLLM KV-event batches <-> KvEvent: the msgpack payload that is the third frame of every ZMQ
// message a vLLM engine publishes (`[ts, [events...], data_parallel_rank]`). The decoder accepts
// every schema vLLM has shipped; the encoder writes what vLLM's msgspec writes, byte for byte.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/ids.h"
#include "index/kv_event.h"

namespace kvr::events {

// How events are encoded inside the batch (the batch itself is always a positional array).
enum class WireFormat {
  kMap,    // vLLM >= PR #42892: tagged maps {"type": ..., field: ...}, defaulted fields omitted
  kArray,  // PR #40984, the last array schema: ["BlockStored", all 11 fields, trailing nils]
};

// How block hashes are written.
enum class HashKind {
  kInt,    // msgpack int of the u64 (uint64 when >= 2^63), vLLM's default
  kBytes,  // 32-byte bin whose last 8 bytes are the u64 big-endian and the first 24 are zero
           // (VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=0 sends the raw digest; its last 8 bytes
           // are the identity vLLM would send as an int)
};

struct EncodeOptions {
  WireFormat format = WireFormat::kMap;
  HashKind hash_kind = HashKind::kInt;
  std::optional<int64_t> dp_rank;  // the batch's data_parallel_rank; nil when absent
};

// Returns the msgpack bytes of one batch. Fields KvEvent does not model are written as vLLM
// writes them for a single full-attention KV-cache group: lora_id nil, group_idx 0,
// kv_cache_spec_kind "full_attention", locality/ownership/session_id unset. `worker` is not on
// the wire (the subscriber knows whom it listens to).
std::string EncodeBatch(double ts, const std::vector<KvEvent>& events,
                        const EncodeOptions& options);

struct DecodedBatch {
  double ts = 0;
  std::optional<int64_t> dp_rank;
  std::vector<KvEvent> events;
  // Events left out: unknown types, wrong field types, remote locality, group_idx other than 0
  // (see README.md, "What the decoder keeps").
  uint32_t skipped = 0;
};

// Decodes one batch of any vLLM schema version: array batches of 2 or more elements (extra
// elements ignored) or map batches; events as tagged arrays or tagged maps, mixed; hashes as
// signed or unsigned ints or bytes (last 8 bytes big-endian). Every event gets `worker`.
// InvalidArgument when the payload is not one msgpack batch; a bad event only counts as skipped.
absl::StatusOr<DecodedBatch> DecodeBatch(std::string_view payload, WorkerId worker);

// vLLM's `medium` string -> Tier. GPU/DEVICE/nil -> device; CPU, CPU_PINNED, CPU_TIER1 -> host;
// anything else (CPU_TIER2, DISK, NVME, STORAGE, FS, OBJ, EXTERNAL, ...) -> storage, as Dynamo
// maps them. Case-insensitive.
Tier TierFromMedium(std::string_view medium);
// Tier -> the medium vLLM writes: "GPU", "CPU", "STORAGE".
std::string_view MediumFromTier(Tier tier);

}  // namespace kvr::events
