#include "tokenizer/decoder.h"

#include "tokenizer/json_reader.h"
#include "tokenizer/unicode.h"

namespace kvr::tokenizer {
namespace {

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

class ByteLevelDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string bytes, raw;
    for (const std::string& t : *tokens) {
      if (ByteLevelToBytes(t, &raw)) {
        bytes += raw;
      } else {
        bytes += t;  // a token outside the byte alphabet passes through unchanged
      }
    }
    *tokens = {Utf8Lossy(bytes)};
  }
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(std::string pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    if (pattern_.empty()) return;
    for (std::string& t : *tokens) {
      std::string out;
      size_t prev = 0;
      for (size_t p = t.find(pattern_); p != std::string::npos;
           p = t.find(pattern_, p + pattern_.size())) {
        out.append(t, prev, p - prev);
        out += content_;
        prev = p + pattern_.size();
      }
      out.append(t, prev, std::string::npos);
      t = std::move(out);
    }
  }

 private:
  std::string pattern_, content_;
};

// <0xXX> tokens are gathered into bytes; a run that is not valid UTF-8 becomes one U+FFFD per
// byte, as in Hugging Face.
class ByteFallbackDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    size_t count = 0;
    auto flush = [&] {
      if (count == 0) return;
      if (FindInvalidUtf8(bytes) == std::string_view::npos) {
        out.push_back(bytes);
      } else {
        for (size_t i = 0; i < count; ++i) out.emplace_back(kReplacementChar);
      }
      bytes.clear();
      count = 0;
    };
    for (std::string& t : *tokens) {
      int hi = t.size() == 6 ? HexValue(t[3]) : -1, lo = t.size() == 6 ? HexValue(t[4]) : -1;
      if (hi >= 0 && lo >= 0 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
        bytes.push_back(static_cast<char>(hi * 16 + lo));
        ++count;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    *tokens = std::move(out);
  }

 private:
  // -1 for a non-hex char (u8::from_str_radix accepts both cases).
  static int HexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  }
};

class FuseDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string all;
    for (const std::string& t : *tokens) all += t;
    *tokens = {all};
  }
};

// Removes up to `start` leading and `stop` trailing copies of one char from every token.
class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    if (content_.empty()) return;
    for (std::string& t : *tokens) {
      size_t b = 0, e = t.size();
      for (size_t k = 0; k < start_ && t.compare(b, content_.size(), content_) == 0; ++k) {
        b += content_.size();
      }
      for (size_t k = 0; k < stop_ && e >= b + content_.size() &&
                         t.compare(e - content_.size(), content_.size(), content_) == 0;
           ++k) {
        e -= content_.size();
      }
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool prepend)
      : rep_(std::move(replacement)), prepend_(prepend) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    ReplaceDecoder(rep_, " ").DecodeChain(tokens);
    if (prepend_ && !tokens->empty() && !(*tokens)[0].empty() && (*tokens)[0][0] == ' ') {
      (*tokens)[0].erase(0, 1);
    }
  }

 private:
  std::string rep_;
  bool prepend_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts)
      : parts_(std::move(parts)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (const auto& p : parts_) p->DecodeChain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

}  // namespace

std::string Utf8Lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  while (!bytes.empty()) {
    size_t bad = FindInvalidUtf8(bytes);
    if (bad == std::string_view::npos) {
      out += bytes;
      break;
    }
    out += bytes.substr(0, bad);
    out += kReplacementChar;
    // Skip the maximal prefix of a valid sequence (at least one byte).
    size_t skip = 1;
    size_t want = Utf8Len(static_cast<unsigned char>(bytes[bad]));
    while (skip < want && bad + skip < bytes.size() &&
           (static_cast<unsigned char>(bytes[bad + skip]) & 0xC0) == 0x80) {
      ++skip;
    }
    bytes.remove_prefix(bad + skip);
  }
  return out;
}

namespace {

absl::StatusOr<std::unique_ptr<Decoder>> ParseSequence(const JsonNode& j) {
  KVR_ASSIGN_OR_RETURN(JsonNode list, j.Get("decoders"));
  KVR_ASSIGN_OR_RETURN(std::vector<JsonNode> items, list.Items());
  std::vector<std::unique_ptr<Decoder>> parts;
  for (const JsonNode& sub : items) {
    KVR_ASSIGN_OR_RETURN(auto part, ParseDecoder(sub));
    parts.push_back(std::move(part));
  }
  return std::make_unique<SequenceDecoder>(std::move(parts));
}

absl::StatusOr<std::unique_ptr<Decoder>> ParseReplace(const JsonNode& j) {
  KVR_ASSIGN_OR_RETURN(JsonNode pattern, j.Get("pattern"));
  if (pattern.Find("String") == std::nullopt) {
    return absl::UnimplementedError("unsupported decoder: Replace regex");
  }
  KVR_ASSIGN_OR_RETURN(std::string from, pattern.GetString("String"));
  KVR_ASSIGN_OR_RETURN(std::string to, j.GetString("content"));
  return std::make_unique<ReplaceDecoder>(std::move(from), std::move(to));
}

absl::StatusOr<std::unique_ptr<Decoder>> ParseStrip(const JsonNode& j) {
  KVR_ASSIGN_OR_RETURN(std::string content, j.GetString("content"));
  KVR_ASSIGN_OR_RETURN(uint64_t start, j.GetUint("start", 0));
  KVR_ASSIGN_OR_RETURN(uint64_t stop, j.GetUint("stop", 0));
  return std::make_unique<StripDecoder>(std::move(content), start, stop);
}

absl::StatusOr<std::unique_ptr<Decoder>> ParseMetaspace(const JsonNode& j) {
  bool prepend = true;
  if (std::optional<JsonNode> scheme = j.Find("prepend_scheme")) {
    KVR_ASSIGN_OR_RETURN(std::string_view s, scheme->String());
    prepend = s != "never";
  } else {
    KVR_ASSIGN_OR_RETURN(prepend, j.GetBool("add_prefix_space", true));
  }
  KVR_ASSIGN_OR_RETURN(std::string replacement, j.GetString("replacement", "\xE2\x96\x81"));
  return std::make_unique<MetaspaceDecoder>(std::move(replacement), prepend);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Decoder>> ParseDecoder(const JsonNode& j) {
  KVR_ASSIGN_OR_RETURN(const std::string type, j.GetString("type"));
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Replace") return ParseReplace(j);
  if (type == "Strip") return ParseStrip(j);
  if (type == "Metaspace") return ParseMetaspace(j);
  if (type == "Sequence") return ParseSequence(j);
  return absl::UnimplementedError("unsupported decoder: " + type);
}

}  // namespace kvr::tokenizer
