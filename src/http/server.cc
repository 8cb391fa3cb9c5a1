#include "http/server.h"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <chrono>
#include <exception>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "http/io_now.h"

namespace kvr::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr auto kWriteTimeout = std::chrono::seconds(30);
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

// A connection's read buffer. Beast reads at most the buffer's free room (512 bytes when it has
// none), and a flat_buffer grows only when unconsumed bytes need more room; the request parser
// consumes every byte it reads, so a buffer left to itself stays at 512 bytes and a 10 KB body
// takes 20 reads, each re-arming the stream's timer. The buffer starts at kReadBuffer; a body
// larger than its room gets room for all of it (up to kMaxReadBuffer) once the head is parsed,
// and the buffer goes back to kReadBuffer after such a request.
constexpr size_t kReadBuffer = 16 << 10;
constexpr size_t kMaxReadBuffer = 256 << 10;

auto Redirect(error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

Response DefaultError(int status, std::string_view message) {
  std::string escaped;
  for (char ch : message) {
    if (ch == '"' || ch == '\\') escaped += '\\';
    escaped += ch;
  }
  return {.status = status, .body = absl::StrCat("{\"error\":\"", escaped, "\"}")};
}

bool IsHttpProtocolError(const error_code& ec) {
  return ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category();
}

}  // namespace

std::string_view Request::Find(std::string_view lower_name) const {
  for (const Header& h : headers) {
    if (h.name == lower_name) return h.value;
  }
  return {};
}

std::string_view Request::path() const {
  std::string_view t = target;
  return t.substr(0, t.find('?'));
}

class Connection;

struct Server::State : std::enable_shared_from_this<Server::State> {
  State(asio::io_context& io_context, ServerOptions opts, Handler h)
      : io(io_context), options(std::move(opts)), handler(std::move(h)), acceptor(io_context) {}

  Task AcceptLoop();
  void MaybeDrained() {
    if (!stopping || busy > 0 || !on_drained) return;
    asio::post(io, std::exchange(on_drained, nullptr));
  }

  asio::io_context& io;
  ServerOptions options;
  Handler handler;
  tcp::acceptor acceptor;
  bool stopping = false;
  size_t busy = 0;  // exchanges in progress
  uint64_t accept_failures = 0;
  std::function<void()> on_drained;
  std::set<Connection*> connections;
};

// One client connection: reads requests one at a time and runs the handler for each.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<Server::State> state, tcp::socket socket)
      : state_(std::move(state)), stream_(std::move(socket)) {
    state_->connections.insert(this);
    error_code ignored;
    stream_.socket().non_blocking(true, ignored);  // for internal::WriteNow
  }
  ~Connection() { state_->connections.erase(this); }

  // `self` keeps the connection alive for as long as the coroutine runs.
  Task Run(std::shared_ptr<Connection> self);
  // Closes the connection if it is waiting for a request (server shutdown).
  void CloseIfIdle() {
    if (idle_) stream_.socket().close();
  }

 private:
  friend class ExchangeImpl;
  // Watches the socket while a handler runs: readable with nothing to read means the client
  // closed (or reset) the connection, which vLLM treats as a cancel.
  void Watch();
  void StopWatching() {
    ++watch_generation_;
    error_code ignored;
    stream_.socket().cancel(ignored);
  }
  void MarkGone() {
    if (gone_) return;
    gone_ = true;
    if (on_gone_) std::exchange(on_gone_, nullptr)();
  }
  Task Close() {
    error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
    co_return;
  }
  Task ServeOne(bhttp::request<bhttp::string_body> message);
  Task AnswerReadError(const error_code& ec);

  std::shared_ptr<Server::State> state_;
  beast::tcp_stream stream_;
  bool idle_ = false;
  bool gone_ = false;
  bool broken_ = false;  // a write failed or the exchange left the stream unfinished
  uint64_t watch_generation_ = 0;
  char peek_ = 0;  // Watch's one-byte peek lands here
  std::function<void()> on_gone_;
};

// The head of a chunked response as bytes, so that it can share one write with a chunk.
std::string HeadBytes(bhttp::response<bhttp::empty_body>& res) {
  bhttp::response_serializer<bhttp::empty_body> serializer{res};
  serializer.split(true);
  std::string head;
  error_code ec;
  while (!ec && !serializer.is_header_done()) {
    serializer.next(ec, [&](error_code&, const auto& buffers) {
      head += beast::buffers_to_string(buffers);
      serializer.consume(beast::buffer_bytes(buffers));
    });
  }
  return head;
}

class ExchangeImpl final : public Exchange {
 public:
  ExchangeImpl(Connection& c, Request request) : c_(c), request_(std::move(request)) {}

  const Request& request() const override { return request_; }

  Task Respond(Response r) override {
    answered_ = true;
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(r.status), 11};
    SetHead(res, r.content_type, r.headers);
    res.body() = std::move(r.body);
    res.prepare_payload();
    error_code ec;
    c_.stream_.expires_after(kWriteTimeout);
    bhttp::response_serializer<bhttp::string_body> sr{res};
    co_await internal::WriteNow(c_.stream_, sr, ec);
    if (ec) c_.broken_ = true;
  }

  asio::awaitable<bool> BeginStream(int status, std::string content_type,
                                    std::vector<Header> headers, std::string_view first) override {
    answered_ = streaming_ = true;
    bhttp::response<bhttp::empty_body> res{static_cast<bhttp::status>(status), 11};
    SetHead(res, content_type, headers);
    res.chunked(true);
    const std::string head = HeadBytes(res);
    error_code ec;
    c_.stream_.expires_after(kWriteTimeout);
    if (first.empty()) {
      const asio::const_buffer only = asio::buffer(head);
      co_await internal::WriteNow(c_.stream_, only, ec);
    } else {
      auto chunk = bhttp::make_chunk(asio::buffer(first));
      auto both = beast::buffers_cat(asio::buffer(head), chunk);
      co_await internal::WriteNow(c_.stream_, both, ec);
    }
    if (ec) c_.broken_ = true;
    co_return !c_.broken_ && !c_.gone_;
  }

  asio::awaitable<bool> Write(std::string_view data) override {
    if (c_.broken_ || c_.gone_) co_return false;
    if (data.empty()) co_return true;  // an empty chunk would end the body
    error_code ec;
    c_.stream_.expires_after(kWriteTimeout);
    auto chunk = bhttp::make_chunk(asio::buffer(data));
    co_await internal::WriteNow(c_.stream_, chunk, ec);
    if (ec) c_.broken_ = true;
    co_return !c_.broken_ && !c_.gone_;
  }

  Task EndStream(std::string_view data) override {
    ended_ = true;
    if (c_.broken_ || c_.gone_) co_return;
    error_code ec;
    c_.stream_.expires_after(kWriteTimeout);
    auto last = bhttp::make_chunk_last();
    if (data.empty()) {
      co_await internal::WriteNow(c_.stream_, last, ec);
    } else {
      auto chunk = bhttp::make_chunk(asio::buffer(data));
      auto both = beast::buffers_cat(chunk, last);
      co_await internal::WriteNow(c_.stream_, both, ec);
    }
    if (ec) c_.broken_ = true;
  }

  bool client_gone() const override { return c_.gone_; }

  void OnClientGone(std::function<void()> callback) override {
    if (c_.gone_) {
      asio::post(c_.state_->io, std::move(callback));
      return;
    }
    c_.on_gone_ = std::move(callback);
  }

  bool answered() const { return answered_; }
  // A stream whose last chunk was never written cannot carry another response.
  bool unfinished() const { return streaming_ && !ended_; }

 private:
  template <class Message>
  void SetHead(Message& res, std::string_view content_type, const std::vector<Header>& headers) {
    res.set(bhttp::field::server, "kvrouter");
    res.set(bhttp::field::content_type, beast::string_view(content_type.data(), content_type.size()));
    for (const Header& h : headers) res.set(h.name, h.value);
    res.keep_alive(request_.keep_alive && !c_.state_->stopping);
  }

  Connection& c_;
  Request request_;
  bool answered_ = false, streaming_ = false, ended_ = false;
};

// A one-byte peek rather than async_wait(wait_read): asio starts every wait with an epoll_ctl
// call to re-arm the socket, one system call per request, where a read queued after a read that
// drained the socket costs none (the socket stays registered for input).
void Connection::Watch() {
  const uint64_t generation = watch_generation_;
  stream_.socket().async_receive(
      asio::buffer(&peek_, 1), tcp::socket::message_peek,
      [self = shared_from_this(), generation](const error_code& ec, size_t n) {
        if (generation != self->watch_generation_ || ec == asio::error::operation_aborted) return;
        // A byte waiting is a pipelined request: nothing more can be learnt until it is read.
        // End of stream (the client closed) or an error (a reset): the client is gone.
        if (ec || n == 0) self->MarkGone();
      });
}

Task Connection::AnswerReadError(const error_code& ec) {
  if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message ||
      !IsHttpProtocolError(ec)) {
    co_return;  // the client left or the network failed: nobody to answer
  }
  int status = 400;
  std::string message = absl::StrCat("malformed HTTP request: ", ec.message());
  if (ec == bhttp::error::body_limit) {
    status = 413;
    message = absl::StrCat("request body is larger than ", state_->options.max_body_bytes,
                           " bytes");
  } else if (ec == bhttp::error::header_limit) {
    status = 431;
    message = "request header fields too large";
  }
  const auto& make = state_->options.error_response;
  ExchangeImpl exchange(*this, Request{.keep_alive = false});
  Response response = make ? make(status, message) : DefaultError(status, message);
  co_await exchange.Respond(std::move(response));
}

Task Connection::ServeOne(bhttp::request<bhttp::string_body> message) {
  Request request{.method = std::string(message.method_string()),
                  .target = std::string(message.target()),
                  .body = std::move(message.body()),
                  .keep_alive = message.keep_alive()};
  for (const auto& field : message) {
    request.headers.push_back(
        {absl::AsciiStrToLower(std::string(field.name_string())), std::string(field.value())});
  }
  ExchangeImpl exchange(*this, std::move(request));
  ++state_->busy;
  Watch();
  bool failed = false;
  try {
    co_await state_->handler(exchange);
  } catch (const std::exception& e) {
    KVR_LOG("http", error, "handler for {} failed: {}", exchange.request().target, e.what());
    failed = true;
  }
  StopWatching();
  on_gone_ = nullptr;
  if (!exchange.answered() && !gone_ && !broken_) {
    const auto& make = state_->options.error_response;
    const char* what = failed ? "internal error" : "no response";
    Response response = make ? make(500, what) : DefaultError(500, what);
    co_await exchange.Respond(std::move(response));
  }
  if (exchange.unfinished() || !exchange.request().keep_alive) broken_ = true;
  --state_->busy;
  state_->MaybeDrained();
}

Task Connection::Run(std::shared_ptr<Connection> /*self: held by the frame*/) {
  beast::flat_buffer buffer;
  buffer.reserve(kReadBuffer);
  while (!state_->stopping && !gone_ && !broken_) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.body_limit(state_->options.max_body_bytes);
    parser.header_limit(static_cast<uint32_t>(state_->options.max_header_bytes));
    idle_ = true;
    stream_.expires_after(std::chrono::seconds(state_->options.idle_timeout_s));
    error_code ec;
    co_await bhttp::async_read_header(stream_, buffer, parser, Redirect(ec));
    // A body that came with its head is parsed without a hop (io_now.h).
    if (!ec) internal::ParseBuffered(parser, buffer, ec);
    if (!ec && !parser.is_done()) {
      const uint64_t body = parser.content_length().value_or(0);
      if (body > buffer.capacity() - buffer.size()) {
        buffer.reserve(static_cast<size_t>(
            std::min<uint64_t>(buffer.size() + body, std::max(kMaxReadBuffer, buffer.size()))));
      }
      co_await bhttp::async_read(stream_, buffer, parser, Redirect(ec));
    }
    idle_ = false;
    if (buffer.capacity() > kReadBuffer && buffer.size() <= kReadBuffer) {
      beast::flat_buffer smaller;
      smaller.reserve(kReadBuffer);
      smaller.commit(asio::buffer_copy(smaller.prepare(buffer.size()), buffer.data()));
      buffer = std::move(smaller);
    }
    if (ec) {
      co_await AnswerReadError(ec);
      break;
    }
    stream_.expires_never();
    bhttp::request<bhttp::string_body> message = parser.release();
    co_await ServeOne(std::move(message));
  }
  co_await Close();
}

Task Server::State::AcceptLoop() {
  auto self = shared_from_this();
  while (!stopping) {
    error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(Redirect(ec));
    if (stopping) co_return;
    if (ec) {
      KVR_LOG("http", warn, "accept failed: {}", ec.message());
      ++accept_failures;
      if (ec == asio::error::bad_descriptor) co_return;
      if (ec == asio::error::no_descriptors || ec.value() == ENFILE ||
          ec == asio::error::no_buffer_space || ec == asio::error::no_memory) {
        // Out of file descriptors or memory: the pending connection stays in the backlog and
        // accept would fail again at once. Let streams end before the next try.
        asio::steady_timer pause(io, kAcceptBackoff);
        co_await pause.async_wait(Redirect(ec));
      }
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    auto connection = std::make_shared<Connection>(self, std::move(socket));
    asio::co_spawn(io, connection->Run(connection), asio::detached);
  }
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(asio::io_context& io, ServerOptions options,
                                                      Handler handler) {
  error_code ec;
  const auto address = asio::ip::make_address(options.host, ec);
  if (ec) return absl::InvalidArgumentError("bad listen address '" + options.host + "'");
  auto state = std::make_shared<State>(io, std::move(options), std::move(handler));
  const tcp::endpoint endpoint(address, state->options.port);
  state->acceptor.open(endpoint.protocol(), ec);
  if (!ec) state->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) state->acceptor.bind(endpoint, ec);
  if (!ec) state->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", state->options.host, ":",
                                               state->options.port, ": ", ec.message()));
  }
  asio::co_spawn(io, state->AcceptLoop(), asio::detached);
  return std::unique_ptr<Server>(new Server(std::move(state)));
}

Server::Server(std::shared_ptr<State> state) : state_(std::move(state)) {}

Server::~Server() {
  state_->stopping = true;
  error_code ignored;
  state_->acceptor.close(ignored);
}

uint16_t Server::port() const {
  error_code ec;
  return state_->acceptor.local_endpoint(ec).port();
}

uint64_t Server::accept_failures() const { return state_->accept_failures; }

std::string Server::address() const { return absl::StrCat(state_->options.host, ":", port()); }

void Server::Shutdown(std::function<void()> on_drained) {
  state_->stopping = true;
  state_->on_drained = std::move(on_drained);
  error_code ignored;
  state_->acceptor.close(ignored);
  for (Connection* c : state_->connections) c->CloseIfIdle();
  state_->MaybeDrained();
}

}  // namespace kvr::http
