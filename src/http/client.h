// An HTTP/1.1 client for one upstream server (an engine), with a pool of kept-alive connections,
// for coroutines. A response's head arrives first; its body is then read piece by piece as the
// server sends it, so a proxy can pass an SSE stream on without buffering it.
//
//   auto pool = http::ClientPool::Create(io, {.host = "127.0.0.1", .port = 8000});
//   auto response = co_await pool->Send({.target = "/v1/completions", .body = body});
//   while (response.ok() && !(*response)->done()) { auto piece = co_await (*response)->Read(); }
//
// A connection goes back to the pool when its response was read to the end and both sides
// allow keep-alive; a cancelled or failed one is closed, which the server sees as the client
// going away (vLLM then aborts the request).
//
// Threading: a pool and its responses live on one io_context and are used from the thread that
// runs it.
#pragma once

#include <utility>  // before Asio: g++ 12 needs it for Asio's coroutine support

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "http/server.h"

namespace kvr::http {

struct ClientOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  size_t max_idle_connections = 64;  // kept open between requests
  std::chrono::milliseconds connect_timeout{3000};
  // Longest silence while waiting for the response head or the next body bytes.
  std::chrono::milliseconds read_timeout{600000};
};

struct ClientRequest {
  std::string method = "POST";
  std::string target = "/";
  std::string body;
  std::string content_type = "application/json";
  std::vector<Header> headers;  // extra fields, sent as given
};

// One response being read. Destroying it before done() closes its connection.
class ClientResponse {
 public:
  virtual ~ClientResponse() = default;
  virtual int status() const = 0;
  virtual const std::vector<Header>& headers() const = 0;  // names in lower case
  std::string_view Find(std::string_view lower_name) const;
  // The next body bytes as they arrive (never empty unless done() after the call). An error
  // (the connection failed, timed out, or was cancelled) ends the response.
  virtual asio::awaitable<absl::StatusOr<std::string>> Read() = 0;
  // Reads everything that is left.
  asio::awaitable<absl::StatusOr<std::string>> ReadAll();
  virtual bool done() const = 0;
  // Closes the connection now; a Read() in progress fails with Cancelled.
  virtual void Cancel() = 0;
};

struct ClientStats {
  uint64_t requests = 0;
  uint64_t connections_opened = 0;
  uint64_t reused = 0;         // requests sent on a pooled connection
  uint64_t stale_retries = 0;  // a pooled connection had been closed: sent again on a new one
  size_t idle = 0;             // connections in the pool now
};

class ClientPool {
 public:
  static std::shared_ptr<ClientPool> Create(asio::io_context& io, ClientOptions options);
  virtual ~ClientPool() = default;

  // Sends the request and waits for the response head. Unavailable when no connection could be
  // made or the server closed it before answering; DeadlineExceeded on a timeout.
  virtual asio::awaitable<absl::StatusOr<std::unique_ptr<ClientResponse>>> Send(
      ClientRequest request) = 0;
  // Closes every pooled connection (in-flight responses are not affected).
  virtual void CloseIdle() = 0;
  virtual ClientStats stats() const = 0;
  virtual const ClientOptions& options() const = 0;
};

// Splits "HOST:PORT" or "[V6]:PORT" (PORT 0..65535); with a default port, ":PORT" may be left
// out. The one parser of host and port, for listen addresses and upstream URLs alike.
absl::StatusOr<std::pair<std::string, uint16_t>> ParseHostPort(
    std::string_view text, std::optional<uint16_t> default_port = std::nullopt);

// Splits "http://host:port[/path]" into host and port (default 80). Only plain http is
// supported: engines sit on a trusted network next to the router.
absl::StatusOr<std::pair<std::string, uint16_t>> ParseHttpUrl(std::string_view url);

}  // namespace kvr::http
