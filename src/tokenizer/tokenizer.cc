#include "tokenizer/tokenizer.h"

#include <cstring>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/file.h"
#include "tokenizer/decoder.h"
#include "tokenizer/json_reader.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/unicode.h"

namespace kvr::tokenizer {
namespace {

using nlohmann::json;

constexpr uint32_t kMaxAddedId = 1u << 28;  // as the model's ids: VocabSize stays in range

absl::StatusOr<AddedToken> ParseAddedToken(const JsonNode& t) {
  AddedToken a;
  KVR_ASSIGN_OR_RETURN(a.id, t.GetUint32("id"));
  if (a.id > kMaxAddedId) return t.Error("id " + std::to_string(a.id) + " too large");
  KVR_ASSIGN_OR_RETURN(a.content, t.GetString("content"));
  KVR_ASSIGN_OR_RETURN(a.special, t.GetBool("special", false));
  KVR_ASSIGN_OR_RETURN(a.lstrip, t.GetBool("lstrip", false));
  KVR_ASSIGN_OR_RETURN(a.rstrip, t.GetBool("rstrip", false));
  KVR_ASSIGN_OR_RETURN(a.normalized, t.GetBool("normalized", !a.special));
  KVR_ASSIGN_OR_RETURN(a.single_word, t.GetBool("single_word", false));
  // JSON escapes can spell lone surrogates, which are not UTF-8.
  if (FindInvalidUtf8(a.content) != std::string_view::npos) return t.Error("content is not UTF-8");
  return a;
}

// TemplateProcessing's single-sequence template: special tokens before and after "A".
absl::Status ParseTemplate(const JsonNode& j, std::vector<uint32_t>* prefix,
                           std::vector<uint32_t>* suffix) {
  KVR_ASSIGN_OR_RETURN(JsonNode single, j.Get("single"));
  KVR_ASSIGN_OR_RETURN(std::vector<JsonNode> items, single.Items());
  KVR_ASSIGN_OR_RETURN(JsonNode special_tokens, j.Get("special_tokens"));
  bool seen_a = false;
  for (const JsonNode& item : items) {
    if (std::optional<JsonNode> seq = item.Find("Sequence")) {
      KVR_ASSIGN_OR_RETURN(std::string id, seq->GetString("id"));
      if (id != "A" || seen_a) {
        return absl::UnimplementedError("unsupported TemplateProcessing single template");
      }
      seen_a = true;
      continue;
    }
    KVR_ASSIGN_OR_RETURN(JsonNode special, item.Get("SpecialToken"));
    KVR_ASSIGN_OR_RETURN(std::string name, special.GetString("id"));
    KVR_ASSIGN_OR_RETURN(JsonNode token, special_tokens.Get(name));
    KVR_ASSIGN_OR_RETURN(JsonNode ids, token.Get("ids"));
    KVR_ASSIGN_OR_RETURN(std::vector<JsonNode> id_items, ids.Items());
    for (const JsonNode& id : id_items) {
      KVR_ASSIGN_OR_RETURN(uint32_t value, id.Uint32());
      (seen_a ? suffix : prefix)->push_back(value);
    }
  }
  return absl::OkStatus();
}

// Roberta/Bert processors write their tokens as ["<s>", 0] pairs.
absl::StatusOr<uint32_t> PairId(const JsonNode& j, std::string_view key) {
  KVR_ASSIGN_OR_RETURN(JsonNode pair, j.Get(key));
  KVR_ASSIGN_OR_RETURN(std::vector<JsonNode> items, pair.Items());
  if (items.size() != 2) return pair.Error("expected [token, id]");
  return items[1].Uint32();
}

// tokenizer_config.json is small and read with nlohmann, without exceptions: a config's special
// token is either a string or an AddedToken object {"content": ...}.
std::optional<std::string> ConfigToken(const json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (!it->is_object()) return std::nullopt;
  auto content = it->find("content");
  if (content == it->end() || !content->is_string()) return std::nullopt;
  return content->get<std::string>();
}

absl::StatusOr<bool> ConfigFlag(const json& config, const char* key, bool def) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return def;
  if (!it->is_boolean()) {
    return absl::InvalidArgumentError(std::string("tokenizer_config.json: ") + key +
                                      ": expected a boolean");
  }
  return it->get<bool>();
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
      KVR_ASSIGN_OR_RETURN(config_text, ReadFile(config_path.string()));
    }
  }
  KVR_ASSIGN_OR_RETURN(std::string text, ReadFile(file));
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
  {
    KVR_ASSIGN_OR_RETURN(std::unique_ptr<JsonDocument> doc, JsonDocument::Parse(tokenizer_json));
    KVR_RETURN_IF_ERROR(tok->Load(doc->root()));
  }  // the document (about twice the file size) is freed before the config is read
  if (options.transformers_bos_rule) {
    if (config_json.empty()) {
      return absl::InvalidArgumentError("transformers_bos_rule needs tokenizer_config.json");
    }
    KVR_RETURN_IF_ERROR(tok->ApplyTransformersRule(config_json));
  }
  return tok;
}

absl::Status Tokenizer::Load(const JsonNode& root) {
  if (!root.is_object()) return root.TypeError("an object");
  for (const char* component : {"truncation", "padding"}) {
    if (root.Find(component)) {
      return absl::UnimplementedError(std::string("unsupported component: ") + component);
    }
  }
  if (std::optional<JsonNode> j = root.Find("normalizer")) {
    KVR_ASSIGN_OR_RETURN(normalizer_, ParseNormalizer(*j));
  }
  bool byte_level = false;
  if (std::optional<JsonNode> j = root.Find("pre_tokenizer")) {
    KVR_ASSIGN_OR_RETURN(pre_tokenizer_, ParsePreTokenizer(*j, &byte_level));
    isolated_split_ = pre_tokenizer_->IsolatedSplit();
    cuts_after_newline_ = isolated_split_ != nullptr && pre_tokenizer_->CutsAfterNewline();
  }
  KVR_ASSIGN_OR_RETURN(JsonNode model, root.Get("model"));
  KVR_ASSIGN_OR_RETURN(model_, BpeModel::FromJson(model, byte_level));
  if (std::optional<JsonNode> j = root.Find("decoder")) {
    KVR_ASSIGN_OR_RETURN(decoder_, ParseDecoder(*j));
  }
  KVR_RETURN_IF_ERROR(LoadAddedTokens(root));
  if (std::optional<JsonNode> j = root.Find("post_processor")) {
    KVR_RETURN_IF_ERROR(LoadPostProcessor(*j));
  }
  return absl::OkStatus();
}

absl::Status Tokenizer::LoadAddedTokens(const JsonNode& root) {
  std::vector<AddedToken> tokens;
  if (std::optional<JsonNode> list = root.Find("added_tokens")) {
    KVR_ASSIGN_OR_RETURN(std::vector<JsonNode> items, list->Items());
    tokens.reserve(items.size());
    for (const JsonNode& t : items) {
      KVR_ASSIGN_OR_RETURN(AddedToken a, ParseAddedToken(t));
      tokens.push_back(std::move(a));
    }
  }
  added_.Build(std::move(tokens), normalizer_.get());
  return absl::OkStatus();
}

absl::Status Tokenizer::LoadPostProcessor(const JsonNode& j) {
  KVR_ASSIGN_OR_RETURN(const std::string type, j.GetString("type"));
  if (type == "ByteLevel") return absl::OkStatus();  // offsets only; ids unchanged
  if (type == "Sequence") {
    KVR_ASSIGN_OR_RETURN(JsonNode list, j.Get("processors"));
    KVR_ASSIGN_OR_RETURN(std::vector<JsonNode> items, list.Items());
    for (const JsonNode& p : items) KVR_RETURN_IF_ERROR(LoadPostProcessor(p));
    return absl::OkStatus();
  }
  std::vector<uint32_t> prefix, suffix;
  if (type == "TemplateProcessing") {
    KVR_RETURN_IF_ERROR(ParseTemplate(j, &prefix, &suffix));
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    KVR_ASSIGN_OR_RETURN(uint32_t cls, PairId(j, "cls"));
    KVR_ASSIGN_OR_RETURN(uint32_t sep, PairId(j, "sep"));
    prefix.push_back(cls);
    suffix.push_back(sep);
  } else {
    return absl::UnimplementedError("unsupported post_processor: " + type);
  }
  // Processors run in order, each wrapping the previous result.
  prefix.insert(prefix.end(), prefix_ids_.begin(), prefix_ids_.end());
  prefix_ids_ = std::move(prefix);
  suffix_ids_.insert(suffix_ids_.end(), suffix.begin(), suffix.end());
  return absl::OkStatus();
}

absl::Status Tokenizer::ApplyTransformersRule(std::string_view config_json) {
  static const char* kClasses[] = {"LlamaTokenizer",     "LlamaTokenizerFast",
                                   "GemmaTokenizer",     "GemmaTokenizerFast",
                                   "CodeLlamaTokenizer", "CodeLlamaTokenizerFast"};
  const json config = json::parse(config_json, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) {
    return absl::InvalidArgumentError("tokenizer_config.json: malformed JSON");
  }
  auto cls = config.find("tokenizer_class");
  if (cls == config.end() || !cls->is_string() ||
      std::find(std::begin(kClasses), std::end(kClasses), cls->get<std::string>()) ==
          std::end(kClasses)) {
    return absl::OkStatus();
  }
  prefix_ids_.clear();
  suffix_ids_.clear();
  for (auto [flag, key, def, dest] :
       {std::tuple{"add_bos_token", "bos_token", true, &prefix_ids_},
        std::tuple{"add_eos_token", "eos_token", false, &suffix_ids_}}) {
    KVR_ASSIGN_OR_RETURN(bool add, ConfigFlag(config, flag, def));
    if (!add) continue;
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
  KVR_RETURN_IF_ERROR(EncodeInto(text, add_special_tokens, cache, &ids));
  return ids;
}

absl::Status Tokenizer::EncodeInto(std::string_view text, bool add_special_tokens,
                                   EncodeCache* cache, std::vector<uint32_t>* ids) const {
  size_t bad = FindInvalidUtf8(text);
  if (bad != std::string_view::npos) {
    return absl::InvalidArgumentError("input is not valid UTF-8 (byte offset " +
                                      std::to_string(bad) + ")");
  }
  EncodeCache local(EncodeCache::kDefaultWords, /*max_line_bytes=*/0);  // used once: no lines
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

namespace {

// Where the line that starts at `begin` ends for the line cache: after the first '\n' that
// spaces or tabs, then a printable non-space ASCII character follow (PreTokenizer::
// CutsAfterNewline), else at the end of the text.
size_t LineEnd(std::string_view text, size_t begin) {
  const char* const data = text.data();
  size_t at = begin;
  while (at < text.size()) {
    const void* nl = std::memchr(data + at, '\n', text.size() - at);
    if (nl == nullptr) break;
    const size_t cut = static_cast<size_t>(static_cast<const char*>(nl) - data) + 1;
    at = cut;
    while (at < text.size() && (text[at] == ' ' || text[at] == '\t')) ++at;
    if (at < text.size() && text[at] > ' ' && text[at] < 0x7f) return cut;
  }
  return text.size();
}

}  // namespace

void Tokenizer::EncodeNormalized(std::string_view text, bool at_start, EncodeCache* cache,
                                 std::vector<uint32_t>* ids) const {
  if (text.empty()) return;
  if (isolated_split_ != nullptr) {
    LineCache& lines = cache->lines;
    if (!cuts_after_newline_ || !lines.enabled()) return EncodeSpans(text, cache, ids);
    lines.Own(this);
    uint32_t next = LineCache::kNoHint;
    for (size_t begin = 0; begin < text.size();) {
      const size_t end = LineEnd(text, begin);
      const std::string_view line = text.substr(begin, end - begin);
      begin = end;
      if (lines.Find(line, ids, &next)) continue;
      const size_t before = ids->size();
      EncodeSpans(line, cache, ids);
      lines.Insert(line, *ids, before);
    }
    return;
  }
  std::vector<Piece>& pieces = cache->pieces;
  pieces.clear();
  pieces.push_back({text, at_start});
  if (pre_tokenizer_ != nullptr) pre_tokenizer_->Apply(&pieces, &cache->scratch, &cache->arena);
  for (const Piece& p : pieces) model_->Tokenize(p.text, ids, &cache->bpe);
}

// The pieces are the spans and the gaps between them.
void Tokenizer::EncodeSpans(std::string_view text, EncodeCache* cache,
                            std::vector<uint32_t>* ids) const {
  std::vector<Span>& spans = cache->spans;
  spans.clear();
  (*isolated_split_)(text, &spans);
  const char* base = text.data();
  size_t prev = 0;
  for (auto [b, e] : spans) {
    if (b > prev) model_->Tokenize(std::string_view(base + prev, b - prev), ids, &cache->bpe);
    if (e > b) model_->Tokenize(std::string_view(base + b, e - b), ids, &cache->bpe);
    prev = e;
  }
  if (text.size() > prev) {
    model_->Tokenize(std::string_view(base + prev, text.size() - prev), ids, &cache->bpe);
  }
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
