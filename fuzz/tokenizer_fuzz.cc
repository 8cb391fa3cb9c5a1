// libFuzzer target for the tokenizer: arbitrary bytes as input text (valid UTF-8 or not) for a
// byte-level tokenizer (Llama 3 split regex, NFC, added tokens with every flag) and a
// SentencePiece-style one (Metaspace, byte fallback); the fast regex matcher is checked against
// Oniguruma on every valid input; a leading 0xFF byte feeds the rest to the JSON loader instead.
// Set KVR_FUZZ_TOKENIZER=path to fuzz a real tokenizer.json as well.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/fast_split.h"
#include "tokenizer/regex.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace {

using kvr::tokenizer::Tokenizer;
using nlohmann::json;

constexpr const char* kLlamaPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3})"
    R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

json AddedTokens() {
  return json::array(
      {{{"id", 300}, {"content", "<|x|>"}, {"special", true}, {"normalized", false}},
       {{"id", 301}, {"content", "ab"}, {"special", false}, {"lstrip", true}, {"rstrip", true}},
       {{"id", 302},
        {"content", "w"},
        {"special", false},
        {"single_word", true},
        {"normalized", false}}});
}

std::unique_ptr<Tokenizer> ByteLevel() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) {
    std::string s;
    kvr::tokenizer::AppendUtf8(kvr::tokenizer::ByteToChar(static_cast<uint8_t>(b)), &s);
    vocab[s] = b;
  }
  vocab["aa"] = 256;
  vocab["aaa"] = 257;
  vocab
      ["\xC4\xA0"
       "a"] = 258;
  json j = {{"model",
             {{"type", "BPE"},
              {"vocab", vocab},
              {"merges", {"a a", "aa a", "\xC4\xA0 a"}},
              {"ignore_merges", true}}},
            {"normalizer", {{"type", "NFC"}}},
            {"pre_tokenizer",
             {{"type", "Sequence"},
              {"pretokenizers",
               {{{"type", "Split"},
                 {"pattern", {{"Regex", kLlamaPattern}}},
                 {"behavior", "Isolated"},
                 {"invert", false}},
                {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
            {"added_tokens", AddedTokens()},
            {"decoder", {{"type", "ByteLevel"}}}};
  return std::move(Tokenizer::FromJson(j.dump(), "").value());
}

std::unique_ptr<Tokenizer> SentencePiece() {
  json vocab = {{"<unk>", 0},
                {"\xE2\x96\x81", 1},
                {"a", 2},
                {"\xE2\x96\x81"
                 "a",
                 3}};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    vocab[buf] = 4 + b;
  }
  json j = {
      {"model",
       {{"type", "BPE"},
        {"vocab", vocab},
        {"merges", {"\xE2\x96\x81 a"}},
        {"unk_token", "<unk>"},
        {"byte_fallback", true},
        {"fuse_unk", true}}},
      {"normalizer",
       {{"type", "Sequence"}, {"normalizers", {{{"type", "Lowercase"}}, {{"type", "Strip"}}}}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Digits"}, {"individual_digits", true}},
          {{"type", "Punctuation"}, {"behavior", "MergedWithPrevious"}},
          {{"type", "Metaspace"},
           {"replacement", "\xE2\x96\x81"},
           {"prepend_scheme", "first"},
           {"split", true}}}}}},
      {"added_tokens", AddedTokens()},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         {{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
          {{"type", "ByteFallback"}},
          {{"type", "Fuse"}}}}}}};
  return std::move(Tokenizer::FromJson(j.dump(), "").value());
}

struct State {
  std::vector<std::unique_ptr<Tokenizer>> toks;
  std::unique_ptr<kvr::tokenizer::Regex> regex;
  kvr::tokenizer::FastMatchFn fast = nullptr;
  State() {
    toks.push_back(ByteLevel());
    toks.push_back(SentencePiece());
    if (const char* path = std::getenv("KVR_FUZZ_TOKENIZER")) {
      toks.push_back(std::move(Tokenizer::FromPath(path).value()));
    }
    regex = std::move(kvr::tokenizer::Regex::Compile(kLlamaPattern).value());
    fast = kvr::tokenizer::FindFastMatcher(kLlamaPattern);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static State* state = new State();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (!text.empty() && static_cast<uint8_t>(text[0]) == 0xFF) {
    (void)Tokenizer::FromJson(text.substr(1), "");  // must fail cleanly, never crash
    return 0;
  }
  kvr::tokenizer::EncodeCache cache;
  for (const auto& tok : state->toks) {
    auto ids = tok->Encode(text, true, &cache);
    bool valid = kvr::tokenizer::FindInvalidUtf8(text) == std::string_view::npos;
    if (ids.ok() != valid) std::abort();  // invalid UTF-8 is exactly the error case
    if (ids.ok()) (void)tok->Decode(*ids, false);
  }
  if (kvr::tokenizer::FindInvalidUtf8(text) == std::string_view::npos) {
    std::vector<kvr::tokenizer::Span> want, got;
    state->regex->FindAll(text, &want);
    state->fast(text, &got);
    if (want != got) std::abort();  // the fast matcher must equal Oniguruma
  }
  return 0;
}
