// BpeModel loading: tokenizer.json's "model" object, read straight from the simdjson DOM. The
// vocabulary (128k-262k entries) and the merges (280k-514k) are nearly all of a tokenizer's load
// time, so they are read without building any intermediate value per entry, and merges are
// resolved in token space (the strings as written, through a map of views into the document),
// as Hugging Face's BpeBuilder does, instead of converting every merge to bytes first.
#include <algorithm>
#include <cstdio>

#include "tokenizer/bpe.h"
#include "tokenizer/json_reader.h"
#include "tokenizer/unicode.h"

namespace kvr::tokenizer {
namespace {

constexpr uint64_t kMaxId = 1u << 28;  // ids index dense arrays

std::string Quoted(std::string_view token) {
  std::string out;  // appended, not `"\"" + ...`: g++ 12 -O3 warns falsely (-Wrestrict) on that
  out.reserve(token.size() + 2);
  out.push_back('"');
  out.append(token);
  out.push_back('"');
  return out;
}

// A merge is "a b" (exactly one space) or ["a", "b"] (tokenizers >= 0.20).
bool SplitMerge(simdjson::dom::element merge, std::string_view* left, std::string_view* right) {
  std::string_view s;
  if (merge.get_string().get(s) == simdjson::SUCCESS) {
    size_t sp = s.find(' ');
    if (sp == std::string_view::npos || s.find(' ', sp + 1) != std::string_view::npos) {
      return false;
    }
    *left = s.substr(0, sp);
    *right = s.substr(sp + 1);
    return true;
  }
  simdjson::dom::array pair;
  if (merge.get_array().get(pair) != simdjson::SUCCESS || pair.size() != 2) return false;
  return pair.at(0).get_string().get(*left) == simdjson::SUCCESS &&
         pair.at(1).get_string().get(*right) == simdjson::SUCCESS;
}

}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromJson(const JsonNode& model,
                                                             bool byte_level) {
  KVR_ASSIGN_OR_RETURN(std::string type, model.GetString("type", "BPE"));
  if (type != "BPE") return absl::UnimplementedError("unsupported model: " + type);
  std::unique_ptr<BpeModel> m(new BpeModel());
  m->byte_level_ = byte_level;
  KVR_RETURN_IF_ERROR(m->LoadFlags(model));
  TokenIds token_ids;
  KVR_ASSIGN_OR_RETURN(JsonNode vocab, model.Get("vocab"));
  KVR_RETURN_IF_ERROR(m->LoadVocab(vocab, &token_ids));
  std::string token_prefix;  // continuing_subword_prefix as written, for the merges
  for (auto [field, dest] : {std::pair{"continuing_subword_prefix", &m->prefix_},
                             std::pair{"end_of_word_suffix", &m->suffix_}}) {
    std::optional<JsonNode> v = model.Find(field);
    if (!v) continue;
    KVR_ASSIGN_OR_RETURN(std::string_view s, v->String());
    if (!m->ToKey(s, dest)) return v->Error("not in the byte-level alphabet");
    if (dest == &m->prefix_) token_prefix = s;
  }
  if (std::optional<JsonNode> unk = model.Find("unk_token")) {
    KVR_ASSIGN_OR_RETURN(std::string_view s, unk->String());
    m->unk_id_ = m->TokenToId(s);
    if (!m->unk_id_) return unk->Error("token " + Quoted(s) + " not in the vocab");
  }
  KVR_ASSIGN_OR_RETURN(JsonNode merges, model.Get("merges"));
  KVR_RETURN_IF_ERROR(m->LoadMerges(merges, token_ids, token_prefix));
  m->FindMarkerCuts();
  return m;
}

absl::Status BpeModel::LoadFlags(const JsonNode& model) {
  if (std::optional<JsonNode> dropout = model.Find("dropout")) {
    KVR_ASSIGN_OR_RETURN(double p, dropout->Number());
    if (p != 0.0) return absl::UnimplementedError("unsupported model option: BPE dropout");
  }
  KVR_ASSIGN_OR_RETURN(ignore_merges_, model.GetBool("ignore_merges", false));
  KVR_ASSIGN_OR_RETURN(byte_fallback_, model.GetBool("byte_fallback", false));
  KVR_ASSIGN_OR_RETURN(fuse_unk_, model.GetBool("fuse_unk", false));
  return absl::OkStatus();
}

absl::Status BpeModel::LoadVocab(const JsonNode& vocab, TokenIds* token_ids) {
  simdjson::dom::object entries;
  if (vocab.element().get_object().get(entries) != simdjson::SUCCESS) {
    return vocab.TypeError("an object");
  }
  token_ids->reserve(entries.size());
  for (simdjson::dom::key_value_pair entry : entries) {
    uint64_t id = 0;
    if (entry.value.get_uint64().get(id) != simdjson::SUCCESS || id > kMaxId) {
      JsonNode bad(entry.value, vocab.path() + "[" + Quoted(entry.key) + "]");
      if (id > kMaxId) return bad.Error("id " + std::to_string(id) + " too large");
      return bad.Uint().status();
    }
    // A repeated token: the last id wins, as in serde's map (and nlohmann's).
    (*token_ids)[entry.key] = static_cast<uint32_t>(id);
  }
  uint32_t max_id = 0;
  for (const auto& entry : *token_ids) max_id = std::max(max_id, entry.second);
  std::vector<std::string_view> by_id(token_ids->empty() ? 0 : max_id + 1);
  present_.assign(by_id.size(), false);
  for (const auto& [token, id] : *token_ids) {
    // Two tokens with one id: the smaller string is the one IdToToken gives (deterministic).
    if (!present_[id] || token < by_id[id]) by_id[id] = token;
    present_[id] = true;
  }
  LoadKeys(by_id);
  LoadByteIds();
  return absl::OkStatus();
}

// The vocabulary in key space: one arena of keys indexed by id, and the key -> id map.
void BpeModel::LoadKeys(const std::vector<std::string_view>& by_id) {
  const size_t n = by_id.size();
  unmapped_.assign(n, false);
  key_off_.assign(n + 1, 0);
  size_t bytes = 0;
  for (std::string_view token : by_id) bytes += token.size();
  keys_.reserve(bytes);  // byte-level keys are never longer than their tokens
  std::string key;
  for (uint32_t id = 0; id < n; ++id) {
    key_off_[id] = static_cast<uint32_t>(keys_.size());
    if (!present_[id]) continue;
    if (ToKey(by_id[id], &key)) {
      keys_ += key;
    } else {
      keys_ += by_id[id];
      unmapped_[id] = true;
    }
  }
  key_off_[n] = static_cast<uint32_t>(keys_.size());
  to_id_.reserve(n);
  for (uint32_t id = 0; id < n; ++id) {
    if (!present_[id]) continue;
    (unmapped_[id] ? unmapped_to_id_ : to_id_).emplace(Key(id), id);
  }
}

void BpeModel::LoadByteIds() {
  for (int b = 0; b < 256; ++b) {
    std::string k;
    if (byte_level_) {
      k.push_back(static_cast<char>(b));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
      k = buf;
    }
    auto id = KeyToId(k);
    byte_ids_[b] = id ? static_cast<int32_t>(*id) : -1;
  }
}

absl::Status BpeModel::LoadMerges(const JsonNode& merges, const TokenIds& token_ids,
                                  std::string_view token_prefix) {
  simdjson::dom::array list;
  if (merges.element().get_array().get(list) != simdjson::SUCCESS) {
    return merges.TypeError("an array");
  }
  merges_.reserve(list.size());
  auto error = [&](uint32_t rank, const std::string& reason) {
    return JsonNode(merges.element(), merges.path() + "[" + std::to_string(rank) + "]")
        .Error(reason);
  };
  // Each merge is three lookups in a vocabulary map several MB large, nearly all cache misses.
  // A batch of merges is split and its lookups prefetched first, then resolved, so that the
  // misses overlap instead of queueing one behind the other.
  constexpr size_t kBatch = 32;
  struct Pending {
    std::string_view left, right;
    size_t merged_begin, merged_end;  // in `merged`
  };
  Pending batch[kBatch];
  std::string merged;
  uint32_t rank = 0;
  for (auto it = list.begin(); it != list.end();) {
    size_t n = 0;
    merged.clear();
    for (; n < kBatch && it != list.end(); ++n, ++it) {
      Pending& p = batch[n];
      if (!SplitMerge(*it, &p.left, &p.right)) {
        return error(rank + static_cast<uint32_t>(n), "expected \"a b\" or [\"a\", \"b\"]");
      }
      // Hugging Face: the merged token is a + b without b's continuing_subword_prefix.
      p.merged_begin = merged.size();
      merged.append(p.left).append(p.right.substr(std::min(token_prefix.size(), p.right.size())));
      p.merged_end = merged.size();
      token_ids.prefetch(p.left);
      token_ids.prefetch(p.right);
    }
    auto merged_view = [&](const Pending& p) {
      return std::string_view(merged).substr(p.merged_begin, p.merged_end - p.merged_begin);
    };
    for (size_t i = 0; i < n; ++i) token_ids.prefetch(merged_view(batch[i]));
    uint64_t keys[kBatch], values[kBatch];
    for (size_t i = 0; i < n; ++i) {
      const Pending& p = batch[i];
      std::string_view ab_token = merged_view(p);
      auto a = token_ids.find(p.left), b = token_ids.find(p.right), ab = token_ids.find(ab_token);
      for (auto [found, token] :
           {std::pair{a, p.left}, std::pair{b, p.right}, std::pair{ab, ab_token}}) {
        if (found == token_ids.end()) {
          return error(rank + static_cast<uint32_t>(i), "unknown token " + Quoted(token));
        }
      }
      keys[i] = PairKey(a->second, b->second);
      values[i] = (uint64_t{rank + static_cast<uint32_t>(i)} << 32) | ab->second;
      merges_.prefetch(keys[i]);  // the merge table is as large, and as cold
    }
    for (size_t i = 0; i < n; ++i) merges_[keys[i]] = values[i];  // a later duplicate wins
    rank += static_cast<uint32_t>(n);
  }
  return absl::OkStatus();
}

void BpeModel::FindMarkerCuts() {
  if (byte_level_ || !prefix_.empty() || !suffix_.empty() || !KeyToId(kMarker)) return;
  for (const auto& [key, id] : to_id_) {
    for (size_t p = key.find(kMarker, 1); p != std::string_view::npos;
         p = key.find(kMarker, p + 1)) {
      size_t c = p - 1;
      while (c > 0 && (static_cast<unsigned char>(key[c]) & 0xC0) == 0x80) --c;
      glued_before_marker_.insert(std::string(key.substr(c, p - c)));
    }
  }
  marker_cuts_ = true;
}

}  // namespace kvr::tokenizer
