// Exactness on the larger generated corpus (tests/data/tokenizer_golden/corpus, produced by
// scripts/tokenizer/make_corpus.js with the official binding): all scripts, emoji, whitespace
// runs, numbers, code, special tokens inside text, Unicode edge cases and 100 KB+ inputs.
#include <gtest/gtest.h>

#include "tokenizer/test_util.h"

namespace kvr::tokenizer {
namespace {

using testing::AllModels;
using testing::LoadModel;
using testing::ModelFiles;
using testing::ReadJsonl;

std::vector<uint32_t> Concat(const nlohmann::json& a, const std::vector<uint32_t>& b,
                             const nlohmann::json& c) {
  std::vector<uint32_t> out = a.get<std::vector<uint32_t>>();
  out.insert(out.end(), b.begin(), b.end());
  for (const auto& v : c) out.push_back(v.get<uint32_t>());
  return out;
}

class CorpusTest : public ::testing::TestWithParam<ModelFiles> {};

TEST_P(CorpusTest, IdsMatchOfficialBinding) {
  const Tokenizer* tok = LoadModel(GetParam());
  ASSERT_NE(tok, nullptr);
  static const auto texts = ReadJsonl("tests/data/tokenizer_golden/corpus/texts.jsonl");
  auto golden =
      ReadJsonl(std::string("tests/data/tokenizer_golden/corpus/") + GetParam().name + ".jsonl");
  ASSERT_EQ(texts.size(), golden.size());
  ASSERT_GT(texts.size(), 500u);
  EncodeCache cache;
  size_t mismatches = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string& text = texts[i].at("text").get_ref<const std::string&>();
    const auto want = golden[i].at("ids").get<std::vector<uint32_t>>();
    auto ids = tok->Encode(text, false, &cache);
    ASSERT_TRUE(ids.ok()) << ids.status();
    auto with = tok->Encode(text, true, &cache);
    ASSERT_TRUE(with.ok()) << with.status();
    const auto want_with =
        golden[i].contains("ids_with_special")
            ? golden[i].at("ids_with_special").get<std::vector<uint32_t>>()
            : Concat(golden[i].at("special_prefix"), want, golden[i].at("special_suffix"));
    if (*ids != want || *with != want_with) {
      ++mismatches;
      ADD_FAILURE() << "line " << i + 1 << " (" << text.size() << " bytes): " << text.substr(0, 80);
      if (mismatches > 5) break;
    }
  }
  EXPECT_EQ(mismatches, 0u);
}

// One small word cache shared with another model, so it starts over often (full, or used by
// the other model in between): the ids stay the same.
TEST_P(CorpusTest, SmallSharedWordCacheChangesNothing) {
  const Tokenizer* tok = LoadModel(GetParam());
  const Tokenizer* other = LoadModel(AllModels().front());
  ASSERT_NE(tok, nullptr);
  ASSERT_NE(other, nullptr);
  static const auto texts = ReadJsonl("tests/data/tokenizer_golden/corpus/texts.jsonl");
  auto golden =
      ReadJsonl(std::string("tests/data/tokenizer_golden/corpus/") + GetParam().name + ".jsonl");
  EncodeCache cache(/*max_words=*/50);
  size_t mismatches = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string& text = texts[i].at("text").get_ref<const std::string&>();
    auto ids = tok->Encode(text, false, &cache);
    ASSERT_TRUE(ids.ok()) << ids.status();
    if (*ids != golden[i].at("ids").get<std::vector<uint32_t>>()) {
      ++mismatches;
      ADD_FAILURE() << "line " << i + 1 << ": " << text.substr(0, 80);
      if (mismatches > 5) break;
    }
    if (i % 7 == 0) {
      ASSERT_TRUE(other->Encode(text, false, &cache).ok());
    }
  }
  EXPECT_EQ(mismatches, 0u);
}

INSTANTIATE_TEST_SUITE_P(Models, CorpusTest, ::testing::ValuesIn(AllModels()),
                         [](const auto& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace kvr::tokenizer
