// The last step of every long-running subcommand (serve, engine-sim): print the readiness line,
// run the loop, and drain on SIGINT/SIGTERM.
#pragma once

#include <utility>  // before Asio

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <functional>
#include <iostream>
#include <string>

#include "common/log.h"

namespace kvr::cli {

// Prints `ready_line` on stdout (the one line a parent process waits for; everything else goes
// to stderr) and runs `io` until it stops. The first SIGINT or SIGTERM calls `drain` with the
// callback that stops the loop; the server calls it once what it had in flight has ended.
// Returns the process exit code.
inline int RunUntilDrained(boost::asio::io_context& io, const std::string& ready_line,
                           const std::function<void(std::function<void()>)>& drain) {
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    KVR_LOG("cli", info, "signal {}: draining", signal);
    drain([&io] { io.stop(); });
  });
  std::cout << ready_line << std::endl;
  io.run();
  return 0;
}

}  // namespace kvr::cli
