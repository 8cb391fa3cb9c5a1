// Files that travel with kvrouter and the workloads and fleets its commands share: the bundled
// trace and the fetched tokenizer folders (third_party/npm), found from any working directory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "sim/workload.h"

namespace kvr::cli {

inline constexpr char kBundledTrace[] = KVR_BUNDLED_TRACE;  // relative to a checkout (CMake)
// The other bundled trace (data/traces/README.md): high prefix reuse.
inline constexpr char kSyntheticTrace[] = KVR_SYNTHETIC_TRACE;  // likewise

// `relative` in the working directory; else beside the binary (the build copies data/ there) or
// in any directory above it (a binary inside a checkout); else in the source tree the binary was
// built from. Returns `relative` itself if none has it, so an error names what was looked for.
std::string FindDataFile(const std::string& relative);

// Where a command's requests come from: a Mooncake trace (default: the bundled one) or a named
// generator (sim/generators.h).
struct WorkloadSource {
  std::string trace, generator;
  size_t requests = 0;      // trace: the first N (0: all); generator: N (0: 2000)
  double rate_scale = 1.0;  // trace: arrival-rate multiplier; generator: multiplies gen_rate
  double gen_rate = 4.0;    // generator: mean arrivals per second
  uint64_t seed = 1;
};

absl::StatusOr<sim::Workload> LoadWorkload(const WorkloadSource& source);

// `--speeds`, engine speed factors (`1,0.5`; empty: none): InvalidArgument naming a factor that
// is not a positive finite number (simulate and demo cycle them over the engines).
absl::StatusOr<std::vector<double>> ParseSpeeds(const std::string& list);

}  // namespace kvr::cli
