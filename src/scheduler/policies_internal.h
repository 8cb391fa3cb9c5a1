// Factories for the individual policies (policy.cc maps names onto them).
#pragma once

#include <memory>

#include "scheduler/policy.h"

namespace kvr {

std::unique_ptr<Policy> MakeRoundRobin();
std::unique_ptr<Policy> MakeRandom();
std::unique_ptr<Policy> MakeLeastLoaded();
std::unique_ptr<Policy> MakePowerOfTwo();
std::unique_ptr<Policy> MakeDynamo(const PolicyOptions& o);
std::unique_ptr<Policy> MakeSglang(const PolicyOptions& o);
std::unique_ptr<Policy> MakeSglangEvents(const PolicyOptions& o);
std::unique_ptr<Policy> MakeLlmdOptimized(const PolicyOptions& o);
std::unique_ptr<Policy> MakeLlmdWeighted(const PolicyOptions& o);
std::unique_ptr<Policy> MakeKvrouter(const PolicyOptions& o);

}  // namespace kvr
