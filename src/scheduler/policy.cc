#include "scheduler/policy.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "scheduler/policies_internal.h"

namespace kvr {

std::vector<std::string> PolicyNames() {
  return {"round_robin",    "random",         "least_loaded",  "p2c",     "dynamo", "sglang",
          "sglang_events", "llmd_optimized", "llmd_weighted", "kvrouter"};
}

std::string_view CanonicalPolicyName(std::string_view name) {
  // `llmd` named the optimized baseline before llm-d's weighted profile joined it.
  return name == "llmd" ? "llmd_optimized" : name;
}

absl::StatusOr<std::unique_ptr<Policy>> MakePolicy(std::string_view name, const PolicyOptions& o) {
  name = CanonicalPolicyName(name);
  if (name == "round_robin") return MakeRoundRobin();
  if (name == "random") return MakeRandom();
  if (name == "least_loaded") return MakeLeastLoaded();
  if (name == "p2c") return MakePowerOfTwo();
  if (name == "dynamo") return MakeDynamo(o);
  if (name == "sglang") return MakeSglang(o);
  if (name == "sglang_events") return MakeSglangEvents(o);
  if (name == "llmd_optimized") return MakeLlmdOptimized(o);
  if (name == "llmd_weighted") return MakeLlmdWeighted(o);
  if (name == "kvrouter") return MakeKvrouter(o);
  return absl::InvalidArgumentError(absl::StrCat("unknown policy '", std::string(name),
                                                 "' (known: ", absl::StrJoin(PolicyNames(), ", "),
                                                 ")"));
}

namespace {

// Sets one PolicyOptions field by name.
absl::Status SetOption(PolicyOptions& o, absl::string_view key, double v) {
  struct Field {
    const char* name;
    double PolicyOptions::*num;
    bool PolicyOptions::*flag;
  };
  static const Field kFields[] = {
      {"temperature", &PolicyOptions::temperature, nullptr},
      {"overlap_weight", &PolicyOptions::overlap_weight, nullptr},
      {"dynamo_queue_threshold", &PolicyOptions::dynamo_queue_threshold, nullptr},
      {"sglang_cache_threshold", &PolicyOptions::sglang_cache_threshold, nullptr},
      {"sglang_balance_rel", &PolicyOptions::sglang_balance_rel, nullptr},
      {"llmd_affinity_threshold", &PolicyOptions::llmd_affinity_threshold, nullptr},
      {"llmd_rate_tok_s", &PolicyOptions::llmd_rate_tok_s, nullptr},
      {"llmd_gate_s", &PolicyOptions::llmd_gate_s, nullptr},
      {"llmd_max_tokens", &PolicyOptions::llmd_max_tokens, nullptr},
      {"llmd_queue_weight", &PolicyOptions::llmd_queue_weight, nullptr},
      {"llmd_kv_weight", &PolicyOptions::llmd_kv_weight, nullptr},
      {"llmd_prefix_weight", &PolicyOptions::llmd_prefix_weight, nullptr},
      {"host_hit_cost", &PolicyOptions::host_hit_cost, nullptr},
      {"kv_pressure_weight", &PolicyOptions::kv_pressure_weight, nullptr},
      {"work_weight", &PolicyOptions::work_weight, nullptr},
      {"load_work_weight", &PolicyOptions::load_work_weight, nullptr},
      {"backlog_work_weight", &PolicyOptions::backlog_work_weight, nullptr},
      {"classes_work_weight", &PolicyOptions::classes_work_weight, nullptr},
      {"decode_weight", &PolicyOptions::decode_weight, nullptr},
      {"classes_decode_weight", &PolicyOptions::classes_decode_weight, nullptr},
      {"tail_weight", &PolicyOptions::tail_weight, nullptr},
      {"tail_quantile", &PolicyOptions::tail_quantile, nullptr},
      {"hit_delay_weight", &PolicyOptions::hit_delay_weight, nullptr},
      {"hit_delay_cap", &PolicyOptions::hit_delay_cap, nullptr},
      {"calibrate_tolerance", &PolicyOptions::calibrate_tolerance, nullptr},
      {"idle_decode_weight", &PolicyOptions::idle_decode_weight, nullptr},
      {"step_in_flight", &PolicyOptions::step_in_flight, nullptr},
      {"turnover_weight", &PolicyOptions::turnover_weight, nullptr},
      {"turnover_fill", &PolicyOptions::turnover_fill, nullptr},
      {"turnover_cached", &PolicyOptions::turnover_cached, nullptr},
      {"classes_turnover_cap", &PolicyOptions::classes_turnover_cap, nullptr},
      {"classes_turnover_waiting", &PolicyOptions::classes_turnover_waiting, nullptr},
      {"classes_backlog_turnover_weight", &PolicyOptions::classes_backlog_turnover_weight, nullptr},
      {"lifetime_weight", &PolicyOptions::lifetime_weight, nullptr},
      {"lifetime_backlog_s", &PolicyOptions::lifetime_backlog_s, nullptr},
      {"backlog_lifetime_weight", &PolicyOptions::backlog_lifetime_weight, nullptr},
      {"replicate_share", &PolicyOptions::replicate_share, nullptr},
      {"calibrate_classes", &PolicyOptions::calibrate_classes, nullptr},
      {"classes_persist", &PolicyOptions::classes_persist, nullptr},
      {"queue_threshold", &PolicyOptions::queue_threshold, nullptr},
      {"queue_age", &PolicyOptions::queue_age, nullptr},
      {"llmd_routing_history", nullptr, &PolicyOptions::llmd_routing_history},
      {"predicted_overlap", nullptr, &PolicyOptions::predicted_overlap},
      {"inflight_overlap", nullptr, &PolicyOptions::inflight_overlap},
      {"decay_oldest", nullptr, &PolicyOptions::decay_oldest},
      {"engine_queue", nullptr, &PolicyOptions::engine_queue},
      {"calibrate_rate", nullptr, &PolicyOptions::calibrate_rate},
  };
  for (const Field& f : kFields) {
    if (key != f.name) continue;
    if (f.num != nullptr) {
      o.*f.num = v;
    } else {
      o.*f.flag = v != 0;
    }
    return absl::OkStatus();
  }
  if (key == "sglang_balance_abs") {
    o.sglang_balance_abs = uint32_t(v);
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown policy option '", key, "'"));
}

}  // namespace

absl::StatusOr<PolicySpec> ParsePolicySpec(std::string_view spec, const PolicyOptions& base) {
  const size_t open = spec.find('[');
  const std::string_view written = spec.substr(0, open);
  const std::string_view name = CanonicalPolicyName(written);
  KVR_RETURN_IF_ERROR(MakePolicy(name).status());
  // The label names the canonical policy, so reports say which one ran.
  PolicySpec out{std::string(name) + std::string(spec.substr(written.size())), std::string(name),
                 base};
  if (open == std::string_view::npos) return out;
  if (spec.back() != ']') return absl::InvalidArgumentError("policy spec: missing ']'");
  const std::string body(spec.substr(open + 1, spec.size() - open - 2));
  for (absl::string_view kv : absl::StrSplit(body, ',', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> p = absl::StrSplit(kv, '=');
    double v = 0;
    if (!absl::SimpleAtod(p.second, &v)) {
      return absl::InvalidArgumentError(absl::StrCat("policy spec: bad value in '", kv, "'"));
    }
    KVR_RETURN_IF_ERROR(SetOption(out.options, p.first, v));
  }
  return out;
}

}  // namespace kvr
