#include "sim/report.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "sim/report_internal.h"

namespace kvr::sim {
namespace {

using internal::Fixed;
using internal::HtmlEscape;
using internal::HtmlTable;
using internal::kReportStyle;
using internal::NiceCeil;

using Json = nlohmann::ordered_json;

// One metric as a table row; shared by the text table and the HTML table.
struct Row {
  std::string label;
  std::function<std::string(const PolicyResult&)> value;
};

void AddLatencyRows(std::vector<Row>* rows, const std::string& name,
                    LatencyStats PolicyResult::*field) {
  const std::pair<const char*, double LatencyStats::*> stats[] = {{"mean", &LatencyStats::mean},
                                                                  {"p50", &LatencyStats::p50},
                                                                  {"p90", &LatencyStats::p90},
                                                                  {"p99", &LatencyStats::p99}};
  for (const auto& stat : stats) {
    // No structured binding here: clang 14 cannot capture one in a lambda.
    const auto member = stat.second;
    rows->push_back(
        {absl::StrCat(name, " ", stat.first, " ms"),
         [field, member](const PolicyResult& p) { return Fixed((p.*field).*member, 1); }});
  }
}

std::vector<Row> MetricRows(const Report& report) {
  std::vector<Row> rows;
  rows.push_back({"requests", [](const PolicyResult& p) { return absl::StrCat(p.requests); }});
  AddLatencyRows(&rows, "TTFT", &PolicyResult::ttft_ms);
  AddLatencyRows(&rows, "ITL", &PolicyResult::itl_ms);
  AddLatencyRows(&rows, "E2E", &PolicyResult::e2e_ms);
  rows.push_back({"hit rate %", [](const PolicyResult& p) { return Fixed(100 * p.hit_rate, 2); }});
  rows.push_back(
      {"prefill tokens", [](const PolicyResult& p) { return absl::StrCat(p.prefill_tokens); }});
  rows.push_back(
      {"throughput tok/s", [](const PolicyResult& p) { return Fixed(p.throughput_tok_s, 1); }});
  rows.push_back(
      {"load imbalance", [](const PolicyResult& p) { return Fixed(p.load_imbalance, 3); }});
  // Extra metrics, by name, in first-seen order across policies.
  std::vector<std::string> extras;
  for (const PolicyResult& p : report.policies) {
    for (const auto& [key, unused] : p.extra) {
      if (std::find(extras.begin(), extras.end(), key) == extras.end()) extras.push_back(key);
    }
  }
  for (const std::string& key : extras) {
    rows.push_back({key, [key](const PolicyResult& p) -> std::string {
                      for (const auto& [k, v] : p.extra) {
                        if (k == key) return absl::StrFormat("%.6g", v);
                      }
                      return "-";
                    }});
  }
  return rows;
}

// Settings are strings on our side; JSON readers want numbers where they are numbers.
Json SettingValue(const std::string& s) {
  int64_t i = 0;
  uint64_t u = 0;
  double d = 0;
  if (absl::SimpleAtoi(s, &i)) return i;
  if (absl::SimpleAtoi(s, &u)) return u;
  if (absl::SimpleAtod(s, &d) && std::isfinite(d) && s.find_first_of("0123456789") == 0) return d;
  return s;
}

Json LatencyJson(const LatencyStats& s) {
  return Json{{"mean", s.mean}, {"p50", s.p50}, {"p90", s.p90}, {"p99", s.p99}};
}

std::string Pad(const std::string& s, size_t width, bool left_align) {
  std::string pad(width > s.size() ? width - s.size() : 0, ' ');
  return left_align ? s + pad : pad + s;
}

// TTFT CDF plot geometry (px).
constexpr double kPlotW = 440, kPlotH = 260, kLeft = 52, kRight = 14, kTop = 12, kBottom = 40;
constexpr size_t kCdfPoints = 400;  // caps the file size for 100k-request runs

std::string SvgAxes(double x_max) {
  const double w = kPlotW - kLeft - kRight, h = kPlotH - kTop - kBottom;
  std::string out = absl::StrFormat(
      "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" class=\"frame\"/>\n", kLeft, kTop, w, h);
  for (int i = 0; i <= 4; ++i) {
    const double x = kLeft + w * i / 4, y = kTop + h - h * i / 4;
    absl::StrAppendFormat(&out, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" class=\"grid\"/>", x,
                          kTop, x, kTop + h);
    absl::StrAppendFormat(&out, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%g</text>\n", x,
                          kTop + h + 16, x_max * i / 4);
    absl::StrAppendFormat(&out, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" class=\"grid\"/>",
                          kLeft, y, kLeft + w, y);
    absl::StrAppendFormat(&out, "<text x=\"%g\" y=\"%g\" text-anchor=\"end\">%g</text>\n",
                          kLeft - 6, y + 4, 0.25 * i);
  }
  absl::StrAppendFormat(&out, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">TTFT (ms)</text>\n",
                        kLeft + w / 2, kPlotH - 6);
  return out;
}

// Empirical CDF as a polyline through kCdfPoints quantiles; x clipped to the axis.
std::string SvgCurve(std::vector<double> samples, double x_max, const char* css_class) {
  if (samples.empty()) return "";
  std::sort(samples.begin(), samples.end());
  const double w = kPlotW - kLeft - kRight, h = kPlotH - kTop - kBottom;
  std::string points;
  for (size_t i = 0; i < kCdfPoints; ++i) {
    const double q = static_cast<double>(i) / (kCdfPoints - 1);
    const double v = std::clamp(QuantileSorted(samples, q), 0.0, x_max);
    absl::StrAppendFormat(&points, "%.1f,%.1f ", kLeft + w * v / x_max, kTop + h - h * q);
  }
  return absl::StrCat("<polyline class=\"", css_class, "\" points=\"", points, "\"/>\n");
}

// The policy's CDF in color over the other policies' in light gray, for comparison.
std::string SvgCdf(const Report& report, size_t index, double x_max) {
  const PolicyResult& p = report.policies[index];
  std::string out = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
      "viewBox=\"0 0 %g %g\" role=\"img\">\n",
      kPlotW, kPlotH, kPlotW, kPlotH);
  absl::StrAppend(&out, "<title>TTFT CDF: ", HtmlEscape(p.policy), "</title>\n", SvgAxes(x_max));
  for (size_t i = 0; i < report.policies.size(); ++i) {
    if (i != index)
      absl::StrAppend(&out, SvgCurve(report.policies[i].ttft_samples_ms, x_max, "other"));
  }
  absl::StrAppend(&out, SvgCurve(p.ttft_samples_ms, x_max, "cdf"));
  absl::StrAppendFormat(
      &out, "<text x=\"%g\" y=\"%g\" class=\"note\">p50 %.1f ms, p99 %.1f ms</text>\n",
      kPlotW - kRight - 6, kTop + kPlotH - kTop - kBottom - 8, p.ttft_ms.p50, p.ttft_ms.p99);
  return out + "</svg>\n";
}

std::string HtmlHeader(const Report& report) {
  std::string out =
      absl::StrCat("<h1>", HtmlEscape(report.title), ": ", HtmlEscape(report.workload_name),
                   "</h1>\n<p>", report.requests, " requests; oracle hit rate ",
                   Fixed(100 * report.oracle_hit_rate, 2), "%</p>\n<ul>\n");
  for (const auto& [key, value] : report.settings) {
    absl::StrAppend(&out, "<li>", HtmlEscape(key), ": ", HtmlEscape(value), "</li>\n");
  }
  return out + "</ul>\n";
}

// A routing decision's candidates, as `simulate --explain` writes them.
Json CandidatesJson(std::span<const ExplainedCandidate> candidates,
                    std::span<const std::string> term_names) {
  Json out = Json::array();
  for (const ExplainedCandidate& c : candidates) {
    Json terms = Json::object();
    for (size_t i = 0; i < term_names.size() && i < kMaxTerms; ++i) {
      terms[term_names[i]] = c.candidate.terms[i];
    }
    out.push_back({{"worker", c.worker.value()},
                   {"cost", c.candidate.cost},
                   {"eligible", c.candidate.eligible},
                   {"device_blocks", c.device},
                   {"host_blocks", c.host},
                   {"predicted_blocks", c.predicted},
                   {"in_flight_blocks", c.active_overlap},
                   {"terms", std::move(terms)}});
  }
  return out;
}

}  // namespace

namespace internal {

std::string Fixed(double v, int digits) { return absl::StrFormat("%.*f", digits, v); }

std::string HtmlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Rounds up to 1, 2, 4 or 8 x 10^k so the four axis intervals get round tick labels.
double NiceCeil(double v) {
  if (!(v > 0) || !std::isfinite(v)) return 1;
  const double mag = std::pow(10, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 4.0, 8.0}) {
    if (m * mag >= v) return m * mag;
  }
  return 10 * mag;
}

const char kReportStyle[] =
    "body{font-family:sans-serif;margin:24px;color:#222}"
    "table{border-collapse:collapse;font-size:14px}"
    "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "th:first-child,td:first-child{text-align:left}"
    ".plots{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0}"
    "figcaption{font-weight:bold;text-align:center}"
    "svg text{font-size:11px;fill:#444}.frame{fill:none;stroke:#888}"
    ".grid{stroke:#e4e4e4}.cdf{fill:none;stroke:#1f77b4;stroke-width:2}"
    ".other{fill:none;stroke:#ccc;stroke-width:1}svg text.note{text-anchor:end;fill:#1f77b4}";

std::string HtmlTable(const Report& report) {
  std::string out = "<table>\n<tr><th>metric</th>";
  for (const PolicyResult& p : report.policies)
    absl::StrAppend(&out, "<th>", HtmlEscape(p.policy), "</th>");
  out += "</tr>\n";
  for (const Row& row : MetricRows(report)) {
    absl::StrAppend(&out, "<tr><td>", HtmlEscape(row.label), "</td>");
    for (const PolicyResult& p : report.policies)
      absl::StrAppend(&out, "<td>", row.value(p), "</td>");
    out += "</tr>\n";
  }
  return out + "</table>\n";
}

nlohmann::ordered_json ReportJsonValue(const Report& report) {
  Json workload = Json::object();
  workload["name"] = report.workload_name;
  workload["requests"] = report.requests;
  workload["oracle_hit_rate"] = report.oracle_hit_rate;
  for (const auto& [key, value] : report.settings) workload[key] = SettingValue(value);
  Json policies = Json::object();
  for (const PolicyResult& p : report.policies) policies[p.policy] = PolicyJsonValue(p);
  Json root = Json::object();
  root["workload"] = std::move(workload);
  root["policies"] = std::move(policies);
  return root;
}

}  // namespace internal

nlohmann::ordered_json PolicyJsonValue(const PolicyResult& p) {
  Json j = Json::object();
  j["ttft_ms"] = LatencyJson(p.ttft_ms);
  j["itl_ms"] = LatencyJson(p.itl_ms);
  j["e2e_ms"] = LatencyJson(p.e2e_ms);
  j["hit_rate"] = p.hit_rate;
  j["prefill_tokens"] = p.prefill_tokens;
  j["throughput_tok_s"] = p.throughput_tok_s;
  j["load_imbalance"] = p.load_imbalance;
  j["requests"] = p.requests;
  for (const auto& [key, value] : p.extra) j[key] = value;
  return j;
}

std::string RequestRecordsJsonl(const PolicyResult& p, double rate_scale,
                                std::span<const double> speeds) {
  std::string out;
  for (const RequestRecord& rec : p.records) {
    const RequestOutcome& r = rec.outcome;
    Json j = Json::object();
    j["rate_scale"] = rate_scale;
    j["policy"] = p.policy;
    j["id"] = rec.id;
    j["worker"] = rec.worker;
    j["speed"] = speeds.empty() ? 1.0 : speeds[rec.worker % speeds.size()];
    j["arrival_s"] = double(r.arrival) / kNsPerSec;
    j["router_wait_ms"] = double(rec.dispatched - r.arrival) / kNsPerMs;
    const bool rejected = r.first_token < 0;
    if (rejected) j["rejected"] = true;
    j["ttft_ms"] = rejected ? Json() : Json(double(r.first_token - r.arrival) / kNsPerMs);
    j["e2e_ms"] = rejected ? Json() : Json(double(r.finish - r.arrival) / kNsPerMs);
    j["prompt_tokens"] = r.prompt_tokens;
    j["cached_tokens"] = r.cached_tokens;
    j["output_tokens"] = r.output_tokens;
    j["cached_nowhere_tokens"] = rec.cached_nowhere_tokens;
    j["cached_elsewhere_tokens"] = rec.cached_elsewhere_tokens;
    if (!rec.candidates.empty()) j["candidates"] = CandidatesJson(rec.candidates, p.term_names);
    out += j.dump();
    out += '\n';
  }
  return out;
}

void DescribeWorkload(const Workload& workload, uint32_t block_size, Report* report) {
  const auto& requests = workload.requests;
  report->workload_name = workload.name;
  report->requests = requests.size();
  report->oracle_hit_rate = OracleHitRate(workload, block_size);
  uint64_t output_tokens = 0;
  for (const SimRequest& r : requests) output_tokens += r.output_tokens;
  const uint64_t prompt_tokens = TotalPromptTokens(workload);
  const double n = std::max<double>(requests.size(), 1);
  const double duration_s =
      requests.empty()
          ? 0
          : static_cast<double>(requests.back().arrival - requests.front().arrival) / kNsPerSec;
  auto add = [report](std::string key, std::string value) {
    report->settings.emplace_back(std::move(key), std::move(value));
  };
  add("oracle_block_size", absl::StrCat(block_size));
  add("prompt_tokens", absl::StrCat(prompt_tokens));
  add("mean_input_tokens", Fixed(prompt_tokens / n, 1));
  add("mean_output_tokens", Fixed(output_tokens / n, 1));
  add("duration_s", Fixed(duration_s, 3));
  add("arrival_rate_per_s", Fixed(duration_s > 0 ? (requests.size() - 1) / duration_s : 0, 3));
}

std::string ReportJson(const Report& report) {
  // replace: a policy or setting name with invalid UTF-8 must not throw out of dump().
  return internal::ReportJsonValue(report).dump(2, ' ', false, Json::error_handler_t::replace) +
         "\n";
}

std::string ReportTable(const Report& report) {
  const std::vector<Row> rows = MetricRows(report);
  size_t label_width = 0;
  for (const Row& row : rows) label_width = std::max(label_width, row.label.size());
  std::vector<size_t> widths;
  for (const PolicyResult& p : report.policies)
    widths.push_back(std::max<size_t>(p.policy.size(), 12));
  std::string out =
      absl::StrFormat("workload %s: %d requests, oracle hit rate %.2f%%\n", report.workload_name,
                      report.requests, 100 * report.oracle_hit_rate);
  for (const auto& [key, value] : report.settings)
    absl::StrAppend(&out, "  ", key, ": ", value, "\n");
  out += Pad("", label_width, true);
  for (size_t i = 0; i < widths.size(); ++i) {
    absl::StrAppend(&out, "  ", Pad(report.policies[i].policy, widths[i], false));
  }
  out += "\n";
  for (const Row& row : rows) {
    out += Pad(row.label, label_width, true);
    for (size_t i = 0; i < widths.size(); ++i) {
      absl::StrAppend(&out, "  ", Pad(row.value(report.policies[i]), widths[i], false));
    }
    out += "\n";
  }
  return out;
}

std::string ReportHtml(const Report& report) {
  double p99_max = 0;
  for (const PolicyResult& p : report.policies) p99_max = std::max(p99_max, p.ttft_ms.p99);
  const double x_max = NiceCeil(p99_max);
  std::string out = absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>",
      HtmlEscape(report.title), ": ", HtmlEscape(report.workload_name), "</title>\n<style>",
      kReportStyle, "</style>\n</head>\n<body>\n", HtmlHeader(report), HtmlTable(report));
  absl::StrAppend(
      &out, "<h2>TTFT CDF</h2>\n<p>x axis clipped at ", x_max,
      " ms (the largest p99, rounded up); other policies in gray.</p>\n<div class=\"plots\">\n");
  for (size_t i = 0; i < report.policies.size(); ++i) {
    absl::StrAppend(&out, "<figure>\n<figcaption>", HtmlEscape(report.policies[i].policy),
                    "</figcaption>\n", SvgCdf(report, i, x_max), "</figure>\n");
  }
  return out + "</div>\n</body>\n</html>\n";
}

}  // namespace kvr::sim
