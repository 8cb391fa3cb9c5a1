// JsonNode / JsonDocument, and the loader's errors for malformed tokenizer.json: each one must
// name the field (its path from the root) and the reason.
#include "tokenizer/json_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace kvr::tokenizer {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

json Tiny() {
  return json{
      {"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", {"a b"}}}},
      {"added_tokens", json::array()}};
}

std::string LoadError(const json& j) {
  auto tok = Tokenizer::FromJson(j.dump(), "");
  return tok.ok() ? "OK" : std::string(tok.status().message());
}

TEST(JsonNodeTest, FindTreatsNullAsAbsent) {
  auto doc = JsonDocument::Parse(R"({"a": null, "b": true, "n": 7, "s": "x", "l": [1, 2]})");
  ASSERT_TRUE(doc.ok()) << doc.status();
  JsonNode root = (*doc)->root();
  EXPECT_FALSE(root.Find("a").has_value());
  EXPECT_FALSE(root.Find("zz").has_value());
  EXPECT_EQ(root.GetBool("a", true).value(), true);
  EXPECT_EQ(root.GetBool("b", false).value(), true);
  EXPECT_EQ(root.GetUint("n", 0).value(), 7u);
  EXPECT_EQ(root.GetString("s").value(), "x");
  EXPECT_EQ(root.GetString("zz", "def").value(), "def");
  auto items = root.Get("l")->Items();
  ASSERT_TRUE(items.ok());
  ASSERT_EQ(items->size(), 2u);
  EXPECT_EQ((*items)[1].path(), "l[1]");
}

TEST(JsonNodeTest, TypeErrorsNameThePath) {
  auto doc = JsonDocument::Parse(R"({"x": {"y": [1, -2, "s", 5000000000, 1.5]}})");
  ASSERT_TRUE(doc.ok());
  auto items = (*doc)->root().Get("x")->Get("y")->Items();
  ASSERT_TRUE(items.ok());
  EXPECT_EQ((*items)[1].Uint().status().message(),
            "x.y[1]: expected a non-negative integer, got -2");
  EXPECT_EQ((*items)[2].Uint().status().message(),
            "x.y[2]: expected a non-negative integer, got string");
  EXPECT_EQ((*items)[3].Uint32().status().message(), "x.y[3]: integer 5000000000 out of range");
  EXPECT_EQ((*items)[4].String().status().message(), "x.y[4]: expected a string, got float");
  EXPECT_EQ((*items)[0].Get("k").status().message(), "x.y[0]: expected an object, got integer");
  EXPECT_EQ((*doc)->root().Get("k").status().message(), "tokenizer.json: missing field \"k\"");
}

TEST(JsonDocumentTest, SyntaxErrorsSayWhere) {
  for (std::string_view bad : {"{not json", "{\"a\": [1, 2}", "", "{\"a\": 1} x"}) {
    auto doc = JsonDocument::Parse(bad);
    ASSERT_FALSE(doc.ok()) << bad;
    EXPECT_EQ(doc.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(doc.status().message()), HasSubstr("malformed JSON: "));
    EXPECT_THAT(std::string(doc.status().message()), HasSubstr("line 1, column")) << bad;
  }
}

TEST(JsonDocumentTest, LimitsAreErrors) {
  // Depth beyond simdjson's limit, and integers beyond 64 bits: errors, not crashes.
  std::string deep(100000, '[');
  EXPECT_FALSE(JsonDocument::Parse(deep + std::string(100000, ']')).ok());
  auto big = JsonDocument::Parse(R"({"a": 123456789012345678901234567890})");
  ASSERT_FALSE(big.ok());
  EXPECT_THAT(std::string(big.status().message()), HasSubstr("malformed JSON: "));
}

TEST(LoaderErrorTest, NamesFieldAndReason) {
  struct Case {
    std::function<void(json*)> edit;
    std::string want;
  };
  std::vector<Case> cases = {
      {[](json* j) { (*j)["model"]["vocab"]["a"] = "zero"; },
       "model.vocab[\"a\"]: expected a non-negative integer, got string"},
      {[](json* j) { (*j)["model"]["vocab"]["a"] = -1; },
       "model.vocab[\"a\"]: expected a non-negative integer, got -1"},
      {[](json* j) { (*j)["model"]["vocab"]["a"] = 1u << 30; }, "model.vocab[\"a\"]: id"},
      {[](json* j) { (*j)["model"]["vocab"] = json::array(); },
       "model.vocab: expected an object, got array"},
      {[](json* j) {
         (*j)["model"]["merges"] = {"a b", "a c"};
       },
       "model.merges[1]: unknown token \"c\""},
      {[](json* j) { (*j)["model"]["merges"] = {"a b c"}; },
       "model.merges[0]: expected \"a b\" or [\"a\", \"b\"]"},
      {[](json* j) { (*j)["model"]["merges"] = {{"a"}}; },
       "model.merges[0]: expected \"a b\" or [\"a\", \"b\"]"},
      {[](json* j) { (*j)["model"].erase("merges"); }, "model: missing field \"merges\""},
      {[](json* j) { j->erase("model"); }, "tokenizer.json: missing field \"model\""},
      {[](json* j) { (*j)["model"]["unk_token"] = "<unk>"; },
       "model.unk_token: token \"<unk>\" not in the vocab"},
      {[](json* j) { (*j)["model"]["byte_fallback"] = "yes"; },
       "model.byte_fallback: expected a boolean, got string"},
      {[](json* j) {
         (*j)["added_tokens"] = {{{"content", "x"}}};
       },
       "added_tokens[0]: missing field \"id\""},
      {[](json* j) {
         (*j)["added_tokens"] = {{{"id", 9}, {"content", 3}}};
       },
       "added_tokens[0].content: expected a string, got integer"},
      {[](json* j) {
         (*j)["pre_tokenizer"] = {
             {"type", "Sequence"},
             {"pretokenizers", {{{"type", "Split"}, {"pattern", {{"Regex", 5}}}}}}};
       },
       "pre_tokenizer.pretokenizers[0].pattern.Regex: expected a string, got integer"},
      {[](json* j) {
         (*j)["pre_tokenizer"] = {
             {"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
       },
       "pre_tokenizer.pattern.Regex: "},
      {[](json* j) {
         (*j)["normalizer"] = {{"type", "Prepend"}};
       },
       "normalizer: missing field \"prepend\""},
      {[](json* j) {
         (*j)["decoder"] = {{"type", "Strip"}, {"content", " "}, {"start", -1}};
       },
       "decoder.start: expected a non-negative integer, got -1"},
      {[](json* j) {
         (*j)["post_processor"] = {{"type", "TemplateProcessing"},
                                   {"single", {{{"SpecialToken", {{"id", "<s>"}}}}}},
                                   {"special_tokens", json::object()}};
       },
       "post_processor.special_tokens: missing field \"<s>\""},
      {[](json* j) {
         (*j)["post_processor"] = {{"type", "BertProcessing"}, {"cls", {"[CLS]"}}};
       },
       "post_processor.cls: expected [token, id]"},
  };
  for (const Case& c : cases) {
    json j = Tiny();
    c.edit(&j);
    EXPECT_THAT(LoadError(j), HasSubstr(c.want)) << j.dump();
  }
  EXPECT_THAT(LoadError(json::array()), HasSubstr("tokenizer.json: expected an object, got array"));
}

TEST(LoaderTest, MergeFormatsAndDuplicates) {
  json j = Tiny();
  j["model"]["merges"] = json::array({json::array({"a", "b"})});  // tokenizers >= 0.20
  auto tok = Tokenizer::FromJson(j.dump(), "");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->Encode("ab", false).value(), std::vector<uint32_t>{2});
  // A token written twice: the last id wins, as in serde's map.
  std::string text = R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "a": 2},
                         "merges": []}})";
  tok = Tokenizer::FromJson(text, "");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->TokenToId("a"), 2u);
  EXPECT_EQ((*tok)->IdToToken(0), std::nullopt);
}

TEST(LoaderTest, ConfigErrorsAreStatuses) {
  LoadOptions opt;
  opt.transformers_bos_rule = true;
  json j = Tiny();
  EXPECT_FALSE(Tokenizer::FromJson(j.dump(), "{bad", opt).ok());
  auto tok = Tokenizer::FromJson(
      j.dump(), R"({"tokenizer_class": "LlamaTokenizerFast", "add_bos_token": "yes"})", opt);
  ASSERT_FALSE(tok.ok());
  EXPECT_THAT(std::string(tok.status().message()), HasSubstr("add_bos_token"));
  tok = Tokenizer::FromJson(
      j.dump(), R"({"tokenizer_class": "LlamaTokenizerFast", "bos_token": {"content": 5}})", opt);
  ASSERT_FALSE(tok.ok());
  EXPECT_THAT(std::string(tok.status().message()), HasSubstr("bos_token"));
  tok = Tokenizer::FromJson(
      j.dump(), R"({"tokenizer_class": "LlamaTokenizerFast", "bos_token": {"content": "ab"}})",
      opt);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->Encode("a", true).value(), (std::vector<uint32_t>{2, 0}));
}

}  // namespace
}  // namespace kvr::tokenizer
