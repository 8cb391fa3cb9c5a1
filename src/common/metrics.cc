#include "common/metrics.h"

#include <prometheus/text_serializer.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/strings/numbers.h"

namespace kvr {
namespace {

using prometheus::MetricFamily;
using prometheus::MetricType;

void AddFamily(std::vector<MetricFamily>* out, std::string name, std::string help, MetricType type,
               std::optional<double> value) {
  if (!value) return;
  ScrapedFamily family(std::move(name), std::move(help), type);
  family.Add(*value);
  out->push_back(std::move(family.f));
}

// /proc/self/stat's fields after the command name (which may hold spaces and parentheses):
// fields[0] is the state (field 3 of proc(5)).
std::vector<std::string> StatFields() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  std::getline(in, line);
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream rest(line.substr(close + 1));
  std::vector<std::string> fields;
  for (std::string f; rest >> f;) fields.push_back(std::move(f));
  return fields;
}

std::optional<double> StatField(const std::vector<std::string>& fields, size_t proc5_field) {
  const size_t i = proc5_field - 3;
  double value = 0;
  if (i >= fields.size() || !absl::SimpleAtod(fields[i], &value)) return std::nullopt;
  return value;
}

// A "Name:   N kB" line of /proc/self/status, in bytes.
std::optional<double> StatusKb(const std::string& name) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with(name + ":")) continue;
    std::istringstream value(line.substr(name.size() + 1));
    double kb = 0;
    if (value >> kb) return kb * 1024;
  }
  return std::nullopt;
}

std::optional<double> BootTimeSeconds() {
  std::ifstream in("/proc/stat");
  for (std::string line; std::getline(in, line);) {
    double seconds = 0;
    if (line.starts_with("btime ") && absl::SimpleAtod(line.substr(6), &seconds)) return seconds;
  }
  return std::nullopt;
}

}  // namespace

ScrapedFamily::ScrapedFamily(std::string name, std::string help, MetricType type) {
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
}

void ScrapedFamily::Add(double value, std::vector<prometheus::ClientMetric::Label> labels) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  if (f.type == MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(std::move(m));
}

prometheus::Counter& MetricsRegistry::Counter(const std::string& name, const std::string& help,
                                              const Labels& labels) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(*registry_).Add(labels);
}

prometheus::Gauge& MetricsRegistry::Gauge(const std::string& name, const std::string& help,
                                          const Labels& labels) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(*registry_).Add(labels);
}

prometheus::Histogram& MetricsRegistry::Histogram(const std::string& name, const std::string& help,
                                                  const std::vector<double>& buckets,
                                                  const Labels& labels) {
  return prometheus::BuildHistogram()
      .Name(name)
      .Help(help)
      .Register(*registry_)
      .Add(labels, prometheus::Histogram::BucketBoundaries(buckets));
}

std::string MetricsRegistry::Serialize() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

std::vector<MetricFamily> ProcessMetricFamilies() {
  std::vector<MetricFamily> out;
  const std::vector<std::string> stat = StatFields();
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  const auto utime = StatField(stat, 14), stime = StatField(stat, 15);
  AddFamily(&out, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
            MetricType::Counter,
            utime && stime ? std::optional<double>((*utime + *stime) / ticks) : std::nullopt);
  AddFamily(&out, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
            MetricType::Gauge, StatField(stat, 23));
  const auto rss = StatField(stat, 24);
  AddFamily(&out, "process_resident_memory_bytes", "Resident memory size in bytes.",
            MetricType::Gauge, rss ? std::optional<double>(*rss * page) : std::nullopt);
  AddFamily(&out, "process_resident_memory_max_bytes",
            "Peak resident memory size in bytes (VmHWM).", MetricType::Gauge, StatusKb("VmHWM"));
  std::error_code ec;
  double fds = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++fds;
  }
  AddFamily(&out, "process_open_fds", "Number of open file descriptors.", MetricType::Gauge,
            ec ? std::nullopt : std::optional<double>(fds));
  rlimit limit{};
  AddFamily(&out, "process_max_fds", "Maximum number of open file descriptors.", MetricType::Gauge,
            getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY
                ? std::optional<double>(static_cast<double>(limit.rlim_cur))
                : std::nullopt);
  const auto start = StatField(stat, 22), boot = BootTimeSeconds();
  AddFamily(&out, "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.", MetricType::Gauge,
            start && boot ? std::optional<double>(*boot + *start / ticks) : std::nullopt);
  return out;
}

}  // namespace kvr
