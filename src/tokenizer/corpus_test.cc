// Exactness on the larger generated corpus (tests/data/tokenizer_golden/corpus, produced by
// scripts/tokenizer/make_corpus.js with the official binding): all scripts, emoji, whitespace
// runs, numbers, code, special tokens inside text, Unicode edge cases and 100 KB+ inputs.
#include <gtest/gtest.h>

#include <iterator>
#include <random>

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

// The corpus texts, and a model's official ids for them.
const std::vector<nlohmann::json>& Texts() {
  static const auto texts = ReadJsonl("tests/data/tokenizer_golden/corpus/texts.jsonl");
  return texts;
}
std::vector<nlohmann::json> Golden(const ModelFiles& m) {
  return ReadJsonl(std::string("tests/data/tokenizer_golden/corpus/") + m.name + ".jsonl");
}

class CorpusTest : public ::testing::TestWithParam<ModelFiles> {};

TEST_P(CorpusTest, IdsMatchOfficialBinding) {
  const Tokenizer* tok = LoadModel(GetParam());
  ASSERT_NE(tok, nullptr);
  const auto& texts = Texts();
  const auto golden = Golden(GetParam());
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
  const auto& texts = Texts();
  const auto golden = Golden(GetParam());
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

// Lines come from the line cache the second time (Llama 3 and Qwen 3: their split can be cut
// after a newline) and from a cache too small to hold a text's lines: the ids stay the same, and
// equal those of an encoder that caches no lines.
TEST_P(CorpusTest, CachedLinesChangeNothing) {
  const Tokenizer* tok = LoadModel(GetParam());
  ASSERT_NE(tok, nullptr);
  const auto& texts = Texts();
  const auto golden = Golden(GetParam());
  EncodeCache warm, tiny(EncodeCache::kDefaultWords, /*max_line_bytes=*/300);
  EncodeCache no_lines(EncodeCache::kDefaultWords, /*max_line_bytes=*/0);
  for (const auto& t : texts) ASSERT_TRUE(tok->Encode(t.at("text").get_ref<const std::string&>(), false, &warm).ok());
  const std::string name = GetParam().name;
  if (name == "llama3" || name == "qwen3") {
    EXPECT_GT(warm.cached_lines(), texts.size());
  } else {
    EXPECT_EQ(warm.cached_lines(), 0u);
  }
  size_t mismatches = 0;
  for (size_t i = 0; i < texts.size() && mismatches <= 5; ++i) {
    const std::string& text = texts[i].at("text").get_ref<const std::string&>();
    const auto want = golden[i].at("ids").get<std::vector<uint32_t>>();
    for (EncodeCache* cache : {&warm, &tiny, &no_lines}) {
      auto ids = tok->Encode(text, false, cache);
      ASSERT_TRUE(ids.ok()) << ids.status();
      if (*ids != want) {
        ++mismatches;
        ADD_FAILURE() << "line " << i + 1 << " (cache " << (cache == &warm ? "warm" : cache == &tiny ? "tiny" : "off")
                      << "): " << text.substr(0, 80);
      }
    }
  }
  EXPECT_EQ(no_lines.cached_lines(), 0u);
  EXPECT_EQ(mismatches, 0u);
}

// Texts made of newlines in every neighbourhood (spaces and tabs on either side, punctuation,
// CR, Unicode spaces, digits, letters after them): cut into cached lines or split whole, the
// ids are the same.
TEST_P(CorpusTest, LinesCutWhereTheWholeTextSplits) {
  const Tokenizer* tok = LoadModel(GetParam());
  ASSERT_NE(tok, nullptr);
  const char* const parts[] = {"a", "Bc", " ", "  ", "\n", "\n\n", "\r\n", "\r", "\t", ".", "!?",
                               "'s", "'LL", "1", "1234", "\xc3\xa9", "\xc2\xa0", "\xe3\x80\x80",
                               "\xe4\xb8\xad", "x\n", " \n", ".\n", "\n ", "\nX", "\n\tY", "\n1",
                               "\n.", "\n'", "\n\xc3\xa9", "\x0b", "\x0c", "\n\x1c", "\n~", "-\n",
                               "\n  X", "\n \n", "\n\t\t{", " \t", "\n \xc2\xa0", "\n \r\n",
                               "\n\t1", ".\n  ", "\n \x0b"};
  std::mt19937 rng(7);
  std::uniform_int_distribution<size_t> pick(0, std::size(parts) - 1), len(1, 40);
  std::vector<std::string> texts(3000);
  for (std::string& t : texts) {
    for (size_t n = len(rng); n > 0; --n) t += parts[pick(rng)];
  }
  EncodeCache warm, no_lines(EncodeCache::kDefaultWords, /*max_line_bytes=*/0);
  for (const std::string& t : texts) ASSERT_TRUE(tok->Encode(t, false, &warm).ok());
  size_t mismatches = 0;
  for (const std::string& t : texts) {
    auto cached = tok->Encode(t, false, &warm);
    auto whole = tok->Encode(t, false, &no_lines);
    ASSERT_TRUE(cached.ok() && whole.ok());
    if (*cached != *whole && ++mismatches <= 5) ADD_FAILURE() << "text: " << t;
  }
  EXPECT_EQ(mismatches, 0u);
}

INSTANTIATE_TEST_SUITE_P(Models, CorpusTest, ::testing::ValuesIn(AllModels()),
                         [](const auto& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace kvr::tokenizer
