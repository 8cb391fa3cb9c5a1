#include "events/codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "events/test_util.h"
#include "nlohmann/json.hpp"

namespace kvr::events {
namespace {

using ::kvr::events::testing::Describe;
using ::kvr::events::testing::GoldenScenario;
using ::kvr::events::testing::ReadFile;
using ::testing::ElementsAre;

constexpr WorkerId kWorker{7};
const std::string kGoldenDir = "tests/data/vllm_events/";

struct GoldenSet {
  std::string name;
  bool has_lora_name;  // schemas before PR #27577 carry only the int lora_id
  bool has_dp_rank;    // v0.9.0 batches have 2 elements
};

const GoldenSet kGoldenSets[] = {
    {"golden_vllm_latest_map", true, true},
    {"golden_vllm_pr40984_array_bytes", true, true},
    {"golden_vllm_v010_array", false, true},
    {"golden_vllm_v090_array", false, false},
};

std::string Payload(const std::string& set, int seq) {
  char file[16];
  std::snprintf(file, sizeof(file), "%03d.msgpack", seq);
  return ReadFile(kGoldenDir + set + "/" + file);
}

nlohmann::json Golden(const std::string& set) {
  return nlohmann::json::parse(ReadFile(kGoldenDir + set + "/golden.json"));
}

TEST(CodecGolden, DecodesEverySchemaToTheScenario) {
  for (const GoldenSet& set : kGoldenSets) {
    SCOPED_TRACE(set.name);
    const nlohmann::json golden = Golden(set.name);
    const auto scenario = GoldenScenario(kWorker, set.has_lora_name);
    ASSERT_EQ(golden["messages"].size(), scenario.size());
    for (size_t seq = 0; seq < scenario.size(); ++seq) {
      const nlohmann::json& decoded = golden["messages"][seq]["decoded"];
      absl::StatusOr<DecodedBatch> batch = DecodeBatch(Payload(set.name, seq), kWorker);
      ASSERT_TRUE(batch.ok()) << batch.status();
      EXPECT_EQ(batch->ts, decoded[0].get<double>());
      EXPECT_EQ(batch->dp_rank, set.has_dp_rank ? std::optional<int64_t>(0) : std::nullopt);
      EXPECT_EQ(batch->skipped, 0u);
      EXPECT_EQ(Describe(batch->events), Describe(scenario[seq])) << "seq " << seq;
    }
  }
}

// Bytes hashes fold to the u64 vLLM sends as an int: the golden's own u64 list agrees.
TEST(CodecGolden, BytesHashesFoldToTheIntIdentity) {
  const nlohmann::json golden = Golden("golden_vllm_pr40984_array_bytes");
  const auto& expected = golden["messages"][0]["request_block_hashes_u64"];
  absl::StatusOr<DecodedBatch> batch =
      DecodeBatch(Payload("golden_vllm_pr40984_array_bytes", 0), kWorker);
  ASSERT_TRUE(batch.ok());
  const auto& stored = std::get<KvStored>(batch->events[0]);
  ASSERT_EQ(stored.block_hashes.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(stored.block_hashes[i].value(), expected[i].get<uint64_t>());
  }
}

// Collects the hex of every bytes value ({"hex": ...}) in a golden's decoded view.
void CollectDigests(const nlohmann::json& j, std::vector<std::string>* out) {
  if (j.is_object() && j.contains("hex")) {
    out->push_back(j["hex"].get<std::string>());
  } else if (j.is_array()) {
    for (const auto& x : j) CollectDigests(x, out);
  }
}

std::string FromHex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

void ReplaceAll(std::string* s, const std::string& from, const std::string& to) {
  for (size_t pos = s->find(from); pos != std::string::npos; pos = s->find(from, pos + to.size())) {
    s->replace(pos, from.size(), to);
  }
}

// What our encoder must write for a golden message: the golden bytes, except for what KvEvent
// does not model. The LoRA block's `lora_id` (vLLM's deprecated int adapter id, 1 here) becomes
// nil, and a raw digest keeps only its last 8 bytes (the identity), the first 24 being zero.
std::string ExpectedEncoding(const std::string& set, int seq, WireFormat format) {
  std::string bytes = Payload(set, seq);
  if (format == WireFormat::kMap) {
    ReplaceAll(&bytes, std::string("\xa7lora_id\x01", 9), std::string("\xa7lora_id\xc0", 9));
  } else {  // positional: block_size 16, lora_id 1, medium "GPU"
    ReplaceAll(&bytes, "\x10\x01\xa3GPU", "\x10\xc0\xa3GPU");
  }
  std::vector<std::string> digests;
  CollectDigests(Golden(set)["messages"][seq]["decoded"], &digests);
  for (const std::string& hex : digests) {
    const std::string digest = FromHex(hex);
    ReplaceAll(&bytes, "\xc4\x20" + digest, "\xc4\x20" + std::string(24, '\0') + digest.substr(24));
  }
  return bytes;
}

TEST(CodecGolden, EncodesLikeVllmByteForByte) {
  struct Case {
    std::string set;
    EncodeOptions options;
  };
  const Case cases[] = {
      {"golden_vllm_latest_map", {WireFormat::kMap, HashKind::kInt, 0}},
      {"golden_vllm_pr40984_array_bytes", {WireFormat::kArray, HashKind::kBytes, 0}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.set);
    const nlohmann::json golden = Golden(c.set);
    const auto scenario = GoldenScenario(kWorker, /*has_lora_name=*/true);
    for (size_t seq = 0; seq < scenario.size(); ++seq) {
      const double ts = golden["messages"][seq]["decoded"][0].get<double>();
      EXPECT_EQ(EncodeBatch(ts, scenario[seq], c.options),
                ExpectedEncoding(c.set, seq, c.options.format))
          << "seq " << seq;
    }
  }
}

// Only the LoRA message differs from the golden bytes, and only by its lora_id.
TEST(CodecGolden, OnlyTheLoraIdIsPatched) {
  for (int seq : {0, 1, 3, 4}) {
    EXPECT_EQ(ExpectedEncoding("golden_vllm_latest_map", seq, WireFormat::kMap),
              Payload("golden_vllm_latest_map", seq));
  }
  EXPECT_NE(ExpectedEncoding("golden_vllm_latest_map", 2, WireFormat::kMap),
            Payload("golden_vllm_latest_map", 2));
}

}  // namespace
}  // namespace kvr::events
