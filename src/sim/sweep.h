// A load sweep: the same simulation at several values of one parameter (today the arrival rate),
// reported side by side: one JSON document, a compact text table (rows = load, columns =
// policies) and a self-contained HTML page that plots mean and p99 TTFT against load. Pure
// string building; the caller runs the simulations and writes files.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "sim/report.h"

namespace kvr::sim {

struct SweepSpec {
  std::string parameter;       // "rate": each value is the run's arrival-rate scale
  std::vector<double> values;  // positive, finite, distinct; in the order given
};

// Parses `simulate --sweep`: "rate=0.5,1,2,4". Errors are InvalidArgument and start with
// "--sweep: ".
absl::StatusOr<SweepSpec> ParseSweep(absl::string_view text);

struct SweepReport {
  SweepSpec spec;
  std::vector<Report> runs;  // runs[i] ran at spec.values[i]
};

// {"sweep":{"parameter":"rate","values":[0.5,...]},
//  "runs":[{"rate":0.5,"workload":{...},"policies":{...}},...]}
// where each run's "workload" and "policies" are ReportJson's. Ends with a newline.
std::string SweepJson(const SweepReport& sweep);

// Settings that differ between runs (arrival rate, duration...) as columns, then one column per
// policy: "mean / p99 ms  hit%" of TTFT.
std::string SweepTable(const SweepReport& sweep);

// One HTML file, no external resources: header (the settings every run shares), the compact
// table, two SVG plots (mean and p99 TTFT against load, log x axis, one line per policy) and
// each run's full metrics table.
std::string SweepHtml(const SweepReport& sweep);

}  // namespace kvr::sim
