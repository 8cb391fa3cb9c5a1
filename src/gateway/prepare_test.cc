#include "gateway/prepare.h"

#include <gtest/gtest.h>

#include "index/block_hash.h"

namespace kvr::gateway {
namespace {

class PrepareTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model = api::TextModel::Load({});  // one token per byte, ChatML template
    ASSERT_TRUE(model.ok());
    text_ = *std::move(model);
  }
  ModelLookup Lookup() {
    return [this](std::string_view name) -> std::optional<ModelText> {
      if (name.empty() || name == "m") return ModelText{.name = "m", .text = text_.get(), .block_size = 4};
      return std::nullopt;
    };
  }
  std::unique_ptr<api::TextModel> text_;
};

TEST_F(PrepareTest, CompletionTextIsTokenizedAndHashed) {
  auto r = PreparePrompt(api::Endpoint::kCompletions,
                         R"({"model":"m","prompt":"abcdefghij","stream":true})", Lookup());
  const auto& p = std::get<PreparedPrompt>(r);
  EXPECT_EQ(p.model, "m");
  EXPECT_TRUE(p.stream);
  EXPECT_EQ(p.prompt_tokens, 10u);
  std::vector<TokenId> ids;
  for (char c : std::string("abcdefghij")) ids.push_back(TokenId(uint8_t(c)));
  EXPECT_EQ(p.blocks, SequenceHashes(ids, 4));  // two full blocks
}

TEST_F(PrepareTest, TokenIdPromptsAndChat) {
  auto ids = PreparePrompt(api::Endpoint::kCompletions, R"({"prompt":[1,2,3,4,5]})", Lookup());
  EXPECT_EQ(std::get<PreparedPrompt>(ids).prompt_tokens, 5u);
  auto chat = PreparePrompt(api::Endpoint::kChat,
                            R"({"model":"m","messages":[{"role":"user","content":"hi"}]})",
                            Lookup());
  // ChatML: "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", one token per byte.
  EXPECT_EQ(std::get<PreparedPrompt>(chat).prompt_tokens, 52u);
}

TEST_F(PrepareTest, ErrorsAreTheClientsAnswer) {
  auto unknown = PreparePrompt(api::Endpoint::kCompletions, R"({"model":"x","prompt":"a"})",
                               Lookup());
  EXPECT_EQ(std::get<api::ApiError>(unknown).status, 404);
  auto bad_json = PreparePrompt(api::Endpoint::kCompletions, R"({"prompt":)", Lookup());
  EXPECT_EQ(std::get<api::ApiError>(bad_json).status, 400);
  auto bad_type = PreparePrompt(api::Endpoint::kCompletions, R"({"prompt":"a","stream":3})",
                                Lookup());
  EXPECT_EQ(std::get<api::ApiError>(bad_type).status, 400);
  auto bad_utf8 = PreparePrompt(api::Endpoint::kCompletions, "{\"prompt\":\"\xff\xfe\"}", Lookup());
  EXPECT_EQ(std::get<api::ApiError>(bad_utf8).status, 400);
  auto huge_id = PreparePrompt(api::Endpoint::kCompletions, R"({"prompt":[99999999999999999999]})",
                               Lookup());
  EXPECT_EQ(std::get<api::ApiError>(huge_id).status, 400);
}

TEST_F(PrepareTest, ForwardTokensRewritesOnlyTheTextPrompt) {
  const ModelLookup forward = [this](std::string_view) -> std::optional<ModelText> {
    return ModelText{.name = "m", .text = text_.get(), .block_size = 4, .forward_tokens = true};
  };
  // Every other byte stays as sent, spacing and the same key nested elsewhere included.
  const std::string body =
      "{ \"model\" : \"m\", \"x\": {\"prompt\": \"no\"}, \"prompt\" :\t\"a\\\"b\\\\\" ,"
      " \"extra\":[1,{\"k\":\"}\"}], \"echo\": false }";
  auto r = PreparePrompt(api::Endpoint::kCompletions, body, forward);
  const auto& p = std::get<PreparedPrompt>(r);
  EXPECT_EQ(p.token_body,
            "{ \"model\" : \"m\", \"x\": {\"prompt\": \"no\"}, \"prompt\" :\t[97,34,98,92] ,"
            " \"extra\":[1,{\"k\":\"}\"}], \"echo\": false }");
  // The engine parses the ids the router hashed.
  api::ApiRequest parsed;
  auto plain = PreparePrompt(api::Endpoint::kCompletions,
                             R"({"model":"m","prompt":"abcdefghij","stream":true})", forward);
  const std::string& rewritten = std::get<PreparedPrompt>(plain).token_body;
  ASSERT_FALSE(api::ParseApiRequest(api::Endpoint::kCompletions, rewritten, &parsed));
  ASSERT_TRUE(parsed.prompt_is_ids);
  EXPECT_EQ(SequenceHashes(parsed.prompt_ids, 4), std::get<PreparedPrompt>(plain).blocks);
  EXPECT_TRUE(parsed.stream);

  // Forwarded as sent: token-id prompts, chat, echo, a repeated or escaped key, a prompt list,
  // and a pool without forward_tokens.
  for (const char* as_sent : {R"({"prompt":[1,2,3]})", R"({"prompt":["abc"]})",
                              R"({"prompt":"abc","echo":true})", R"({"prompt":"a","prompt":"b"})",
                              R"({"pr\u006fmpt":"abc"})"}) {
    auto kept = PreparePrompt(api::Endpoint::kCompletions, as_sent, forward);
    ASSERT_TRUE(std::holds_alternative<PreparedPrompt>(kept)) << as_sent;
    EXPECT_EQ(std::get<PreparedPrompt>(kept).token_body, "") << as_sent;
  }
  auto chat = PreparePrompt(api::Endpoint::kChat, R"({"messages":[{"role":"user","content":"hi"}]})",
                            forward);
  EXPECT_EQ(std::get<PreparedPrompt>(chat).token_body, "");
  auto off = PreparePrompt(api::Endpoint::kCompletions, R"({"prompt":"abc"})", Lookup());
  EXPECT_EQ(std::get<PreparedPrompt>(off).token_body, "");
}

TEST(WithTokenPrompt, AnyInputOnlyFails) {
  const std::vector<TokenId> ids = {1, 2};
  for (const char* bad : {"", "{", "{\"prompt\"", "{\"prompt\":\"abc", "{\"prompt\":\"a\\\"}",
                          "[\"prompt\",\"a\"]", "{\"a\":[1,2}", "{\"prompt\":\"a\",}", "{}",
                          "{\"prompt\":\"a\"", "\"prompt\"", "{\"prompt\" \"a\"}"}) {
    EXPECT_EQ(WithTokenPrompt(bad, ids), std::nullopt) << bad;
  }
  EXPECT_EQ(WithTokenPrompt(R"({"prompt":""})", ids), R"({"prompt":[1,2]})");
}

TEST(Usage, FromBodyAndFromAStreamSplitAnywhere) {
  const std::string body =
      R"({"usage":{"prompt_tokens":12,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":8}}})";
  EXPECT_EQ(UsageFromBody(body).prompt_tokens, 12);
  EXPECT_EQ(UsageFromBody(body).cached_tokens, 8);
  EXPECT_EQ(UsageFromBody("not json").prompt_tokens, -1);
  const std::string stream = "data: {\"choices\":[{\"text\":\"a\"}],\"usage\":null}\n\n"
                             "data: " + body + "\n\ndata: [DONE]\n\n";
  for (size_t split = 0; split <= stream.size(); ++split) {
    UsageScanner s;
    s.Feed(std::string_view(stream).substr(0, split));
    s.Feed(std::string_view(stream).substr(split));
    EXPECT_EQ(s.usage().prompt_tokens, 12) << split;
    EXPECT_EQ(s.usage().cached_tokens, 8) << split;
    EXPECT_EQ(s.output_events(), 2u) << split;
    EXPECT_EQ(s.OutputTokens(), 3u) << split;  // the engine's own count wins
  }
}

TEST(Usage, CountsOutputEventsWhenNoUsageIsReported) {
  UsageScanner s;
  s.Feed("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
         "data:{\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n"
         "data: {\"choices\":[],\"usage\":null}\n\ndata: [DONE]\n\n");
  EXPECT_EQ(s.output_events(), 2u);
  EXPECT_EQ(s.OutputTokens(), 2u);
}

TEST(EngineMetrics, VllmAndSglangGaugesForOneRank) {
  const char* vllm =
      "# HELP vllm:num_requests_running x\n"
      "vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 3.0\n"
      "vllm:num_requests_running{engine=\"1\",model_name=\"m\"} 7.0\n"
      "vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 2.0\n"
      "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"m\"} 0.25\n"
      "vllm:other 9\n";
  auto m = ParseEngineMetrics(vllm, 0);
  ASSERT_TRUE(m.has_value());
  EXPECT_TRUE(m->valid);
  EXPECT_EQ(m->running, 3u);
  EXPECT_EQ(m->waiting, 2u);
  EXPECT_DOUBLE_EQ(m->kv_usage, 0.25);
  EXPECT_EQ(ParseEngineMetrics(vllm, 1)->running, 7u);
  auto s = ParseEngineMetrics("sglang:num_running_reqs 4\nsglang:num_queue_reqs 1 1700000000\n", 0);
  EXPECT_EQ(s->running, 4u);
  EXPECT_EQ(s->waiting, 1u);
  // llama-server --metrics: unlabelled gauges, busy slots and requests waiting for a slot.
  auto l = ParseEngineMetrics(
      "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.\n"
      "# TYPE llamacpp:prompt_tokens_total counter\n"
      "llamacpp:prompt_tokens_total 1259\n"
      "# TYPE llamacpp:requests_processing gauge\n"
      "llamacpp:requests_processing 2\n"
      "# TYPE llamacpp:requests_deferred gauge\n"
      "llamacpp:requests_deferred 3\n",
      0);
  ASSERT_TRUE(l.has_value());
  EXPECT_EQ(l->running, 2u);
  EXPECT_EQ(l->waiting, 3u);
  EXPECT_DOUBLE_EQ(l->kv_usage, 0);  // llama.cpp has no KV-usage gauge
  EXPECT_FALSE(ParseEngineMetrics("up 1\n", 0).has_value());
  EXPECT_FALSE(ParseEngineMetrics("vllm:num_requests_running NaN\n", 0).has_value());
}

// The KV cache's size: vLLM's cache_config_info labels (blocks × block size), SGLang's
// max_total_num_tokens; nothing from a label vLLM has not filled in yet.
TEST(EngineMetrics, KvCapacityWhereTheEngineReportsIt) {
  auto v = ParseEngineMetrics(
      "vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 1.0\n"
      "vllm:cache_config_info{block_size=\"16\",cache_dtype=\"auto\",engine=\"0\","
      "num_gpu_blocks=\"65536\",enable_prefix_caching=\"True\"} 1.0\n"
      "vllm:cache_config_info{block_size=\"32\",engine=\"1\",num_gpu_blocks=\"10\"} 1.0\n",
      0);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->kv_capacity_tokens, 65536u * 16);
  EXPECT_EQ(
      ParseEngineMetrics("vllm:num_requests_running 1\n"
                         "vllm:cache_config_info{block_size=\"16\",num_gpu_blocks=\"None\"} 1\n",
                         0)
          ->kv_capacity_tokens,
      0u);
  auto s = ParseEngineMetrics("sglang:num_running_reqs 4\nsglang:max_total_num_tokens 812345\n", 0);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->kv_capacity_tokens, 812345u);
  EXPECT_EQ(ParseEngineMetrics("vllm:num_requests_running 1\n", 0)->kv_capacity_tokens, 0u);
  // A size alone is not a load report.
  EXPECT_FALSE(ParseEngineMetrics("sglang:max_total_num_tokens 812345\n", 0).has_value());
}

TEST(TotalSlots, FromLlamaCppProps) {
  EXPECT_EQ(ParseTotalSlots(R"({"total_slots": 2, "model_path": "m.gguf"})"), 2u);
  EXPECT_EQ(ParseTotalSlots(R"({"total_slots": 0})"), std::nullopt);
  EXPECT_EQ(ParseTotalSlots(R"({"total_slots": "2"})"), std::nullopt);
  EXPECT_EQ(ParseTotalSlots("not json"), std::nullopt);
  EXPECT_EQ(ParseTotalSlots("[]"), std::nullopt);
}

TEST(MaxBatchedTokens, FromSglangServerInfo) {
  constexpr uint32_t kLimit = 1 << 24;
  // SGLang's defaults on an 80 GB GPU: chunks of 8,192 tokens, prefill batches of 16,384.
  EXPECT_EQ(ParseMaxBatchedTokens(
                R"({"chunked_prefill_size": 8192, "max_prefill_tokens": 16384, "page_size": 1,
                    "internal_states": [{}], "version": "0.5.4"})",
                kLimit),
            8192u);
  EXPECT_EQ(ParseMaxBatchedTokens(R"({"chunked_prefill_size": 32768, "max_prefill_tokens": 16384})",
                                  kLimit),
            16384u);
  // Chunked prefill off (-1 or null): the prefill batch budget alone.
  EXPECT_EQ(
      ParseMaxBatchedTokens(R"({"chunked_prefill_size": -1, "max_prefill_tokens": 16384})", kLimit),
      16384u);
  EXPECT_EQ(ParseMaxBatchedTokens(R"({"chunked_prefill_size": null, "max_prefill_tokens": 4096})",
                                  kLimit),
            4096u);
  EXPECT_EQ(ParseMaxBatchedTokens(R"({"chunked_prefill_size": 2048})", kLimit), 2048u);
  // Anything else: nothing learned.
  EXPECT_EQ(ParseMaxBatchedTokens(R"({"chunked_prefill_size": 8192})", 4096), std::nullopt);
  EXPECT_EQ(ParseMaxBatchedTokens(R"({"chunked_prefill_size": "8192"})", kLimit), std::nullopt);
  EXPECT_EQ(
      ParseMaxBatchedTokens(R"({"chunked_prefill_size": 0, "max_prefill_tokens": 0})", kLimit),
      std::nullopt);
  EXPECT_EQ(ParseMaxBatchedTokens(R"({"vllm_config": "max_num_batched_tokens=8192"})", kLimit),
            std::nullopt);
  EXPECT_EQ(ParseMaxBatchedTokens(R"({"detail": "Not Found"})", kLimit), std::nullopt);
  EXPECT_EQ(ParseMaxBatchedTokens("not json", kLimit), std::nullopt);
}

}  // namespace
}  // namespace kvr::gateway
