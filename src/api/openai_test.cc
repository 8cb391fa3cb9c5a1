#include "api/openai.h"

#include "absl/strings/str_cat.h"
#include "chat/json.h"
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

// The request parser reads JSON as Python's json.loads does (what vLLM sees): a repeated key's
// last value wins, in the key's first position; messages, tools and kwargs become the same
// Values as the chat module's own JSON reader makes of them.
TEST(OpenAiParseTest, JsonAsPython) {
  ApiRequest r;
  ASSERT_FALSE(Parse(Endpoint::kCompletions,
                     R"({"prompt":"a","max_tokens":3,"prompt":"b","max_tokens":4})", &r));
  EXPECT_EQ(r.prompt_text, "b");
  EXPECT_EQ(r.max_tokens, 4u);

  const std::string body =
      R"({"messages":[{"role":"user","name":"x","content":"hi","name":"y"},)"
      R"({"role":"assistant","content":null,"tool_calls":[{"id":"c1","n":-3,"f":1.5,)"
      R"("big":18446744073709551615,"args":{"b":1,"a":[true,false,null]}}]}],)"
      R"("tools":[{"type":"function","function":{"name":"f","parameters":{"z":1,"y":2}}}],)"
      R"("chat_template_kwargs":{"enable_thinking":false,"k":"v"}})";
  ApiRequest chat_request;
  ASSERT_FALSE(Parse(Endpoint::kChat, body, &chat_request));
  absl::StatusOr<chat::Value> reference = chat::ParseJson(body, {.big_ints_as_float = true});
  ASSERT_TRUE(reference.ok()) << reference.status();
  auto dumps = [](const chat::Value& v) {
    std::string out;
    EXPECT_TRUE(chat::PyJsonDumps(v, {}, &out).ok());
    return out;
  };
  const chat::Dict& want = reference->dict();
  EXPECT_EQ(dumps(chat_request.chat.messages), dumps(*want.Find("messages")));
  EXPECT_EQ(dumps(chat_request.chat.tools), dumps(*want.Find("tools")));
  EXPECT_EQ(dumps(chat::Value::FromDict(chat_request.chat.extra_kwargs)),
            dumps(*want.Find("chat_template_kwargs")));
  EXPECT_THAT(dumps(chat_request.chat.messages), HasSubstr(R"("name": "y", "content": "hi")"));
}

TEST(OpenAiParseTest, DepthAndNumberLimits) {
  auto nested = [](int arrays) {  // the body object plus `arrays` levels
    return absl::StrCat(R"({"prompt":"a","x":)", std::string(arrays, '['),
                        std::string(arrays, ']'), "}");
  };
  ApiRequest ok;
  EXPECT_FALSE(Parse(Endpoint::kCompletions, nested(63), &ok));
  ApiRequest deep;
  auto e = Parse(Endpoint::kCompletions, nested(64), &deep);
  ASSERT_TRUE(e);
  EXPECT_THAT(e->message, HasSubstr("nested too deeply"));
  // Integers beyond 64 bits: Python keeps them exact, which a router cannot render; refused.
  ApiRequest big;
  e = Parse(Endpoint::kCompletions, R"({"prompt":"a","max_tokens":123456789012345678901234})",
            &big);
  ASSERT_TRUE(e);
  EXPECT_THAT(e->message, HasSubstr("JSON decode error"));
  ApiRequest negative;
  e = Parse(Endpoint::kCompletions, R"({"prompt":"a","max_tokens":-3})", &negative);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->message, "max_tokens must be at least 1, got -3.");
  // A large body takes its own parser (the per-thread one is kept for bodies up to 1 MB).
  ApiRequest large;
  ASSERT_FALSE(Parse(Endpoint::kCompletions,
                     absl::StrCat(R"({"prompt":")", std::string(3 << 20, 'z'), R"("})"), &large));
  EXPECT_EQ(large.prompt_text.size(), size_t{3} << 20);
  ApiRequest after;
  ASSERT_FALSE(Parse(Endpoint::kCompletions, R"({"prompt":"small"})", &after));
  EXPECT_EQ(after.prompt_text, "small");
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
