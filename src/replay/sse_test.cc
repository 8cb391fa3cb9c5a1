#include "replay/sse.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kvr::replay {
namespace {

using Events = std::vector<std::string>;

Events FeedAll(SseParser& parser, const std::vector<std::string>& pieces) {
  Events out;
  for (const std::string& piece : pieces) {
    for (std::string& e : parser.Feed(piece)) out.push_back(std::move(e));
  }
  return out;
}

TEST(SseParserTest, EventsEndAtBlankLines) {
  SseParser parser;
  EXPECT_EQ(parser.Feed("data: {\"a\":1}\n\ndata: [DONE]\n\n"), (Events{"{\"a\":1}", "[DONE]"}));
  EXPECT_FALSE(parser.pending());
}

TEST(SseParserTest, EveryCutOfTheStreamGivesTheSameEvents) {
  const std::string stream =
      "data: {\"x\":\"a b\"}\r\n\r\n: keep-alive\n\nevent: e\ndata:first\ndata: second\n\n"
      "data: [DONE]\n\n";
  const Events expected = {"{\"x\":\"a b\"}", "first\nsecond", "[DONE]"};
  for (size_t i = 0; i <= stream.size(); ++i) {
    for (size_t j = i; j <= stream.size(); ++j) {
      SseParser parser;
      EXPECT_EQ(FeedAll(parser, {stream.substr(0, i), stream.substr(i, j - i), stream.substr(j)}),
                expected)
          << "cut at " << i << " and " << j;
      EXPECT_FALSE(parser.pending());
    }
  }
}

TEST(SseParserTest, OneByteAtATime) {
  const std::string stream = "data: 1\n\ndata: 2\r\n\r\n";
  SseParser parser;
  Events out;
  for (char c : stream) {
    for (std::string& e : parser.Feed(std::string(1, c))) out.push_back(std::move(e));
  }
  EXPECT_EQ(out, (Events{"1", "2"}));
}

TEST(SseParserTest, AnUnfinishedEventIsPending) {
  SseParser parser;
  EXPECT_TRUE(parser.Feed("data: {\"a\"").empty());
  EXPECT_TRUE(parser.pending());
  EXPECT_TRUE(parser.Feed(":1}\n").empty());
  EXPECT_TRUE(parser.pending());
  EXPECT_EQ(parser.Feed("\n"), Events{"{\"a\":1}"});
}

TEST(SseParserTest, EventsWithoutDataAreDropped) {
  SseParser parser;
  EXPECT_TRUE(parser.Feed(": comment\n\nid: 3\nretry: 10\n\n\n\n").empty());
  EXPECT_EQ(parser.Feed("data\n\n"), Events{""});  // a field with no colon: empty data
}

TEST(SseParserTest, AnOverlongLineStopsTheParser) {
  SseParser parser(8);
  EXPECT_TRUE(parser.Feed("data: 0123456789\n\n").empty());
  EXPECT_TRUE(parser.overflowed());
  EXPECT_TRUE(parser.Feed("data: 1\n\n").empty());
}

}  // namespace
}  // namespace kvr::replay
