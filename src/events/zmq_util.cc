#include "events/zmq_util.h"

#include "absl/strings/str_cat.h"

namespace kvr::events::internal {

std::string SeqFrame(uint64_t seq) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i, seq >>= 8) out[i] = static_cast<char>(seq & 0xff);
  return out;
}

std::optional<uint64_t> ParseSeqFrame(std::string_view frame) {
  if (frame.size() != 8) return std::nullopt;
  uint64_t seq = 0;
  for (char c : frame) seq = (seq << 8) | static_cast<uint8_t>(c);
  return seq;
}

absl::StatusOr<std::string> BindTcp(zmq::socket_t& socket, const std::string& host, uint16_t port) {
  const std::string address =
      absl::StrCat("tcp://", host, ":", port == 0 ? std::string("*") : absl::StrCat(port));
  try {
    socket.bind(address);
    return socket.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    return ZmqError(absl::StrCat("bind ", address), e);
  }
}

absl::Status ZmqError(const std::string& what, const zmq::error_t& e) {
  return absl::UnavailableError(absl::StrCat(what, ": ", e.what()));
}

}  // namespace kvr::events::internal
