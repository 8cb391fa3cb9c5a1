#include "demo/process.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>

namespace kvr::demo {
namespace {

using std::chrono::milliseconds;

bool Never() { return false; }

TEST(ChildTest, ReadsLinesThenStops) {
  auto child = Child::Spawn("sh", {"/bin/sh", "-c", "echo one; echo two; exec sleep 60"});
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_EQ(*(*child)->ReadLine(milliseconds(10000), Never), "one");
  EXPECT_EQ(*(*child)->ReadLine(milliseconds(10000), Never), "two");
  EXPECT_FALSE((*child)->Exited());
  EXPECT_EQ((*child)->Describe(), "running");
  EXPECT_FALSE((*child)->Stop(milliseconds(5000)));  // sleep dies of SIGTERM
  EXPECT_EQ((*child)->Describe(), "killed by signal 15");
  EXPECT_NE(kill((*child)->pid(), 0), 0);  // reaped: the pid is gone
}

TEST(ChildTest, AChildThatExitsBeforeItsLineFailsWithItsStderr) {
  auto child = Child::Spawn("failing", {"/bin/sh", "-c", "echo 'bad config' >&2; exit 2"});
  ASSERT_TRUE(child.ok());
  const absl::StatusOr<std::string> line = (*child)->ReadLine(milliseconds(10000), Never);
  ASSERT_FALSE(line.ok());
  EXPECT_NE(line.status().message().find("failing"), std::string::npos) << line.status();
  EXPECT_NE(line.status().message().find("exited 2"), std::string::npos) << line.status();
  EXPECT_NE(line.status().message().find("bad config"), std::string::npos) << line.status();
}

TEST(ChildTest, AProgramThatCannotRunExits127) {
  auto child = Child::Spawn("missing", {"/nonexistent/program"});
  ASSERT_TRUE(child.ok());
  EXPECT_FALSE((*child)->ReadLine(milliseconds(10000), Never).ok());
  EXPECT_EQ((*child)->Describe(), "exited 127");
}

TEST(ChildTest, ASilentChildTimesOutOrIsCancelled) {
  auto child = Child::Spawn("silent", {"/bin/sleep", "60"});
  ASSERT_TRUE(child.ok());
  const auto line = (*child)->ReadLine(milliseconds(200), Never);
  EXPECT_NE(line.status().message().find("no readiness line"), std::string::npos);
  EXPECT_EQ((*child)->ReadLine(milliseconds(10000), [] { return true; }).status().code(),
            absl::StatusCode::kCancelled);
}

TEST(ChildTest, WaitsForALineInItsStderr) {
  // As llama-server: log lines on stderr, the address only once it is ready.
  auto child = Child::Spawn("logger", {"/bin/sh", "-c",
                                       "echo loading >&2; echo 'main: listening on "
                                       "http://127.0.0.1:4242' >&2; exec sleep 60"});
  ASSERT_TRUE(child.ok());
  const auto line = (*child)->WaitForStderrLine("listening on http://", milliseconds(10000), Never);
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(*line, "main: listening on http://127.0.0.1:4242");
  EXPECT_FALSE((*child)->Stop(milliseconds(5000)));

  auto quits = Child::Spawn("quits", {"/bin/sh", "-c", "echo 'no model' >&2; exit 1"});
  ASSERT_TRUE(quits.ok());
  const auto failed = (*quits)->WaitForStderrLine("listening on", milliseconds(10000), Never);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("exited 1"), std::string::npos) << failed.status();
  EXPECT_NE(failed.status().message().find("no model"), std::string::npos) << failed.status();

  auto silent = Child::Spawn("silent", {"/bin/sleep", "60"});
  ASSERT_TRUE(silent.ok());
  EXPECT_EQ((*silent)->WaitForStderrLine("x", milliseconds(10000), [] { return true; })
                .status()
                .code(),
            absl::StatusCode::kCancelled);
}

TEST(ChildTest, TheDestructorKillsAndReaps) {
  pid_t pid = 0;
  {
    auto child = Child::Spawn("sleeper", {"/bin/sleep", "60"});
    ASSERT_TRUE(child.ok());
    pid = (*child)->pid();
    EXPECT_EQ(kill(pid, 0), 0);
  }
  EXPECT_NE(kill(pid, 0), 0);
}

}  // namespace
}  // namespace kvr::demo
