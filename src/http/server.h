// An HTTP/1.1 server on Boost.Beast, for handlers written as Asio coroutines. This module is the
// only place Beast appears: handlers see a plain Request and an Exchange through which they answer
// with a whole response or a chunked stream (SSE), and learn when the client goes away.
//
//   auto server = http::Server::Start(io, {.port = 0}, [](http::Exchange& ex) -> Task {
//     co_await ex.Respond({.body = "{}"});
//   });
//
// Threading: a Server and its Exchanges live on one io_context and run on the thread(s) that run
// it; call Shutdown() on that executor. Handlers run one per connection at a time (no
// pipelining); keep-alive is honoured.
#pragma once

#include <utility>  // before Asio: g++ 12 needs it for Asio's coroutine support

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kvr::http {

namespace asio = boost::asio;
using Task = asio::awaitable<void>;

struct Header {
  std::string name;  // lower case
  std::string value;
};

struct Request {
  std::string method;  // as sent: "GET", "POST", ...
  std::string target;  // path and query
  std::string body;
  std::vector<Header> headers;
  bool keep_alive = true;

  // The value of header `lower_name`, or "" when absent.
  std::string_view Find(std::string_view lower_name) const;
  // The target without its query string.
  std::string_view path() const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<Header> headers;
};

// One request being answered. Exactly one of Respond() or BeginStream()..EndStream() per
// exchange; a handler that returns without answering gets a 500.
class Exchange {
 public:
  virtual ~Exchange() = default;
  virtual const Request& request() const = 0;
  // Writes the whole response. A failed write (client gone) is not an error for the handler.
  virtual Task Respond(Response response) = 0;
  // Writes the head of a chunked response and, when `first` is not empty, its first chunk in
  // the same write. False if the client is gone.
  virtual asio::awaitable<bool> BeginStream(int status, std::string content_type,
                                            std::vector<Header> headers,
                                            std::string_view first) = 0;
  // Writes one chunk. False if the client is gone (the handler should stop).
  virtual asio::awaitable<bool> Write(std::string_view data) = 0;
  // Writes `data` as a chunk when not empty, then the last chunk, in one write (when the client
  // is still there).
  virtual Task EndStream(std::string_view data) = 0;
  // True once the client has closed or reset the connection while this exchange ran.
  virtual bool client_gone() const = 0;
  // `callback` runs once, on the server's executor, when the client goes away before the
  // exchange ends (immediately if it already has). Replaces an earlier callback.
  virtual void OnClientGone(std::function<void()> callback) = 0;
};

using Handler = std::function<Task(Exchange&)>;

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: a free port, see Server::port()
  size_t max_body_bytes = size_t{32} << 20;
  size_t max_header_bytes = size_t{64} << 10;
  // How long an idle keep-alive connection waits for its next request.
  int idle_timeout_s = 60;
  // The body of errors the server answers itself, before any handler: 413 for a body over
  // max_body_bytes, 400 for malformed HTTP. Default: {"error":"<message>"}.
  std::function<Response(int status, std::string_view message)> error_response;
};

class Server {
 public:
  static absl::StatusOr<std::unique_ptr<Server>> Start(asio::io_context& io, ServerOptions options,
                                                       Handler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  uint16_t port() const;
  std::string address() const;  // "host:port"
  // Accepts that failed. Out of file descriptors (or memory) the server waits 100 ms before it
  // accepts again, rather than retrying at once the connection still in the backlog. Read it
  // on the executor.
  uint64_t accept_failures() const;
  // Stops accepting and closes idle connections; exchanges in progress run to their end, after
  // which their connections close. `on_drained` runs (on the executor) once none is left.
  void Shutdown(std::function<void()> on_drained);

  struct State;  // shared with the connections (server.cc)

 private:
  explicit Server(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

}  // namespace kvr::http
