// Routing from several threads while events are applied (run under TSan in CI): every ticket
// released, every load back to zero, no data race.
#include <gtest/gtest.h>

#include <thread>

#include "common/random.h"
#include "index/index_test_util.h"
#include "scheduler/scheduler.h"

namespace kvr {
namespace {

TEST(SchedulerConcurrency, RoutersAndEventsInParallel) {
  constexpr uint32_t kBs = 16, kWorkers = 8;
  KvIndex index({.block_size = kBs}, SystemClock::Get());
  Scheduler sched({.policy = "kvrouter", .explain = true}, index, SystemClock::Get());
  for (uint32_t w = 0; w < kWorkers; ++w) {
    ASSERT_TRUE(sched.AddWorker({.id = WorkerId(w), .block_size = kBs}).ok());
  }
  std::vector<std::vector<TokenId>> prompts(32);
  Rng rng(11);
  for (auto& p : prompts) {
    p.resize(kBs * (4 + rng.Uniform(60)));
    for (auto& t : p) t = TokenId(rng.Uniform(1000));
  }
  std::thread events([&] {
    Rng r(3);
    for (int i = 0; i < 3000; ++i) {
      index.Apply(testing::StoredAll(uint32_t(r.Uniform(kWorkers)),
                                     prompts[r.Uniform(prompts.size())], kBs));
    }
  });
  std::vector<std::thread> routers;
  for (int t = 0; t < 3; ++t) {
    routers.emplace_back([&, t] {
      Rng r(100 + t);
      std::vector<Ticket> open;
      for (int i = 0; i < 1500; ++i) {
        const auto& p = prompts[r.Uniform(prompts.size())];
        auto blocks = SequenceHashes(p, kBs);
        auto d = sched.Route({.blocks = blocks, .prompt_tokens = uint32_t(p.size())});
        ASSERT_TRUE(d.ok());
        d->ticket.FirstToken(TimeNs(1 + r.Uniform(50)) * kNsPerMs);
        open.push_back(std::move(d->ticket));
        if (open.size() > 16) open.erase(open.begin());  // finishes the oldest
      }
    });
  }
  for (auto& t : routers) t.join();
  events.join();
  for (WorkerId w : sched.Workers()) {
    auto load = sched.Load(w);
    ASSERT_TRUE(load.has_value());
    EXPECT_EQ(load->running, 0u);
    EXPECT_EQ(load->booked_prefill_tokens, 0u);
    EXPECT_EQ(load->active_blocks, 0u);
  }
}

}  // namespace
}  // namespace kvr
