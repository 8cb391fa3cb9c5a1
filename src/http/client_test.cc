// ClientPool against our own Server (and a bare acceptor for the stale-connection case), over
// real sockets on 127.0.0.1. Each test runs one io_context until its coroutine is done.
#include "http/client.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

namespace kvr::http {
namespace {

using asio::use_awaitable;

// Runs `test` on a fresh io_context to its end; rethrows what it threw.
template <class F>
void RunTest(asio::io_context& io, F test) {
  std::exception_ptr error;
  bool finished = false;
  asio::co_spawn(io, test(), [&](std::exception_ptr e) {
    error = e;
    finished = true;
    io.stop();
  });
  io.run();
  ASSERT_TRUE(finished);
  if (error) std::rethrow_exception(error);
}

const std::string kPieces[] = {"a", "b", "c"};

// Streams "a", "b", "c" as separate chunks, each after the client has read the one before
// (the handler waits on a timer that the test advances by cancelling it).
struct Upstream {
  explicit Upstream(asio::io_context& context) : gate(context), gone_signal(context) {
    gone_signal.expires_after(std::chrono::seconds(20));
    auto started = Server::Start(context, {}, [this](Exchange& ex) { return Handle(ex); });
    EXPECT_TRUE(started.ok());
    server = *std::move(started);
  }

  Task Handle(Exchange& ex) {
    ++requests;
    if (ex.request().path() == "/stream") {
      ex.OnClientGone([this] {
        ++gone;
        gone_signal.cancel();
      });
      std::string content_type = "text/event-stream";
      std::vector<Header> headers(1);
      headers[0].name = "x-upstream";
      headers[0].value = "yes";
      const std::string_view no_chunk;
      co_await ex.BeginStream(200, std::move(content_type), std::move(headers), no_chunk);
      for (const std::string& piece : kPieces) {
        if (!co_await ex.Write(piece)) co_return;
        gate.expires_after(std::chrono::hours(1));
        boost::system::error_code ec;
        co_await gate.async_wait(asio::redirect_error(use_awaitable, ec));
      }
      co_await ex.EndStream(no_chunk);
      co_return;
    }
    Response response;  // fields set one by one: g++ 12 miscompiles aggregates in coroutines
    response.status = ex.request().path() == "/fail" ? 503 : 200;
    response.body = "echo:" + ex.request().body;
    co_await ex.Respond(std::move(response));
  }

  ClientOptions options() const { return {.host = "127.0.0.1", .port = server->port()}; }

  asio::steady_timer gate;
  asio::steady_timer gone_signal;  // cancelled when a client goes away (deadline: 20 s)
  std::unique_ptr<Server> server;
  int requests = 0, gone = 0;
};

TEST(Client, WholeResponsesReuseOneConnection) {
  asio::io_context io;
  Upstream upstream(io);
  auto pool = ClientPool::Create(io, upstream.options());
  RunTest(io, [&]() -> Task {
    for (int i = 0; i < 3; ++i) {
      ClientRequest request;
      request.target = "/echo";
      request.body = "hi" + std::to_string(i);
      auto response = co_await pool->Send(std::move(request));
      EXPECT_TRUE(response.ok()) << response.status();
      if (!response.ok()) co_return;
      EXPECT_EQ((*response)->status(), 200);
      auto body = co_await (*response)->ReadAll();
      EXPECT_EQ(*body, "echo:hi" + std::to_string(i));
    }
    ClientRequest failing;
    failing.target = "/fail";
    auto failed = co_await pool->Send(std::move(failing));
    EXPECT_EQ((*failed)->status(), 503);
    co_await (*failed)->ReadAll();
  });
  EXPECT_EQ(pool->stats().connections_opened, 1u);
  EXPECT_EQ(pool->stats().reused, 3u);
  EXPECT_EQ(pool->stats().idle, 1u);
}

// Bodies around the server's read buffer (16 KiB, grown for a larger body once its head is
// parsed, up to 256 KiB a read, and shrunk after it) arrive whole, in any order, on one
// connection.
TEST(Client, BodiesOfEverySizeArriveWholeOnOneConnection) {
  asio::io_context io;
  Upstream upstream(io);
  auto pool = ClientPool::Create(io, upstream.options());
  const size_t sizes[] = {0, 100, (16 << 10) - 1, (16 << 10) + 1, 300 << 10, 2 << 20, 10};
  RunTest(io, [&]() -> Task {
    for (size_t i = 0; i < std::size(sizes); ++i) {
      std::string body(sizes[i], 'x');
      for (size_t j = 0; j < body.size(); j += 4093) body[j] = static_cast<char>('a' + j % 26);
      ClientRequest request;
      request.target = "/echo";
      request.body = body;
      auto response = co_await pool->Send(std::move(request));
      EXPECT_TRUE(response.ok()) << response.status();
      if (!response.ok()) co_return;
      auto echoed = co_await (*response)->ReadAll();
      EXPECT_TRUE(echoed.ok());
      if (!echoed.ok()) co_return;
      EXPECT_EQ(echoed->size(), body.size() + 5) << "body " << i;
      EXPECT_TRUE(*echoed == "echo:" + body) << "body " << i;
    }
  });
  EXPECT_EQ(pool->stats().connections_opened, 1u);
}

TEST(Client, StreamArrivesPieceByPieceAndCancelReachesTheServer) {
  asio::io_context io;
  Upstream upstream(io);
  auto pool = ClientPool::Create(io, upstream.options());
  RunTest(io, [&]() -> Task {
    ClientRequest request;
    request.target = "/stream";
    auto response = co_await pool->Send(request);
    EXPECT_EQ((*response)->Find("x-upstream"), "yes");
    EXPECT_EQ((*response)->Find("content-type"), "text/event-stream");
    std::string seen;
    for (int i = 0; i < 3; ++i) {
      auto piece = co_await (*response)->Read();
      EXPECT_TRUE(piece.ok());
      seen += *piece + "|";
      upstream.gate.cancel();  // let the server write the next piece
    }
    auto last = co_await (*response)->Read();  // the terminating chunk
    EXPECT_TRUE(last.ok() && last->empty() && (*response)->done());
    EXPECT_EQ(seen, "a|b|c|");
    response->reset();  // read to the end: back to the pool

    // A second stream, cancelled after its first piece: the server learns the client left.
    auto second = co_await pool->Send(request);
    EXPECT_EQ(pool->stats().reused, 1u);
    auto piece = co_await (*second)->Read();
    EXPECT_EQ(*piece, "a");
    (*second)->Cancel();
    auto after = co_await (*second)->Read();
    EXPECT_EQ(after.status().code(), absl::StatusCode::kCancelled);
    if (upstream.gone == 0) {
      boost::system::error_code ec;
      co_await upstream.gone_signal.async_wait(asio::redirect_error(use_awaitable, ec));
    }
    EXPECT_EQ(upstream.gone, 1);
    upstream.gate.cancel();
  });
  EXPECT_EQ(pool->stats().idle, 0u);  // the cancelled connection was closed, not pooled
}

TEST(Client, RefusedConnectionIsUnavailable) {
  asio::io_context io;
  asio::ip::tcp::acceptor closed(io, {asio::ip::make_address("127.0.0.1"), 0});
  const uint16_t port = closed.local_endpoint().port();
  closed.close();  // nothing listens on `port` now
  auto pool = ClientPool::Create(io, {.host = "127.0.0.1", .port = port});
  RunTest(io, [&]() -> Task {
    ClientRequest request;
    auto response = co_await pool->Send(std::move(request));
    EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable);
  });
}

// Out of file descriptors, the server's accept fails with the connection still in the backlog:
// it pauses instead of retrying in a loop, and serves the connection once descriptors are free.
TEST(Server, AcceptRecoversWhenFileDescriptorsAreFreeAgain) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The sanitizer runtimes need descriptors of their own while the process has none (UBSan's
  // vptr check probes memory through a pipe, and reports a false error when it cannot open one).
  GTEST_SKIP() << "needs a process that can run out of file descriptors: release build only";
#endif
  asio::io_context io;
  Upstream upstream(io);
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  int highest = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    highest = std::max(highest, std::stoi(entry.path().filename().string()));
  }
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(highest) + 64;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> filler;  // every descriptor but one: the client's socket takes it
  for (int fd; (fd = fcntl(0, F_DUPFD_CLOEXEC, 0)) >= 0;) filler.push_back(fd);
  ASSERT_FALSE(filler.empty());
  close(filler.back());
  filler.pop_back();
  auto release = [&] {
    for (int fd : filler) close(fd);
    filler.clear();
    setrlimit(RLIMIT_NOFILE, &saved);
  };
  std::string head;
  RunTest(io, [&]() -> Task {
    asio::ip::tcp::socket socket(io);
    co_await socket.async_connect({asio::ip::make_address("127.0.0.1"), upstream.server->port()},
                                  use_awaitable);
    const std::string request = "GET /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";
    co_await asio::async_write(socket, asio::buffer(request), use_awaitable);
    asio::steady_timer poll(io);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (upstream.server->accept_failures() == 0 && std::chrono::steady_clock::now() < deadline) {
      poll.expires_after(std::chrono::milliseconds(1));
      co_await poll.async_wait(use_awaitable);
    }
    EXPECT_GT(upstream.server->accept_failures(), 0u);
    // 50 ms more out of descriptors: one failure, then a pause (a slow machine only lowers the
    // count). A server that accepted again at once would fail at every turn of the loop.
    poll.expires_after(std::chrono::milliseconds(50));
    co_await poll.async_wait(use_awaitable);
    EXPECT_LE(upstream.server->accept_failures(), 2u);
    release();
    asio::streambuf buffer;
    co_await asio::async_read_until(socket, buffer, "\r\n\r\n", use_awaitable);
    head.assign(asio::buffers_begin(buffer.data()), asio::buffers_end(buffer.data()));
  });
  release();
  EXPECT_TRUE(head.starts_with("HTTP/1.1 200")) << head;
  EXPECT_EQ(upstream.requests, 1);
}

// A server that answers one request per connection with keep-alive, then closes it: the pooled
// connection is stale on the next request, which goes again on a new connection.
TEST(Client, StaleConnectionIsRetriedOnAFreshOne) {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  int accepted = 0;
  auto serve_one = [&]() -> Task {
    auto socket = co_await acceptor.async_accept(use_awaitable);
    ++accepted;
    asio::streambuf request;
    co_await asio::async_read_until(socket, request, "\r\n\r\n", use_awaitable);
    const std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    co_await asio::async_write(socket, asio::buffer(reply), use_awaitable);
    socket.close();
  };
  auto pool = ClientPool::Create(io, {.host = "127.0.0.1", .port = acceptor.local_endpoint().port()});
  RunTest(io, [&]() -> Task {
    for (int i = 0; i < 2; ++i) {
      asio::co_spawn(io, serve_one(), asio::detached);
      ClientRequest request;
      request.method = "GET";
      auto response = co_await pool->Send(std::move(request));
      EXPECT_TRUE(response.ok()) << response.status();
      if (!response.ok()) co_return;
      auto body = co_await (*response)->ReadAll();
      EXPECT_EQ(*body, "ok");
    }
  });
  EXPECT_EQ(accepted, 2);
  EXPECT_EQ(pool->stats().stale_retries, 1u);
}

TEST(Client, ParsesUrls) {
  EXPECT_EQ(*ParseHttpUrl("http://10.0.0.5:8000"), std::make_pair(std::string("10.0.0.5"),
                                                                   uint16_t{8000}));
  EXPECT_EQ(*ParseHttpUrl("http://engine/v1"), std::make_pair(std::string("engine"), uint16_t{80}));
  EXPECT_EQ(*ParseHttpUrl("[::1]:9"), std::make_pair(std::string("::1"), uint16_t{9}));
  EXPECT_FALSE(ParseHttpUrl("https://x:1").ok());
  EXPECT_FALSE(ParseHttpUrl("http://x:99999").ok());
  EXPECT_FALSE(ParseHttpUrl("http://:80").ok());
  EXPECT_FALSE(ParseHttpUrl("http://x:8o").ok());
  EXPECT_EQ(*ParseHostPort("127.0.0.1:0"), std::make_pair(std::string("127.0.0.1"), uint16_t{0}));
  EXPECT_EQ(*ParseHostPort("[::1]:8080"), std::make_pair(std::string("::1"), uint16_t{8080}));
  EXPECT_EQ(*ParseHostPort("engine", 80), std::make_pair(std::string("engine"), uint16_t{80}));
  EXPECT_FALSE(ParseHostPort("engine").ok());  // no port and no default
  EXPECT_FALSE(ParseHostPort(":80").ok());
  EXPECT_FALSE(ParseHostPort("x:65536").ok());
  EXPECT_FALSE(ParseHostPort("x:-1").ok());
  EXPECT_FALSE(ParseHostPort("[::1").ok());
  EXPECT_FALSE(ParseHostPort("[::1]x").ok());
}

}  // namespace
}  // namespace kvr::http
