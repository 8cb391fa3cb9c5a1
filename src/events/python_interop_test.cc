// The project's Python reference subscriber (tests/tools/sub_vllm_events.py, written from vLLM's
// example subscriber) reads our Publisher: live batches, topic filtering, and the replay
// protocol with its end marker.
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "events/codec.h"
#include "events/publisher.h"
#include "events/test_util.h"

namespace kvr::events {
namespace {

constexpr const char* kPython = "/usr/bin/python3";

bool PythonHasZmqAndMsgpack() {
  const std::string probe = absl::StrCat(kPython, " -c 'import zmq, msgpack' >/dev/null 2>&1");
  return std::system(probe.c_str()) == 0;
}

// Reads what `out` has (waiting at most `timeout_ms`); false at end of file.
bool ReadSome(FILE* out, int timeout_ms, std::string* text) {
  pollfd p{fileno(out), POLLIN, 0};
  if (poll(&p, 1, timeout_ms) <= 0) return true;
  char buf[4096];
  const ssize_t n = read(fileno(out), buf, sizeof(buf));
  if (n <= 0) return false;
  text->append(buf, static_cast<size_t>(n));
  return true;
}

TEST(PythonSubscriber, ReadsOurPublisherLiveAndThroughReplay) {
  if (!PythonHasZmqAndMsgpack()) {
    GTEST_SKIP() << kPython << " lacks zmq or msgpack (Debian: python3-zmq python3-msgpack)";
  }
  auto pub = Publisher::Start({.topic = "kv-events"});
  ASSERT_TRUE(pub.ok()) << pub.status();
  std::vector<std::string> payloads;
  for (const auto& events : testing::GoldenScenario(WorkerId(0), /*has_lora_name=*/true)) {
    payloads.push_back(EncodeBatch(1.0, events, {.dp_rank = 0}));
  }
  const std::string command =
      absl::StrCat(kPython, " tests/tools/sub_vllm_events.py --endpoint ", (*pub)->endpoint(),
                   " --replay-endpoint ", (*pub)->replay_endpoint(),
                   " --topic kv --count 5 --replay-from 0 --timeout 30 2>&1");
  FILE* out = popen(command.c_str(), "r");
  ASSERT_NE(out, nullptr);
  // The Python SUB joins when it joins: publish the scenario round and round, whenever it has
  // nothing to say, until it has read 5 batches live, replayed, and exited.
  std::string text;
  for (int i = 0; i < 3000; ++i) {
    const size_t before = text.size();
    if (!ReadSome(out, 10, &text)) break;
    if (text.size() == before) (*pub)->Publish(payloads[(*pub)->next_seq() % payloads.size()]);
  }
  const int status = pclose(out);
  SCOPED_TRACE(text);
  EXPECT_EQ(status, 0);
  EXPECT_NE(text.find("[sub] RESULT: PASS"), std::string::npos);
  EXPECT_EQ(text.find("GAP"), std::string::npos);
  // Five consecutive batches hold the whole scenario, whichever the first one was.
  EXPECT_NE(text.find("BlockStored hashes=[17507053300047258101, 14424512966625972522, "
                      "6803416000392209307] n_tokens=48 {'parent_block_hash': None"),
            std::string::npos);
  EXPECT_NE(text.find("'parent_block_hash': 14424512966625972522"), std::string::npos);
  EXPECT_NE(text.find("'lora_name': 'my-lora', 'extra_keys': [['my-lora']]"), std::string::npos);
  EXPECT_NE(text.find("BlockRemoved hashes=[6803416000392209307]"), std::string::npos);
  EXPECT_NE(text.find("AllBlocksCleared"), std::string::npos);
  EXPECT_NE(text.find("[sub] replay from 0: seqs=[0, 1, 2, 3, 4"), std::string::npos);
}

}  // namespace
}  // namespace kvr::events
