#include "events/codec.h"

#include <array>
#include <bit>
#include <utility>
#include <variant>

#include "absl/strings/ascii.h"  // absl::ascii_toupper
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "events/msgpack_reader.h"
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
void PackFloat64(std::string* out, double value) {
  uint64_t bits = std::bit_cast<uint64_t>(value);
  out->push_back(static_cast<char>(0xcb));
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>(bits >> shift));
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

// Skipped values may nest this deep below the level being decoded (vLLM's deepest value is 5
// levels down from the batch: batch/events/event/extra_keys/key tuple).
constexpr uint32_t kMaxDepth = 8;

using V = MsgValue;

absl::Status Malformed() {
  return absl::InvalidArgumentError("not a msgpack batch: truncated, malformed or nested too deep");
}

std::optional<std::string_view> AsStr(const V& v) {
  if (v.type != V::kStr) return std::nullopt;
  return v.bytes;
}

std::optional<int64_t> AsInt64(const V& v) {
  if (v.type == V::kInt) return v.i;
  if (v.type == V::kUint && v.u <= uint64_t{INT64_MAX}) return static_cast<int64_t>(v.u);
  return std::nullopt;
}

std::optional<uint32_t> AsUint32(const V& v) {
  if (v.type != V::kUint || v.u > UINT32_MAX) return std::nullopt;
  return static_cast<uint32_t>(v.u);
}

// Signed ints keep their bit pattern; bytes fold to their last 8 bytes big-endian, which is
// `int.from_bytes(b, "big") & (2**64 - 1)`, the identity vLLM sends when hashes are ints.
std::optional<EngineHash> AsHash(const V& v) {
  switch (v.type) {
    case V::kUint:
      return EngineHash(v.u);
    case V::kInt:
      return EngineHash(static_cast<uint64_t>(v.i));
    case V::kBin: {
      uint64_t h = 0;
      for (char c : v.bytes) h = (h << 8) | static_cast<uint8_t>(c);
      return EngineHash(h);
    }
    default:
      return std::nullopt;
  }
}

std::optional<Tier> AsTier(const V& medium) {
  if (medium.type == V::kNil) return Tier::kDevice;
  std::optional<std::string_view> s = AsStr(medium);
  if (!s.has_value()) return std::nullopt;
  return TierFromMedium(*s);
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

// The fields of one event that the decoder reads, whatever its type; each one is read as it
// comes, in the one pass over the payload. A field present but of the wrong shape is `bad`; it
// fails the event only if the event's type uses it. A key repeated in a map reads its first
// value (vLLM never repeats one).
struct EventFields {
  std::optional<std::string_view> type;
  std::optional<std::vector<EngineHash>> hashes;
  std::optional<std::vector<TokenId>> tokens;
  std::optional<V> parent, block_size, medium, lora_name, group_idx, locality;
  std::optional<std::string_view> first_extra_key, second_extra_key;  // of the first block
  bool has_extra_keys = false;
  bool bad_hashes = false, bad_tokens = false;
};

class BatchDecoder {
 public:
  BatchDecoder(std::string_view payload, WorkerId worker) : r_(payload, kMaxDepth), worker_(worker) {}

  absl::StatusOr<DecodedBatch> Decode() {
    V batch;
    if (!r_.Next(&batch)) return Malformed();
    DecodedBatch out;
    bool has_ts = false, has_events = false;
    std::optional<V> dp_rank;
    if (batch.type == V::kArray) {
      if (batch.count < 2) return absl::InvalidArgumentError("batch has < 2 elements");
      KVR_RETURN_IF_ERROR(ReadTs(&out));
      KVR_RETURN_IF_ERROR(ReadEvents(&out));
      has_ts = has_events = true;
      for (uint32_t i = 2; i < batch.count; ++i) {
        V v;
        if (!r_.NextSkippingContent(&v)) return Malformed();
        if (i == 2) dp_rank = v;
      }
    } else if (batch.type == V::kMap) {
      for (uint32_t i = 0; i < batch.count; ++i) {
        V key;
        if (!r_.NextSkippingContent(&key)) return Malformed();
        const std::optional<std::string_view> name = AsStr(key);
        if (name == "ts" && !has_ts) {
          KVR_RETURN_IF_ERROR(ReadTs(&out));
          has_ts = true;
        } else if (name == "events" && !has_events) {
          KVR_RETURN_IF_ERROR(ReadEvents(&out));
          has_events = true;
        } else {
          V v;
          if (!r_.NextSkippingContent(&v)) return Malformed();
          if (name == "data_parallel_rank" || name == "attn_dp_rank") dp_rank = v;
        }
      }
      if (!has_ts || !has_events) return absl::InvalidArgumentError("map batch without ts or events");
    } else {
      if (!r_.SkipContent(batch)) return Malformed();
      return absl::InvalidArgumentError("batch is not an array or map");
    }
    if (!r_.empty()) return absl::InvalidArgumentError(absl::StrCat(r_.left(), " bytes after the batch"));
    if (dp_rank.has_value() && dp_rank->type != V::kNil) {
      out.dp_rank = AsInt64(*dp_rank);
      if (!out.dp_rank.has_value()) return absl::InvalidArgumentError("dp rank is not an int");
    }
    return out;
  }

 private:
  absl::Status ReadTs(DecodedBatch* out) {
    V ts;
    if (!r_.NextSkippingContent(&ts)) return Malformed();
    switch (ts.type) {
      case V::kFloat:
        out->ts = ts.f;
        return absl::OkStatus();
      case V::kUint:
        out->ts = static_cast<double>(ts.u);
        return absl::OkStatus();
      case V::kInt:
        out->ts = static_cast<double>(ts.i);
        return absl::OkStatus();
      default:
        return absl::InvalidArgumentError("batch ts is not a number");
    }
  }

  absl::Status ReadEvents(DecodedBatch* out) {
    V events;
    if (!r_.Next(&events)) return Malformed();
    if (events.type != V::kArray) {
      if (!r_.SkipContent(events)) return Malformed();
      return absl::InvalidArgumentError("events not an array");
    }
    out->events.reserve(events.count);
    for (uint32_t i = 0; i < events.count; ++i) {
      std::optional<KvEvent> event;
      if (!ReadEvent(&event)) return Malformed();
      if (event.has_value()) {
        out->events.push_back(std::move(*event));
      } else {
        ++out->skipped;
      }
    }
    return absl::OkStatus();
  }

  // False when malformed; *event stays empty when the event is skipped.
  bool ReadEvent(std::optional<KvEvent>* event) {
    V ev;
    if (!r_.Next(&ev)) return false;
    EventFields f;
    if (ev.type == V::kArray) {
      if (ev.count == 0) return true;
      V tag;
      if (!r_.NextSkippingContent(&tag)) return false;
      f.type = AsStr(tag);
      const std::string_view* names = nullptr;
      size_t num_names = 0;
      if (f.type == "BlockStored") names = kStoredFields.data(), num_names = kStoredFields.size();
      if (f.type == "BlockRemoved") names = kRemovedFields.data(), num_names = kRemovedFields.size();
      for (uint32_t i = 1; i < ev.count; ++i) {
        if (!ReadField(i - 1 < num_names ? names[i - 1] : std::string_view(), &f)) return false;
      }
    } else if (ev.type == V::kMap) {
      for (uint32_t i = 0; i < ev.count; ++i) {
        V key;
        if (!r_.NextSkippingContent(&key)) return false;
        const std::string_view name = AsStr(key).value_or(std::string_view());
        if (name == "type") {
          V tag;
          if (!r_.NextSkippingContent(&tag)) return false;
          if (!f.type.has_value()) f.type = AsStr(tag);
          if (!f.type.has_value()) f.type = "";  // a non-string tag: the event is skipped
        } else if (!ReadField(name, &f)) {
          return false;
        }
      }
    } else {
      return true;  // a scalar: not an event
    }
    *event = Build(f);
    return true;
  }

  // Reads one field's value (skips it when the name is not one the decoder reads).
  bool ReadField(std::string_view name, EventFields* f) {
    if (name == "block_hashes" && !f->hashes && !f->bad_hashes) return ReadHashes(f);
    if (name == "token_ids" && !f->tokens && !f->bad_tokens) return ReadTokens(f);
    if (name == "extra_keys" && !f->has_extra_keys) return ReadExtraKeys(f);
    std::optional<V>* slot = nullptr;
    if (name == "parent_block_hash") slot = &f->parent;
    if (name == "block_size") slot = &f->block_size;
    if (name == "medium") slot = &f->medium;
    if (name == "lora_name") slot = &f->lora_name;
    if (name == "group_idx") slot = &f->group_idx;
    if (name == "locality") slot = &f->locality;
    V v;
    if (!r_.NextSkippingContent(&v)) return false;
    if (slot != nullptr && !slot->has_value()) *slot = v;
    return true;
  }

  // Reads the next value's header into *a. False: truncated. *a not an array: the value is
  // skipped and *bad set (the caller reads no elements).
  bool OpenArray(V* a, bool* bad) {
    if (!r_.Next(a)) return false;
    if (a->type == V::kArray) return true;
    *bad = true;
    return r_.SkipContent(*a);
  }

  bool ReadHashes(EventFields* f) {
    V a;
    if (!OpenArray(&a, &f->bad_hashes)) return false;
    if (f->bad_hashes) return true;
    std::vector<EngineHash> hashes;
    hashes.reserve(a.count);
    for (uint32_t i = 0; i < a.count; ++i) {
      V h;
      if (!r_.NextSkippingContent(&h)) return false;
      std::optional<EngineHash> hash = AsHash(h);
      if (!hash.has_value()) f->bad_hashes = true;
      if (!f->bad_hashes) hashes.push_back(*hash);
    }
    if (!f->bad_hashes) f->hashes = std::move(hashes);
    return true;
  }

  bool ReadTokens(EventFields* f) {
    V a;
    if (!OpenArray(&a, &f->bad_tokens)) return false;
    if (f->bad_tokens) return true;
    std::vector<TokenId> tokens;
    bool all_u32 = true;  // EAGLE's [a, b] pairs, negative or larger ids fail the event
    if (!r_.ReadU32s(a.count, &tokens, &all_u32)) return false;
    if (all_u32) {
      f->tokens = std::move(tokens);
    } else {
      f->bad_tokens = true;
    }
    return true;
  }

  // vLLM puts the cache salt in the first block's extra keys, after the LoRA name and any
  // multimodal keys ([identifier, offset] arrays); prompt-embedding keys are bytes. The first
  // two string keys are kept: the LoRA name, if it is one, then the salt.
  bool ReadExtraKeys(EventFields* f) {
    f->has_extra_keys = true;
    V blocks;
    if (!r_.Next(&blocks)) return false;
    if (blocks.type != V::kArray || blocks.count == 0) return r_.SkipContent(blocks);
    V first;
    if (!r_.Next(&first)) return false;
    if (first.type == V::kArray) {
      for (uint32_t i = 0; i < first.count; ++i) {
        V key;
        if (!r_.NextSkippingContent(&key)) return false;
        if (key.type != V::kStr) continue;
        if (!f->first_extra_key) {
          f->first_extra_key = key.bytes;
        } else if (!f->second_extra_key) {
          f->second_extra_key = key.bytes;
        }
      }
    } else if (!r_.SkipContent(first)) {
      return false;
    }
    for (uint32_t i = 1; i < blocks.count; ++i) {
      if (!r_.Skip()) return false;
    }
    return true;
  }

  // Events the KvEvent model cannot hold are left out: blocks another node holds (locality
  // REMOTE, as Dynamo does) and KV-cache groups other than the first (KvEvent has no group; a
  // hybrid model announces the same blocks once per group).
  static bool Routable(const EventFields& f) {
    if (f.locality && f.locality->type != V::kNil && AsStr(*f.locality) != "LOCAL") return false;
    return !f.group_idx || f.group_idx->type == V::kNil || AsUint32(*f.group_idx) == 0u;
  }

  std::optional<KvEvent> Build(EventFields& f) const {
    if (!f.type.has_value()) return std::nullopt;
    if (*f.type == "AllBlocksCleared") return KvCleared{.worker = worker_};
    if (!Routable(f)) return std::nullopt;
    if (*f.type == "BlockStored") return BuildStored(f);
    if (*f.type == "BlockRemoved") {
      const std::optional<Tier> tier = f.medium ? AsTier(*f.medium) : Tier::kDevice;
      if (!f.hashes || !tier) return std::nullopt;
      return KvRemoved{.worker = worker_, .tier = *tier, .block_hashes = std::move(*f.hashes)};
    }
    return std::nullopt;  // BlockInactive and whatever comes next
  }

  std::optional<KvEvent> BuildStored(EventFields& f) const {
    const std::optional<Tier> tier = f.medium ? AsTier(*f.medium) : Tier::kDevice;
    if (!f.hashes || !f.tokens || !f.block_size || !tier) return std::nullopt;
    const std::optional<uint32_t> bs = AsUint32(*f.block_size);
    if (!bs.has_value() || *bs == 0) return std::nullopt;
    KvStored out;
    out.worker = worker_;
    if (f.parent && f.parent->type != V::kNil) {
      out.parent = AsHash(*f.parent);
      if (!out.parent.has_value()) return std::nullopt;
    }
    if (f.lora_name && f.lora_name->type != V::kNil) {
      std::optional<std::string_view> name = AsStr(*f.lora_name);
      if (!name.has_value()) return std::nullopt;
      out.lora_name = std::string(*name);
    }
    // The salt is the first string key, or the second when the first is the LoRA name.
    if (f.first_extra_key) {
      if (out.lora_name.empty() || *f.first_extra_key != out.lora_name) {
        out.cache_salt = std::string(*f.first_extra_key);
      } else if (f.second_extra_key) {
        out.cache_salt = std::string(*f.second_extra_key);
      }
    }
    out.tier = *tier;
    out.block_hashes = std::move(*f.hashes);
    out.token_ids = std::move(*f.tokens);
    out.block_size = *bs;
    return out;
  }

  MsgReader r_;
  WorkerId worker_;
};

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
  PackFloat64(&out, ts);
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
  return BatchDecoder(payload, worker).Decode();
}

}  // namespace kvr::events
