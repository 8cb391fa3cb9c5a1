#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <ctime>
#include <map>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "common/check.h"
#include "common/clock.h"
#include "common/ids.h"
#include "common/metrics.h"
#include "common/random.h"
#include "common/status.h"

namespace kvr {
namespace {

absl::Status FailIfNegative(int x) {
  if (x < 0) return absl::InvalidArgumentError("negative");
  return absl::OkStatus();
}

absl::StatusOr<int> Double(int x) {
  KVR_RETURN_IF_ERROR(FailIfNegative(x));
  return 2 * x;
}

absl::StatusOr<int> Quadruple(int x) {
  KVR_ASSIGN_OR_RETURN(int d, Double(x));
  KVR_ASSIGN_OR_RETURN(d, Double(d));
  return d;
}

TEST(StatusMacros, PropagateErrorsAndValues) {
  EXPECT_EQ(*Quadruple(3), 12);
  auto bad = Quadruple(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "negative");
}

TEST(Check, ABrokenInvariantAbortsOrIsCountedNeverSilent) {
  const uint64_t before = BugCount();
  int steps = 0;
  if (!KVR_BUG_IF(steps != 0)) ++steps;  // holds: no report, the condition's value
  EXPECT_EQ(steps, 1);
  EXPECT_EQ(BugCount(), before);
#ifdef NDEBUG
  EXPECT_TRUE(KVR_BUG_IF(steps == 1));  // release: reported, counted, the caller goes on
  EXPECT_EQ(BugCount(), before + 1);
#else
  EXPECT_DEATH(static_cast<void>(KVR_BUG_IF(steps == 1)), "bug|check failed");
#endif
  KVR_CHECK(steps == 1);
  EXPECT_DEATH(KVR_CHECK(steps == 2), "check failed at .*common_test.cc:[0-9]+: steps == 2");
}

TEST(StrongIds, DistinctHashableOrdered) {
  WorkerId a(1), b(2);
  EXPECT_LT(a, b);
  EXPECT_EQ(a, WorkerId(1));
  absl::flat_hash_set<BlockHash> s{BlockHash(7), BlockHash(7), BlockHash(9)};
  EXPECT_EQ(s.size(), 2u);
  std::unordered_set<EngineHash> u{EngineHash(1)};
  EXPECT_TRUE(u.contains(EngineHash(1)));
  static_assert(!std::is_convertible_v<BlockHash, EngineHash>);
  static_assert(!std::is_convertible_v<uint64_t, BlockHash>);
}

TEST(ManualClock, MovesOnlyWhenTold) {
  ManualClock clock(5);
  EXPECT_EQ(clock.Now(), 5);
  clock.Advance(10);
  EXPECT_EQ(clock.Now(), 15);
  clock.Set(100);
  EXPECT_EQ(clock.Now(), 100);
  EXPECT_GT(SystemClock::Get().Now(), 0);
}

TEST(Rng, DeterministicAndInRange) {
  Rng a(42), b(42), c(43);
  for (int i = 0; i < 100; ++i) {
    uint64_t x = a.Next();
    EXPECT_EQ(x, b.Next());
    (void)c;
  }
  Rng r(1);
  std::set<uint64_t> seen;
  double sum = 0;
  for (int i = 0; i < 20000; ++i) {
    uint64_t u = r.Uniform(10);
    ASSERT_LT(u, 10u);
    seen.insert(u);
    double d = r.UniformDouble();
    ASSERT_GE(d, 0.0);
    ASSERT_LT(d, 1.0);
    sum += r.Exponential(2.0);
  }
  EXPECT_EQ(seen.size(), 10u);
  EXPECT_NEAR(sum / 20000, 2.0, 0.1);  // mean of Exp(2) over 20k draws: sd of mean ≈ 0.014
}

TEST(Metrics, ExposesRegisteredFamilies) {
  MetricsRegistry m;
  m.Counter("kvr_test_total", "A test counter", {{"worker", "a"}}).Increment(3);
  m.Gauge("kvr_test_gauge", "A test gauge").Set(1.5);
  m.Histogram("kvr_test_seconds", "A histogram", {0.1, 1.0}).Observe(0.5);
  std::string text = m.Serialize();
  EXPECT_NE(text.find("# HELP kvr_test_total A test counter"), std::string::npos);
  EXPECT_NE(text.find("kvr_test_total{worker=\"a\"} 3"), std::string::npos);
  EXPECT_NE(text.find("kvr_test_gauge 1.5"), std::string::npos);
  EXPECT_NE(text.find("kvr_test_seconds_bucket{le=\"1\"} 1"), std::string::npos);
}

std::map<std::string, double> ProcessMetrics() {
  std::map<std::string, double> out;
  for (const auto& f : ProcessMetricFamilies()) {
    EXPECT_EQ(f.metric.size(), 1u) << f.name;
    const auto& m = f.metric.at(0);
    out[f.name] = f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
  }
  return out;
}

TEST(Metrics, ProcessMetricsFollowThisProcess) {
  const auto before = ProcessMetrics();
  for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_resident_memory_max_bytes", "process_virtual_memory_bytes",
                           "process_open_fds", "process_max_fds", "process_start_time_seconds"}) {
    EXPECT_TRUE(before.contains(name)) << name;
  }
  // 64 MiB written page by page stay resident while held.
  std::vector<char> block(size_t{64} << 20);
  for (size_t i = 0; i < block.size(); i += 4096) block[i] = static_cast<char>(i);
  const int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  const auto after = ProcessMetrics();
  close(fd);
  EXPECT_GE(after.at("process_resident_memory_bytes"),
            before.at("process_resident_memory_bytes") + double(32 << 20));
  EXPECT_GE(after.at("process_resident_memory_max_bytes"),
            after.at("process_resident_memory_bytes"));
  EXPECT_EQ(after.at("process_open_fds"), before.at("process_open_fds") + 1);
  EXPECT_GE(after.at("process_max_fds"), after.at("process_open_fds"));
  EXPECT_GE(after.at("process_cpu_seconds_total"), before.at("process_cpu_seconds_total"));
  const double now = static_cast<double>(time(nullptr));
  EXPECT_LE(after.at("process_start_time_seconds"), now + 1);
  EXPECT_GT(after.at("process_start_time_seconds"), now - 24 * 3600);
}

}  // namespace
}  // namespace kvr
