// Logging: a thin layer over spdlog. One named logger per module; messages carry stable
// key=value fields. Thread-safe (spdlog's _mt sinks).
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string_view>

namespace kvr {

// Returns the logger for `module`, creating it (stderr, shared level) on first use.
std::shared_ptr<spdlog::logger> Logger(std::string_view module);

// Sets the level for every module logger: trace, debug, info, warn, error, off.
void SetLogLevel(std::string_view level);

}  // namespace kvr

#define KVR_LOG(module, level, ...) ::kvr::Logger(module)->level(__VA_ARGS__)
