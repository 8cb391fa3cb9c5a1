#include "cli/data_files.h"

#include <cmath>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "sim/generators.h"
#include "sim/trace.h"

namespace kvr::cli {

std::string FindDataFile(const std::string& relative) {
  namespace fs = std::filesystem;
  if (fs::exists(relative)) return relative;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  for (fs::path dir = exe.parent_path(); !ec && !dir.empty(); dir = dir.parent_path()) {
    if (fs::exists(dir / relative)) return (dir / relative).string();
    if (dir == dir.root_path()) break;
  }
  const fs::path source = fs::path(KVR_SOURCE_DIR) / relative;
  if (fs::exists(source)) return source.string();
  return relative;
}

absl::StatusOr<sim::Workload> LoadWorkload(const WorkloadSource& s) {
  if (!s.generator.empty()) {
    if (!s.trace.empty()) return absl::InvalidArgumentError("--trace and --workload conflict");
    return sim::GenerateWorkload(s.generator, {.seed = s.seed,
                                               .requests = s.requests ? s.requests : 2000,
                                               .rate_per_s = s.gen_rate * s.rate_scale});
  }
  // A relative path missing from the working directory is looked for as a bundled one is.
  const std::string path = FindDataFile(s.trace.empty() ? std::string(kBundledTrace) : s.trace);
  return sim::LoadMooncakeTrace(
      path, {.rate_scale = s.rate_scale, .max_requests = s.requests, .seed = s.seed});
}

absl::StatusOr<std::vector<double>> ParseSpeeds(const std::string& list) {
  std::vector<double> speeds;
  for (absl::string_view s : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    double v = 0;
    if (!absl::SimpleAtod(s, &v) || !(v > 0) || !std::isfinite(v)) {
      return absl::InvalidArgumentError(absl::StrCat("--speeds: bad factor '", s, "'"));
    }
    speeds.push_back(v);
  }
  return speeds;
}

}  // namespace kvr::cli
