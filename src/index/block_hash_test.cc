#include "index/block_hash.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace kvr {
namespace {

std::vector<uint64_t> Values(const std::vector<BlockHash>& v) {
  std::vector<uint64_t> out;
  for (BlockHash h : v) out.push_back(h.value());
  return out;
}

TEST(BlockHash, DynamoSelfTestValue) {
  // Dynamo's own unit test: xxh3_64(b"test data", seed 1337).
  EXPECT_EQ(XXH3_64bits_withSeed("test data", 9, 1337), 13226331709069118873ULL);
}

TEST(BlockHash, ReproducesEveryDynamoGoldenVector) {
  std::ifstream in("tests/data/hash_vectors/hash_vectors.json");
  ASSERT_TRUE(in) << "missing tests/data/hash_vectors/hash_vectors.json (run from the repo root)";
  auto doc = nlohmann::json::parse(in);
  int cases = 0;
  for (const auto& [name, c] : doc["cases"].items()) {
    SCOPED_TRACE(name);
    auto tokens = c["tokens"].get<std::vector<TokenId>>();
    auto bs = c["block_size"].get<uint32_t>();
    const auto& d = c["dynamo"];
    EXPECT_EQ(LocalBlockHashes(tokens, bs), d["tokens_hash_local"].get<std::vector<uint64_t>>());
    EXPECT_EQ(Values(SequenceHashes(tokens, bs)), d["sequence_hash"].get<std::vector<uint64_t>>());
    EXPECT_EQ(LocalBlockHashes(tokens, bs, {.lora_name = "my-lora"}),
              d["tokens_hash_local_lora_my-lora"].get<std::vector<uint64_t>>());
    ++cases;
  }
  EXPECT_EQ(cases, 3);
}

TEST(BlockHash, SaltAndMultimodalFollowDynamo) {
  std::vector<TokenId> tokens(16);
  for (uint32_t i = 0; i < 16; ++i) tokens[i] = i;
  // Expected values computed with Python xxhash from Dynamo's formulas:
  // seed = 1337 + xxh3_64(salt, seed=1) [+ xxh3_64(lora, seed=0)]; mm hashes sorted, u64le appended.
  EXPECT_EQ(LocalBlockHashes(tokens, 16, {.cache_salt = "tenant-a"})[0], 2130915519417463704ULL);
  EXPECT_EQ(LocalBlockHashes(tokens, 16, {.lora_name = "my-lora", .cache_salt = "tenant-a"})[0],
            9308087154931608541ULL);
  std::vector<std::vector<uint64_t>> mm = {{5, 3}};
  EXPECT_EQ(LocalBlockHashes(tokens, 16, {.mm_hashes = mm})[0], 13671724722054334538ULL);
}

TEST(BlockHash, OnlyFullBlocksAndChainingFromParent) {
  std::vector<TokenId> tokens(50);
  for (uint32_t i = 0; i < 50; ++i) tokens[i] = 7 * i;
  auto seq = SequenceHashes(tokens, 16);
  ASSERT_EQ(seq.size(), 3u);  // 50 tokens: 3 full blocks, the partial tail is never hashed
  EXPECT_TRUE(SequenceHashes(std::span(tokens).first(15), 16).empty());
  auto local = LocalBlockHashes(tokens, 16);
  auto tail = SequenceHashesFrom(&seq[0], std::span(local).subspan(1));
  EXPECT_EQ(tail[0], seq[1]);
  EXPECT_EQ(tail[1], seq[2]);
  // Same content after a different prefix is a different block.
  std::vector<TokenId> other = tokens;
  other[0] = 1;
  auto seq2 = SequenceHashes(other, 16);
  EXPECT_NE(seq2[1], seq[1]);
  EXPECT_EQ(LocalBlockHashes(other, 16)[1], local[1]);
  EXPECT_TRUE(SequenceHashes(tokens, 0).empty());
}

}  // namespace
}  // namespace kvr
