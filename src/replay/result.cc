#include "replay/result.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "sim/report.h"

namespace kvr::replay {
namespace {

using Json = nlohmann::ordered_json;

constexpr size_t kMaxErrorKinds = 10;

double Ms(TimeNs ns) { return static_cast<double>(ns) / kNsPerMs; }

sim::RequestOutcome OutcomeOf(const RequestRecord& r) {
  return {.arrival = r.sent,
          .first_token = r.first_token,
          .finish = r.finish,
          .prompt_tokens = r.prompt_tokens,
          .cached_tokens = r.cached_tokens,
          .output_tokens = static_cast<uint32_t>(std::max<uint64_t>(r.output_tokens, 1))};
}

void CountOutcome(const RequestRecord& r, ReplayResult* out) {
  switch (r.outcome) {
    case Outcome::kCompleted:
      ++out->completed;
      break;
    case Outcome::kFailed:
      ++out->failed;
      break;
    case Outcome::kFailedMidStream:
      ++out->failed;
      ++out->failed_mid_stream;
      break;
    case Outcome::kCancelled:
      ++out->cancelled;
      break;
  }
}

std::vector<std::pair<std::string, uint64_t>> TopErrors(
    const std::map<std::string, uint64_t>& all) {
  std::vector<std::pair<std::string, uint64_t>> out(all.begin(), all.end());
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  if (out.size() > kMaxErrorKinds) out.resize(kMaxErrorKinds);
  return out;
}

}  // namespace

void ReplayCollector::Add(const RequestRecord& record) { records_.push_back(record); }

ReplayResult ReplayCollector::Finish(std::string label, uint64_t total, double duration_s,
                                     bool interrupted) && {
  ReplayResult out;
  out.total = total;
  out.sent = records_.size();
  out.duration_s = duration_s;
  out.interrupted = interrupted;
  sim::PolicyStatsCollector stats(std::move(label));
  std::map<std::string, uint64_t> errors;
  for (const RequestRecord& r : records_) {
    CountOutcome(r, &out);
    out.max_send_lag_ms = std::max(out.max_send_lag_ms, Ms(r.send_lag));
    out.held_back += r.held_back ? 1 : 0;
    if (r.outcome != Outcome::kCompleted) {
      if (r.outcome != Outcome::kCancelled) ++errors[r.error];
      continue;
    }
    stats.Add(OutcomeOf(r));
    ++out.workers[r.worker.empty() ? "unknown" : r.worker];
    out.prompt_tokens += r.prompt_tokens;
    out.cached_tokens += r.cached_tokens;
    out.output_tokens += r.output_tokens;
    out.missing_usage += r.usage_reported ? 0 : 1;
  }
  // Load imbalance over requests served: the same max/mean rule as the simulator's busy times.
  std::vector<TimeNs> served;
  for (const auto& [worker, n] : out.workers) served.push_back(static_cast<TimeNs>(n));
  const uint64_t prefill = out.prompt_tokens - std::min(out.cached_tokens, out.prompt_tokens);
  out.summary = std::move(stats).Finish(prefill, served);
  out.errors = TopErrors(errors);
  return out;
}

Json ReplayJsonValue(const ReplayResult& r) {
  Json j = sim::PolicyJsonValue(r.summary);
  j["requests"] = r.sent;
  j["total"] = r.total;
  j["completed"] = r.completed;
  j["failed"] = r.failed;
  j["failed_mid_stream"] = r.failed_mid_stream;
  j["cancelled"] = r.cancelled;
  j["not_sent"] = r.total - std::min(r.sent, r.total);
  j["prompt_tokens"] = r.prompt_tokens;
  j["cached_tokens"] = r.cached_tokens;
  j["output_tokens"] = r.output_tokens;
  j["missing_usage"] = r.missing_usage;
  j["held_back"] = r.held_back;
  j["max_send_lag_ms"] = r.max_send_lag_ms;
  j["duration_s"] = r.duration_s;
  j["interrupted"] = r.interrupted;
  Json workers = Json::object();
  for (const auto& [name, n] : r.workers) workers[name] = n;
  j["workers"] = std::move(workers);
  Json errors = Json::object();
  for (const auto& [message, n] : r.errors) errors[message] = n;
  j["errors"] = std::move(errors);
  j["ttft_samples_ms"] = r.summary.ttft_samples_ms;
  return j;
}

std::string ReplayJson(const ReplayResult& r) {
  // replace: an error message with invalid UTF-8 must not throw out of dump().
  return ReplayJsonValue(r).dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

std::string HeldBackNote(const ReplayResult& r) {
  return absl::StrFormat(
      "%d %s waited for a free slot under the concurrency limit, up to %.0f ms behind the "
      "workload: from the first of them the load was closed-loop, and TTFT and E2E do not count "
      "that wait",
      r.held_back, r.held_back == 1 ? "request" : "requests", r.max_send_lag_ms);
}

std::string ReplaySummary(const ReplayResult& r) {
  const sim::PolicyResult& s = r.summary;
  std::string out = absl::StrFormat(
      "replay: %d of %d requests sent in %.1f s%s: %d completed, %d failed (%d mid-stream), %d "
      "cancelled\n",
      r.sent, r.total, r.duration_s, r.interrupted ? " (interrupted)" : "", r.completed, r.failed,
      r.failed_mid_stream, r.cancelled);
  const std::pair<const char*, const sim::LatencyStats*> rows[] = {
      {"TTFT", &s.ttft_ms}, {"ITL", &s.itl_ms}, {"E2E", &s.e2e_ms}};
  absl::StrAppend(&out, "  ms       mean       p50       p90       p99\n");
  for (const auto& [name, l] : rows) {
    absl::StrAppendFormat(&out, "  %-4s %9.1f %9.1f %9.1f %9.1f\n", name, l->mean, l->p50, l->p90,
                          l->p99);
  }
  absl::StrAppendFormat(&out,
                        "  hit rate %.2f%% (%d of %d prompt tokens cached), prefill tokens %d, "
                        "throughput %.1f output tok/s\n",
                        100 * s.hit_rate, r.cached_tokens, r.prompt_tokens, s.prefill_tokens,
                        s.throughput_tok_s);
  if (r.held_back > 0) absl::StrAppend(&out, "  ", HeldBackNote(r), "\n");
  out += "  workers:";
  for (const auto& [name, n] : r.workers) absl::StrAppend(&out, " ", name, "=", n);
  out += "\n";
  for (const auto& [message, n] : r.errors)
    absl::StrAppend(&out, "  error x", n, ": ", message, "\n");
  return out;
}

}  // namespace kvr::replay
