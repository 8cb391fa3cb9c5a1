#include "gateway/prepare.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "index/block_hash.h"
#include "nlohmann/json.hpp"
#include "simdjson.h"

namespace kvr::gateway {
namespace {

constexpr size_t kMaxSseLine = size_t{1} << 20;

// The usage object of an engine's answer (a whole body or one SSE chunk), read with simdjson:
// one parser per thread for answers up to kReusedBytes, so the relay allocates nothing per
// request; a larger answer gets its own parser.
EngineUsage UsageFromJson(std::string_view text) {
  namespace dom = simdjson::dom;
  constexpr size_t kReusedBytes = size_t{1} << 20;
  thread_local dom::parser reused(kReusedBytes);
  std::optional<dom::parser> own;
  dom::parser* parser = &reused;
  if (text.size() > kReusedBytes) parser = &own.emplace(text.size());
  EngineUsage u;
  dom::object usage;
  if (parser->parse(text.data(), text.size())["usage"].get(usage) != simdjson::SUCCESS) return u;
  int64_t v;
  if (usage["prompt_tokens"].get(v) == simdjson::SUCCESS) u.prompt_tokens = v;
  if (usage["completion_tokens"].get(v) == simdjson::SUCCESS) u.completion_tokens = v;
  if (usage["prompt_tokens_details"]["cached_tokens"].get(v) == simdjson::SUCCESS) {
    u.cached_tokens = v;
  }
  return u;
}

// The value of label `name` in a Prometheus label set `{a="x",b="y"}`, or nullopt.
std::optional<std::string_view> Label(std::string_view labels, std::string_view name) {
  const std::string key = absl::StrCat(std::string(name), "=\"");
  size_t at = 0;
  while ((at = labels.find(key, at)) != std::string_view::npos) {
    if (at == 0 || labels[at - 1] == '{' || labels[at - 1] == ',') {
      const size_t begin = at + key.size();
      const size_t end = labels.find('"', begin);
      if (end == std::string_view::npos) return std::nullopt;
      return labels.substr(begin, end - begin);
    }
    at += key.size();
  }
  return std::nullopt;
}

std::optional<double> Number(std::string_view text) {
  double v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

// A scan of one JSON text that the parser accepted already: only what WithTokenPrompt needs
// (value boundaries), bounds-checked on every step so that any input only fails.
class JsonScan {
 public:
  explicit JsonScan(std::string_view text) : s_(text) {}
  size_t pos() const { return i_; }
  bool Eat(char c) {
    SkipSpace();
    if (i_ >= s_.size() || s_[i_] != c) return false;
    ++i_;
    return true;
  }
  bool Peek(char c) {
    SkipSpace();
    return i_ < s_.size() && s_[i_] == c;
  }
  // A string at pos (its quotes included); `escaped` says whether it holds a backslash.
  std::optional<std::string_view> String(bool* escaped) {
    SkipSpace();
    const size_t begin = i_;
    if (i_ >= s_.size() || s_[i_] != '"') return std::nullopt;
    *escaped = false;
    size_t at = i_ + 1;
    while (true) {
      const void* q = at < s_.size() ? std::memchr(s_.data() + at, '"', s_.size() - at) : nullptr;
      if (q == nullptr) return std::nullopt;
      const size_t quote = static_cast<size_t>(static_cast<const char*>(q) - s_.data());
      size_t slashes = 0;
      while (quote - slashes > at && s_[quote - slashes - 1] == '\\') ++slashes;
      if (slashes > 0 || std::memchr(s_.data() + at, '\\', quote - at) != nullptr) {
        *escaped = true;
      }
      at = quote + 1;
      if (slashes % 2 == 0) break;
    }
    i_ = at;
    return s_.substr(begin, at - begin);
  }
  // Any value; its text.
  std::optional<std::string_view> Value() {
    SkipSpace();
    const size_t begin = i_;
    if (i_ >= s_.size()) return std::nullopt;
    bool escaped = false;
    if (s_[i_] == '"') return String(&escaped);
    if (s_[i_] == '{' || s_[i_] == '[') {
      size_t depth = 0;
      while (i_ < s_.size()) {
        const char c = s_[i_];
        if (c == '"') {
          if (!String(&escaped)) return std::nullopt;
          continue;
        }
        ++i_;
        if (c == '{' || c == '[') ++depth;
        if ((c == '}' || c == ']') && --depth == 0) return s_.substr(begin, i_ - begin);
      }
      return std::nullopt;
    }
    while (i_ < s_.size() && std::string_view(",}] \t\r\n").find(s_[i_]) == std::string_view::npos) {
      ++i_;
    }
    return s_.substr(begin, i_ - begin);
  }
  void SkipSpace() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) {
      ++i_;
    }
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

std::optional<std::string> WithTokenPrompt(std::string_view body, std::span<const TokenId> ids) {
  JsonScan scan(body);
  if (!scan.Eat('{')) return std::nullopt;
  std::optional<std::string_view> prompt;
  size_t prompt_at = 0;
  if (!scan.Peek('}')) {
    do {
      bool escaped = false;
      const std::optional<std::string_view> key = scan.String(&escaped);
      if (!key || escaped || !scan.Eat(':')) return std::nullopt;
      scan.SkipSpace();
      const size_t at = scan.pos();
      const std::optional<std::string_view> value = scan.Value();
      if (!value) return std::nullopt;
      if (*key == "\"prompt\"") {
        if (prompt || !value->starts_with('"')) return std::nullopt;
        prompt = value;
        prompt_at = at;
      } else if (*key == "\"echo\"" && *value != "false" && *value != "null") {
        return std::nullopt;
      }
    } while (scan.Eat(','));
  }
  if (!scan.Eat('}') || !prompt) return std::nullopt;
  // Sized for the longest ids (10 digits and a comma each), written in place, then cut.
  const std::string_view tail = body.substr(prompt_at + prompt->size());
  std::string out(prompt_at + 2 + ids.size() * 11 + tail.size(), '\0');
  char* p = out.data();
  std::memcpy(p, body.data(), prompt_at);
  p += prompt_at;
  *p++ = '[';
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) *p++ = ',';
    p = std::to_chars(p, p + 10, ids[i]).ptr;
  }
  *p++ = ']';
  std::memcpy(p, tail.data(), tail.size());
  out.resize(static_cast<size_t>(p - out.data()) + tail.size());
  return out;
}

std::variant<PreparedPrompt, api::ApiError> PreparePrompt(api::Endpoint endpoint,
                                                          std::string_view body,
                                                          const ModelLookup& lookup) {
  api::ApiRequest request;
  if (std::optional<api::ApiError> e = api::ParseApiRequest(endpoint, body, &request)) return *e;
  const std::optional<ModelText> model = lookup(request.model);
  if (!model) {
    if (request.model.empty()) {
      return api::ApiError{.status = 400,
                           .message = "the router serves several models: name one in `model`",
                           .param = "model"};
    }
    return api::ApiError{.status = 404,
                         .type = "NotFoundError",
                         .message = absl::StrCat("The model `", request.model, "` does not exist."),
                         .param = "model"};
  }
  std::vector<TokenId> ids;
  if (std::optional<api::ApiError> e = api::PromptTokens(*model->text, request, &ids)) return *e;
  PreparedPrompt out;
  out.model = std::string(model->name);
  out.stream = request.stream;
  out.prompt_tokens = static_cast<uint32_t>(ids.size());
  out.blocks = SequenceHashes(ids, model->block_size);
  if (model->forward_tokens && endpoint == api::Endpoint::kCompletions && !request.prompt_is_ids) {
    if (std::optional<std::string> b = WithTokenPrompt(body, ids)) out.token_body = std::move(*b);
  }
  return out;
}

std::optional<uint32_t> ParseTotalSlots(std::string_view props) {
  const nlohmann::json j = nlohmann::json::parse(props, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  auto it = j.find("total_slots");
  if (it == j.end() || !it->is_number_integer()) return std::nullopt;
  const int64_t n = it->get<int64_t>();
  if (n <= 0 || n > 4096) return std::nullopt;
  return static_cast<uint32_t>(n);
}

std::optional<uint32_t> ParseMaxBatchedTokens(std::string_view server_info, uint32_t limit) {
  const nlohmann::json j = nlohmann::json::parse(server_info, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  std::optional<int64_t> tokens;
  for (const char* key : {"chunked_prefill_size", "max_prefill_tokens"}) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer()) continue;
    const int64_t n = it->get<int64_t>();
    if (n > 0) tokens = std::min(tokens.value_or(n), n);
  }
  if (!tokens || *tokens > int64_t{limit}) return std::nullopt;
  return static_cast<uint32_t>(*tokens);
}

EngineUsage UsageFromBody(std::string_view body) {
  return UsageFromJson(body);
}

void UsageScanner::Feed(std::string_view bytes) {
  while (!bytes.empty()) {
    const size_t nl = bytes.find('\n');
    const std::string_view piece = bytes.substr(0, nl);
    if (!skipping_) {
      if (partial_.size() + piece.size() > kMaxSseLine) {
        skipping_ = true;
        partial_.clear();
      } else {
        partial_.append(piece);
      }
    }
    if (nl == std::string_view::npos) return;
    if (!skipping_) Line(partial_);
    partial_.clear();
    skipping_ = false;
    bytes.remove_prefix(nl + 1);
  }
}

void UsageScanner::Line(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (!line.starts_with("data:")) return;
  line.remove_prefix(5);
  while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  if (line != "[DONE]" && line.find("\"choices\":[]") == std::string_view::npos) {
    ++output_events_;
  }
  // Only chunks that carry usage are parsed: most chunks are a token each.
  if (line.find("\"usage\"") == std::string_view::npos) return;
  const EngineUsage u = UsageFromJson(line);
  if (u.prompt_tokens >= 0) usage_ = u;
}

uint64_t UsageScanner::OutputTokens() const {
  return usage_.completion_tokens >= 0 ? uint64_t(usage_.completion_tokens) : output_events_;
}

std::optional<EngineMetrics> ParseEngineMetrics(std::string_view text, int64_t dp_rank) {
  EngineMetrics m;
  bool found = false;
  const std::string rank = std::to_string(dp_rank);
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.empty() || line[0] == '#') continue;
    const size_t name_end = line.find_first_of("{ ");
    if (name_end == std::string_view::npos) continue;
    const std::string_view name = line.substr(0, name_end);
    std::string_view labels;
    std::string_view rest = line.substr(name_end);
    if (rest[0] == '{') {
      const size_t close = rest.find('}');
      if (close == std::string_view::npos) continue;
      labels = rest.substr(0, close + 1);
      rest.remove_prefix(close + 1);
    }
    while (!rest.empty() && rest[0] == ' ') rest.remove_prefix(1);
    rest = rest.substr(0, rest.find(' '));  // drop a timestamp
    std::optional<double> value = Number(rest);
    if (!value || !(*value >= 0)) continue;  // also NaN
    value = std::min(*value, 1e9);
    bool other_rank = false;
    for (const char* key : {"engine", "dp_rank"}) {
      const std::optional<std::string_view> l = Label(labels, key);
      other_rank |= l.has_value() && *l != rank;
    }
    if (other_rank) continue;
    // llama.cpp (--metrics): busy slots, and requests waiting for a slot; no KV-usage gauge.
    if (name == "vllm:num_requests_running" || name == "sglang:num_running_reqs" ||
        name == "llamacpp:requests_processing") {
      m.running += static_cast<uint32_t>(*value);
    } else if (name == "vllm:num_requests_waiting" || name == "sglang:num_queue_reqs" ||
               name == "llamacpp:requests_deferred") {
      m.waiting += static_cast<uint32_t>(*value);
    } else if (name == "vllm:kv_cache_usage_perc" || name == "vllm:gpu_cache_usage_perc" ||
               name == "sglang:token_usage") {
      m.kv_usage = std::max(m.kv_usage, *value);
    } else if (name == "vllm:cache_config_info") {
      // Always 1; the labels carry the cache's size ("None" before the engine has sized it).
      const std::optional<std::string_view> blocks = Label(labels, "num_gpu_blocks");
      const std::optional<std::string_view> size = Label(labels, "block_size");
      const std::optional<double> b = blocks ? Number(*blocks) : std::nullopt;
      const std::optional<double> s = size ? Number(*size) : std::nullopt;
      if (b && s && *b >= 1 && *s >= 1 && *b * *s <= 1e12) {
        m.kv_capacity_tokens = static_cast<uint64_t>(*b) * static_cast<uint64_t>(*s);
      }
      continue;  // not a load figure
    } else if (name == "sglang:max_total_num_tokens") {
      if (*value >= 1) m.kv_capacity_tokens = static_cast<uint64_t>(*value);
      continue;
    } else {
      continue;
    }
    found = true;
  }
  if (!found) return std::nullopt;
  m.valid = true;
  return m;
}

}  // namespace kvr::gateway
