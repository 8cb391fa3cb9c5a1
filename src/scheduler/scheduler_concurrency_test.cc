// Routing from several threads while events are applied, engines report metrics and other
// threads release the tickets (run under TSan in CI): every ticket released, every load back
// to zero, no data race.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "common/random.h"
#include "index/index_test_util.h"
#include "scheduler/scheduler.h"

namespace kvr {
namespace {

constexpr uint32_t kBs = 16, kWorkers = 8;

class SchedulerConcurrency : public ::testing::Test {
 protected:
  void SetUp() override {
    auto sched = Scheduler::Create({.policy = "kvrouter", .explain = true}, index_, clock_);
    ASSERT_TRUE(sched.ok());
    sched_ = *std::move(sched);
    for (uint32_t w = 0; w < kWorkers; ++w) {
      ASSERT_TRUE(sched_->AddWorker({.id = WorkerId(w), .block_size = kBs}).ok());
    }
    Rng rng(11);
    prompts_.resize(32);
    for (auto& p : prompts_) {
      p.resize(kBs * (4 + rng.Uniform(60)));
      for (auto& t : p) t = TokenId(rng.Uniform(1000));
    }
  }

  // Events and engine metrics, until `done`.
  std::vector<std::thread> Background(const std::atomic<bool>& done) {
    std::vector<std::thread> t;
    t.emplace_back([&] {
      Rng r(3);
      for (int i = 0; i < 3000; ++i) {
        index_.Apply(testing::StoredAll(uint32_t(r.Uniform(kWorkers)),
                                        prompts_[r.Uniform(prompts_.size())], kBs));
      }
    });
    t.emplace_back([&] {
      for (uint32_t i = 0; !done.load(); ++i) {
        sched_->ReportMetrics(WorkerId(i % kWorkers),
                              {.valid = true, .at = clock_.Now(), .waiting = i % 5});
      }
    });
    return t;
  }

  Decision RouteOne(Rng& r) {
    const auto& p = prompts_[r.Uniform(prompts_.size())];
    auto blocks = SequenceHashes(p, kBs);
    auto d = sched_->Route({.blocks = blocks, .prompt_tokens = uint32_t(p.size())});
    EXPECT_TRUE(d.ok());
    return std::move(*d);
  }

  void ExpectNoLoad() {
    for (WorkerId w : sched_->Workers()) {
      auto load = sched_->Load(w);
      ASSERT_TRUE(load.has_value());
      EXPECT_EQ(load->running, 0u);
      EXPECT_EQ(load->booked_prefill_tokens, 0u);
      EXPECT_EQ(load->active_blocks, 0u);
    }
  }

  SystemClock& clock_ = SystemClock::Get();
  KvIndex index_{{.block_size = kBs}, SystemClock::Get()};
  std::unique_ptr<Scheduler> sched_;
  std::vector<std::vector<TokenId>> prompts_;
};

TEST_F(SchedulerConcurrency, RoutersAndEventsInParallel) {
  std::atomic<bool> done{false};
  std::vector<std::thread> background = Background(done);
  std::vector<std::thread> routers;
  for (int t = 0; t < 3; ++t) {
    routers.emplace_back([&, t] {
      Rng r(100 + t);
      std::vector<Ticket> open;
      for (int i = 0; i < 1500; ++i) {
        Decision d = RouteOne(r);
        d.ticket.FirstToken(TimeNs(1 + r.Uniform(50)) * kNsPerMs);
        open.push_back(std::move(d.ticket));
        if (open.size() > 16) open.erase(open.begin());  // finishes the oldest
      }
    });
  }
  for (auto& t : routers) t.join();
  done = true;
  for (auto& t : background) t.join();
  ExpectNoLoad();
}

// As a server does: the thread that routes hands the ticket on, and the request's own thread
// sees the first token and the end while other decisions are being made.
TEST_F(SchedulerConcurrency, TicketsReleasedOnOtherThreads) {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Ticket> handed;
  int routers_left = 2;
  std::atomic<bool> done{false};
  std::vector<std::thread> threads = Background(done);
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      Rng r(200 + t);
      for (int i = 0; i < 1500; ++i) {
        Decision d = RouteOne(r);
        std::lock_guard lock(mu);
        handed.push_back(std::move(d.ticket));
        cv.notify_one();
      }
      std::lock_guard lock(mu);
      --routers_left;
      cv.notify_all();
    });
  }
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      for (;;) {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return !handed.empty() || routers_left == 0; });
        if (handed.empty()) return;
        Ticket ticket = std::move(handed.front());
        handed.pop_front();
        lock.unlock();
        ticket.FirstToken(5 * kNsPerMs);
        ticket.Finish();
      }
    });
  }
  for (size_t i = 2; i < threads.size(); ++i) threads[i].join();
  done = true;
  threads[0].join();
  threads[1].join();
  ExpectNoLoad();
}

}  // namespace
}  // namespace kvr
