// Logging: a thin layer over spdlog. One named logger per module; messages carry stable
// key=value fields. Thread-safe (spdlog's _mt sinks).
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string_view>

namespace kvr {

// Returns the logger for `module`, creating it (stderr, shared level) on first use. Takes a
// global lock and searches spdlog's registry: call it once and keep the logger (KVR_LOG does).
std::shared_ptr<spdlog::logger> Logger(std::string_view module);

// Sets the level for every module logger: trace, debug, info, warn, error, off.
void SetLogLevel(std::string_view level);

}  // namespace kvr

// KVR_LOG(module, level, fmt, args...). Each call site looks its logger up once (a
// function-local static, so `module` must be the same on every pass: a literal), so a call
// costs spdlog's level check, plus the formatting and the sink's lock only when it logs:
// no global lock and no registry search per call.
#define KVR_LOG(module, level, ...)                                                         \
  do {                                                                                      \
    static const std::shared_ptr<::spdlog::logger> kvr_log_logger_ = ::kvr::Logger(module); \
    kvr_log_logger_->level(__VA_ARGS__);                                                    \
  } while (0)
