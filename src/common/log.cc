#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <string>

#include "absl/base/thread_annotations.h"
#include "common/mutex.h"

namespace kvr {
namespace {

// spdlog::get and stderr_color_mt are each thread-safe, but not together: this makes the
// look-up-or-create one step, so two threads cannot both create a module's logger.
ABSL_CONST_INIT Mutex logger_mu;

}  // namespace

std::shared_ptr<spdlog::logger> Logger(std::string_view module) {
  MutexLock lock(logger_mu);
  std::string name(module);
  if (auto existing = spdlog::get(name)) return existing;
  auto logger = spdlog::stderr_color_mt(name);
  logger->set_level(spdlog::get_level());
  return logger;
}

void SetLogLevel(std::string_view level) {
  auto lvl = spdlog::level::from_str(std::string(level));
  spdlog::set_level(lvl);
  spdlog::apply_all([lvl](const std::shared_ptr<spdlog::logger>& l) { l->set_level(lvl); });
}

}  // namespace kvr
