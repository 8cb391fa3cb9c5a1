#include "gateway/config.h"

#include <gtest/gtest.h>
#include <sched.h>

#include "common/file.h"

namespace kvr::gateway {
namespace {

std::optional<std::string> NoEnv(const std::string&) { return std::nullopt; }

absl::StatusOr<GatewayConfig> Parse(std::string_view yaml) { return ParseConfig(yaml, NoEnv); }

constexpr char kGood[] = R"(
listen: 127.0.0.1:0
admin_token: s3cret
limits: {max_running_per_worker: 8, queue_size: 4, queue_timeout_ms: 100}
health: {interval_ms: 500, failures: 3}
inline_prepare_bytes: 4096
cpu_threads: 0
pools:
  - name: llama
    tokenizer: bytes
    block_size: 32
    policy: kvrouter[work_weight=2]
    forward_tokens: true
    max_batched_tokens: 2048
    workers:
      - name: a
        url: http://127.0.0.1:8001
        max_batched_tokens: 512
        kv_events: tcp://127.0.0.1:5557
        replay: tcp://127.0.0.1:5558
      - url: http://127.0.0.1:8002
        kv_events: none
        speed: 0.5
        dp_rank: 1
)";

TEST(Config, ReadsEveryField) {
  auto c = Parse(kGood);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->host, "127.0.0.1");
  EXPECT_EQ(c->port, 0);
  EXPECT_EQ(c->admin_token, "s3cret");
  EXPECT_EQ(c->limits.max_running_per_worker, 8u);
  EXPECT_EQ(c->limits.queue_size, 4u);
  EXPECT_EQ(c->health_interval_ms, 500);
  EXPECT_EQ(c->health_failures, 3u);
  EXPECT_EQ(c->inline_prepare_bytes, 4096u);
  EXPECT_EQ(c->cpu_threads, 0u);
  EXPECT_EQ(CpuThreads(*c), 0u);
  ASSERT_EQ(c->pools.size(), 1u);
  const PoolConfig& p = c->pools[0];
  EXPECT_EQ(p.block_size, 32u);
  EXPECT_EQ(p.policy, "kvrouter[work_weight=2]");
  EXPECT_TRUE(p.forward_tokens);
  ASSERT_EQ(p.workers.size(), 2u);
  EXPECT_EQ(p.workers[0].replay, "tcp://127.0.0.1:5558");
  EXPECT_EQ(p.max_batched_tokens, 2048u);
  EXPECT_EQ(p.workers[0].max_batched_tokens, 512u);
  EXPECT_EQ(p.workers[1].max_batched_tokens, std::nullopt);  // the pool's
  EXPECT_EQ(p.workers[1].name, "http://127.0.0.1:8002");  // defaults to the URL
  EXPECT_EQ(p.workers[1].kv_events, "");                  // none: approximate mode
  EXPECT_EQ(p.workers[1].speed, 0.5);
  EXPECT_EQ(p.workers[1].dp_rank, 1);
}

TEST(Config, LlamaCppSlotModel) {
  auto c = Parse(R"(
pools:
  - name: m
    tokenizer: bytes
    workers:
      - {url: "http://127.0.0.1:8001", engine: llama.cpp, slots: 2, prompt_cache_tokens: 0}
      - {url: "http://127.0.0.1:8002", engine: llama.cpp}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->pools[0].workers[0].slots, 2u);
  EXPECT_EQ(c->pools[0].workers[0].prompt_cache_tokens, 0u);
  EXPECT_FALSE(c->pools[0].workers[1].prompt_cache_tokens.has_value());
  auto vllm = Parse(R"(
pools:
  - name: m
    tokenizer: bytes
    workers:
      - {url: "http://127.0.0.1:8001", slots: 2}
)");
  ASSERT_FALSE(vllm.ok());
  EXPECT_NE(vllm.status().message().find("slots: only for a worker with engine: llama.cpp"),
            std::string_view::npos)
      << vllm.status();
}

// cpu_threads left out: the pool follows the CPUs this process may use (sched_getaffinity).
TEST(Config, CpuThreadsLeftOutFollowTheCpus) {
  auto c = Parse(R"(
pools:
  - name: m
    tokenizer: bytes
    workers: [{url: "http://127.0.0.1:8001"}]
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->cpu_threads.has_value());
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  EXPECT_EQ(CpuThreads(*c), CPU_COUNT(&set) >= 4 ? 2u : 0u);
}

// llm-d's weighted profile reads the engines' metrics: left out, the poll follows llm-d's 50 ms
// refresh for it, and stays at a second for policies that do not score them.
TEST(Config, EngineMetricsAreFreshForThePoliciesThatScoreThem) {
  auto config = [](const std::string& policy, const std::string& interval) {
    return Parse(interval + "\npools:\n  - name: m\n    tokenizer: bytes\n    policy: " + policy +
                 "\n    workers: [{url: \"http://127.0.0.1:8001\"}]\n");
  };
  auto c = config("kvrouter", "");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->engine_metrics_interval_ms, 1000);
  c = config("llmd_weighted", "");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->engine_metrics_interval_ms, 50);
  c = config("llmd_weighted", "engine_metrics_interval_ms: 200");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->engine_metrics_interval_ms, 200);  // as configured
}

TEST(Config, AdminTokenFromTheEnvironment) {
  auto env = [](const std::string& name) -> std::optional<std::string> {
    if (name == "TOKEN") return "from-env";
    return std::nullopt;
  };
  auto c = ParseConfig("admin_token_env: TOKEN\npools: [{name: m, tokenizer: bytes}]\n", env);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->admin_token, "from-env");
  auto missing = ParseConfig("admin_token_env: NOPE\npools: [{name: m, tokenizer: bytes}]\n", env);
  EXPECT_NE(missing.status().message().find("NOPE is not set"), std::string_view::npos);
}

// Each bad file names the field (and its line) and why.
TEST(Config, ErrorsNameTheFieldAndWhy) {
  const std::pair<const char*, const char*> cases[] = {
      {"pools: []", "pools"},
      {"listen: nowhere\npools: [{name: m, tokenizer: bytes}]", "listen"},
      {"pools: [{name: m, tokenizer: bytes, block_size: 0}]", "pools[0].block_size"},
      {"pools: [{name: m, tokenizer: bytes, block_size: big}]", "must be an integer"},
      {"pools: [{name: m, tokenizer: bytes, policy: nope}]", "pools[0].policy"},
      {"pools: [{name: m}]", "pools[0].tokenizer"},
      {"pools: [{name: m, tokenizer: bytes, workers: [{url: 'ftp://x'}]}]", "pools[0].workers[0]"},
      {"pools: [{name: m, tokenizer: bytes, workers: [{url: 'http://x:1', kv_events: 'x'}]}]",
       "kv_events"},
      {"pools: [{name: m, tokenizer: bytes, workers: [{url: 'http://x:1', speed: -1}]}]", "speed"},
      {"pools: [{name: m, tokenizer: bytes, max_batched_tokens: 0}]",
       "pools[0].max_batched_tokens"},
      {"pools: [{name: m, tokenizer: bytes, workers: [{url: 'http://x:1', max_batched_tokens: "
       "0}]}]",
       "pools[0].workers[0].max_batched_tokens"},
      {"pools: [{name: m, tokenizer: bytes, colour: red}]", "pools[0].colour"},
      {"pools: [{name: m, tokenizer: bytes}, {name: m, tokenizer: bytes}]", "used twice"},
      {"pools: [{name: m, tokenizer: bytes, workers: [{url: 'http://x:1'}, {url: 'http://x:1'}]}]",
       "used twice"},
      {"pools: [{name: m, tokenizer: bytes\n", "not valid YAML"},
      {"limits: {queue_size: -1}\npools: [{name: m, tokenizer: bytes}]", "limits.queue_size"},
      {"inline_prepare_bytes: 2000000\npools: [{name: m, tokenizer: bytes}]",
       "inline_prepare_bytes"},
      {"pools: [{name: m, tokenizer: bytes, forward_tokens: yes please}]", "true or false"},
      {"pools: [{name: m, tokenizer: bytes, forward_tokens: true, tokenizer_check: off}]",
       "pools[0].forward_tokens"},
  };
  for (const auto& [yaml, expected] : cases) {
    auto c = Parse(yaml);
    ASSERT_FALSE(c.ok()) << yaml;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(c.status().message().find(expected), std::string_view::npos)
        << yaml << " -> " << c.status().message();
  }
}

TEST(Config, TheShippedExampleIsValid) {
  auto text = ReadFile("configs/router.example.yaml");
  ASSERT_TRUE(text.ok()) << text.status();
  auto env = [](const std::string&) -> std::optional<std::string> { return "token"; };
  auto c = ParseConfig(*text, env);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->admin_token, "token");
  ASSERT_EQ(c->pools.size(), 1u);
  EXPECT_EQ(c->pools[0].workers.size(), 3u);
  EXPECT_EQ(c->pools[0].workers[2].kv_events, "");
}

TEST(Config, LineNumbersPointAtTheField) {
  auto c = Parse("pools:\n  - name: m\n    tokenizer: bytes\n    block_size: x\n");
  EXPECT_NE(c.status().message().find("(line 4)"), std::string_view::npos) << c.status();
}

}  // namespace
}  // namespace kvr::gateway
