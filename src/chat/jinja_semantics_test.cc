// Jinja2 semantics, one behaviour per case. Expected strings were produced by Debian's
// python3-jinja2 3.1.2 configured as transformers configures it.
#include "chat/chat_template.h"
#include "gtest/gtest.h"

namespace kvr::chat {
namespace {

std::string Render(std::string_view src, std::string_view ctx = "{}") {
  auto t = ChatTemplate::Compile(src);
  if (!t.ok()) return "COMPILE: " + std::string(t.status().message());
  auto r = (*t)->RenderJson(ctx, RenderOptions{});
  if (!r.ok()) return "ERROR: " + std::string(r.status().message());
  return *r;
}

TEST(JinjaSemanticsTest, Basics) {
  EXPECT_EQ(Render("{{ 1 + 2 }}"), "3");
}

}  // namespace
}  // namespace kvr::chat
