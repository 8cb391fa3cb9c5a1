// Metrics registry on prometheus-cpp (Debian's prometheus-cpp-dev): families are registered once
// with name and help, and exposition uses prometheus-cpp's TextSerializer. Safe for concurrent use.
//
// Hot paths hold handles, never names: Counter()/Gauge()/Histogram() lock the registry and its
// family and search them, so call them once (at construction) and keep the returned reference,
// which stays valid as long as the registry. Through a handle, Counter::Increment and Gauge::Set
// are lock-free atomics; Histogram::Observe takes that one histogram's own mutex.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kvr {

class MetricsRegistry {
 public:
  using Labels = std::map<std::string, std::string>;

  MetricsRegistry() : registry_(std::make_shared<prometheus::Registry>()) {}

  // Registers (or finds) the family `name` and returns the series for `labels`.
  prometheus::Counter& Counter(const std::string& name, const std::string& help,
                               const Labels& labels = {});
  prometheus::Gauge& Gauge(const std::string& name, const std::string& help,
                           const Labels& labels = {});
  prometheus::Histogram& Histogram(const std::string& name, const std::string& help,
                                   const std::vector<double>& buckets, const Labels& labels = {});

  // Prometheus text exposition format 0.0.4.
  std::string Serialize() const;

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
};

// A metric family built at scrape time from state the registry does not hold (a counter or a
// gauge; `f` is what the serializer takes).
struct ScrapedFamily {
  prometheus::MetricFamily f;
  ScrapedFamily(std::string name, std::string help, prometheus::MetricType type);
  void Add(double value, std::vector<prometheus::ClientMetric::Label> labels = {});
};

// This process's standard Prometheus process metrics, read from /proc/self at the call:
// process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
// process_open_fds, process_max_fds, process_start_time_seconds, and
// process_resident_memory_max_bytes (the peak, Linux's VmHWM). A value that cannot be read is
// left out.
std::vector<prometheus::MetricFamily> ProcessMetricFamilies();

}  // namespace kvr
