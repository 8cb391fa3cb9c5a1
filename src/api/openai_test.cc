#include "api/openai.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kvr::api {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::optional<ApiError> Parse(Endpoint e, std::string_view body, ApiRequest* r) {
  return ParseApiRequest(e, body, r);
}

TEST(OpenAiParseTest, CompletionDefaultsAsVllm) {
  ApiRequest r;
  ASSERT_FALSE(Parse(Endpoint::kCompletions, R"({"prompt":"hi","model":null,"x":1})", &r));
  EXPECT_EQ(r.prompt_text, "hi");
  EXPECT_EQ(r.max_tokens, 16u);
  EXPECT_FALSE(r.stream);
  EXPECT_TRUE(r.add_special_tokens);
  EXPECT_EQ(r.model, "");
}

TEST(OpenAiParseTest, PromptShapes) {
  ApiRequest ids;
  ASSERT_FALSE(Parse(Endpoint::kCompletions, R"({"prompt":[1,2,3]})", &ids));
  EXPECT_TRUE(ids.prompt_is_ids);
  EXPECT_THAT(ids.prompt_ids, ElementsAre(1, 2, 3));
  ApiRequest nested;
  ASSERT_FALSE(Parse(Endpoint::kCompletions, R"({"prompt":[[7,8]]})", &nested));
  EXPECT_THAT(nested.prompt_ids, ElementsAre(7, 8));
  ApiRequest one;
  ASSERT_FALSE(Parse(Endpoint::kCompletions, R"({"prompt":["a"]})", &one));
  EXPECT_EQ(one.prompt_text, "a");
  for (const char* bad : {R"({})", R"({"prompt":""})", R"({"prompt":[]})", R"({"prompt":["a","b"]})",
                          R"({"prompt":[1,-2]})", R"({"prompt":[1.5]})", R"({"prompt":{"a":1}})"}) {
    ApiRequest r;
    auto e = Parse(Endpoint::kCompletions, bad, &r);
    ASSERT_TRUE(e) << bad;
    EXPECT_EQ(e->status, 400) << bad;
  }
}

TEST(OpenAiParseTest, StreamOptionsNeedStream) {
  ApiRequest r;
  auto e = Parse(Endpoint::kCompletions, R"({"prompt":"a","stream_options":{"include_usage":true}})", &r);
  ASSERT_TRUE(e);
  EXPECT_THAT(e->message, HasSubstr("stream=True"));
  ApiRequest s;
  ASSERT_FALSE(Parse(Endpoint::kCompletions, R"({"prompt":"a","stream":true,"stream_options":{}})", &s));
  EXPECT_TRUE(s.include_usage);  // vLLM's default once the object is sent
}

TEST(OpenAiParseTest, WrongTypesAndValues) {
  for (const char* bad : {R"({"prompt":"a","max_tokens":"3"})", R"({"prompt":"a","max_tokens":0})",
                          R"({"prompt":"a","max_tokens":-1})", R"({"prompt":"a","stream":1})",
                          R"({"prompt":"a","model":5})", R"({"prompt":"a","n":2})", "[1]", "{",
                          "", "nul", R"({"prompt":"a","ignore_eos":"yes"})"}) {
    ApiRequest r;
    auto e = Parse(Endpoint::kCompletions, bad, &r);
    ASSERT_TRUE(e) << bad;
    EXPECT_EQ(e->status, 400) << bad;
    auto body = nlohmann::json::parse(ErrorBody(*e));
    EXPECT_EQ(body["error"]["code"], 400);
    EXPECT_TRUE(body["error"]["message"].is_string());
    EXPECT_TRUE(body["error"]["type"].is_string());
  }
  std::string deep(10000, '[');
  ApiRequest r;
  EXPECT_TRUE(Parse(Endpoint::kCompletions, deep, &r));
}

TEST(OpenAiParseTest, ChatMessagesAndLimits) {
  ApiRequest r;
  ASSERT_FALSE(Parse(Endpoint::kChat,
                     R"({"messages":[{"role":"user","content":[{"type":"text","text":"a"},)"
                     R"({"type":"text","text":"b"}]}],"max_tokens":5,"max_completion_tokens":7})",
                     &r));
  EXPECT_EQ(r.max_tokens, 7u);
  EXPECT_FALSE(r.add_special_tokens);
  ASSERT_TRUE(r.chat.messages.is_list());
  ApiRequest none;
  ASSERT_FALSE(Parse(Endpoint::kChat, R"({"messages":[{"role":"user","content":"x"}]})", &none));
  EXPECT_FALSE(none.max_tokens);  // the rest of the context
  for (const char* bad : {R"({"messages":[]})", R"({"messages":"hi"})", R"({"messages":[{"content":"x"}]})",
                          R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})",
                          R"({"messages":[{"role":"user","content":"x"}],"add_generation_prompt":true,"continue_final_message":true})"}) {
    ApiRequest b;
    EXPECT_TRUE(Parse(Endpoint::kChat, bad, &b)) << bad;
  }
}

TEST(OpenAiResponseTest, ShapesAsVllm) {
  ResponseHead head{.endpoint = Endpoint::kChat, .id = "chatcmpl-1", .created = 5, .model = "m"};
  auto whole = nlohmann::json::parse(CompletionBody(head, "Hi", "length", {3, 2, 1}));
  EXPECT_EQ(whole["object"], "chat.completion");
  EXPECT_EQ(whole["choices"][0]["message"]["content"], "Hi");
  EXPECT_EQ(whole["usage"]["total_tokens"], 5);
  EXPECT_EQ(whole["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
  const std::string chunk = StreamChunk(head, "", "", true, nullptr);
  ASSERT_TRUE(chunk.starts_with("data: ") && chunk.ends_with("\n\n"));
  auto role = nlohmann::json::parse(chunk.substr(6));
  EXPECT_EQ(role["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(role["choices"][0]["finish_reason"].is_null());
  auto usage = nlohmann::json::parse(UsageChunk(head, {3, 2, 1}).substr(6));
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 2);
  head.endpoint = Endpoint::kCompletions;
  auto text = nlohmann::json::parse(StreamChunk(head, "x", "stop", false, nullptr).substr(6));
  EXPECT_EQ(text["object"], "text_completion");
  EXPECT_EQ(text["choices"][0]["text"], "x");
  EXPECT_EQ(text["choices"][0]["finish_reason"], "stop");
}

TEST(OpenAiParseTest, TokenizeAndDetokenize) {
  TokenizeRequest t;
  ASSERT_FALSE(ParseTokenizeRequest(R"({"prompt":"abc"})", &t));
  EXPECT_FALSE(t.is_chat);
  EXPECT_TRUE(t.add_special_tokens);
  TokenizeRequest c;
  ASSERT_FALSE(ParseTokenizeRequest(R"({"messages":[{"role":"user","content":"x"}]})", &c));
  EXPECT_TRUE(c.is_chat);
  EXPECT_FALSE(c.add_special_tokens);
  std::vector<TokenId> ids;
  ASSERT_FALSE(ParseDetokenizeRequest(R"({"tokens":[104,105]})", &ids));
  EXPECT_THAT(ids, ElementsAre(104, 105));
  EXPECT_TRUE(ParseDetokenizeRequest(R"({"tokens":"x"})", &ids));
}

}  // namespace
}  // namespace kvr::api
