#include "tokenizer/tokenizer.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/file.h"
#include "tokenizer/decoder.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/unicode.h"

namespace kvr::tokenizer {
namespace {

using nlohmann::json;

// A config's special token is either a string or an AddedToken object {"content": ...}.
std::optional<std::string> ConfigToken(const json& config, const char* key) {
  if (!config.contains(key)) return std::nullopt;
  const json& v = config.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content")) return v.at("content").get<std::string>();
  return std::nullopt;
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromPath(const std::string& path,
                                                               const LoadOptions& options) {
  std::error_code ec;
  std::string file = path, config_text;
  if (std::filesystem::is_directory(path, ec)) {
    file = (std::filesystem::path(path) / "tokenizer.json").string();
    auto config_path = std::filesystem::path(path) / "tokenizer_config.json";
    if (std::filesystem::exists(config_path, ec)) {
      ASSIGN_OR_RETURN(config_text, ReadFile(config_path.string()));
    }
  }
  ASSIGN_OR_RETURN(std::string text, ReadFile(file));
  auto tok = FromJson(text, config_text, options);
  if (!tok.ok()) {
    return absl::Status(tok.status().code(), file + ": " + std::string(tok.status().message()));
  }
  return tok;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view tokenizer_json,
                                                               std::string_view config_json,
                                                               const LoadOptions& options) {
  std::unique_ptr<Tokenizer> tok(new Tokenizer());
  try {
    json config;
    if (!config_json.empty()) config = json::parse(config_json);
    absl::Status st;
    {
      json j = json::parse(tokenizer_json);
      st = tok->Load(j, config_json.empty() ? nullptr : &config, options);
    }  // the DOM (several times the file size) is freed before returning
    if (!st.ok()) return st;
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(std::string("malformed tokenizer JSON: ") + e.what());
  }
  return tok;
}

absl::Status Tokenizer::Load(const json& j, const json* config, const LoadOptions& options) {
  if (!j.value("truncation", json()).is_null()) {
    return absl::UnimplementedError("unsupported component: truncation");
  }
  if (!j.value("padding", json()).is_null()) {
    return absl::UnimplementedError("unsupported component: padding");
  }
  if (!j.value("normalizer", json()).is_null()) {
    ASSIGN_OR_RETURN(normalizer_, ParseNormalizer(j.at("normalizer")));
  }
  bool byte_level = false;
  if (!j.value("pre_tokenizer", json()).is_null()) {
    ASSIGN_OR_RETURN(pre_tokenizer_, ParsePreTokenizer(j.at("pre_tokenizer"), &byte_level));
  }
  ASSIGN_OR_RETURN(model_, BpeModel::FromJson(j.at("model"), byte_level));
  if (!j.value("decoder", json()).is_null()) {
    ASSIGN_OR_RETURN(decoder_, ParseDecoder(j.at("decoder")));
  }
  RETURN_IF_ERROR(LoadAddedTokens(j.value("added_tokens", json::array())));
  if (!j.value("post_processor", json()).is_null()) {
    RETURN_IF_ERROR(LoadPostProcessor(j.at("post_processor")));
  }
  if (options.transformers_bos_rule) {
    if (config == nullptr) {
      return absl::InvalidArgumentError("transformers_bos_rule needs tokenizer_config.json");
    }
    RETURN_IF_ERROR(ApplyTransformersRule(*config));
  }
  return absl::OkStatus();
}

absl::Status Tokenizer::LoadAddedTokens(const json& list) {
  std::vector<AddedToken> tokens;
  for (const json& t : list) {
    AddedToken a;
    a.id = t.at("id").get<uint32_t>();
    a.content = t.at("content").get<std::string>();
    a.special = t.value("special", false);
    a.lstrip = t.value("lstrip", false);
    a.rstrip = t.value("rstrip", false);
    a.normalized = t.value("normalized", !a.special);
    a.single_word = t.value("single_word", false);
    if (FindInvalidUtf8(a.content) != std::string_view::npos) {
      return absl::InvalidArgumentError("added token is not UTF-8");
    }
    tokens.push_back(std::move(a));
  }
  added_.Build(std::move(tokens), normalizer_.get());
  return absl::OkStatus();
}

absl::Status Tokenizer::LoadPostProcessor(const json& j) {
  const std::string type = j.at("type").get<std::string>();
  if (type == "ByteLevel") return absl::OkStatus();  // offsets only; ids unchanged
  if (type == "Sequence") {
    for (const json& p : j.at("processors")) RETURN_IF_ERROR(LoadPostProcessor(p));
    return absl::OkStatus();
  }
  std::vector<uint32_t> prefix, suffix;
  if (type == "TemplateProcessing") {
    bool seen_a = false;
    for (const json& item : j.at("single")) {
      if (item.contains("Sequence")) {
        if (item.at("Sequence").at("id") != "A" || seen_a) {
          return absl::UnimplementedError("unsupported TemplateProcessing single template");
        }
        seen_a = true;
        continue;
      }
      const std::string name = item.at("SpecialToken").at("id").get<std::string>();
      const json& ids = j.at("special_tokens").at(name).at("ids");
      for (const json& id : ids) (seen_a ? suffix : prefix).push_back(id.get<uint32_t>());
    }
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    prefix.push_back(j.at("cls").at(1).get<uint32_t>());
    suffix.push_back(j.at("sep").at(1).get<uint32_t>());
  } else {
    return absl::UnimplementedError("unsupported post_processor: " + type);
  }
  // Processors run in order, each wrapping the previous result.
  prefix.insert(prefix.end(), prefix_ids_.begin(), prefix_ids_.end());
  prefix_ids_ = std::move(prefix);
  suffix_ids_.insert(suffix_ids_.end(), suffix.begin(), suffix.end());
  return absl::OkStatus();
}

absl::Status Tokenizer::ApplyTransformersRule(const json& config) {
  static const char* kClasses[] = {"LlamaTokenizer",     "LlamaTokenizerFast",
                                   "GemmaTokenizer",     "GemmaTokenizerFast",
                                   "CodeLlamaTokenizer", "CodeLlamaTokenizerFast"};
  std::string cls = config.value("tokenizer_class", std::string());
  if (std::find(std::begin(kClasses), std::end(kClasses), cls) == std::end(kClasses)) {
    return absl::OkStatus();
  }
  prefix_ids_.clear();
  suffix_ids_.clear();
  for (auto [flag, key, def, dest] :
       {std::tuple{"add_bos_token", "bos_token", true, &prefix_ids_},
        std::tuple{"add_eos_token", "eos_token", false, &suffix_ids_}}) {
    if (!config.value(flag, def)) continue;
    auto content = ConfigToken(config, key);
    std::optional<uint32_t> id = content ? TokenToId(*content) : std::nullopt;
    if (!id) return absl::InvalidArgumentError(std::string(flag) + " set but no usable " + key);
    dest->push_back(*id);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint32_t>> Tokenizer::Encode(std::string_view text,
                                                        bool add_special_tokens,
                                                        EncodeCache* cache) const {
  std::vector<uint32_t> ids;
  RETURN_IF_ERROR(EncodeInto(text, add_special_tokens, cache, &ids));
  return ids;
}

absl::Status Tokenizer::EncodeInto(std::string_view text, bool add_special_tokens,
                                   EncodeCache* cache, std::vector<uint32_t>* ids) const {
  size_t bad = FindInvalidUtf8(text);
  if (bad != std::string_view::npos) {
    return absl::InvalidArgumentError("input is not valid UTF-8 (byte offset " +
                                      std::to_string(bad) + ")");
  }
  EncodeCache local;
  if (cache == nullptr) cache = &local;
  cache->arena.Clear();
  if (add_special_tokens) ids->insert(ids->end(), prefix_ids_.begin(), prefix_ids_.end());
  std::vector<Segment>& segs = cache->raw_segments;
  segs.clear();
  added_.Split(text, /*normalized_set=*/false, &segs);
  for (const Segment& s : segs) {
    if (s.id >= 0) {
      ids->push_back(static_cast<uint32_t>(s.id));
    } else {
      EncodeSegment(text.substr(s.begin, s.end - s.begin), s.begin == 0, cache, ids);
    }
  }
  if (add_special_tokens) ids->insert(ids->end(), suffix_ids_.begin(), suffix_ids_.end());
  return absl::OkStatus();
}

void Tokenizer::EncodeSegment(std::string_view text, bool at_start, EncodeCache* cache,
                              std::vector<uint32_t>* ids) const {
  std::string normalized;
  if (normalizer_ != nullptr && normalizer_->Normalize(text, &normalized)) {
    text = cache->arena.Add(std::move(normalized));
  }
  if (!added_.HasNormalizedTokens()) {
    EncodeNormalized(text, at_start, cache, ids);
    return;
  }
  std::vector<Segment> segs;  // local: raw_segments is being iterated by the caller
  added_.Split(text, /*normalized_set=*/true, &segs);
  for (const Segment& s : segs) {
    if (s.id >= 0) {
      ids->push_back(static_cast<uint32_t>(s.id));
    } else {
      EncodeNormalized(text.substr(s.begin, s.end - s.begin), at_start && s.begin == 0, cache, ids);
    }
  }
}

void Tokenizer::EncodeNormalized(std::string_view text, bool at_start, EncodeCache* cache,
                                 std::vector<uint32_t>* ids) const {
  if (text.empty()) return;
  std::vector<Piece>& pieces = cache->pieces;
  pieces.clear();
  pieces.push_back({text, at_start});
  if (pre_tokenizer_ != nullptr) pre_tokenizer_->Apply(&pieces, &cache->scratch, &cache->arena);
  for (const Piece& p : pieces) model_->Tokenize(p.text, ids, &cache->bpe);
}

std::string Tokenizer::Decode(const std::vector<uint32_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (uint32_t id : ids) {
    if (const AddedToken* a = added_.FindById(id)) {
      if (skip_special_tokens && a->special) continue;
      tokens.push_back(a->content);
    } else if (auto t = model_->IdToToken(id)) {
      tokens.push_back(std::move(*t));
    }
  }
  if (decoder_ == nullptr) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  decoder_->DecodeChain(&tokens);
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

std::optional<uint32_t> Tokenizer::TokenToId(std::string_view token) const {
  if (auto id = added_.FindByContent(token)) return id;
  return model_->TokenToId(token);
}

std::optional<std::string> Tokenizer::IdToToken(uint32_t id) const {
  if (const AddedToken* a = added_.FindById(id)) return a->content;
  return model_->IdToToken(id);
}

uint32_t Tokenizer::VocabSize() const {
  uint32_t n = model_->VocabSize();
  for (const AddedToken& t : added_.tokens()) n = std::max(n, t.id + 1);
  return n;
}

}  // namespace kvr::tokenizer
