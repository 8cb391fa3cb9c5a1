// DecodeBatch beyond the golden payloads: random round trips through every encoding, every
// tolerated variation of the wire, and malformed input.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "events/codec.h"
#include "events/test_util.h"
#include "msgpack.hpp"

namespace kvr::events {
namespace {

using ::kvr::events::testing::Describe;
using ::kvr::events::testing::ReadFile;

constexpr WorkerId kWorker{3};

// ---------------------------------------------------------------------------------------------
// Round trip
// ---------------------------------------------------------------------------------------------

class EventGenerator {
 public:
  explicit EventGenerator(uint64_t seed) : rng_(seed) {}

  std::vector<KvEvent> Batch() {
    std::vector<KvEvent> out(Uniform(0, 6));
    for (KvEvent& e : out) e = Event();
    return out;
  }

 private:
  KvEvent Event() {
    switch (Uniform(0, 4)) {
      case 0:
        return KvCleared{.worker = kWorker};
      case 1:
        return KvRemoved{.worker = kWorker, .tier = RandomTier(), .block_hashes = Hashes()};
      default:
        return Stored();
    }
  }

  KvStored Stored() {
    KvStored e{.worker = kWorker, .tier = RandomTier()};
    if (Uniform(0, 1)) e.parent = Hash();
    e.block_size = static_cast<uint32_t>(Uniform(1, 64));
    // At least one block: the cache salt travels in the first block's extra keys.
    e.block_hashes.resize(Uniform(1, 5));
    for (EngineHash& h : e.block_hashes) h = Hash();
    e.token_ids.resize(e.block_hashes.size() * e.block_size);
    for (TokenId& t : e.token_ids) t = static_cast<TokenId>(Uniform(0, UINT32_MAX));
    if (Uniform(0, 2) == 0) e.lora_name = Text();
    if (Uniform(0, 2) == 0) e.cache_salt = Text();
    return e;
  }

  std::vector<EngineHash> Hashes() {
    std::vector<EngineHash> out(Uniform(0, 4));
    for (EngineHash& h : out) h = Hash();
    return out;
  }

  // Every msgpack int width: small values, 2^63 and above, the extremes.
  EngineHash Hash() {
    switch (Uniform(0, 3)) {
      case 0:
        return EngineHash(Uniform(0, 300));
      case 1:
        return EngineHash(UINT64_MAX - Uniform(0, 2));
      default:
        return EngineHash(rng_());
    }
  }

  Tier RandomTier() { return static_cast<Tier>(Uniform(0, kNumTiers - 1)); }

  // fixstr, str8 and str16 lengths.
  std::string Text() {
    const size_t lengths[] = {1, 31, 32, 255, 256, 300};
    std::string s(lengths[Uniform(0, 5)], 'a');
    for (char& c : s) c = static_cast<char>('a' + Uniform(0, 25));
    return s;
  }

  uint64_t Uniform(uint64_t lo, uint64_t hi) {
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng_);
  }

  std::mt19937_64 rng_;
};

TEST(CodecRoundTrip, EveryFormatAndHashKindGivesBackTheEvents) {
  EventGenerator gen(20260602);
  std::mt19937_64 rng(1);
  for (int i = 0; i < 300; ++i) {
    const std::vector<KvEvent> events = gen.Batch();
    const double ts = std::uniform_real_distribution<double>(0, 2e9)(rng);
    for (WireFormat format : {WireFormat::kMap, WireFormat::kArray}) {
      for (HashKind kind : {HashKind::kInt, HashKind::kBytes}) {
        for (std::optional<int64_t> dp : {std::optional<int64_t>(), std::optional<int64_t>(i)}) {
          const std::string payload = EncodeBatch(ts, events, {format, kind, dp});
          absl::StatusOr<DecodedBatch> batch = DecodeBatch(payload, kWorker);
          ASSERT_TRUE(batch.ok()) << batch.status();
          EXPECT_EQ(batch->ts, ts);
          EXPECT_EQ(batch->dp_rank, dp);
          EXPECT_EQ(batch->skipped, 0u);
          ASSERT_EQ(Describe(batch->events), Describe(events));
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Variations the wire allows
// ---------------------------------------------------------------------------------------------

// Builds msgpack by hand, for shapes our encoder never writes.
class Msg {
 public:
  Msg& Array(uint32_t n) {
    Packer().pack_array(n);
    return *this;
  }
  Msg& Map(uint32_t n) {
    Packer().pack_map(n);
    return *this;
  }
  Msg& Str(std::string_view s) {
    Packer().pack_str(static_cast<uint32_t>(s.size()));
    return Raw(s);
  }
  Msg& Bin(std::string_view s) {
    Packer().pack_bin(static_cast<uint32_t>(s.size()));
    return Raw(s);
  }
  Msg& Uint(uint64_t v) {
    Packer().pack_uint64(v);
    return *this;
  }
  Msg& Int(int64_t v) {
    Packer().pack_int64(v);
    return *this;
  }
  Msg& Float(float v) {
    Packer().pack_float(v);
    return *this;
  }
  Msg& Nil() {
    Packer().pack_nil();
    return *this;
  }
  Msg& Raw(std::string_view bytes) {
    bytes_.append(bytes);
    return *this;
  }
  const std::string& bytes() const { return bytes_; }

  // The packer's stream interface.
  void write(const char* data, size_t size) { bytes_.append(data, size); }

 private:
  msgpack::packer<Msg> Packer() { return msgpack::packer<Msg>(*this); }

  std::string bytes_;
};

// A batch header [ts, [n events ...], then the caller's events, then dp rank 0.
Msg BatchOf(uint32_t n_events) {
  Msg m;
  m.Array(3).Float(1.5).Array(n_events);
  return m;
}

DecodedBatch MustDecode(const std::string& payload) {
  absl::StatusOr<DecodedBatch> batch = DecodeBatch(payload, kWorker);
  EXPECT_TRUE(batch.ok()) << batch.status();
  return batch.ok() ? *std::move(batch) : DecodedBatch{};
}

TEST(CodecVariants, MixedEncodingsSignedAndShortBytesHashesExtraKeysAndElements) {
  Msg m = BatchOf(3);
  // Tagged map with keys out of order, an unknown key, a negative (SGLang-style) hash.
  m.Map(6).Str("token_ids").Array(2).Uint(1).Uint(2).Str("future_field").Array(0);
  m.Str("type").Str("BlockStored").Str("block_hashes").Array(1).Int(-2);
  m.Str("block_size").Uint(2).Str("medium").Str("cpu_pinned");
  // Tagged array with a 16-byte (xxh3-128) hash and extra trailing elements.
  m.Array(5).Str("BlockRemoved").Array(1).Bin(std::string(15, '\0') + "\x09").Str("DISK");
  m.Uint(0).Str("LOCAL");
  // Older array schema: no medium at all.
  m.Array(2).Str("BlockRemoved").Array(1).Uint(5);
  const std::string payload = m.Int(-1).Raw("").bytes();
  DecodedBatch batch = MustDecode(payload);
  EXPECT_EQ(batch.ts, 1.5);
  EXPECT_EQ(batch.dp_rank, -1);
  EXPECT_EQ(
      Describe(batch.events),
      Describe(std::vector<KvEvent>{
          KvStored{.worker = kWorker,
                   .tier = Tier::kHost,
                   .block_hashes = {EngineHash(UINT64_MAX - 1)},
                   .token_ids = {1, 2},
                   .block_size = 2},
          KvRemoved{.worker = kWorker, .tier = Tier::kStorage, .block_hashes = {EngineHash(9)}},
          KvRemoved{.worker = kWorker, .block_hashes = {EngineHash(5)}},
      }));
}

TEST(CodecVariants, TwoElementFourElementAndMapBatches) {
  DecodedBatch v090 = MustDecode(Msg().Array(2).Float(2).Array(0).bytes());
  EXPECT_EQ(v090.dp_rank, std::nullopt);
  DecodedBatch longer = MustDecode(Msg().Array(4).Uint(3).Array(0).Uint(1).Str("x").bytes());
  EXPECT_EQ(longer.ts, 3);
  EXPECT_EQ(longer.dp_rank, 1);
  Msg map;
  map.Map(3).Str("events").Array(1).Array(1).Str("AllBlocksCleared");
  map.Str("data_parallel_rank").Uint(4).Str("ts").Float(0.25);
  DecodedBatch batch = MustDecode(map.bytes());
  EXPECT_EQ(batch.ts, 0.25);
  EXPECT_EQ(batch.dp_rank, 4);
  EXPECT_EQ(Describe(batch.events), Describe(std::vector<KvEvent>{KvCleared{kWorker}}));
}

TEST(CodecVariants, CacheSaltFollowsLoraAndMultimodalKeys) {
  Msg m = BatchOf(1);
  m.Map(7).Str("type").Str("BlockStored").Str("block_hashes").Array(2).Uint(1).Uint(2);
  m.Str("parent_block_hash").Nil().Str("token_ids").Array(2).Uint(5).Uint(6);
  m.Str("block_size").Uint(1).Str("lora_name").Str("ad");
  // Block 0: (lora, [mm id, offset], salt); block 1: (lora,).
  m.Str("extra_keys").Array(2).Array(3).Str("ad").Array(2).Str("img").Uint(0).Str("tenant");
  m.Array(1).Str("ad");
  const DecodedBatch batch = MustDecode(m.Uint(0).bytes());
  ASSERT_EQ(batch.events.size(), 1u);
  const auto& stored = std::get<KvStored>(batch.events[0]);
  EXPECT_EQ(stored.lora_name, "ad");
  EXPECT_EQ(stored.cache_salt, "tenant");
}

TEST(CodecVariants, MediumNames) {
  EXPECT_EQ(TierFromMedium("GPU"), Tier::kDevice);
  EXPECT_EQ(TierFromMedium("device"), Tier::kDevice);
  EXPECT_EQ(TierFromMedium("CPU"), Tier::kHost);
  EXPECT_EQ(TierFromMedium("CPU_TIER1"), Tier::kHost);
  EXPECT_EQ(TierFromMedium("CPU_TIER2"), Tier::kStorage);
  EXPECT_EQ(TierFromMedium("STORAGE"), Tier::kStorage);
  EXPECT_EQ(TierFromMedium("NVME"), Tier::kStorage);
  for (Tier t : {Tier::kDevice, Tier::kHost, Tier::kStorage}) {
    EXPECT_EQ(TierFromMedium(MediumFromTier(t)), t);
  }
}

// ---------------------------------------------------------------------------------------------
// Events that are skipped, not fatal
// ---------------------------------------------------------------------------------------------

TEST(CodecSkips, UnusableEventsAreCountedAndTheRestKept) {
  Msg m = BatchOf(10);
  m.Array(1).Str("BlockInactive");                                        // unknown type
  m.Map(1).Str("block_hashes").Array(0);                                  // map without type
  m.Uint(12);                                                             // not an event
  m.Array(2).Str("BlockRemoved").Array(1).Str("x");                       // hash is a string
  m.Array(2).Str("BlockRemoved").Uint(1);                                 // hashes not an array
  m.Array(5).Str("BlockStored").Array(0).Nil().Array(1).Int(-1).Uint(4);  // negative token
  m.Array(5).Str("BlockStored").Array(0).Nil().Array(1).Array(2).Uint(1).Uint(2).Uint(4);  // EAGLE
  m.Map(3).Str("type").Str("BlockRemoved").Str("block_hashes").Array(0);
  m.Str("locality").Str("REMOTE");  // another node's blocks
  m.Map(3).Str("type").Str("BlockRemoved").Str("block_hashes").Array(0);
  m.Str("group_idx").Uint(1);          // a second KV-cache group
  m.Array(1).Str("AllBlocksCleared");  // the one good event
  DecodedBatch batch = MustDecode(m.Nil().bytes());
  EXPECT_EQ(batch.skipped, 9u);
  EXPECT_EQ(Describe(batch.events), Describe(std::vector<KvEvent>{KvCleared{kWorker}}));
}

// Token ids may come in any msgpack int encoding (msgspec writes the shortest; other encoders
// may not): the decoder's inline reading of fixint/uint8/16/32 and its general path agree.
TEST(CodecVariants, TokenIdsInEveryIntEncoding) {
  Msg m = BatchOf(3);
  m.Array(5).Str("BlockStored").Array(0).Nil().Array(11);
  m.Raw("\x05").Raw("\xcc\xc8").Raw("\xcd\x01\x2c").Raw(std::string("\xce\x00\x01\x86\xa0", 5));
  m.Raw(std::string("\xcf\x00\x00\x00\x00\xff\xff\xff\xff", 9));  // uint64, 2^32 - 1
  m.Raw("\xd0\x07").Raw(std::string("\xd1\x00\x08", 3)).Raw(std::string("\xd2\x00\x00\x00\x09", 5));
  m.Raw(std::string("\xd3\x00\x00\x00\x00\x00\x00\x00\x0a", 9)).Raw("\x7f");
  m.Raw(std::string("\xcc\x00", 2));
  m.Uint(1);
  m.Array(5).Str("BlockStored").Array(0).Nil().Array(1).Uint(uint64_t{1} << 32).Uint(1);  // > u32
  m.Array(5).Str("BlockStored").Array(0).Nil().Array(1).Raw("\xd0\xff").Uint(1);  // int8 -1
  const DecodedBatch batch = MustDecode(m.Nil().bytes());
  EXPECT_EQ(batch.skipped, 2u);
  ASSERT_EQ(batch.events.size(), 1u);
  EXPECT_EQ(std::get<KvStored>(batch.events[0]).token_ids,
            (std::vector<TokenId>{5, 200, 300, 100000, 4294967295u, 7, 8, 9, 10, 127, 0}));
}

// ---------------------------------------------------------------------------------------------
// Malformed batches
// ---------------------------------------------------------------------------------------------

void ExpectInvalid(const std::string& payload) {
  absl::StatusOr<DecodedBatch> batch = DecodeBatch(payload, kWorker);
  EXPECT_EQ(batch.status().code(), absl::StatusCode::kInvalidArgument) << batch.status();
}

TEST(CodecMalformed, EveryTruncationOfAGoldenPayloadIsRejected) {
  const std::string payload = ReadFile("tests/data/vllm_events/golden_vllm_latest_map/000.msgpack");
  ASSERT_FALSE(payload.empty());
  for (size_t n = 0; n < payload.size(); ++n) ExpectInvalid(payload.substr(0, n));
  ExpectInvalid(payload + '\xc0');  // trailing bytes
}

TEST(CodecMalformed, WrongTypes) {
  ExpectInvalid(Msg().Uint(1).bytes());                                      // batch is an int
  ExpectInvalid(Msg().Array(1).Float(1).bytes());                            // one element
  ExpectInvalid(Msg().Array(2).Str("now").Array(0).bytes());                 // ts is a string
  ExpectInvalid(Msg().Array(2).Float(1).Map(0).bytes());                     // events is a map
  ExpectInvalid(Msg().Array(3).Float(1).Array(0).Str("0").bytes());          // dp rank is a string
  ExpectInvalid(Msg().Array(3).Float(1).Array(0).Uint(UINT64_MAX).bytes());  // dp rank > i64
  ExpectInvalid(Msg().Map(1).Str("ts").Float(1).bytes());                    // map without events
  ExpectInvalid(Msg().Raw("\xc1").bytes());                                  // reserved byte
}

TEST(CodecMalformed, HugeDeclaredLengthsFailWithoutAllocatingThem) {
  ExpectInvalid(Msg().Raw("\xdd\xff\xff\xff\xff").bytes());                    // array32
  ExpectInvalid(Msg().Raw("\xdf\xff\xff\xff\xff").bytes());                    // map32
  ExpectInvalid(Msg().Array(2).Float(1).Raw("\xdd\x7f\xff\xff\xff").bytes());  // events
  ExpectInvalid(Msg().Array(2).Raw("\xdb\xff\xff\xff\xff").bytes());           // str32
  ExpectInvalid(Msg().Array(2).Raw("\xc6\xff\xff\xff\xff").bytes());           // bin32
}

TEST(CodecMalformed, DeepNestingIsRejected) {
  std::string deep = Msg().Array(2).Float(1).bytes();
  deep += std::string(100000, '\x91');
  deep += '\xc0';
  ExpectInvalid(deep);
}

}  // namespace
}  // namespace kvr::events
