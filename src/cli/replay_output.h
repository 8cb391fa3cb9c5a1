// What `kvrouter replay` and `kvrouter demo` both print: the progress line while requests run,
// and their reports written to files.
#pragma once

#include <unistd.h>

#include <fstream>
#include <iostream>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "replay/replayer.h"

namespace kvr::cli {

// One progress line on stderr, `label` first; redrawn in place on a terminal.
inline void PrintReplayProgress(std::string_view label, const replay::ReplayProgress& p) {
  static const bool tty = isatty(STDERR_FILENO);
  std::cerr << (tty ? "\r" : "")
            << absl::StrFormat("%s %.0f s, sent %d/%d, done %d, errors %d, in flight %d", label,
                               p.elapsed_s, p.sent, p.total, p.done, p.errors, p.in_flight)
            << (tty ? "   " : "\n") << std::flush;
}

inline absl::Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) return absl::UnavailableError("cannot write " + path);
  return absl::OkStatus();
}

}  // namespace kvr::cli
