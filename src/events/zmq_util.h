// ZMQ pieces shared by the publisher and the subscriber: the 8-byte big-endian sequence frame,
// the replay end marker, binding to a possibly ephemeral TCP port, and cppzmq's exceptions
// turned into absl::Status. Internal to events/.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "zmq.hpp"

namespace kvr::events::internal {

// vLLM's END_SEQ = (-1).to_bytes(8, "big", signed=True): ends a replay, with an empty payload.
inline constexpr uint64_t kEndOfReplay = UINT64_MAX;

std::string SeqFrame(uint64_t seq);
// nullopt unless the frame is exactly 8 bytes.
std::optional<uint64_t> ParseSeqFrame(std::string_view frame);

inline std::string_view View(const zmq::message_t& m) {
  return std::string_view(static_cast<const char*>(m.data()), m.size());
}

// Binds `socket` to tcp://host:port (port 0: any free port) and returns the endpoint it got.
absl::StatusOr<std::string> BindTcp(zmq::socket_t& socket, const std::string& host, uint16_t port);

absl::Status ZmqError(const std::string& what, const zmq::error_t& e);

}  // namespace kvr::events::internal
