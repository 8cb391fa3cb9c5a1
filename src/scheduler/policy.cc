#include "scheduler/policy.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "scheduler/policies_internal.h"

namespace kvr {

std::vector<std::string> PolicyNames() {
  return {"round_robin", "random", "least_loaded", "p2c", "dynamo", "sglang", "llmd", "kvrouter"};
}

absl::StatusOr<std::unique_ptr<Policy>> MakePolicy(std::string_view name,
                                                   const PolicyOptions& o) {
  if (name == "round_robin") return MakeRoundRobin();
  if (name == "random") return MakeRandom();
  if (name == "least_loaded") return MakeLeastLoaded();
  if (name == "p2c") return MakePowerOfTwo();
  if (name == "dynamo") return MakeDynamo(o);
  if (name == "sglang") return MakeSglang(o);
  if (name == "llmd") return MakeLlmd(o);
  if (name == "kvrouter") return MakeKvrouter(o);
  return absl::InvalidArgumentError(absl::StrCat("unknown policy '", std::string(name), "' (known: ",
                                                 absl::StrJoin(PolicyNames(), ", "), ")"));
}

}  // namespace kvr
