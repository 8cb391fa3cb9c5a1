// Step-time model of a vLLM-like engine: the polynomial fits of NVIDIA Dynamo's mocker
// (lib/mocker perf_model, "polynomial" default). Times are in milliseconds before the per-engine
// speed factor is applied.
#pragma once

#include <cstdint>

#include "common/clock.h"

namespace kvr::engine {

struct PerfModel {
  // Prefill: t = a·N² + b·N + c for N new (uncached) tokens computed in the step.
  double prefill_a = 4.209989e-7;
  double prefill_b = 0.01518344;
  double prefill_c = 16.50142;
  // Decode: t = a·p² + b·p + c at KV utilisation p in [0, 1], floored at decode_floor_ms. The
  // mocker's fit does not depend on batch size: decoding is memory-bound on the KV it reads.
  double decode_a = -25.74;
  double decode_b = 54.01;
  double decode_c = 5.74;
  double decode_floor_ms = 1.0;

  // 0 when no prefill tokens run: the constant term is the cost of a prefill pass, not of a step.
  double PrefillMs(uint64_t new_tokens) const;
  // 0 when no request decodes in the step.
  double DecodeMs(uint32_t decoding_requests, double kv_usage) const;

  // The step rule (Dynamo's mocker runs prefill and decode of one pass back to back):
  //   (PrefillMs(prefill_tokens) + DecodeMs(decoding, kv_usage)) / speed, rounded to ns.
  TimeNs StepTime(uint64_t prefill_tokens, uint32_t decoding_requests, double kv_usage,
                  double speed) const;
};

}  // namespace kvr::engine
