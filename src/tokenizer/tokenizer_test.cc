// Unit tests on small hand-written tokenizer.json files: each component's semantics, errors.
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>
#include <utf8proc.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>

#include "tokenizer/json_reader.h"
#include "tokenizer/line_cache.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/unicode.h"

namespace kvr::tokenizer {
namespace {

// Lines cached in order are found in order through the hint, each compared byte for byte; a
// hint that points at another line (or none) falls back to the hash, and a miss clears it.
TEST(LineCacheTest, TheHintFollowsLinesInTheOrderTheyWereCached) {
  LineCache cache(1 << 20);
  const std::vector<std::string> lines = {"alpha\n", "beta\n", "gamma\n", "delta\n"};
  for (uint32_t i = 0; i < lines.size(); ++i) {
    const std::vector<uint32_t> ids = {i, i + 100};
    cache.Insert(lines[i], ids, 0);
  }
  auto ids_of = [](uint32_t i) { return std::vector<uint32_t>{i, i + 100}; };
  uint32_t next = LineCache::kNoHint;
  std::vector<uint32_t> ids;
  for (uint32_t i = 0; i < lines.size(); ++i) {
    ASSERT_TRUE(cache.Find(lines[i], &ids, &next)) << i;
    EXPECT_EQ(next, i + 1);
  }
  std::vector<uint32_t> want;
  for (uint32_t i = 0; i < lines.size(); ++i) {
    const auto part = ids_of(i);
    want.insert(want.end(), part.begin(), part.end());
  }
  EXPECT_EQ(ids, want);

  next = 3;  // points at "delta", the line asked for is "beta"
  ids.clear();
  ASSERT_TRUE(cache.Find("beta\n", &ids, &next));
  EXPECT_EQ(ids, ids_of(1));
  EXPECT_EQ(next, 2u);
  // Same length as the hinted line, other bytes: not taken for it.
  next = 0;
  ids.clear();
  EXPECT_FALSE(cache.Find("alphx\n", &ids, &next));
  EXPECT_TRUE(ids.empty());
  EXPECT_EQ(next, LineCache::kNoHint);
  // A hint past the end (the cache started over since) is ignored.
  next = 1000;
  ASSERT_TRUE(cache.Find("gamma\n", &ids, &next));
  EXPECT_EQ(ids, ids_of(2));
}

using nlohmann::json;

// A tiny SentencePiece-style BPE: chars a,b,c,▁ and merges a+b, ab+c.
json TinyModel() {
  return json{{"type", "BPE"},
              {"unk_token", "<unk>"},
              {"fuse_unk", true},
              {"byte_fallback", false},
              {"vocab",
               {{"<unk>", 0},
                {"a", 1},
                {"b", 2},
                {"c", 3},
                {"ab", 4},
                {"abc", 5},
                {"\xE2\x96\x81", 6},
                {"\xE2\x96\x81"
                 "a",
                 7}}},
              {"merges", {"a b", "ab c", "\xE2\x96\x81 a"}}};
}

json TinyTokenizer() { return json{{"model", TinyModel()}, {"added_tokens", json::array()}}; }

absl::StatusOr<std::unique_ptr<Normalizer>> Norm(const json& j) {
  KVR_ASSIGN_OR_RETURN(std::unique_ptr<JsonDocument> doc, JsonDocument::Parse(j.dump()));
  return ParseNormalizer(doc->root());
}

std::vector<uint32_t> Enc(const Tokenizer& t, std::string_view s, bool special = false) {
  auto r = t.Encode(s, special);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : std::vector<uint32_t>{};
}

TEST(TokenizerTest, MergesByRank) {
  auto tok = Tokenizer::FromJson(TinyTokenizer().dump(), "");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(Enc(**tok, "abc"), (std::vector<uint32_t>{5}));
  EXPECT_EQ(Enc(**tok, "abab"), (std::vector<uint32_t>{4, 4}));
  EXPECT_EQ(Enc(**tok, "cab"), (std::vector<uint32_t>{3, 4}));
  EXPECT_EQ(Enc(**tok, ""), (std::vector<uint32_t>{}));
}

TEST(TokenizerTest, UnknownCharsFuse) {
  auto tok = Tokenizer::FromJson(TinyTokenizer().dump(), "");
  ASSERT_TRUE(tok.ok());
  EXPECT_EQ(Enc(**tok, "xyza"), (std::vector<uint32_t>{0, 1}));
}

TEST(TokenizerTest, InvalidUtf8IsAnError) {
  auto tok = Tokenizer::FromJson(TinyTokenizer().dump(), "");
  ASSERT_TRUE(tok.ok());
  for (std::string bad : {"\xFF", "a\xC0\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE2\x82"}) {
    auto r = (*tok)->Encode(bad, false);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad.size();
  }
}

TEST(TokenizerTest, UnsupportedComponentsAreNamed) {
  struct Case {
    const char* field;
    json value;
    const char* name;
  };
  std::vector<Case> cases = {
      {"normalizer", {{"type", "BertNormalizer"}}, "BertNormalizer"},
      {"pre_tokenizer", {{"type", "UnicodeScripts"}}, "UnicodeScripts"},
      {"post_processor", {{"type", "Mystery"}}, "Mystery"},
      {"decoder", {{"type", "WordPiece"}}, "WordPiece"},
  };
  for (const Case& c : cases) {
    json j = TinyTokenizer();
    j[c.field] = c.value;
    auto tok = Tokenizer::FromJson(j.dump(), "");
    ASSERT_FALSE(tok.ok()) << c.name;
    EXPECT_NE(tok.status().message().find(c.name), std::string::npos) << tok.status();
  }
  json j = TinyTokenizer();
  j["model"]["type"] = "Unigram";
  auto tok = Tokenizer::FromJson(j.dump(), "");
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(tok.status().message().find("Unigram"), std::string::npos);
  EXPECT_FALSE(Tokenizer::FromJson("{not json", "").ok());
  EXPECT_FALSE(Tokenizer::FromPath("/nonexistent/tokenizer.json").ok());
}

TEST(TokenizerTest, AddedTokensStripAndSingleWord) {
  json j = TinyTokenizer();
  j["added_tokens"] = {
      {{"id", 10}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
      {{"id", 11},
       {"content", "M"},
       {"special", false},
       {"normalized", false},
       {"lstrip", true},
       {"rstrip", true}},
      {{"id", 12},
       {"content", "W"},
       {"special", false},
       {"normalized", false},
       {"single_word", true}},
  };
  j["pre_tokenizer"] = {{"type", "WhitespaceSplit"}};
  auto tok = Tokenizer::FromJson(j.dump(), "");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(Enc(**tok, "a<s>b"), (std::vector<uint32_t>{1, 10, 2}));
  EXPECT_EQ(Enc(**tok, "a  M  b"), (std::vector<uint32_t>{1, 11, 2}));
  EXPECT_EQ(Enc(**tok, "a W b"), (std::vector<uint32_t>{1, 12, 2}));
  EXPECT_EQ(Enc(**tok, "aWb"), (std::vector<uint32_t>{1, 0, 2}));  // not a single word
}

TEST(TokenizerTest, TemplateProcessingAndDecode) {
  json j = TinyTokenizer();
  j["added_tokens"] = {{{"id", 10}, {"content", "<s>"}, {"special", true}}};
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single",
       {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {10}}, {"tokens", {"<s>"}}}}}}};
  j["normalizer"] = {
      {"type", "Sequence"},
      {"normalizers",
       {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
        {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}};
  j["decoder"] = {
      {"type", "Sequence"},
      {"decoders",
       {{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
        {{"type", "Fuse"}},
        {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  auto tok = Tokenizer::FromJson(j.dump(), "");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(Enc(**tok, "ab a", true), (std::vector<uint32_t>{10, 6, 4, 7}));
  EXPECT_EQ((*tok)->Decode({10, 6, 4, 7}, true), "ab a");
  EXPECT_EQ((*tok)->Decode({10, 6, 4, 7}, false), "<s> ab a");
}

TEST(TokenizerTest, SplitBehaviors) {
  auto run = [](const char* behavior, bool invert) {
    json j = TinyTokenizer();
    j["pre_tokenizer"] = {{"type", "Split"},
                          {"pattern", {{"String", "c"}}},
                          {"behavior", behavior},
                          {"invert", invert}};
    auto tok = Tokenizer::FromJson(j.dump(), "");
    EXPECT_TRUE(tok.ok()) << tok.status();
    return Enc(**tok, "abcab");
  };
  EXPECT_EQ(run("Isolated", false), (std::vector<uint32_t>{4, 3, 4}));
  EXPECT_EQ(run("Removed", false), (std::vector<uint32_t>{4, 4}));
  EXPECT_EQ(run("MergedWithPrevious", false), (std::vector<uint32_t>{5, 4}));
  EXPECT_EQ(run("MergedWithNext", false), (std::vector<uint32_t>{4, 3, 4}));
  EXPECT_EQ(run("Contiguous", false), (std::vector<uint32_t>{4, 3, 4}));
  EXPECT_EQ(run("Removed", true), (std::vector<uint32_t>{3}));
}

TEST(TokenizerTest, MetaspacePrependFirst) {
  json j = TinyTokenizer();
  j["pre_tokenizer"] = {{"type", "Metaspace"},
                        {"replacement", "\xE2\x96\x81"},
                        {"prepend_scheme", "first"},
                        {"split", true}};
  j["added_tokens"] = {{{"id", 10}, {"content", "<s>"}, {"special", true}, {"normalized", false}}};
  auto tok = Tokenizer::FromJson(j.dump(), "");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(Enc(**tok, "a a"), (std::vector<uint32_t>{7, 7}));
  EXPECT_EQ(Enc(**tok, "<s>a"), (std::vector<uint32_t>{10, 1}));  // not at the start: no ▁
}

TEST(TokenizerTest, ByteLevelModel) {
  // Byte-level vocab: the 256 alphabet chars plus "Ġa" (space + a).
  json vocab = json::object();
  uint32_t next = 0;
  for (int b = 0; b < 256; ++b) {
    std::string s;
    char32_t c = b >= 33 && b <= 126 ? static_cast<char32_t>(b) : 0;
    if (c) {
      s.push_back(static_cast<char>(b));
      vocab[s] = next++;
    }
  }
  vocab["\xC4\xA0"] = next++;  // Ġ = byte 0x20
  vocab
      ["\xC4\xA0"
       "a"] = next++;
  json j = {
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"\xC4\xA0 a"}}}},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}}}};
  auto tok = Tokenizer::FromJson(j.dump(), "");
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto ids = Enc(**tok, "a a");
  EXPECT_EQ(ids, (std::vector<uint32_t>{*(*tok)->TokenToId("a"), next - 1}));
  EXPECT_EQ((*tok)->Decode(ids, false), "a a");
}

}  // namespace
}  // namespace kvr::tokenizer

namespace kvr::tokenizer {
namespace {

// The span-wise normalization must equal utf8proc on the whole string, on random strings
// dense in combining marks, Hangul jamo, compatibility and singleton-decomposition chars.
TEST(NormalizerTest, SpanwiseEqualsWholeString) {
  struct Form {
    const char* name;
    int options;
  };
  const Form forms[] = {{"NFC", UTF8PROC_STABLE | UTF8PROC_COMPOSE},
                        {"NFD", UTF8PROC_STABLE | UTF8PROC_DECOMPOSE},
                        {"NFKC", UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT},
                        {"NFKD", UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT}};
  const char32_t pool[] = {'a',    'e',    'A',     ' ',    0xE9,   0xC5,   0x300,  0x301,  0x323,
                           0x328,  0x30A,  0x345,   0x1100, 0x1161, 0x11A8, 0xAC00, 0xAC01, 0x2126,
                           0x212B, 0xFB01, 0xF900,  0x1F71, 0x0B47, 0x0B3E, 0x0CC6, 0x0CD5, 0x3099,
                           0x304B, 0xFF76, 0x1D15E, 0x4E00, 0x3000, 0xA0,   0x2460};
  std::mt19937 rng(7);
  std::uniform_int_distribution<size_t> len(0, 12), pick(0, std::size(pool) - 1);
  for (const Form& f : forms) {
    auto norm = Norm(json{{"type", f.name}});
    ASSERT_TRUE(norm.ok());
    for (int i = 0; i < 5000; ++i) {
      std::string s;
      for (size_t n = len(rng); n > 0; --n) AppendUtf8(pool[pick(rng)], &s);
      utf8proc_uint8_t* buf = nullptr;
      auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                            static_cast<utf8proc_ssize_t>(s.size()), &buf,
                            static_cast<utf8proc_option_t>(f.options));
      ASSERT_GE(n, 0);
      std::string want(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
      std::free(buf);
      std::string got = s;
      (*norm)->Apply(&got);
      ASSERT_EQ(got, want) << f.name << " on " << s;
    }
  }
}

TEST(NormalizerTest, KnownForms) {
  auto nfc = Norm(json{{"type", "NFC"}});
  ASSERT_TRUE(nfc.ok());
  std::string s = "e\xCC\x81 \xE2\x84\xA6 \xE1\x84\x80\xE1\x85\xA1";
  (*nfc)->Apply(&s);
  EXPECT_EQ(s, "\xC3\xA9 \xCE\xA9 \xEA\xB0\x80");
  auto nfkd = Norm(json{{"type", "NFKD"}});
  s = "\xEF\xAC\x81\xC3\xA9";
  (*nfkd)->Apply(&s);
  EXPECT_EQ(s, "fie\xCC\x81");
  auto lower = Norm(json{{"type", "Lowercase"}});
  s = "HeLLo \xCE\xA3\xCE\x91\xCE\xA3";
  (*lower)->Apply(&s);
  EXPECT_EQ(s, "hello \xCF\x83\xCE\xB1\xCF\x82");
  auto strip = Norm(json{{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}});
  s = " \t x y \xE3\x80\x80";
  (*strip)->Apply(&s);
  EXPECT_EQ(s, "x y");
}

}  // namespace
}  // namespace kvr::tokenizer
