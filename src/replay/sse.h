// Server-sent events framing (the WHATWG "event stream" format, as vLLM and the gateway send it):
// bytes in, in pieces cut anywhere; each event's data out once its blank line has arrived.
//
//   SseParser parser;
//   for (auto& piece : pieces) for (std::string& data : parser.Feed(piece)) Handle(data);
//
// Lines end with "\n" or "\r\n" (a "\r\n" split between two pieces is fine; a lone "\r" is not
// treated as a line end). "data:" lines are joined with "\n" (one leading space after the colon is
// dropped); comment lines (":...") and other fields (event, id, retry) are ignored. An event with
// no data line is not delivered. Pure; not thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace kvr::replay {

class SseParser {
 public:
  // A line longer than this (1 MiB by default) fails the stream: a broken server must not make
  // the client buffer without bound.
  explicit SseParser(size_t max_line_bytes = size_t{1} << 20) : max_line_bytes_(max_line_bytes) {}

  // The data of every event completed by `bytes`, in order.
  std::vector<std::string> Feed(std::string_view bytes);

  // True once a line went over the bound; Feed then returns nothing more.
  bool overflowed() const { return overflowed_; }
  // True when bytes of an unfinished event are buffered (a stream that ends here was cut).
  bool pending() const { return !line_.empty() || has_data_; }

 private:
  void Line(std::string_view line, std::vector<std::string>* out);

  size_t max_line_bytes_;
  std::string line_;  // the current line, without its end
  std::string data_;  // the current event's data so far
  bool has_data_ = false;
  bool overflowed_ = false;
};

}  // namespace kvr::replay
