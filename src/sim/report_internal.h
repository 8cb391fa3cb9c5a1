// Pieces of report.cc that the load-sweep report (sweep.cc) shares, so both pages look alike.
// Internal to the sim library.
#pragma once

#include <string>
#include <string_view>

#include "nlohmann/json.hpp"
#include "sim/report.h"

namespace kvr::sim::internal {

// `v` with `digits` decimals.
std::string Fixed(double v, int digits);

// Escapes & < > " for HTML text and attribute values.
std::string HtmlEscape(std::string_view s);

// Rounds up to 1, 2, 4 or 8 x 10^k so four axis intervals get round tick labels; 1 for v <= 0.
double NiceCeil(double v);

// The report pages' CSS (without the <style> tags).
extern const char kReportStyle[];

// The metrics table of one report (one row per metric, one column per policy) as HTML.
std::string HtmlTable(const Report& report);

// ReportJson's document as a value: {"workload":{...},"policies":{...}}.
nlohmann::ordered_json ReportJsonValue(const Report& report);

}  // namespace kvr::sim::internal
