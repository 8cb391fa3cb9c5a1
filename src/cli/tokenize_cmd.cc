// kvrouter tokenize --tokenizer PATH [--add-special-tokens] [--transformers-bos]
// stdin: JSON lines {"text": "..."}; stdout: one {"ids": [...]} (or {"error": "..."}) per line,
// in order. A bad line does not stop the others.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "tokenizer/tokenizer.h"

namespace kvr::cli {
namespace {

struct TokenizeFlags {
  std::string tokenizer;
  bool add_special_tokens = false;
  bool transformers_bos = false;
};

std::string ErrorLine(const std::string& message) {
  return nlohmann::json{{"error", message}}.dump(-1, ' ', false,
                                                 nlohmann::json::error_handler_t::replace);
}

std::string TokenizeLine(const tokenizer::Tokenizer& tok, const std::string& line, bool special,
                         tokenizer::EncodeCache* cache) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return ErrorLine("line is not valid JSON");
  if (!j.is_object() || !j.contains("text") || !j["text"].is_string()) {
    return ErrorLine("expected an object with a string field \"text\"");
  }
  auto ids = tok.Encode(j["text"].get_ref<const std::string&>(), special, cache);
  if (!ids.ok()) return ErrorLine(std::string(ids.status().message()));
  std::string out = "{\"ids\":[";
  for (size_t i = 0; i < ids->size(); ++i) {
    if (i) out.push_back(',');
    out += std::to_string((*ids)[i]);
  }
  out += "]}";
  return out;
}

int RunTokenize(const TokenizeFlags& flags) {
  tokenizer::LoadOptions options;
  options.transformers_bos_rule = flags.transformers_bos;
  auto tok = tokenizer::Tokenizer::FromPath(flags.tokenizer, options);
  if (!tok.ok()) {
    std::fprintf(stderr, "kvrouter tokenize: %s\n", tok.status().ToString().c_str());
    return 1;
  }
  tokenizer::EncodeCache cache;
  std::ios::sync_with_stdio(false);
  std::string line;
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::string out = TokenizeLine(**tok, line, flags.add_special_tokens, &cache);
    out.push_back('\n');
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace

void RegisterTokenize(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<TokenizeFlags>();
  auto* cmd = app.add_subcommand("tokenize", "JSONL {\"text\"} on stdin -> {\"ids\"} on stdout");
  cmd->add_option("--tokenizer", flags->tokenizer, "tokenizer.json, or a directory holding it")
      ->required();
  cmd->add_flag("--add-special-tokens", flags->add_special_tokens,
                "apply the post-processor (BOS etc.)");
  cmd->add_flag("--transformers-bos", flags->transformers_bos,
                "apply transformers' add_bos_token rule from tokenizer_config.json (as vLLM)");
  cmd->callback([flags, exit_code] { *exit_code = RunTokenize(*flags); });
}

}  // namespace kvr::cli
