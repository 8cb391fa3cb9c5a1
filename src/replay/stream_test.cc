#include "replay/stream.h"

#include <gtest/gtest.h>

#include <string>

namespace kvr::replay {
namespace {

std::string Chunk(const std::string& text) {
  return "data: "
         "{\"id\":\"c\",\"object\":\"text_completion\",\"choices\":[{\"index\":0,\"text\":\"" +
         text + "\",\"finish_reason\":null}]}\n\n";
}

const char kUsage[] =
    "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"total_tokens\":23,"
    "\"completion_tokens\":3,\"prompt_tokens_details\":{\"cached_tokens\":16}}}\n\n";

TEST(CompletionStreamTest, TokensUsageAndDone) {
  CompletionStream s;
  s.Feed(Chunk(" a"), 10);
  s.Feed(Chunk(" b") + Chunk(" c").substr(0, 9), 20);
  s.Feed(Chunk(" c").substr(9), 35);
  s.Feed(kUsage, 36);
  EXPECT_FALSE(s.done());
  s.Feed("data: [DONE]\n\n", 37);
  s.End();
  EXPECT_TRUE(s.done());
  EXPECT_FALSE(s.failed()) << s.error();
  EXPECT_EQ(s.token_chunks(), 3u);
  EXPECT_EQ(s.first_token(), 10);
  EXPECT_EQ(s.last_token(), 35);
  EXPECT_TRUE(s.usage().reported);
  EXPECT_EQ(s.usage().prompt_tokens, 20u);
  EXPECT_EQ(s.usage().completion_tokens, 3u);
  EXPECT_EQ(s.usage().cached_tokens, 16u);
}

TEST(CompletionStreamTest, AnErrorEventMidStreamFailsIt) {
  CompletionStream s;
  s.Feed(Chunk("x"), 1);
  s.Feed("data: {\"error\":{\"message\":\"upstream reset\",\"type\":\"server_error\"}}\n\n", 2);
  s.Feed(Chunk("y") + "data: [DONE]\n\n", 3);  // ignored once failed
  EXPECT_TRUE(s.failed());
  EXPECT_FALSE(s.done());
  EXPECT_EQ(s.error(), "upstream reset");
  EXPECT_EQ(s.token_chunks(), 1u);
}

TEST(CompletionStreamTest, AStreamWithoutDoneFails) {
  CompletionStream cut;
  cut.Feed(Chunk("x"), 1);
  cut.End();
  EXPECT_EQ(cut.error(), "stream ended before [DONE]");
  CompletionStream mid_event;
  mid_event.Feed("data: {\"choi", 1);
  mid_event.End();
  EXPECT_EQ(mid_event.error(), "stream cut inside an event");
}

TEST(CompletionStreamTest, MalformedJsonAndStringErrors) {
  CompletionStream bad;
  bad.Feed("data: {nope\n\n", 1);
  EXPECT_EQ(bad.error(), "malformed stream event");
  CompletionStream plain;
  plain.Feed("data: {\"error\":\"overloaded\"}\n\n", 1);
  EXPECT_EQ(plain.error(), "overloaded");
}

TEST(CompletionStreamTest, TheFirstFailureIsKept) {
  CompletionStream s;
  s.Fail("connection reset");
  s.Fail("later");
  s.End();
  EXPECT_EQ(s.error(), "connection reset");
}

TEST(ErrorMessageTest, OpenAiVllmAndPlainBodies) {
  EXPECT_EQ(ErrorMessage("{\"error\":{\"message\":\"no such model\"}}"), "no such model");
  EXPECT_EQ(ErrorMessage("{\"object\":\"error\",\"message\":\"too long\"}"), "too long");
  EXPECT_EQ(ErrorMessage("Bad Gateway"), "Bad Gateway");
  EXPECT_EQ(ErrorMessage(std::string(500, 'x')).size(), 200u);
}

}  // namespace
}  // namespace kvr::replay
