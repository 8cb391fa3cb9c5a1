#include "events/codec.h"

#include <algorithm>
#include <array>
#include <bit>
#include <exception>
#include <utility>
#include <variant>

#include "absl/strings/ascii.h"  // absl::ascii_toupper
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "msgpack.hpp"

namespace kvr::events {
namespace {

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

constexpr std::string_view kFullAttention = "full_attention";
constexpr size_t kDigestBytes = 32;

// The byte sink msgpack::packer writes to.
struct StringSink {
  std::string* out;
  void write(const char* data, size_t size) { out->append(data, size); }
};
using Packer = msgpack::packer<StringSink>;

void PackStr(Packer& pk, std::string_view s) {
  pk.pack_str(static_cast<uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

void PackStrOrNil(Packer& pk, std::string_view s) {
  if (s.empty()) {
    pk.pack_nil();
  } else {
    PackStr(pk, s);
  }
}

// msgspec always writes a Python float as float64; msgpack-c++'s pack_double would write an
// integral value as an int.
void PackFloat64(std::string& out, double value) {
  uint64_t bits = std::bit_cast<uint64_t>(value);
  out.push_back(static_cast<char>(0xcb));
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(bits >> shift));
}

void PackHash(Packer& pk, EngineHash hash, HashKind kind) {
  if (kind == HashKind::kInt) {
    pk.pack_uint64(hash.value());
    return;
  }
  std::array<char, kDigestBytes> digest{};
  for (size_t i = 0; i < 8; ++i) {
    digest[kDigestBytes - 1 - i] = static_cast<char>(hash.value() >> (8 * i));
  }
  pk.pack_bin(kDigestBytes);
  pk.pack_bin_body(digest.data(), kDigestBytes);
}

void PackHashes(Packer& pk, const std::vector<EngineHash>& hashes, HashKind kind) {
  pk.pack_array(static_cast<uint32_t>(hashes.size()));
  for (EngineHash h : hashes) PackHash(pk, h, kind);
}

// vLLM's per-block extra keys: (lora_name,) on every block of an adapter, plus the cache salt on
// the request's first block. vLLM salts only block 0 of a request; KvEvent carries the salt per
// event, so a salted continuation (parent set) carries it on its first block too — otherwise the
// decoder could not give it back.
void PackExtraKeys(Packer& pk, const KvStored& e) {
  pk.pack_array(static_cast<uint32_t>(e.block_hashes.size()));
  for (size_t i = 0; i < e.block_hashes.size(); ++i) {
    const bool salted = i == 0 && !e.cache_salt.empty();
    const uint32_t n = (e.lora_name.empty() ? 0 : 1) + (salted ? 1 : 0);
    if (n == 0) {
      pk.pack_nil();
      continue;
    }
    pk.pack_array(n);
    if (!e.lora_name.empty()) PackStr(pk, e.lora_name);
    if (salted) PackStr(pk, e.cache_salt);
  }
}

// Starts an event: map mode writes {"type": tag, ...} with `map_fields` more entries, array
// mode [tag, ...] with `array_fields` more elements.
void BeginEvent(Packer& pk, WireFormat format, std::string_view tag, uint32_t map_fields,
                uint32_t array_fields) {
  if (format == WireFormat::kMap) {
    pk.pack_map(map_fields + 1);
    PackStr(pk, "type");
  } else {
    pk.pack_array(array_fields + 1);
  }
  PackStr(pk, tag);
}

// Writes the key of the next field in map mode; array mode is positional.
void Field(Packer& pk, WireFormat format, std::string_view name) {
  if (format == WireFormat::kMap) PackStr(pk, name);
}

void PackStored(Packer& pk, const KvStored& e, const EncodeOptions& opt) {
  // Map mode omits kv_cache_spec_sliding_window (nil == its default); array mode writes all 11.
  BeginEvent(pk, opt.format, "BlockStored", 10, 11);
  Field(pk, opt.format, "block_hashes");
  PackHashes(pk, e.block_hashes, opt.hash_kind);
  Field(pk, opt.format, "parent_block_hash");
  if (e.parent.has_value()) {
    PackHash(pk, *e.parent, opt.hash_kind);
  } else {
    pk.pack_nil();
  }
  Field(pk, opt.format, "token_ids");
  pk.pack_array(static_cast<uint32_t>(e.token_ids.size()));
  for (TokenId t : e.token_ids) pk.pack_uint32(t);
  Field(pk, opt.format, "block_size");
  pk.pack_uint32(e.block_size);
  Field(pk, opt.format, "lora_id");
  pk.pack_nil();
  Field(pk, opt.format, "medium");
  PackStr(pk, MediumFromTier(e.tier));
  Field(pk, opt.format, "lora_name");
  PackStrOrNil(pk, e.lora_name);
  Field(pk, opt.format, "extra_keys");
  PackExtraKeys(pk, e);
  Field(pk, opt.format, "group_idx");
  pk.pack_uint32(0);
  Field(pk, opt.format, "kv_cache_spec_kind");
  PackStr(pk, kFullAttention);
  if (opt.format == WireFormat::kArray) pk.pack_nil();  // kv_cache_spec_sliding_window
}

void PackRemoved(Packer& pk, const KvRemoved& e, const EncodeOptions& opt) {
  BeginEvent(pk, opt.format, "BlockRemoved", 3, 3);
  Field(pk, opt.format, "block_hashes");
  PackHashes(pk, e.block_hashes, opt.hash_kind);
  Field(pk, opt.format, "medium");
  PackStr(pk, MediumFromTier(e.tier));
  Field(pk, opt.format, "group_idx");
  pk.pack_uint32(0);
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

using msgpack::object;
namespace mtype = msgpack::type;

// The unpacker sizes containers from their headers before reading them; these bounds keep a
// forged header from allocating more than a few times the payload (every element takes at least
// one byte). vLLM's deepest value is 5 levels down (batch/events/event/extra_keys/key tuple).
constexpr size_t kMaxDepth = 8;

bool IsNil(const object* o) { return o == nullptr || o->type == mtype::NIL; }

std::optional<std::string_view> AsStr(const object& o) {
  if (o.type != mtype::STR) return std::nullopt;
  return std::string_view(o.via.str.ptr, o.via.str.size);
}

std::optional<int64_t> AsInt64(const object& o) {
  if (o.type == mtype::NEGATIVE_INTEGER) return o.via.i64;
  if (o.type == mtype::POSITIVE_INTEGER && o.via.u64 <= uint64_t{INT64_MAX}) {
    return static_cast<int64_t>(o.via.u64);
  }
  return std::nullopt;
}

std::optional<uint32_t> AsUint32(const object& o) {
  if (o.type != mtype::POSITIVE_INTEGER || o.via.u64 > UINT32_MAX) return std::nullopt;
  return static_cast<uint32_t>(o.via.u64);
}

// Signed ints keep their bit pattern; bytes fold to their last 8 bytes big-endian, which is
// `int.from_bytes(b, "big") & (2**64 - 1)`, the identity vLLM sends when hashes are ints.
std::optional<EngineHash> AsHash(const object& o) {
  switch (o.type) {
    case mtype::POSITIVE_INTEGER:
      return EngineHash(o.via.u64);
    case mtype::NEGATIVE_INTEGER:
      return EngineHash(static_cast<uint64_t>(o.via.i64));
    case mtype::BIN: {
      uint64_t v = 0;
      for (uint32_t i = 0; i < o.via.bin.size; ++i) {
        v = (v << 8) | static_cast<uint8_t>(o.via.bin.ptr[i]);
      }
      return EngineHash(v);
    }
    default:
      return std::nullopt;
  }
}

std::optional<std::vector<EngineHash>> AsHashes(const object* o) {
  if (o == nullptr || o->type != mtype::ARRAY) return std::nullopt;
  std::vector<EngineHash> out;
  out.reserve(o->via.array.size);
  for (uint32_t i = 0; i < o->via.array.size; ++i) {
    std::optional<EngineHash> h = AsHash(o->via.array.ptr[i]);
    if (!h.has_value()) return std::nullopt;
    out.push_back(*h);
  }
  return out;
}

std::optional<std::vector<TokenId>> AsTokens(const object* o) {
  if (o == nullptr || o->type != mtype::ARRAY) return std::nullopt;
  std::vector<TokenId> out;
  out.reserve(o->via.array.size);
  for (uint32_t i = 0; i < o->via.array.size; ++i) {
    std::optional<uint32_t> t = AsUint32(o->via.array.ptr[i]);  // EAGLE [a, b] pairs fail here
    if (!t.has_value()) return std::nullopt;
    out.push_back(*t);
  }
  return out;
}

// Field order of the tagged-array encoding (PR #40984 plus the later map-only fields, in case an
// array encoder ever writes them); shorter arrays are older schemas.
// clang-format off
constexpr std::array<std::string_view, 14> kStoredFields = {
    "block_hashes", "parent_block_hash", "token_ids", "block_size", "lora_id", "medium",
    "lora_name", "extra_keys", "group_idx", "kv_cache_spec_kind", "kv_cache_spec_sliding_window",
    "locality", "ownership", "session_id"};
// clang-format on
constexpr std::array<std::string_view, 5> kRemovedFields = {"block_hashes", "medium", "group_idx",
                                                            "locality", "ownership"};

// One event read by field name, whatever its encoding (tagged map or tagged array).
class EventView {
 public:
  static std::optional<EventView> Of(const object& event) {
    EventView view(event);
    if (event.type == mtype::MAP) {
      const object* tag = view.Get("type");
      if (tag == nullptr || !AsStr(*tag).has_value()) return std::nullopt;
      view.type_ = *AsStr(*tag);
      return view;
    }
    if (event.type != mtype::ARRAY || event.via.array.size == 0) return std::nullopt;
    std::optional<std::string_view> tag = AsStr(event.via.array.ptr[0]);
    if (!tag.has_value()) return std::nullopt;
    view.type_ = *tag;
    return view;
  }

  std::string_view type() const { return type_; }

  // The field's value, or nullptr when the event does not carry it.
  const object* Get(std::string_view name) const {
    if (event_.type == mtype::MAP) {
      for (uint32_t i = 0; i < event_.via.map.size; ++i) {
        const msgpack::object_kv& kv = event_.via.map.ptr[i];
        if (AsStr(kv.key) == name) return &kv.val;
      }
      return nullptr;
    }
    const size_t pos = Position(name);
    return pos < event_.via.array.size ? &event_.via.array.ptr[pos] : nullptr;
  }

 private:
  explicit EventView(const object& event) : event_(event) {}

  // Index in the tagged array (element 0 is the tag); past the end when unknown.
  size_t Position(std::string_view name) const {
    auto find = [&](const auto& fields) {
      auto it = std::find(fields.begin(), fields.end(), name);
      return it == fields.end() ? SIZE_MAX : static_cast<size_t>(it - fields.begin()) + 1;
    };
    if (type_ == "BlockStored") return find(kStoredFields);
    if (type_ == "BlockRemoved") return find(kRemovedFields);
    return SIZE_MAX;
  }

  const object& event_;
  std::string_view type_;
};

// Events the KvEvent model cannot hold are left out: blocks another node holds (locality
// REMOTE, as Dynamo does) and KV-cache groups other than the first (KvEvent has no group; a
// hybrid model announces the same blocks once per group).
bool Routable(const EventView& ev) {
  const object* locality = ev.Get("locality");
  if (!IsNil(locality) && AsStr(*locality) != "LOCAL") return false;
  const object* group = ev.Get("group_idx");
  return IsNil(group) || AsUint32(*group) == 0u;
}

std::optional<Tier> AsTier(const object* medium) {
  if (IsNil(medium)) return Tier::kDevice;
  std::optional<std::string_view> s = AsStr(*medium);
  if (!s.has_value()) return std::nullopt;
  return TierFromMedium(*s);
}

// vLLM puts the cache salt in the first block's extra keys, after the LoRA name and any
// multimodal keys ([identifier, offset] arrays); prompt-embedding keys are bytes.
std::string SaltFromExtraKeys(const object* extra_keys, std::string_view lora_name) {
  if (IsNil(extra_keys) || extra_keys->type != mtype::ARRAY || extra_keys->via.array.size == 0) {
    return "";
  }
  const object& first = extra_keys->via.array.ptr[0];
  if (first.type != mtype::ARRAY) return "";
  bool lora_seen = lora_name.empty();
  for (uint32_t i = 0; i < first.via.array.size; ++i) {
    std::optional<std::string_view> key = AsStr(first.via.array.ptr[i]);
    if (!key.has_value()) continue;
    if (!lora_seen && *key == lora_name) {
      lora_seen = true;
      continue;
    }
    return std::string(*key);
  }
  return "";
}

std::optional<KvEvent> DecodeStored(const EventView& ev, WorkerId worker) {
  KvStored out;
  out.worker = worker;
  std::optional<std::vector<EngineHash>> hashes = AsHashes(ev.Get("block_hashes"));
  std::optional<std::vector<TokenId>> tokens = AsTokens(ev.Get("token_ids"));
  const object* block_size = ev.Get("block_size");
  std::optional<Tier> tier = AsTier(ev.Get("medium"));
  if (!hashes || !tokens || block_size == nullptr || !tier) return std::nullopt;
  std::optional<uint32_t> bs = AsUint32(*block_size);
  if (!bs.has_value() || *bs == 0) return std::nullopt;
  const object* parent = ev.Get("parent_block_hash");
  if (!IsNil(parent)) {
    out.parent = AsHash(*parent);
    if (!out.parent.has_value()) return std::nullopt;
  }
  const object* lora = ev.Get("lora_name");
  if (!IsNil(lora)) {
    std::optional<std::string_view> name = AsStr(*lora);
    if (!name.has_value()) return std::nullopt;
    out.lora_name = std::string(*name);
  }
  out.cache_salt = SaltFromExtraKeys(ev.Get("extra_keys"), out.lora_name);
  out.tier = *tier;
  out.block_hashes = std::move(*hashes);
  out.token_ids = std::move(*tokens);
  out.block_size = *bs;
  return out;
}

std::optional<KvEvent> DecodeRemoved(const EventView& ev, WorkerId worker) {
  std::optional<std::vector<EngineHash>> hashes = AsHashes(ev.Get("block_hashes"));
  std::optional<Tier> tier = AsTier(ev.Get("medium"));
  if (!hashes || !tier) return std::nullopt;
  return KvRemoved{.worker = worker, .tier = *tier, .block_hashes = std::move(*hashes)};
}

// nullopt: the event is skipped.
std::optional<KvEvent> DecodeEvent(const object& event, WorkerId worker) {
  std::optional<EventView> ev = EventView::Of(event);
  if (!ev.has_value()) return std::nullopt;
  if (ev->type() == "AllBlocksCleared") return KvCleared{.worker = worker};
  if (!Routable(*ev)) return std::nullopt;
  if (ev->type() == "BlockStored") return DecodeStored(*ev, worker);
  if (ev->type() == "BlockRemoved") return DecodeRemoved(*ev, worker);
  return std::nullopt;  // BlockInactive and whatever comes next
}

// The batch's three parts, from the array form or the (defensive) map form.
struct BatchParts {
  const object* ts = nullptr;
  const object* events = nullptr;
  const object* dp_rank = nullptr;
};

absl::StatusOr<BatchParts> SplitBatch(const object& batch) {
  BatchParts parts;
  if (batch.type == mtype::ARRAY) {
    if (batch.via.array.size < 2) return absl::InvalidArgumentError("batch has < 2 elements");
    parts.ts = &batch.via.array.ptr[0];
    parts.events = &batch.via.array.ptr[1];
    if (batch.via.array.size > 2) parts.dp_rank = &batch.via.array.ptr[2];
    return parts;
  }
  if (batch.type != mtype::MAP) return absl::InvalidArgumentError("batch is not an array or map");
  for (uint32_t i = 0; i < batch.via.map.size; ++i) {
    const msgpack::object_kv& kv = batch.via.map.ptr[i];
    std::optional<std::string_view> key = AsStr(kv.key);
    if (key == "ts") parts.ts = &kv.val;
    if (key == "events") parts.events = &kv.val;
    if (key == "data_parallel_rank" || key == "attn_dp_rank") parts.dp_rank = &kv.val;
  }
  if (parts.ts == nullptr || parts.events == nullptr) {
    return absl::InvalidArgumentError("map batch without ts or events");
  }
  return parts;
}

absl::StatusOr<DecodedBatch> DecodeBatchObject(const object& batch, WorkerId worker) {
  ASSIGN_OR_RETURN(BatchParts parts, SplitBatch(batch));
  DecodedBatch out;
  switch (parts.ts->type) {
    case mtype::FLOAT32:
    case mtype::FLOAT64:
      out.ts = parts.ts->via.f64;
      break;
    case mtype::POSITIVE_INTEGER:
      out.ts = static_cast<double>(parts.ts->via.u64);
      break;
    case mtype::NEGATIVE_INTEGER:
      out.ts = static_cast<double>(parts.ts->via.i64);
      break;
    default:
      return absl::InvalidArgumentError("batch ts is not a number");
  }
  if (!IsNil(parts.dp_rank)) {
    out.dp_rank = AsInt64(*parts.dp_rank);
    if (!out.dp_rank.has_value()) return absl::InvalidArgumentError("dp rank is not an int");
  }
  if (parts.events->type != mtype::ARRAY) return absl::InvalidArgumentError("events not an array");
  out.events.reserve(parts.events->via.array.size);
  for (uint32_t i = 0; i < parts.events->via.array.size; ++i) {
    std::optional<KvEvent> event = DecodeEvent(parts.events->via.array.ptr[i], worker);
    if (event.has_value()) {
      out.events.push_back(std::move(*event));
    } else {
      ++out.skipped;
    }
  }
  return out;
}

// Strings and binaries point into the payload instead of being copied: it outlives the decode.
bool ReferencePayload(mtype::object_type, size_t, void*) { return true; }

}  // namespace

Tier TierFromMedium(std::string_view medium) {
  std::string m;
  for (char c : medium) m.push_back(absl::ascii_toupper(static_cast<unsigned char>(c)));
  if (m == "GPU" || m == "DEVICE") return Tier::kDevice;
  if (m == "CPU" || m == "CPU_PINNED" || m == "CPU_TIER1") return Tier::kHost;
  return Tier::kStorage;
}

std::string_view MediumFromTier(Tier tier) {
  switch (tier) {
    case Tier::kDevice:
      return "GPU";
    case Tier::kHost:
      return "CPU";
    case Tier::kStorage:
      return "STORAGE";
  }
  return "GPU";
}

std::string EncodeBatch(double ts, const std::vector<KvEvent>& events,
                        const EncodeOptions& options) {
  std::string out;
  StringSink sink{&out};
  Packer pk(sink);
  pk.pack_array(3);  // EventBatch is array_like: every field, data_parallel_rank included
  PackFloat64(out, ts);
  pk.pack_array(static_cast<uint32_t>(events.size()));
  for (const KvEvent& event : events) {
    if (const auto* stored = std::get_if<KvStored>(&event)) {
      PackStored(pk, *stored, options);
    } else if (const auto* removed = std::get_if<KvRemoved>(&event)) {
      PackRemoved(pk, *removed, options);
    } else {
      BeginEvent(pk, options.format, "AllBlocksCleared", 0, 0);
    }
  }
  if (options.dp_rank.has_value()) {
    pk.pack_int64(*options.dp_rank);
  } else {
    pk.pack_nil();
  }
  return out;
}

absl::StatusOr<DecodedBatch> DecodeBatch(std::string_view payload, WorkerId worker) {
  const size_t n = payload.size();
  const msgpack::unpack_limit limit(/*array=*/n, /*map=*/n / 2, /*str=*/n, /*bin=*/n, /*ext=*/n,
                                    kMaxDepth);
  size_t offset = 0;
  msgpack::object_handle handle;
  // msgpack-c++ reports malformed input by throwing; nothing of it leaves this function.
  try {
    handle = msgpack::unpack(payload.data(), n, offset, ReferencePayload, nullptr, limit);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("not a msgpack batch: ", e.what()));
  }
  if (offset != n) {
    return absl::InvalidArgumentError(absl::StrCat(n - offset, " bytes after the batch"));
  }
  return DecodeBatchObject(handle.get(), worker);
}

}  // namespace kvr::events
