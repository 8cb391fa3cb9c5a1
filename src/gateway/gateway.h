// `kvrouter serve`: the KV-aware gateway. It accepts OpenAI-compatible requests, renders and
// tokenizes each prompt exactly as its engine will, asks the pool's scheduler which worker can
// skip the most prefill without overloading anyone, forwards the original body there and
// streams the answer back as it arrives. Engines' KV events keep the index exact; health checks
// and engines' /metrics keep the candidate set and load honest.
//
// Threading: one I/O thread runs `io` (the HTTP server, upstream connections, health and metrics
// polls, the admission queue); rendering, tokenizing and hashing run on a small CPU pool; each
// worker's KV events arrive on its subscriber's thread. Start, ReadyLine and Shutdown are called
// on the I/O thread (or before it runs).
#pragma once

#include <utility>  // before Asio: g++ 12 needs it for Asio's coroutine support

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "gateway/config.h"

namespace kvr::gateway {

class Gateway {
 public:
  // Loads every pool (tokenizers, templates), subscribes to every worker's events, starts
  // health checks and listens. InvalidArgument names the config field at fault.
  static absl::StatusOr<std::unique_ptr<Gateway>> Start(boost::asio::io_context& io,
                                                        GatewayConfig config,
                                                        const Clock& clock = SystemClock::Get());
  ~Gateway();

  // {"http":"127.0.0.1:PORT"}
  std::string ReadyLine() const;
  // Stops accepting; requests in flight finish, or are cut (an SSE error event, or 503) once
  // shutdown_grace_ms has passed; then `done` runs.
  void Shutdown(std::function<void()> done);

  class Impl;

 private:
  explicit Gateway(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvr::gateway
