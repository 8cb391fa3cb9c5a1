// The request replay sends for one workload request: a streamed /v1/completions with the prompt
// as token ids (the engine caches exactly these), the trace's output length forced with
// ignore_eos, and usage in the stream. Pure.
#pragma once

#include <string>
#include <string_view>

#include "sim/workload.h"

namespace kvr::replay {

// {"model":M,"prompt":[ids...],"max_tokens":N,"ignore_eos":true,"stream":true,
//  "stream_options":{"include_usage":true}}
std::string CompletionBody(std::string_view model, const sim::SimRequest& request);

}  // namespace kvr::replay
