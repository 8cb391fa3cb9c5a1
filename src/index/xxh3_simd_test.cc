// Every XXH3 variant this CPU runs agrees with the baseline build on every length class
// (short paths, the 129-240 mid path, long striped inputs, partial stripes) and seed.
#include "index/xxh3_simd.h"

#include <gtest/gtest.h>

#include <vector>

#include "common/random.h"
#include "index/block_hash.h"

namespace kvr::internal {
namespace {

TEST(Xxh3SimdTest, VariantsAgreeWithBaseline) {
  Xxh3Variant v[3];
  const size_t n = Xxh3Variants(v);
  ASSERT_GE(n, 1u);
  EXPECT_EQ(Xxh3Best(), v[n - 1].fn);
  Rng rng(7);
  std::vector<uint8_t> buf(4096);
  for (auto& b : buf) b = static_cast<uint8_t>(rng.Uniform(256));
  for (size_t len = 0; len <= buf.size(); len += 1 + len / 16) {
    const uint64_t seed = rng.Uniform(3) == 0 ? 0 : rng.Next();
    const uint64_t want = Xxh3Baseline(buf.data(), len, seed);
    for (size_t i = 1; i < n; ++i) {
      ASSERT_EQ(v[i].fn(buf.data(), len, seed), want) << v[i].name << " len " << len;
    }
  }
}

TEST(Xxh3SimdTest, LongBlocksHashLikeTheBaseline) {
  std::vector<TokenId> tokens(1024);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = TokenId(i * 2654435761u);
  for (size_t bs : {16, 60, 61, 64, 256, 1024}) {
    std::span<const TokenId> block(tokens.data(), bs);
    EXPECT_EQ(LocalBlockHash(block, kBlockHashSeed),
              Xxh3Baseline(block.data(), block.size_bytes(), kBlockHashSeed))
        << bs;
  }
}

}  // namespace
}  // namespace kvr::internal
