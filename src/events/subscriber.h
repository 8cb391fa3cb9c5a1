// The router's side of one engine's KV events: a SUB socket on the engine's publisher, sequence
// tracking, replay of what was missed over a DEALER socket, and restart detection.
// Batches reach the sink decoded, in sequence order, each once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/ids.h"
#include "events/codec.h"

namespace kvr::events {

struct SubscriberOptions {
  std::string endpoint;         // the engine's PUB, e.g. "tcp://10.0.0.5:5557"
  std::string replay_endpoint;  // its replay ROUTER; "" = none (gaps then cost the worker's state)
  std::string topic;            // prefix filter; vLLM's default topic is empty
  WorkerId worker;              // stamped on every decoded event
  // A replay that stays silent this long is abandoned (the publisher may be gone); what it did
  // not bring back is then lost.
  std::chrono::milliseconds replay_timeout{5000};
  // After a live batch (or the connection), this long without another: ask the replay socket
  // for what follows the last batch delivered (0: never). Catches batches published before
  // our subscription reached the publisher, and a lost last batch of a burst. While the stream
  // stays quiet the probe repeats, each wait twice the last, up to quiet_probe_max: a batch
  // lost after a probe came back empty is not left until the engine's next live batch.
  std::chrono::milliseconds quiet_probe{1000};
  std::chrono::milliseconds quiet_probe_max{32000};
};

struct SubscriberStats {
  uint64_t batches = 0;           // decoded batches delivered, live and replayed
  uint64_t events = 0;            // events in them
  uint64_t skipped_events = 0;    // events the codec left out (DecodedBatch::skipped)
  uint64_t decode_errors = 0;     // messages or payloads that could not be decoded, skipped
  uint64_t gaps = 0;              // live sequence jumps forward
  uint64_t replays = 0;           // replay requests sent (quiet-spell probes included)
  uint64_t replayed_batches = 0;  // batches delivered from a replay
  uint64_t restarts = 0;          // the engine restarted (or, with no replay socket, may have)
  uint64_t reconnects = 0;        // the connection to the publisher dropped
  uint64_t lost_batches = 0;      // sequence numbers neither received nor replayed
};

// Owns one thread, which calls the sink. The sink sees every batch once, in sequence order.
// When state was lost — an engine restart, or batches no replay could bring back — the sink
// first gets a synthetic batch holding one KvCleared for the worker (ts 0, the sequence number
// of the batch that follows it), so the index drops what may be stale; not when the sink has
// received nothing since the last clear.
//
// Sequence rules: the first batch seen starts the stream; if it is not 0 and a replay endpoint
// is set, everything from 0 is replayed first, so a router that starts after the engine is
// exact. A later jump forward asks for a replay from the next expected number. A number below
// the next expected one is either a batch a replay already delivered (dropped) or an engine
// restart (vLLM restarts at 0), which also starts the stream over. After the connection to the
// publisher drops, a restarted engine's numbering may already have passed ours: the first batch
// after the reconnection is checked by replaying from the last number delivered; a different
// batch there (or no replay socket to ask) is a restart too. Once the stream has been quiet
// for quiet_probe after the connection or a live batch, what follows the last batch delivered
// is asked for (the batches no live one has revealed missing yet), and again after twice as
// long, and so on up to quiet_probe_max, until a live batch comes.
class Subscriber {
 public:
  using Sink = std::function<void(uint64_t seq, DecodedBatch batch)>;

  static absl::StatusOr<std::unique_ptr<Subscriber>> Start(SubscriberOptions options, Sink sink);
  // Wakes the thread and joins it (no timeout involved; a replay in progress is abandoned).
  ~Subscriber();

  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  SubscriberStats stats() const;
  // The sequence number of the last batch delivered; nullopt before the first.
  std::optional<uint64_t> last_seq() const;

 private:
  class Impl;  // ZMQ headers stay out of this header
  explicit Subscriber(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace kvr::events
