// Jinja2 semantics one behaviour at a time (differential against Jinja2's recorded output), plus
// error reporting and resource limits.
#include <fstream>
#include <sstream>

#include "chat/chat_template.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kvr::chat {
namespace {

RenderOptions Pinned() {  // the clock scripts/chat/semantics_cases.py pins
  RenderOptions o;
  o.now.tm_year = 126;
  o.now.tm_mon = 10;
  o.now.tm_mday = 27;
  o.now.tm_hour = 12;
  o.now.tm_wday = 5;
  return o;
}

absl::StatusOr<std::string> Render(std::string_view src, std::string_view ctx = "{}",
                                   RenderOptions opt = Pinned()) {
  KVR_ASSIGN_OR_RETURN(auto t, ChatTemplate::Compile(src));
  return t->RenderJson(ctx, opt);
}

TEST(JinjaSemanticsTest, SnippetsMatchJinja2) {
  std::ifstream f("tests/data/chat_templates/semantics.json");
  std::stringstream ss;
  ss << f.rdbuf();
  auto cases = nlohmann::ordered_json::parse(ss.str());
  ASSERT_GE(cases.size(), 70u);
  for (const auto& c : cases) {
    std::string src = c["template"].get<std::string>();
    SCOPED_TRACE(src);
    auto out = Render(src, c["context"].dump());
    if (c["ok"].get<bool>()) {
      ASSERT_TRUE(out.ok()) << out.status();
      EXPECT_EQ(*out, c["rendered"].get<std::string>());
      continue;
    }
    std::string err = c["error"].get<std::string>();
    EXPECT_FALSE(out.ok()) << "Jinja2 raised " << err << " but we rendered: " << *out;
    if (!out.ok() && err.rfind("TemplateError: ", 0) == 0) {
      EXPECT_EQ(out.status().message(), err.substr(15));  // raise_exception's message, exactly
    }
  }
}

TEST(JinjaSemanticsTest, SyntaxErrorsNameLineAndColumn) {
  auto t = ChatTemplate::Compile("line one\n{% if x %}\n  {{ x + }}\n{% endif %}");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("line 3, column 10"), std::string_view::npos) << t.status();
  t = ChatTemplate::Compile("{% for x in y %}never closed");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("endfor"), std::string_view::npos) << t.status();
  t = ChatTemplate::Compile("ok {% bogus %}");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("line 1, column 7"), std::string_view::npos) << t.status();
  EXPECT_FALSE(ChatTemplate::Compile("{{ 'unterminated }}").ok());
  EXPECT_FALSE(ChatTemplate::Compile("{# no end").ok());
  EXPECT_FALSE(ChatTemplate::Compile("{{ a | }}").ok());
}

TEST(JinjaSemanticsTest, RuntimeErrorsNamePosition) {
  auto out = Render("ab\n  {{ messages.x.y }}", R"({"messages": {}})");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("line 2"), std::string_view::npos) << out.status();
}

TEST(JinjaSemanticsTest, RaiseExceptionGivesExactlyItsMessage) {
  auto out = Render("{{ raise_exception('Only user and assistant roles are supported!') }}");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(out.status().message(), "Only user and assistant roles are supported!");
}

TEST(JinjaSemanticsTest, StepBudgetStopsRunawayLoops) {
  RenderOptions opt = Pinned();
  opt.limits.max_steps = 100000;
  auto out =
      Render("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
             "{}", opt);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(JinjaSemanticsTest, OutputAndValueSizesAreCapped) {
  RenderOptions opt = Pinned();
  opt.limits.max_output_bytes = 1 << 16;
  auto out = Render("{% for a in range(100000) %}xxxxxxxx{% endfor %}", "{}", opt);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted);
  // Doubling a string 64 times would need exabytes; the size cap stops it early.
  out = Render(
      "{% set ns = namespace(s='ab') %}{% for i in range(64) %}"
      "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
      "{}", opt);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted);
  out = Render("{{ 'x' * 100000000000 }}", "{}", opt);
  ASSERT_FALSE(out.ok());
}

TEST(JinjaSemanticsTest, MacroRecursionIsBounded) {
  auto out = Render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(JinjaSemanticsTest, DeepNestingIsASyntaxErrorNotACrash) {
  std::string deep(5000, '(');
  EXPECT_FALSE(ChatTemplate::Compile("{{ " + deep + "1" + std::string(5000, ')') + " }}").ok());
  std::string ifs;
  for (int i = 0; i < 1000; ++i) ifs += "{% if true %}";
  EXPECT_FALSE(ChatTemplate::Compile(ifs).ok());
  std::string nots = "{{ " + std::string(1000 * 4, ' ');
  for (int i = 0; i < 1000; ++i) nots += "not ";
  EXPECT_FALSE(ChatTemplate::Compile(nots + "x }}").ok());
}

TEST(JinjaSemanticsTest, CacheCompilesEachSourceOnce) {
  TemplateCache cache;
  auto a = cache.Get("{{ x }}");
  auto b = cache.Get(std::string("{{ x }}"));
  auto c = cache.Get("{{ y }}");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->get(), b->get());
  EXPECT_NE(a->get(), c->get());
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_FALSE(cache.Get("{% if %}").ok());
  EXPECT_EQ(cache.size(), 2u);
}

TEST(JinjaSemanticsTest, QwenStyleUndefinedBosRendersEmpty) {
  // transformers passes only the special tokens that are set: a missing bos_token is undefined.
  EXPECT_EQ(*Render("[{{ bos_token }}]{{ bos_token is defined }}"), "[]False");
}

TEST(JinjaSemanticsTest, RejectsNonObjectContext) {
  auto t = ChatTemplate::Compile("x");
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE((*t)->RenderJson("[1, 2]", Pinned()).ok());
  EXPECT_FALSE((*t)->RenderJson("{not json", Pinned()).ok());
}

}  // namespace
}  // namespace kvr::chat
