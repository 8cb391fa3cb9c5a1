// I/O that completes at once without a hop through the I/O loop (internal to src/http:
// server.cc and client.cc, the only Beast translation units).
//
// An asynchronous operation that needs no I/O, or that the socket serves at once, still
// completes through a posted handler, and on a single I/O thread each posted hop costs a pass
// through epoll_wait: a streamed answer of ten chunks cost the gateway about 30 epoll_wait
// calls. WriteNow writes what the socket takes now, without blocking, and leaves only the rest
// (a full send buffer) to an asynchronous write; the socket must be in non-blocking mode
// (socket().non_blocking(true)), else a full send buffer would block the thread. ParseBuffered
// parses the bytes a read already brought.
#pragma once

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace kvr::http::internal {

inline bool WouldBlock(const boost::system::error_code& ec) {
  return ec == boost::asio::error::would_block || ec == boost::asio::error::try_again;
}

template <typename Stream, typename Buffers>
boost::asio::awaitable<void> WriteNow(Stream& stream, const Buffers& buffers,
                                      boost::system::error_code& ec) {
  const size_t sent = boost::asio::write(stream.socket(), buffers, ec);
  if (!WouldBlock(ec)) co_return;
  ec = {};
  boost::beast::buffers_suffix<Buffers> rest(buffers);
  rest.consume(sent);
  co_await boost::asio::async_write(stream, rest,
                                    boost::asio::redirect_error(boost::asio::use_awaitable, ec));
}

// A whole HTTP message through its serializer, which keeps its place between the two writes.
template <typename Stream, bool kIsRequest, typename Body, typename Fields>
boost::asio::awaitable<void> WriteNow(Stream& stream,
                                      boost::beast::http::serializer<kIsRequest, Body, Fields>& sr,
                                      boost::system::error_code& ec) {
  boost::beast::http::write(stream.socket(), sr, ec);
  if (!WouldBlock(ec)) co_return;
  ec = {};
  co_await boost::beast::http::async_write(
      stream, sr, boost::asio::redirect_error(boost::asio::use_awaitable, ec));
}

// Parses what `buffer` already holds, with no I/O. Stops at the end of the message, where the
// parser needs more bytes, or where a buffer_body's room is full; returns whether any byte was
// used. A parse error is left in `ec`.
template <bool kIsRequest, typename Body, typename Allocator>
bool ParseBuffered(boost::beast::http::parser<kIsRequest, Body, Allocator>& parser,
                   boost::beast::flat_buffer& buffer, boost::system::error_code& ec) {
  namespace bhttp = boost::beast::http;
  bool parsed = false;
  while (buffer.size() > 0 && !parser.is_done()) {
    const size_t used = parser.put(buffer.data(), ec);
    buffer.consume(used);
    parsed = parsed || used > 0;
    if (ec == bhttp::error::need_more || ec == bhttp::error::need_buffer) {
      ec = {};
      break;
    }
    if (ec || used == 0) break;
  }
  return parsed;
}

}  // namespace kvr::http::internal
