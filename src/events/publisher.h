// A KV-event publisher that speaks exactly what vLLM's ZmqEventPublisher speaks: a PUB socket
// sending [topic, seq (8 bytes big-endian), payload] and a ROUTER socket replaying the last
// `buffer_steps` batches on request. Used by the simulated engine and to test the subscriber.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace kvr::events {

struct PublisherOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: any free port (see endpoint())
  bool replay = true;
  uint16_t replay_port = 0;     // 0: any free port (see replay_endpoint())
  size_t buffer_steps = 10000;  // batches kept for replay (vLLM's default)
  std::string topic;            // vLLM's default: empty
  int hwm = 100000;             // PUB send high-water mark, in messages (vLLM's default)
};

// Thread-safe. The publisher owns one thread, the only user of its PUB and ROUTER sockets (ZMQ
// sockets are not thread-safe); Publish queues each batch for it and wakes it over an inproc
// pipe. The thread serves replay requests between batches, so a replay holds every batch up to
// the newest one a subscriber can have seen. Publish never blocks on the network.
class Publisher {
 public:
  static absl::StatusOr<std::unique_ptr<Publisher>> Start(PublisherOptions options);
  // Stops the thread and closes the sockets without lingering: unsent batches are dropped.
  ~Publisher();

  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  // The bound endpoints, e.g. "tcp://127.0.0.1:40124"; replay_endpoint() is "" without replay.
  const std::string& endpoint() const;
  const std::string& replay_endpoint() const;

  // Assigns the next sequence number (0, 1, 2, ...), keeps the batch for replay and sends it
  // live unless `drop`. A dropped batch (a fault, as a full PUB queue would cause) still takes
  // its sequence number and is still replayed, so subscribers see a gap they can repair.
  // Returns the batch's sequence number.
  uint64_t Publish(std::string payload, bool drop = false);
  uint64_t next_seq() const;

 private:
  class Impl;  // the ZMQ sockets and the thread; ZMQ headers stay out of this header
  explicit Publisher(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace kvr::events
