// Renders a simulation's results: JSON (the `kvrouter simulate --json` contract), a
// self-contained HTML page (table + one SVG TTFT CDF per policy) and a text table for stdout.
// Pure string building; the caller writes files.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"
#include "sim/stats.h"
#include "sim/workload.h"

namespace kvr::sim {

struct Report {
  std::string title = "kvrouter simulation";  // heads the HTML page
  std::string workload_name;
  uint64_t requests = 0;
  double oracle_hit_rate = 0;
  // Workers, rate scale, seed, preset...: emitted under "workload" (as JSON numbers when the
  // value is a number, else strings) and listed in the table/HTML header.
  std::vector<std::pair<std::string, std::string>> settings;
  std::vector<PolicyResult> policies;  // in run order
};

// Sets the workload name, request count and oracle hit rate (at block_size) and appends
// descriptive settings: oracle_block_size, prompt_tokens, mean_input_tokens, mean_output_tokens,
// duration_s (first to last arrival) and arrival_rate_per_s.
void DescribeWorkload(const Workload& workload, uint32_t block_size, Report* report);

// {"workload":{"name","requests","oracle_hit_rate",<settings>...},
//  "policies":{"<name>":{"ttft_ms":{"mean","p50","p90","p99"},"itl_ms":{..},"e2e_ms":{..},
//              "hit_rate","prefill_tokens","throughput_tok_s","load_imbalance","requests",
//              <extra>...}}}
// Keys keep insertion order; non-finite numbers become null. Ends with a newline.
std::string ReportJson(const Report& report);

// One policy's object in that JSON ("ttft_ms" ... "requests", then its extras).
nlohmann::ordered_json PolicyJsonValue(const PolicyResult& p);

// `simulate --requests-out`: one JSON object per line for each of p.records, in its order:
// {"rate_scale","policy","id","worker","speed","arrival_s","router_wait_ms","ttft_ms","e2e_ms",
//  "prompt_tokens","cached_tokens","output_tokens","cached_nowhere_tokens",
//  "cached_elsewhere_tokens"}; a request the engine rejected has "rejected":true and null
// ttft_ms and e2e_ms. `speeds`: the engines' speed factors, cycled (empty: every engine 1).
std::string RequestRecordsJsonl(const PolicyResult& p, double rate_scale,
                                std::span<const double> speeds);

// One HTML file, no external resources: header, metrics table, one <svg> TTFT CDF per policy
// (shared x axis, clipped at the largest p99 so the body of each curve stays readable).
std::string ReportHtml(const Report& report);

// Fixed-width table: one row per metric, one column per policy.
std::string ReportTable(const Report& report);

}  // namespace kvr::sim
