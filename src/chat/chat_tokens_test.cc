// End to end, as the router will do it: render the chat context with src/chat, tokenize the text
// with src/tokenizer (no special tokens added), and compare with the ids the official stack
// produced (Jinja2 + Hugging Face tokenizers) in tests/data/tokenizer_golden/*/chat_golden.jsonl.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "chat/chat_template.h"
#include "tokenizer/test_util.h"

namespace kvr::chat {
namespace {

using tokenizer::testing::AllModels;
using tokenizer::testing::LoadModel;
using tokenizer::testing::ModelFiles;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// ordered_json: the contexts' key order is what tojson prints (nlohmann::json would sort keys).
std::vector<nlohmann::ordered_json> ReadJsonl(const std::string& path) {
  std::vector<nlohmann::ordered_json> rows;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) {
    if (!line.empty()) rows.push_back(nlohmann::ordered_json::parse(line));
  }
  return rows;
}

class ChatTokensTest : public ::testing::TestWithParam<ModelFiles> {};

TEST_P(ChatTokensTest, RenderedThenTokenizedMatchesGoldenIds) {
  std::string path =
      std::string("tests/data/tokenizer_golden/") + GetParam().name + "/chat_golden.jsonl";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no chat golden for this model";
  const tokenizer::Tokenizer* tok = LoadModel(GetParam());
  ASSERT_NE(tok, nullptr);
  TemplateCache cache;
  RenderOptions opt;  // the goldens' strftime_now clock: 2026-11-27 12:00
  opt.now.tm_year = 126;
  opt.now.tm_mon = 10;
  opt.now.tm_mday = 27;
  opt.now.tm_hour = 12;
  int checked = 0;
  for (const auto& row : ReadJsonl(path)) {
    if (!row.contains("ids") || !row.value("ok", false)) continue;
    SCOPED_TRACE(row.at("id").get<std::string>());
    auto tmpl = cache.Get(ReadFile("tests/data/chat_templates/shared/templates/" +
                                   row.at("template").get<std::string>()));
    ASSERT_TRUE(tmpl.ok()) << tmpl.status();
    auto text = (*tmpl)->RenderJson(row.at("context").dump(), opt);
    ASSERT_TRUE(text.ok()) << text.status();
    EXPECT_EQ(*text, row.at("rendered").get<std::string>());
    auto ids = tok->Encode(*text, /*add_special_tokens=*/false);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, row.at("ids").get<std::vector<uint32_t>>());
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

INSTANTIATE_TEST_SUITE_P(Models, ChatTokensTest, ::testing::ValuesIn(AllModels()),
                         [](const auto& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace kvr::chat
