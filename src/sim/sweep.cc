#include "sim/sweep.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <numeric>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "sim/report_internal.h"

namespace kvr::sim {
namespace {

using internal::Fixed;
using internal::HtmlEscape;
using Json = nlohmann::ordered_json;
using Settings = std::vector<std::pair<std::string, std::string>>;
using Grid = std::vector<std::vector<std::string>>;  // row 0: the header

absl::Status SweepError(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("--sweep: ", what));
}

absl::StatusOr<double> ParseValue(absl::string_view s, const std::vector<double>& seen) {
  double v = 0;
  if (!absl::SimpleAtod(s, &v) || !(v > 0) || !std::isfinite(v)) {
    return SweepError(absl::StrCat("bad rate '", s, "' (want a positive number)"));
  }
  if (std::find(seen.begin(), seen.end(), v) != seen.end()) {
    return SweepError(absl::StrCat("rate ", s, " given twice"));
  }
  return v;
}

// What describes one run: requests, oracle hit rate, then the report's settings.
Settings RunSettings(const Report& r) {
  Settings out = {{"requests", absl::StrCat(r.requests)},
                  {"oracle_hit_rate", Fixed(r.oracle_hit_rate, 4)}};
  out.insert(out.end(), r.settings.begin(), r.settings.end());
  return out;
}

std::string SettingOf(const Report& r, const std::string& key) {
  for (const auto& [k, v] : RunSettings(r)) {
    if (k == key) return v;
  }
  return "-";
}

// Settings of the first run, split into those every run shares and those that vary (rate_scale
// is in neither: it is the swept value itself).
std::pair<Settings, std::vector<std::string>> SplitSettings(const SweepReport& sweep) {
  std::pair<Settings, std::vector<std::string>> out;
  if (sweep.runs.empty()) return out;
  for (const auto& setting : RunSettings(sweep.runs[0])) {
    // Named copies: clang 14 cannot capture structured bindings in a lambda.
    const auto& key = setting.first;
    const auto& value = setting.second;
    if (key == "rate_scale") continue;
    const bool same = std::all_of(sweep.runs.begin(), sweep.runs.end(),
                                  [&](const Report& r) { return SettingOf(r, key) == value; });
    if (same) {
      out.first.emplace_back(key, value);
    } else {
      out.second.push_back(key);
    }
  }
  return out;
}

std::vector<std::string> PolicyNames(const SweepReport& sweep) {
  std::vector<std::string> names;
  for (const Report& r : sweep.runs) {
    for (const PolicyResult& p : r.policies) {
      if (std::find(names.begin(), names.end(), p.policy) == names.end()) names.push_back(p.policy);
    }
  }
  return names;
}

const PolicyResult* FindPolicy(const Report& r, const std::string& name) {
  for (const PolicyResult& p : r.policies) {
    if (p.policy == name) return &p;
  }
  return nullptr;
}

std::string Cell(const PolicyResult* p) {
  if (p == nullptr) return "-";
  return absl::StrFormat("%.1f / %.1f  %.1f%%", p->ttft_ms.mean, p->ttft_ms.p99, 100 * p->hit_rate);
}

// The varying settings worth a column in the compact table (the rest: in each run's details).
std::vector<std::string> LoadColumns(const SweepReport& sweep) {
  std::vector<std::string> keys = SplitSettings(sweep).second;
  std::erase_if(keys, [](const std::string& k) {
    return k != "arrival_rate_per_s" && k != "oracle_hit_rate";
  });
  return keys;
}

// Rows = runs; columns = the swept value, arrival rate (and oracle hit rate when it varies),
// then one per policy.
Grid CompactGrid(const SweepReport& sweep) {
  const std::vector<std::string> varying = LoadColumns(sweep);
  const std::vector<std::string> policies = PolicyNames(sweep);
  Grid grid(1);
  grid[0].push_back(sweep.spec.parameter);
  grid[0].insert(grid[0].end(), varying.begin(), varying.end());
  grid[0].insert(grid[0].end(), policies.begin(), policies.end());
  for (size_t i = 0; i < sweep.runs.size() && i < sweep.spec.values.size(); ++i) {
    std::vector<std::string> row = {absl::StrFormat("%g", sweep.spec.values[i])};
    for (const std::string& key : varying) row.push_back(SettingOf(sweep.runs[i], key));
    for (const std::string& name : policies) row.push_back(Cell(FindPolicy(sweep.runs[i], name)));
    grid.push_back(std::move(row));
  }
  return grid;
}

std::string TextGrid(const Grid& grid) {
  std::vector<size_t> widths;
  for (const auto& row : grid) {
    widths.resize(std::max(widths.size(), row.size()));
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  std::string out;
  for (const auto& row : grid) {
    for (size_t c = 0; c < row.size(); ++c) {
      const std::string pad(widths[c] - row[c].size(), ' ');
      absl::StrAppend(&out, c == 0 ? "" : "  ", c == 0 ? row[c] + pad : pad + row[c]);
    }
    out += "\n";
  }
  return out;
}

std::string HtmlGrid(const Grid& grid) {
  std::string out = "<table>\n";
  for (size_t r = 0; r < grid.size(); ++r) {
    out += "<tr>";
    for (const std::string& cell : grid[r]) {
      absl::StrAppend(&out, r == 0 ? "<th>" : "<td>", HtmlEscape(cell), r == 0 ? "</th>" : "</td>");
    }
    out += "</tr>\n";
  }
  return out + "</table>\n";
}

// Plot geometry (px) and one color per policy, cycled.
constexpr double kW = 520, kH = 300, kLeft = 60, kRight = 16, kTop = 12, kBottom = 40;
constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

const char* Color(size_t i) { return kColors[i % std::size(kColors)]; }

// x: the swept value on a log axis (centered when there is one value); y: ms from 0 to y_max.
struct Axes {
  double x_lo = 1, x_hi = 1, y_max = 1;
  double X(double v) const {
    const double w = kW - kLeft - kRight;
    if (!(x_hi > x_lo)) return kLeft + w / 2;
    return kLeft + w * std::log(v / x_lo) / std::log(x_hi / x_lo);
  }
  double Y(double v) const {
    const double h = kH - kTop - kBottom;
    return kTop + h - h * std::clamp(v / y_max, 0.0, 1.0);
  }
};

using Stat = double LatencyStats::*;

Axes MakeAxes(const SweepReport& sweep, Stat stat) {
  const auto& v = sweep.spec.values;
  Axes a;
  if (!v.empty()) {
    a.x_lo = *std::min_element(v.begin(), v.end());
    a.x_hi = *std::max_element(v.begin(), v.end());
  }
  double y = 0;
  for (const Report& r : sweep.runs) {
    for (const PolicyResult& p : r.policies) y = std::max(y, p.ttft_ms.*stat);
  }
  a.y_max = internal::NiceCeil(y);
  return a;
}

std::string SvgLoadAxes(const SweepReport& sweep, const Axes& a) {
  const double w = kW - kLeft - kRight, h = kH - kTop - kBottom;
  std::string out = absl::StrFormat(
      "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" class=\"frame\"/>\n", kLeft, kTop, w, h);
  for (double v : sweep.spec.values) {
    absl::StrAppendFormat(&out,
                          "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" class=\"grid\"/>",
                          a.X(v), kTop, a.X(v), kTop + h);
    absl::StrAppendFormat(&out, "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%g</text>\n",
                          a.X(v), kTop + h + 16, v);
  }
  for (int i = 0; i <= 4; ++i) {
    const double y = kTop + h - h * i / 4;
    absl::StrAppendFormat(&out, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" class=\"grid\"/>",
                          kLeft, y, kLeft + w, y);
    absl::StrAppendFormat(&out, "<text x=\"%g\" y=\"%g\" text-anchor=\"end\">%g</text>\n",
                          kLeft - 6, y + 4, a.y_max * i / 4);
  }
  absl::StrAppendFormat(&out,
                        "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%s (log scale)</text>\n",
                        kLeft + w / 2, kH - 6, HtmlEscape(sweep.spec.parameter));
  return out;
}

// One policy's line, points in increasing load, each with a tooltip.
std::string SvgSeries(const SweepReport& sweep, const std::string& policy, Stat stat, const Axes& a,
                      const char* color) {
  std::vector<size_t> order(std::min(sweep.runs.size(), sweep.spec.values.size()));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](size_t i, size_t j) { return sweep.spec.values[i] < sweep.spec.values[j]; });
  std::string points, dots;
  for (size_t i : order) {
    const PolicyResult* p = FindPolicy(sweep.runs[i], policy);
    if (p == nullptr) continue;
    const double x = a.X(sweep.spec.values[i]), y = a.Y(p->ttft_ms.*stat);
    absl::StrAppendFormat(&points, "%.1f,%.1f ", x, y);
    absl::StrAppendFormat(&dots,
                          "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"><title>%s at %g: "
                          "%.1f ms</title></circle>\n",
                          x, y, color, HtmlEscape(policy), sweep.spec.values[i], p->ttft_ms.*stat);
  }
  return absl::StrCat("<polyline fill=\"none\" stroke-width=\"2\" stroke=\"", color, "\" points=\"",
                      points, "\"/>\n", dots);
}

std::string SvgLoadPlot(const SweepReport& sweep, Stat stat, const std::string& title) {
  const Axes a = MakeAxes(sweep, stat);
  std::string out = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
      "viewBox=\"0 0 %g %g\" role=\"img\">\n<title>%s</title>\n",
      kW, kH, kW, kH, HtmlEscape(title));
  absl::StrAppend(&out, SvgLoadAxes(sweep, a));
  const std::vector<std::string> policies = PolicyNames(sweep);
  for (size_t i = 0; i < policies.size(); ++i) {
    absl::StrAppend(&out, SvgSeries(sweep, policies[i], stat, a, Color(i)));
  }
  return out + "</svg>\n";
}

std::string HtmlLegend(const SweepReport& sweep) {
  const std::vector<std::string> policies = PolicyNames(sweep);
  std::string out = "<p class=\"legend\">";
  for (size_t i = 0; i < policies.size(); ++i) {
    absl::StrAppend(&out, "<span><span class=\"swatch\" style=\"background:", Color(i),
                    "\"></span>", HtmlEscape(policies[i]), "</span>");
  }
  return out + "</p>\n";
}

std::string HtmlSweepHeader(const SweepReport& sweep, const std::string& name) {
  std::string values;
  for (double v : sweep.spec.values)
    absl::StrAppendFormat(&values, "%s%g", values.empty() ? "" : ", ", v);
  std::string out = absl::StrCat("<h1>kvrouter load sweep: ", HtmlEscape(name), "</h1>\n<p>",
                                 HtmlEscape(sweep.spec.parameter), " = ", values,
                                 "; TTFT mean / p99 ms and hit rate per load.</p>\n<ul>\n");
  for (const auto& [key, value] : SplitSettings(sweep).first) {
    absl::StrAppend(&out, "<li>", HtmlEscape(key), ": ", HtmlEscape(value), "</li>\n");
  }
  return out + "</ul>\n";
}

constexpr char kSweepStyle[] =
    ".legend>span{margin-right:16px;white-space:nowrap}"
    ".swatch{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}"
    "details{margin:8px 0}summary{cursor:pointer;font-weight:bold}";

std::string HtmlRuns(const SweepReport& sweep) {
  std::string out = "<h2>Every run</h2>\n";
  for (size_t i = 0; i < sweep.runs.size() && i < sweep.spec.values.size(); ++i) {
    absl::StrAppendFormat(&out, "<details>\n<summary>%s %g</summary>\n",
                          HtmlEscape(sweep.spec.parameter), sweep.spec.values[i]);
    std::string settings;
    for (const std::string& key : SplitSettings(sweep).second) {
      absl::StrAppend(&settings, settings.empty() ? "" : ", ", key, " ",
                      SettingOf(sweep.runs[i], key));
    }
    absl::StrAppend(&out, "<p>", HtmlEscape(settings), "</p>\n", internal::HtmlTable(sweep.runs[i]),
                    "</details>\n");
  }
  return out;
}

}  // namespace

absl::StatusOr<SweepSpec> ParseSweep(absl::string_view text) {
  const size_t eq = text.find('=');
  if (eq == absl::string_view::npos || eq == 0 || eq + 1 == text.size()) {
    return SweepError(
        absl::StrCat("expected PARAMETER=V1,V2,... (e.g. rate=0.5,1,2,4), got '", text, "'"));
  }
  SweepSpec spec{.parameter = std::string(text.substr(0, eq))};
  if (spec.parameter != "rate") {
    return SweepError(absl::StrCat("unknown parameter '", spec.parameter, "' (supported: rate)"));
  }
  for (absl::string_view s : absl::StrSplit(text.substr(eq + 1), ',')) {
    auto v = ParseValue(s, spec.values);
    if (!v.ok()) return v.status();
    spec.values.push_back(*v);
  }
  return spec;
}

std::string SweepJson(const SweepReport& sweep) {
  Json root = Json::object();
  root["sweep"] = Json{{"parameter", sweep.spec.parameter}, {"values", sweep.spec.values}};
  Json runs = Json::array();
  for (size_t i = 0; i < sweep.runs.size() && i < sweep.spec.values.size(); ++i) {
    Json run = Json::object();
    run[sweep.spec.parameter] = sweep.spec.values[i];
    Json doc = internal::ReportJsonValue(sweep.runs[i]);
    run["workload"] = std::move(doc["workload"]);
    run["policies"] = std::move(doc["policies"]);
    runs.push_back(std::move(run));
  }
  root["runs"] = std::move(runs);
  return root.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

std::string SweepTable(const SweepReport& sweep) {
  const std::string name = sweep.runs.empty() ? "" : sweep.runs[0].workload_name;
  return absl::StrCat("load sweep over ", sweep.spec.parameter, ", workload ", name,
                      ": TTFT mean / p99 ms and hit rate\n", TextGrid(CompactGrid(sweep)));
}

std::string SweepHtml(const SweepReport& sweep) {
  const std::string name = sweep.runs.empty() ? "" : sweep.runs[0].workload_name;
  std::string out = absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>kvrouter "
      "load sweep: ",
      HtmlEscape(name), "</title>\n<style>", internal::kReportStyle, kSweepStyle,
      "</style>\n</head>\n<body>\n", HtmlSweepHeader(sweep, name), HtmlGrid(CompactGrid(sweep)));
  absl::StrAppend(&out, "<h2>TTFT against load</h2>\n<div class=\"plots\">\n");
  absl::StrAppend(&out, "<figure>\n<figcaption>mean TTFT (ms)</figcaption>\n",
                  SvgLoadPlot(sweep, &LatencyStats::mean, "mean TTFT against load"), "</figure>\n");
  absl::StrAppend(&out, "<figure>\n<figcaption>p99 TTFT (ms)</figcaption>\n",
                  SvgLoadPlot(sweep, &LatencyStats::p99, "p99 TTFT against load"), "</figure>\n");
  absl::StrAppend(&out, "</div>\n", HtmlLegend(sweep), HtmlRuns(sweep));
  return out + "</body>\n</html>\n";
}

}  // namespace kvr::sim
