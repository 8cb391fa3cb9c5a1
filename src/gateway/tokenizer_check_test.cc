#include "gateway/tokenizer_check.h"

#include <gtest/gtest.h>

#include <set>

#include "nlohmann/json.hpp"

namespace kvr::gateway {
namespace {

using Json = nlohmann::json;

const TokenizerProbe& Probe(std::string_view name) {
  for (const TokenizerProbe& p : TokenizerProbes()) {
    if (p.name == name) return p;
  }
  ADD_FAILURE() << "no probe " << name;
  return TokenizerProbes().front();
}

class TokenizerCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model = api::TextModel::Load({});  // one token per byte, ChatML template
    ASSERT_TRUE(model.ok());
    text_ = *std::move(model);
  }
  std::unique_ptr<api::TextModel> text_;
};

TEST_F(TokenizerCheckTest, RouterIdsAreTheRequestPathsIds) {
  const TokenizerProbe& plain = Probe("plain");
  auto ours = RouterProbeIds(*text_, plain);
  ASSERT_TRUE(ours.ok()) << ours.status();
  const std::string text = Json::parse(plain.request_body)["prompt"];
  ASSERT_EQ(ours->ids.size(), text.size());  // one token per byte
  EXPECT_EQ(ours->ids[0], TokenId('T'));
  EXPECT_TRUE(ours->rendered.empty());

  auto chat = RouterProbeIds(*text_, Probe("chat"));
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_NE(chat->rendered.find("<|im_start|>user\nAnd 3+3?<|im_end|>"), std::string::npos);
  EXPECT_EQ(chat->ids.size(), chat->rendered.size());
}

TEST_F(TokenizerCheckTest, EveryProbeHasAnIdAndNFDIsAmongThem) {
  std::set<std::string> names;
  for (const TokenizerProbe& p : TokenizerProbes()) {
    EXPECT_TRUE(names.insert(p.name).second) << p.name;
    EXPECT_TRUE(RouterProbeIds(*text_, p).ok()) << p.name;
  }
  // U+0301 COMBINING ACUTE ACCENT after a plain e: what an NFC normalizer would compose.
  EXPECT_NE(Probe("decomposed-accents").request_body.find("e\xcc\x81"), std::string::npos);
}

TEST(TokenizerCheck, RequestsSpeakEachEnginesApi) {
  ProbeCall v = ProbeRequest(EngineApi::kVllm, Probe("plain"));
  EXPECT_EQ(v.target, "/tokenize");
  EXPECT_TRUE(Json::parse(v.body).contains("prompt"));
  ProbeCall vc = ProbeRequest(EngineApi::kVllm, Probe("chat"));
  EXPECT_EQ(Json::parse(vc.body)["messages"].size(), 4u);
  EXPECT_EQ(Json::parse(vc.body)["add_generation_prompt"], true);

  ProbeCall l = ProbeRequest(EngineApi::kLlamaCpp, Probe("plain"));
  EXPECT_EQ(l.target, "/tokenize");
  const Json lj = Json::parse(l.body);
  EXPECT_TRUE(lj.contains("content"));
  EXPECT_EQ(lj["add_special"], true);
  EXPECT_EQ(ProbeRequest(EngineApi::kLlamaCpp, Probe("chat")).target, "/apply-template");
}

TEST(TokenizerCheck, LlamaCppChatIsRenderedThenTokenizedAsItsChatEndpointDoes) {
  const EngineAnswer rendered{.ids = {}, .rendered = "<|start_header_id|>user<|end_header_id|>"};
  std::optional<ProbeCall> next = FollowUpRequest(EngineApi::kLlamaCpp, Probe("chat"), rendered);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->target, "/tokenize");
  const Json j = Json::parse(next->body);
  EXPECT_EQ(j["content"], "<|start_header_id|>user<|end_header_id|>");
  EXPECT_EQ(j["add_special"], true);  // llama.cpp adds the BOS its rendering dropped
  EXPECT_EQ(j["parse_special"], true);
  // Nothing more for text probes, for vLLM, or once the ids are there.
  EXPECT_FALSE(FollowUpRequest(EngineApi::kLlamaCpp, Probe("plain"), {.ids = {1}}).has_value());
  EXPECT_FALSE(FollowUpRequest(EngineApi::kVllm, Probe("chat"), {.ids = {1}}).has_value());

  // Llama 3: the router's rendering starts with the template's <|begin_of_text|>, llama.cpp's
  // does not; the ids agree, and the ids are what is compared.
  RouterIds ours{.ids = {128000, 7, 8}, .rendered = "<|begin_of_text|><|start_header_id|>"};
  EngineAnswer theirs{.ids = {128000, 7, 8}, .rendered = "<|start_header_id|>"};
  EXPECT_EQ(CompareProbe(Probe("chat"), ours, theirs), std::nullopt);
  theirs.ids = {128000, 128000, 7, 8};  // a doubled BOS is a real difference
  EXPECT_EQ(CompareProbe(Probe("chat"), ours, theirs),
            "probe 'chat': token 1 differs (router 7, engine 128000; 3 vs 4 tokens)");
}

TEST(TokenizerCheck, AnswersAreParsedOrRefused) {
  auto ids = ParseProbeAnswer(EngineApi::kVllm, Probe("plain"),
                              R"({"count":3,"max_model_len":8,"tokens":[1,2,3],"token_strs":null})");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->ids, (std::vector<TokenId>{1, 2, 3}));
  auto rendered = ParseProbeAnswer(EngineApi::kLlamaCpp, Probe("chat"), R"({"prompt":"<s>hi"})");
  ASSERT_TRUE(rendered.ok());
  EXPECT_EQ(rendered->rendered, "<s>hi");
  for (const char* bad : {"", "[]", "{}", R"({"tokens":"x"})", R"({"tokens":[-1]})",
                          R"({"tokens":[1.5]})", R"({"tokens":[99999999999]})"}) {
    EXPECT_FALSE(ParseProbeAnswer(EngineApi::kVllm, Probe("plain"), bad).ok()) << bad;
  }
  EXPECT_FALSE(ParseProbeAnswer(EngineApi::kLlamaCpp, Probe("chat"), R"({"tokens":[1]})").ok());
  auto follow = ParseTokenizeAnswer(R"({"tokens":[128000,9906]})");
  ASSERT_TRUE(follow.ok());
  EXPECT_EQ(*follow, (std::vector<TokenId>{128000, 9906}));
  EXPECT_FALSE(ParseTokenizeAnswer(R"({"prompt":"x"})").ok());
}

TEST(TokenizerCheck, ComparisonNamesTheProbeAndTheFirstDifference) {
  const TokenizerProbe& probe = Probe("decomposed-accents");
  RouterIds ours{.ids = {10, 11, 12, 13}};
  EXPECT_EQ(CompareProbe(probe, ours, {.ids = {10, 11, 12, 13}}), std::nullopt);
  EXPECT_EQ(CompareProbe(probe, ours, {.ids = {10, 11, 99, 13}}),
            "probe 'decomposed-accents': token 2 differs (router 12, engine 99; 4 vs 4 tokens)");
  EXPECT_EQ(CompareProbe(probe, ours, {.ids = {10, 11, 12}}),
            "probe 'decomposed-accents': token 3 differs (router 13, engine none; 4 vs 3 tokens)");
  RouterIds chat{.ids = {}, .rendered = "<|im_start|>user\nhi"};
  EXPECT_EQ(CompareProbe(Probe("chat"), chat, {.rendered = "<|im_start|>user\nhi"}), std::nullopt);
  EXPECT_EQ(CompareProbe(Probe("chat"), chat, {.rendered = "<|im_start|>user hi"}),
            "probe 'chat': the chat template renders differently from byte 16 "
            "(router \"_start|>user\\nhi\", engine \"_start|>user hi\")");
  // The excerpt around the difference cuts a two-byte character in half (it starts at byte 1),
  // and an engine's rendering need not be UTF-8: shown as U+FFFD, not thrown on.
  std::string e_acute;
  for (int i = 0; i < 20; ++i) e_acute += "\xc3\xa9";
  std::string engine = e_acute;
  engine[13] = '\x83';  // the 7th character: é → Ã
  const RouterIds accents{.ids = {}, .rendered = e_acute};
  auto shown = CompareProbe(Probe("chat"), accents, {.rendered = engine});
  ASSERT_TRUE(shown.has_value());
  EXPECT_NE(shown->find("from byte 13 (router \"\xef\xbf\xbd\xc3\xa9"), std::string::npos)
      << *shown;
  shown = CompareProbe(Probe("chat"), accents, {.rendered = "\xc3\xa9\xff"});
  ASSERT_TRUE(shown.has_value());
  EXPECT_NE(shown->find("engine \"\xc3\xa9\xef\xbf\xbd\""), std::string::npos) << *shown;
}

}  // namespace
}  // namespace kvr::gateway
