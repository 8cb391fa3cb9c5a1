#include "http/client.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <limits>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "http/io_now.h"

namespace kvr::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using Parser = bhttp::response_parser<bhttp::buffer_body>;

constexpr size_t kReadChunk = 16 << 10;

auto Redirect(error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

struct Connection {
  // Beast reads at most the buffer's free room, 512 bytes when it has none, and the parser
  // consumes all it reads, so an unreserved buffer never grows: room for a whole answer's head
  // and body, or many stream chunks, in one read.
  explicit Connection(asio::io_context& io) : stream(io) { buffer.reserve(kReadChunk); }
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
};

// What a failed exchange means to the caller: a timeout, or the upstream being unreachable.
absl::Status StatusOf(const error_code& ec, std::string_view what, std::string_view target) {
  const std::string message =
      absl::StrCat(std::string(what), " ", std::string(target), ": ", ec.message());
  if (ec == beast::error::timeout) return absl::DeadlineExceededError(message);
  if (ec == asio::error::operation_aborted) return absl::CancelledError(message);
  return absl::UnavailableError(message);
}

// A pooled connection the server closed while it sat idle fails at once, before any answer:
// the request never reached a handler and can go again on a fresh connection.
bool IsStale(const error_code& ec) {
  return ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe;
}

bool ParsePort(std::string_view text, uint32_t* port) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *port);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::string_view ClientResponse::Find(std::string_view lower_name) const {
  for (const Header& h : headers()) {
    if (h.name == lower_name) return h.value;
  }
  return {};
}

asio::awaitable<absl::StatusOr<std::string>> ClientResponse::ReadAll() {
  std::string all;
  while (!done()) {
    absl::StatusOr<std::string> piece = co_await Read();
    if (!piece.ok()) co_return piece.status();
    all += *piece;
  }
  co_return all;
}

class PoolImpl;

class ResponseImpl final : public ClientResponse {
 public:
  ResponseImpl(std::shared_ptr<PoolImpl> pool, std::unique_ptr<Connection> connection,
               std::unique_ptr<Parser> parser);
  ~ResponseImpl() override;

  int status() const override { return status_; }
  const std::vector<Header>& headers() const override { return headers_; }
  asio::awaitable<absl::StatusOr<std::string>> Read() override;
  bool done() const override { return done_; }
  void Cancel() override {
    if (done_ || !connection_) return;
    cancelled_ = true;
    connection_->stream.close();
  }

 private:
  std::shared_ptr<PoolImpl> pool_;
  std::unique_ptr<Connection> connection_;
  std::unique_ptr<Parser> parser_;
  std::vector<Header> headers_;
  std::string buffer_;
  int status_ = 0;
  bool done_ = false, failed_ = false, cancelled_ = false;
};

class PoolImpl final : public ClientPool, public std::enable_shared_from_this<PoolImpl> {
 public:
  PoolImpl(asio::io_context& io, ClientOptions options)
      : io_(io), options_(std::move(options)), resolver_(io) {}

  asio::awaitable<absl::StatusOr<std::unique_ptr<ClientResponse>>> Send(
      ClientRequest request) override;
  void CloseIdle() override { idle_.clear(); }
  ClientStats stats() const override {
    ClientStats s = stats_;
    s.idle = idle_.size();
    return s;
  }
  const ClientOptions& options() const override { return options_; }

  void Return(std::unique_ptr<Connection> connection) {
    if (idle_.size() < options_.max_idle_connections) idle_.push_back(std::move(connection));
  }

 private:
  asio::awaitable<absl::StatusOr<std::unique_ptr<Connection>>> Connect();

  asio::io_context& io_;
  const ClientOptions options_;
  tcp::resolver resolver_;
  std::vector<std::unique_ptr<Connection>> idle_;  // most recently used last
  ClientStats stats_;
};

ResponseImpl::ResponseImpl(std::shared_ptr<PoolImpl> pool, std::unique_ptr<Connection> connection,
                           std::unique_ptr<Parser> parser)
    : pool_(std::move(pool)), connection_(std::move(connection)), parser_(std::move(parser)) {
  const auto& head = parser_->get();
  status_ = static_cast<int>(head.result_int());
  for (const auto& field : head) {
    headers_.push_back(
        {absl::AsciiStrToLower(std::string(field.name_string())), std::string(field.value())});
  }
  done_ = parser_->is_done();
}

ResponseImpl::~ResponseImpl() {
  if (!connection_) return;
  if (done_ && !failed_ && !cancelled_ && parser_->get().keep_alive()) {
    connection_->stream.expires_never();
    pool_->Return(std::move(connection_));
  } else {
    connection_->stream.close();
  }
}

// Bytes the connection's buffer already holds are parsed without a hop (io_now.h), before and
// after a read: a read returns every chunk that has arrived, up to the room of its buffer, not
// one chunk at a time.
asio::awaitable<absl::StatusOr<std::string>> ResponseImpl::Read() {
  if (cancelled_) co_return absl::CancelledError("upstream response cancelled");
  std::string out;
  buffer_.resize(kReadChunk);
  while (!done_ && out.empty()) {
    auto& body = parser_->get().body();
    body.data = buffer_.data();
    body.size = buffer_.size();
    error_code ec;
    if (!internal::ParseBuffered(*parser_, connection_->buffer, ec) && !ec) {
      connection_->stream.expires_after(pool_->options().read_timeout);
      co_await bhttp::async_read_some(connection_->stream, connection_->buffer, *parser_,
                                      Redirect(ec));
      if (ec == bhttp::error::need_buffer) ec = {};
      // What the read brought beyond the parser's first step, while the body has room.
      if (!ec && body.size > 0) internal::ParseBuffered(*parser_, connection_->buffer, ec);
    }
    if (cancelled_) ec = asio::error::operation_aborted;
    if (ec) {
      failed_ = done_ = true;
      co_return StatusOf(ec, "reading the response to", "");
    }
    out.append(buffer_.data(), buffer_.size() - body.size);
    done_ = parser_->is_done();
  }
  co_return out;
}

asio::awaitable<absl::StatusOr<std::unique_ptr<Connection>>> PoolImpl::Connect() {
  error_code ec;
  const std::string port = std::to_string(options_.port);
  auto endpoints = co_await resolver_.async_resolve(options_.host, port, Redirect(ec));
  const std::string where = absl::StrCat(options_.host, ":", port);
  if (ec) co_return StatusOf(ec, "resolving", where);
  auto connection = std::make_unique<Connection>(io_);
  connection->stream.expires_after(options_.connect_timeout);
  co_await connection->stream.async_connect(endpoints, Redirect(ec));
  if (ec) co_return StatusOf(ec, "connecting to", where);
  connection->stream.socket().set_option(tcp::no_delay(true), ec);
  connection->stream.socket().non_blocking(true, ec);  // for internal::WriteNow
  ++stats_.connections_opened;
  co_return connection;
}

asio::awaitable<absl::StatusOr<std::unique_ptr<ClientResponse>>> PoolImpl::Send(
    ClientRequest request) {
  auto self = shared_from_this();
  ++stats_.requests;
  bhttp::request<bhttp::string_body> message{bhttp::string_to_verb(request.method),
                                             request.target, 11};
  message.set(bhttp::field::host, absl::StrCat(options_.host, ":", options_.port));
  message.set(bhttp::field::user_agent, "kvrouter");
  if (!request.body.empty() || request.method == "POST") {
    message.set(bhttp::field::content_type, request.content_type);
  }
  for (const Header& h : request.headers) message.set(h.name, h.value);
  message.keep_alive(true);
  message.body() = std::move(request.body);
  message.prepare_payload();
  for (int attempt = 0;; ++attempt) {
    std::unique_ptr<Connection> connection;
    const bool reused = !idle_.empty() && attempt == 0;
    if (reused) {
      connection = std::move(idle_.back());
      idle_.pop_back();
      ++stats_.reused;
    } else {
      absl::StatusOr<std::unique_ptr<Connection>> fresh = co_await Connect();
      if (!fresh.ok()) co_return fresh.status();
      connection = *std::move(fresh);
    }
    error_code ec;
    connection->stream.expires_after(options_.read_timeout);
    bhttp::request_serializer<bhttp::string_body> sr{message};
    co_await internal::WriteNow(connection->stream, sr, ec);
    auto parser = std::make_unique<Parser>();
    parser->body_limit(std::numeric_limits<std::uint64_t>::max());
    if (!ec) {
      co_await bhttp::async_read_header(connection->stream, connection->buffer, *parser,
                                        Redirect(ec));
    }
    if (ec && reused && IsStale(ec)) {
      ++stats_.stale_retries;
      continue;
    }
    if (ec) co_return StatusOf(ec, "sending", request.target);
    co_return std::make_unique<ResponseImpl>(self, std::move(connection), std::move(parser));
  }
}

std::shared_ptr<ClientPool> ClientPool::Create(asio::io_context& io, ClientOptions options) {
  return std::make_shared<PoolImpl>(io, std::move(options));
}

absl::StatusOr<std::pair<std::string, uint16_t>> ParseHostPort(
    std::string_view text, std::optional<uint16_t> default_port) {
  const auto bad = [&](const char* why) {
    return absl::InvalidArgumentError(absl::StrCat("'", std::string(text), "': ", why));
  };
  std::string_view host = text;
  std::string_view port_text;
  bool has_port = false;
  if (host.starts_with('[')) {  // [v6] or [v6]:port
    const size_t close = host.find(']');
    if (close == std::string_view::npos) return bad("bad IPv6 host");
    const std::string_view after = host.substr(close + 1);
    if (!after.empty() && after[0] != ':') return bad("bad port");
    has_port = !after.empty();
    if (has_port) port_text = after.substr(1);
    host = host.substr(1, close - 1);
  } else if (const size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    has_port = true;
    port_text = host.substr(colon + 1);
    host = host.substr(0, colon);
  }
  if (host.empty()) return bad("no host");
  uint32_t port = default_port.value_or(0);
  if (has_port && !ParsePort(port_text, &port)) return bad("bad port");
  if (!has_port && !default_port) return bad("no port (HOST:PORT)");
  if (port > 65535) return bad("port out of range");
  return std::make_pair(std::string(host), static_cast<uint16_t>(port));
}

absl::StatusOr<std::pair<std::string, uint16_t>> ParseHttpUrl(std::string_view url) {
  std::string_view rest = url;
  if (rest.starts_with("https://")) {
    return absl::InvalidArgumentError(absl::StrCat("'", std::string(url),
                                                   "': https upstreams are not supported"));
  }
  if (rest.starts_with("http://")) rest.remove_prefix(7);
  absl::StatusOr<std::pair<std::string, uint16_t>> host_port =
      ParseHostPort(rest.substr(0, rest.find('/')), 80);
  if (!host_port.ok() || host_port->second == 0) {
    return absl::InvalidArgumentError(absl::StrCat("'", std::string(url),
                                                   "' is not http://HOST:PORT"));
  }
  return host_port;
}

}  // namespace kvr::http
