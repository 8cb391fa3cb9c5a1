// Publisher and Subscriber over real TCP on 127.0.0.1 (ports chosen by the OS). Nothing sleeps:
// every wait is on a condition, bounded by a deadline.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "events/codec.h"
#include "events/publisher.h"
#include "events/subscriber.h"
#include "events/zmq_util.h"
#include "zmq.hpp"
#include "zmq_addon.hpp"

namespace kvr::events {
namespace {

constexpr WorkerId kWorker{11};
using std::chrono::milliseconds;
constexpr milliseconds kDeadline{20000};

// Batch n is recognisable by its ts (n) and its one removed hash (n).
std::string NumberedBatch(uint64_t n) {
  return EncodeBatch(static_cast<double>(n),
                     {KvRemoved{.worker = kWorker, .block_hashes = {EngineHash(n)}}}, {});
}

uint16_t PortOf(const std::string& endpoint) {
  return static_cast<uint16_t>(std::stoi(endpoint.substr(endpoint.rfind(':') + 1)));
}

bool IsSyntheticClear(const DecodedBatch& b) {
  return b.ts == 0 && b.events.size() == 1 && std::holds_alternative<KvCleared>(b.events[0]);
}

struct Received {
  uint64_t seq;
  DecodedBatch batch;
};

// The subscriber's sink: records what arrives and lets the test wait for a condition on it.
class Collector {
 public:
  Subscriber::Sink sink() {
    return [this](uint64_t seq, DecodedBatch batch) {
      std::lock_guard lock(mu_);
      received_.push_back({seq, std::move(batch)});
      cv_.notify_all();
    };
  }

  // Waits until `done(received)` holds; false if `timeout` passes first.
  bool WaitUntil(const std::function<bool(const std::vector<Received>&)>& done,
                 milliseconds timeout = kDeadline) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return done(received_); });
  }

  // Waits until the batch with sequence number `seq` has been delivered.
  bool WaitForSeq(uint64_t seq, milliseconds timeout = kDeadline) {
    return WaitUntil(
        [seq](const std::vector<Received>& r) {
          return !r.empty() && r.back().seq == seq && !IsSyntheticClear(r.back().batch);
        },
        timeout);
  }

  std::vector<Received> received() {
    std::lock_guard lock(mu_);
    return received_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Received> received_;  // guarded by mu_
};

struct Pair {
  std::unique_ptr<Publisher> publisher;
  std::unique_ptr<Collector> collector = std::make_unique<Collector>();
  std::unique_ptr<Subscriber> subscriber;
};

std::unique_ptr<Subscriber> Subscribe(const Publisher& pub, Collector& collector,
                                      bool use_replay = true) {
  SubscriberOptions options{.endpoint = pub.endpoint(), .worker = kWorker};
  if (use_replay) options.replay_endpoint = pub.replay_endpoint();
  auto sub = Subscriber::Start(options, collector.sink());
  EXPECT_TRUE(sub.ok()) << sub.status();
  return sub.ok() ? *std::move(sub) : nullptr;
}

Pair StartPair(bool replay = true) {
  Pair p;
  auto pub = Publisher::Start({.replay = replay});
  EXPECT_TRUE(pub.ok()) << pub.status();
  if (!pub.ok()) return p;
  p.publisher = *std::move(pub);
  p.subscriber = Subscribe(*p.publisher, *p.collector, replay);
  return p;
}

uint64_t PublishNumbered(Publisher& pub, bool drop = false) {
  return pub.Publish(NumberedBatch(pub.next_seq()), drop);
}

// A SUB socket's subscription reaches the publisher asynchronously (ZMQ's "slow joiner"):
// batches published before it are not delivered live. Publishes until one is.
bool PublishUntilConnected(Publisher& pub, Collector& collector) {
  for (int i = 0; i < 400; ++i) {
    const uint64_t seq = PublishNumbered(pub);
    if (collector.WaitForSeq(seq, milliseconds(50))) return true;
  }
  return false;
}

// Every batch 0 .. n-1 exactly once, in order, each the one published under its number.
void ExpectExactlyInOrder(const std::vector<Received>& received, uint64_t n) {
  ASSERT_EQ(received.size(), n);
  for (uint64_t i = 0; i < n; ++i) {
    EXPECT_EQ(received[i].seq, i);
    EXPECT_EQ(received[i].batch.ts, static_cast<double>(i));
  }
}

TEST(Transport, EndpointsAreBoundPorts) {
  auto pub = Publisher::Start({});
  ASSERT_TRUE(pub.ok()) << pub.status();
  EXPECT_TRUE((*pub)->endpoint().starts_with("tcp://127.0.0.1:"));
  EXPECT_TRUE((*pub)->replay_endpoint().starts_with("tcp://127.0.0.1:"));
  EXPECT_NE((*pub)->endpoint(), (*pub)->replay_endpoint());
  auto no_replay = Publisher::Start({.replay = false});
  ASSERT_TRUE(no_replay.ok());
  EXPECT_EQ((*no_replay)->replay_endpoint(), "");
  auto taken = Publisher::Start({.port = PortOf((*pub)->endpoint()), .replay = false});
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kUnavailable) << taken.status();
}

TEST(Transport, LiveBatchesArriveInOrderAndBadPayloadsAreCounted) {
  Pair p = StartPair();
  ASSERT_TRUE(PublishUntilConnected(*p.publisher, *p.collector));
  const uint64_t bad = p.publisher->Publish("\xc1 not msgpack");
  for (int i = 0; i < 100; ++i) PublishNumbered(*p.publisher);
  const uint64_t last = p.publisher->next_seq() - 1;
  ASSERT_TRUE(p.collector->WaitForSeq(last));

  std::vector<Received> received = p.collector->received();
  ASSERT_EQ(received.size(), last);  // all but the bad one
  for (uint64_t i = 0, seq = 0; i < received.size(); ++i, ++seq) {
    if (seq == bad) ++seq;
    EXPECT_EQ(received[i].seq, seq);
    EXPECT_EQ(received[i].batch.ts, static_cast<double>(seq));
  }
  const SubscriberStats stats = p.subscriber->stats();
  EXPECT_EQ(stats.decode_errors, 1u);
  EXPECT_EQ(stats.batches, last);
  EXPECT_EQ(stats.events, last);
  EXPECT_EQ(stats.restarts + stats.lost_batches + stats.gaps, 0u);
  EXPECT_EQ(p.subscriber->last_seq(), last);
}

TEST(Transport, DroppedBatchesAreReplayedInOrder) {
  Pair p = StartPair();
  ASSERT_TRUE(PublishUntilConnected(*p.publisher, *p.collector));
  uint64_t dropped = 0;
  for (int i = 0; i < 60; ++i) {
    const bool drop = i % 3 == 1 || (i >= 30 && i < 36);
    PublishNumbered(*p.publisher, drop);
    dropped += drop;
  }
  PublishNumbered(*p.publisher);  // reveals the last gap
  const uint64_t n = p.publisher->next_seq();
  ASSERT_TRUE(p.collector->WaitForSeq(n - 1));

  ExpectExactlyInOrder(p.collector->received(), n);
  const SubscriberStats stats = p.subscriber->stats();
  EXPECT_GE(stats.gaps, 1u);
  EXPECT_GE(stats.replays, 1u);
  EXPECT_GE(stats.replayed_batches, dropped);
  EXPECT_EQ(stats.lost_batches, 0u);
  EXPECT_EQ(stats.restarts, 0u);
  EXPECT_EQ(stats.batches, n);
}

// The last batches of a burst lost, then silence: no later batch reveals the gap, and the
// quiet-spell probe asks for them.
TEST(Transport, QuietProbeBringsBatchesNoLaterOneRevealed) {
  Pair p = StartPair();
  ASSERT_TRUE(PublishUntilConnected(*p.publisher, *p.collector));
  for (int i = 0; i < 3; ++i) PublishNumbered(*p.publisher, /*drop=*/true);
  const uint64_t n = p.publisher->next_seq();
  ASSERT_TRUE(p.collector->WaitForSeq(n - 1));

  ExpectExactlyInOrder(p.collector->received(), n);
  EXPECT_GE(p.subscriber->stats().replayed_batches, 3u);
  EXPECT_EQ(p.subscriber->stats().lost_batches, 0u);
}

// Batches published before the subscription reached the publisher (none sent live), then
// silence: the probe after the connection brings them, with no live batch ever seen.
TEST(Transport, QuietProbeAfterConnectingBringsWhatWasPublishedBefore) {
  Pair p = StartPair();
  for (int i = 0; i < 5; ++i) PublishNumbered(*p.publisher, /*drop=*/true);
  ASSERT_TRUE(p.collector->WaitForSeq(4));

  ExpectExactlyInOrder(p.collector->received(), 5);
  EXPECT_EQ(p.subscriber->stats().lost_batches, 0u);
}

// A probe that came back empty repeats while the stream stays quiet (each wait twice the last):
// batches published and lost after it are brought back without a later live batch.
TEST(Transport, QuietProbeRepeatsWhileTheStreamStaysQuiet) {
  Pair p = StartPair();
  p.subscriber.reset();
  SubscriberOptions options{.endpoint = p.publisher->endpoint(),
                            .replay_endpoint = p.publisher->replay_endpoint(),
                            .worker = kWorker,
                            .quiet_probe = milliseconds(20),
                            .quiet_probe_max = milliseconds(80)};
  auto sub = Subscriber::Start(options, p.collector->sink());
  ASSERT_TRUE(sub.ok()) << sub.status();
  ASSERT_TRUE(PublishUntilConnected(*p.publisher, *p.collector));
  const uint64_t probes = (*sub)->stats().replays;
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while ((*sub)->stats().replays < probes + 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  ASSERT_GE((*sub)->stats().replays, probes + 3);  // three probes in one quiet spell
  for (int i = 0; i < 3; ++i) PublishNumbered(*p.publisher, /*drop=*/true);
  const uint64_t n = p.publisher->next_seq();
  ASSERT_TRUE(p.collector->WaitForSeq(n - 1));

  ExpectExactlyInOrder(p.collector->received(), n);
  EXPECT_EQ((*sub)->stats().lost_batches, 0u);
}

TEST(Transport, GapWithoutReplayClearsTheWorker) {
  Pair p = StartPair(/*replay=*/false);
  ASSERT_TRUE(PublishUntilConnected(*p.publisher, *p.collector));
  const uint64_t first = p.collector->received().size();
  PublishNumbered(*p.publisher, /*drop=*/true);
  const uint64_t after = PublishNumbered(*p.publisher);
  ASSERT_TRUE(p.collector->WaitForSeq(after));

  std::vector<Received> received = p.collector->received();
  ASSERT_EQ(received.size(), first + 2);
  EXPECT_TRUE(IsSyntheticClear(received[first].batch));
  EXPECT_EQ(received[first + 1].seq, after);
  EXPECT_EQ(p.subscriber->stats().lost_batches, 1u);
}

TEST(Transport, LateSubscriberCatchesUpFromZero) {
  auto pub = Publisher::Start({});
  ASSERT_TRUE(pub.ok());
  Publisher& publisher = **pub;
  // Batches nobody could have received live: before the subscriber exists, and not sent (the
  // publisher's thread might otherwise send them after the subscriber joined).
  for (int i = 0; i < 20; ++i) PublishNumbered(publisher, /*drop=*/true);
  Collector collector;
  std::unique_ptr<Subscriber> sub = Subscribe(publisher, collector);
  ASSERT_TRUE(PublishUntilConnected(publisher, collector));
  PublishNumbered(publisher);
  const uint64_t n = publisher.next_seq();
  ASSERT_TRUE(collector.WaitForSeq(n - 1));

  ExpectExactlyInOrder(collector.received(), n);
  EXPECT_GE(sub->stats().replayed_batches, 20u);
  EXPECT_EQ(sub->stats().lost_batches, 0u);
}

// Stops an engine's publisher and starts its successor on the same two ports, as a restarted
// engine would: its sequence numbers start over at 0.
absl::StatusOr<std::unique_ptr<Publisher>> RestartOnTheSamePorts(
    std::unique_ptr<Publisher>& engine) {
  const auto port = PortOf(engine->endpoint());
  const auto replay_port = PortOf(engine->replay_endpoint());
  engine.reset();
  return Publisher::Start({.port = port, .replay_port = replay_port});
}

// The engine restarts on the same ports: its sequence numbers start over at 0.
TEST(Transport, RestartClearsTheWorkerAndStartsOver) {
  auto first = Publisher::Start({});
  ASSERT_TRUE(first.ok());
  Collector collector;
  std::unique_ptr<Subscriber> sub = Subscribe(**first, collector);
  ASSERT_TRUE(PublishUntilConnected(**first, collector));
  while ((*first)->next_seq() < 100) PublishNumbered(**first);
  ASSERT_TRUE(collector.WaitForSeq(99));
  auto second = RestartOnTheSamePorts(*first);
  ASSERT_TRUE(second.ok()) << second.status();
  auto restarted = [](const std::vector<Received>& r) {
    return r.size() > 100 && IsSyntheticClear(r[100].batch);
  };
  for (int i = 0; i < 400 && !collector.WaitUntil(restarted, milliseconds(50)); ++i) {
    PublishNumbered(**second);
  }
  PublishNumbered(**second);
  const uint64_t n = (*second)->next_seq();
  ASSERT_TRUE(collector.WaitForSeq(n - 1));

  std::vector<Received> received = collector.received();
  ASSERT_EQ(received.size(), 100 + 1 + n);
  ASSERT_TRUE(IsSyntheticClear(received[100].batch));
  received.erase(received.begin(), received.begin() + 101);
  ExpectExactlyInOrder(received, n);
  EXPECT_EQ(sub->stats().restarts, 1u);
}

// An engine restarts on the same ports, and by the time the subscriber has reconnected its
// numbering has passed the old one: the number alone looks like a gap. The reconnection makes
// the subscriber check the publisher's batch at its last number; it differs, so the worker is
// cleared and the new engine's batches are delivered from 0. `same_history`: the new
// publisher's first batches are the old ones (as after a network blip): nothing is cleared.
void RestartPastTheOldNumbering(bool same_history) {
  auto first = Publisher::Start({});
  ASSERT_TRUE(first.ok());
  Collector collector;
  std::unique_ptr<Subscriber> sub = Subscribe(**first, collector);
  ASSERT_TRUE(PublishUntilConnected(**first, collector));
  const uint64_t old_next = (*first)->next_seq();
  auto second = RestartOnTheSamePorts(*first);
  ASSERT_TRUE(second.ok()) << second.status();
  // Its history up to the old numbering, not sent live; then live batches until one arrives.
  constexpr uint64_t kOther = 1000;  // ts offset of batches the old engine never published
  auto publish = [&](bool drop) {
    const uint64_t n = (*second)->next_seq();
    const bool old = same_history && n < old_next;
    return (*second)->Publish(old ? NumberedBatch(n) : NumberedBatch(kOther + n), drop);
  };
  while ((*second)->next_seq() < old_next + 10) publish(/*drop=*/true);
  uint64_t last = 0;
  for (int i = 0; i < 400; ++i) {
    last = publish(/*drop=*/false);
    if (collector.WaitForSeq(last, milliseconds(50))) break;
  }
  ASSERT_TRUE(collector.WaitForSeq(last));
  ASSERT_TRUE(collector.WaitUntil([&](const std::vector<Received>& r) {
    return r.back().seq == last;
  }));

  std::vector<Received> received = collector.received();
  EXPECT_EQ(sub->stats().reconnects, 1u);
  size_t i = old_next;  // the old engine's batches came first, 0 .. old_next-1
  if (!same_history) {
    EXPECT_EQ(sub->stats().restarts, 1u);
    ASSERT_TRUE(IsSyntheticClear(received[i].batch));
    ++i;
    for (uint64_t seq = 0; seq <= last; ++seq, ++i) {  // the new engine's, from 0
      ASSERT_LT(i, received.size());
      EXPECT_EQ(received[i].seq, seq);
      EXPECT_EQ(received[i].batch.ts, static_cast<double>(kOther + seq));
    }
  } else {
    EXPECT_EQ(sub->stats().restarts, 0u);
    for (uint64_t seq = old_next; seq <= last; ++seq, ++i) {  // continued where it was
      ASSERT_LT(i, received.size());
      EXPECT_EQ(received[i].seq, seq);
      EXPECT_FALSE(IsSyntheticClear(received[i].batch));
    }
  }
  EXPECT_EQ(i, received.size());
}

TEST(Transport, RestartPastTheOldNumberingIsCaughtByTheContinuityCheck) {
  RestartPastTheOldNumbering(/*same_history=*/false);
}

TEST(Transport, ReconnectionToTheSameHistoryContinues) {
  RestartPastTheOldNumbering(/*same_history=*/true);
}

// A replay client speaking the protocol by hand (a DEALER, as vLLM's example subscriber).
class ReplayClient {
 public:
  explicit ReplayClient(const std::string& endpoint) {
    dealer_.set(zmq::sockopt::linger, 0);
    dealer_.connect(endpoint);
  }

  void Send(const std::vector<std::string>& frames) {
    for (size_t i = 0; i < frames.size(); ++i) {
      dealer_.send(zmq::buffer(frames[i]),
                   i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  }

  // Asks for everything from `start`; returns the replayed sequence numbers, checking every
  // reply's shape and payload, or nullopt if the end marker does not come.
  std::optional<std::vector<uint64_t>> Replay(uint64_t start) {
    Send({"", internal::SeqFrame(start)});
    std::vector<uint64_t> seqs;
    zmq::pollitem_t item{dealer_.handle(), 0, ZMQ_POLLIN, 0};
    while (zmq::poll(&item, 1, kDeadline) > 0) {
      std::vector<zmq::message_t> frames;
      if (!zmq::recv_multipart(dealer_, std::back_inserter(frames))) break;
      EXPECT_EQ(frames.size(), 3u);
      EXPECT_EQ(frames[0].size(), 0u);
      const uint64_t seq = internal::ParseSeqFrame(internal::View(frames[1])).value_or(0);
      if (seq == internal::kEndOfReplay) {
        EXPECT_EQ(frames[2].size(), 0u);
        return seqs;
      }
      EXPECT_EQ(internal::View(frames[2]), NumberedBatch(seq));
      seqs.push_back(seq);
    }
    return std::nullopt;
  }

 private:
  zmq::context_t context_;
  zmq::socket_t dealer_{context_, zmq::socket_type::dealer};
};

TEST(Replay, ServesTheBufferAndIgnoresMalformedRequests) {
  auto pub = Publisher::Start({.buffer_steps = 3});
  ASSERT_TRUE(pub.ok());
  for (int i = 0; i < 5; ++i) PublishNumbered(**pub, /*drop=*/true);
  ReplayClient client((*pub)->replay_endpoint());
  // Not [identity, "", 8-byte seq] at the ROUTER: ignored, so no reply precedes the first
  // valid request's.
  client.Send({internal::SeqFrame(0)});
  client.Send({"", internal::SeqFrame(0), "extra"});
  client.Send({"", "short"});
  EXPECT_EQ(client.Replay(0), (std::vector<uint64_t>{2, 3, 4}));  // the oldest two are gone
  EXPECT_EQ(client.Replay(4), (std::vector<uint64_t>{4}));
  EXPECT_EQ(client.Replay(9), (std::vector<uint64_t>{}));
}

// The publisher's buffer no longer holds the start of a gap: what it lacks is lost, so the
// worker is cleared before the rest is delivered.
TEST(Replay, BufferOverrunClearsTheWorkerThenDeliversTheRest) {
  auto pub = Publisher::Start({.buffer_steps = 3});
  ASSERT_TRUE(pub.ok());
  Collector collector;
  std::unique_ptr<Subscriber> sub = Subscribe(**pub, collector);
  ASSERT_TRUE(PublishUntilConnected(**pub, collector));
  const size_t before = collector.received().size();
  const uint64_t lost_before = sub->stats().lost_batches;  // a late join may have lost some
  for (int i = 0; i < 10; ++i) PublishNumbered(**pub, /*drop=*/true);
  const uint64_t last = PublishNumbered(**pub);
  ASSERT_TRUE(collector.WaitForSeq(last));

  std::vector<Received> received = collector.received();
  ASSERT_EQ(received.size(), before + 4);
  EXPECT_TRUE(IsSyntheticClear(received[before].batch));
  for (uint64_t i = 0; i < 3; ++i) EXPECT_EQ(received[before + 1 + i].seq, last - 2 + i);
  EXPECT_EQ(sub->stats().lost_batches - lost_before, 8u);
}

}  // namespace
}  // namespace kvr::events
