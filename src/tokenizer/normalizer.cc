#include "tokenizer/normalizer.h"

#include <utf8proc.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace kvr::tokenizer {
namespace {

using nlohmann::json;

// Unicode normalization forms through utf8proc. `skip_below` is a code point bound under which
// the form is the identity for any string (no char below it decomposes or composes), which lets
// the common ASCII/Latin-1 text skip the library call.
class UnicodeForm : public Normalizer {
 public:
  UnicodeForm(int options, char32_t skip_below) : options_(options), skip_below_(skip_below) {}
  void Apply(std::string* s) const override {
    bool trivial = true;
    for (size_t i = 0; i < s->size();) {
      size_t len;
      if (DecodeUtf8(*s, i, &len) >= skip_below_) {
        trivial = false;
        break;
      }
      i += len;
    }
    if (trivial) return;
    utf8proc_uint8_t* out = nullptr;
    auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s->data()),
                          static_cast<utf8proc_ssize_t>(s->size()), &out,
                          static_cast<utf8proc_option_t>(options_));
    if (n >= 0 && out != nullptr) s->assign(reinterpret_cast<char*>(out), static_cast<size_t>(n));
    std::free(out);
  }

 private:
  int options_;
  char32_t skip_below_;
};

class Replace : public Normalizer {
 public:
  Replace(std::string literal, std::unique_ptr<Regex> re, std::string content)
      : literal_(std::move(literal)), re_(std::move(re)), content_(std::move(content)) {}
  void Apply(std::string* s) const override {
    std::vector<Span> spans;
    if (re_ != nullptr) {
      re_->FindAll(*s, &spans);
    } else if (!literal_.empty()) {
      for (size_t p = s->find(literal_); p != std::string::npos;
           p = s->find(literal_, p + literal_.size())) {
        spans.emplace_back(p, p + literal_.size());
      }
    }
    if (spans.empty()) return;
    std::string out;
    out.reserve(s->size() + spans.size() * content_.size());
    size_t prev = 0;
    for (auto [b, e] : spans) {
      out.append(*s, prev, b - prev);
      out += content_;
      prev = e;
    }
    out.append(*s, prev, std::string::npos);
    *s = std::move(out);
  }

 private:
  std::string literal_;
  std::unique_ptr<Regex> re_;
  std::string content_;
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string p) : prefix_(std::move(p)) {}
  void Apply(std::string* s) const override {
    if (!s->empty()) s->insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

// Rust's str::to_lowercase: full mappings, including İ -> i̇ and the final-sigma rule.
class Lowercase : public Normalizer {
 public:
  void Apply(std::string* s) const override {
    std::string out;
    out.reserve(s->size());
    for (size_t i = 0; i < s->size();) {
      size_t len;
      char32_t c = DecodeUtf8(*s, i, &len);
      if (c < 0x80) {
        out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
      } else if (c == 0x130) {
        out += "i\xCC\x87";
      } else if (c == 0x3A3) {
        AppendUtf8(IsFinalSigma(*s, i, i + len) ? 0x3C2 : 0x3C3, &out);
      } else {
        AppendUtf8(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))),
                   &out);
      }
      i += len;
    }
    *s = std::move(out);
  }

 private:
  static bool IsCased(char32_t c) {
    auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
    return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL ||
           cat == UTF8PROC_CATEGORY_LT;
  }
  // Σ becomes ς when a cased letter precedes it and none follows (simplified: the adjacent
  // characters decide).
  static bool IsFinalSigma(const std::string& s, size_t begin, size_t end) {
    if (begin == 0) return false;
    size_t p = begin - 1;
    while (p > 0 && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) --p;
    size_t len;
    if (!IsCased(DecodeUtf8(s, p, &len))) return false;
    if (end >= s.size()) return true;
    return !IsCased(DecodeUtf8(s, end, &len));
  }
};

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void Apply(std::string* s) const override {
    size_t b = 0, e = s->size();
    size_t len;
    if (left_) {
      while (b < e && IsRustWhitespace(DecodeUtf8(*s, b, &len))) b += len;
    }
    if (right_) {
      while (e > b) {
        size_t p = e - 1;
        while (p > b && (static_cast<unsigned char>((*s)[p]) & 0xC0) == 0x80) --p;
        if (!IsRustWhitespace(DecodeUtf8(*s, p, &len))) break;
        e = p;
      }
    }
    *s = s->substr(b, e - b);
  }

 private:
  bool left_, right_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts)
      : parts_(std::move(parts)) {}
  void Apply(std::string* s) const override {
    for (const auto& p : parts_) p->Apply(s);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

absl::StatusOr<std::unique_ptr<Normalizer>> ParseReplace(const json& j) {
  const json& pattern = j.at("pattern");
  std::string content = j.at("content").get<std::string>();
  if (pattern.contains("Regex")) {
    ASSIGN_OR_RETURN(auto re, Regex::Compile(pattern.at("Regex").get<std::string>()));
    return std::make_unique<Replace>("", std::move(re), std::move(content));
  }
  return std::make_unique<Replace>(pattern.at("String").get<std::string>(), nullptr,
                                   std::move(content));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(const json& j) {
  const std::string type = j.at("type").get<std::string>();
  constexpr int kStable = UTF8PROC_STABLE;
  if (type == "NFC") return std::make_unique<UnicodeForm>(kStable | UTF8PROC_COMPOSE, 0x300);
  if (type == "NFD") return std::make_unique<UnicodeForm>(kStable | UTF8PROC_DECOMPOSE, 0xC0);
  if (type == "NFKC") {
    return std::make_unique<UnicodeForm>(kStable | UTF8PROC_COMPOSE | UTF8PROC_COMPAT, 0x80);
  }
  if (type == "NFKD") {
    return std::make_unique<UnicodeForm>(kStable | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, 0x80);
  }
  if (type == "Replace") return ParseReplace(j);
  if (type == "Prepend") return std::make_unique<Prepend>(j.at("prepend").get<std::string>());
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Strip") {
    return std::make_unique<Strip>(j.value("strip_left", true), j.value("strip_right", true));
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (const json& sub : j.at("normalizers")) {
      ASSIGN_OR_RETURN(auto part, ParseNormalizer(sub));
      parts.push_back(std::move(part));
    }
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  return absl::UnimplementedError("unsupported normalizer: " + type);
}

}  // namespace kvr::tokenizer
