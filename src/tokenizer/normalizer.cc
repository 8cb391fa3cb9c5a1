#include "tokenizer/normalizer.h"

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <utf8proc.h>

#include <cstdlib>
#include <string_view>
#include <vector>

#include "tokenizer/json_reader.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace kvr::tokenizer {
namespace {

// A bit per code point: set when the char alone can never be changed by the form nor interact
// with its neighbours (quick-check Yes and combining class 0, from ICU's Unicode data). A string
// made only of such chars is already normalized, which is how nearly all text skips the copy.
class StableChars {
 public:
  explicit StableChars(UProperty quick_check) : bits_(0x110000 / 64) {
    for (UChar32 c = 0; c < 0x110000; ++c) {
      if (u_getIntPropertyValue(c, quick_check) == UNORM_YES && u_getCombiningClass(c) == 0) {
        bits_[static_cast<size_t>(c) >> 6] |= uint64_t{1} << (c & 63);
      }
    }
  }
  bool IsStable(char32_t c) const { return (bits_[c >> 6] >> (c & 63)) & 1; }

 private:
  std::vector<uint64_t> bits_;
};

// One table per form for the whole process (built on first use; 1.1M property lookups).
const StableChars& StableFor(UProperty quick_check) {
  switch (quick_check) {
    case UCHAR_NFC_QUICK_CHECK: {
      static const StableChars* t = new StableChars(UCHAR_NFC_QUICK_CHECK);
      return *t;
    }
    case UCHAR_NFD_QUICK_CHECK: {
      static const StableChars* t = new StableChars(UCHAR_NFD_QUICK_CHECK);
      return *t;
    }
    case UCHAR_NFKC_QUICK_CHECK: {
      static const StableChars* t = new StableChars(UCHAR_NFKC_QUICK_CHECK);
      return *t;
    }
    default: {
      static const StableChars* t = new StableChars(UCHAR_NFKD_QUICK_CHECK);
      return *t;
    }
  }
}

// Unicode normalization forms through utf8proc, skipped when the quick check proves the text
// is already in the form.
class UnicodeForm : public Normalizer {
 public:
  UnicodeForm(int options, UProperty quick_check)
      : options_(options), stable_(&StableFor(quick_check)) {}
  // Only the spans around unstable chars go through utf8proc: a maximal run of unstable chars
  // plus the one char before it (a starter that may compose with the run). Stable chars on both
  // sides are boundaries no normalization crosses, so the spans normalize independently and the
  // cost stays linear with a small constant even for one huge mixed-script string.
  bool Normalize(std::string_view in, std::string* out) const override {
    bool changed = false;
    size_t copied = 0;  // in[0, copied) is already accounted for in *out
    size_t prev_start = 0, i = 0, len;
    while (i < in.size()) {
      if (static_cast<unsigned char>(in[i]) < 0x80) {  // an ASCII run: each char is stable
        i = SkipAscii(in, i);
        prev_start = i - 1;
        continue;
      }
      if (stable_->IsStable(DecodeUtf8(in, i, &len))) {
        prev_start = i;
        i += len;
        continue;
      }
      size_t begin = i == 0 ? 0 : prev_start;  // include the preceding starter
      size_t end = i + len;
      while (end < in.size() && static_cast<unsigned char>(in[end]) >= 0x80 &&
             !stable_->IsStable(DecodeUtf8(in, end, &len))) {
        end += len;
      }
      std::string_view span = in.substr(begin, end - begin);
      std::string norm;
      if (NormalizeSpan(span, &norm)) {
        if (!changed) out->clear();
        changed = true;
        out->append(in.substr(copied, begin - copied));
        out->append(norm);
        copied = end;
      }
      prev_start = begin;  // a later run never reaches back past this span
      i = end;
    }
    if (changed) out->append(in.substr(copied));
    return changed;
  }

 private:
  bool NormalizeSpan(std::string_view span, std::string* out) const {
    utf8proc_uint8_t* buf = nullptr;
    auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(span.data()),
                          static_cast<utf8proc_ssize_t>(span.size()), &buf,
                          static_cast<utf8proc_option_t>(options_));
    bool changed = n >= 0 && buf != nullptr &&
                   std::string_view(reinterpret_cast<char*>(buf), static_cast<size_t>(n)) != span;
    if (changed) out->assign(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
    std::free(buf);
    return changed;
  }

  int options_;
  const StableChars* stable_;
};

class Replace : public Normalizer {
 public:
  Replace(std::string literal, std::unique_ptr<Regex> re, std::string content)
      : literal_(std::move(literal)), re_(std::move(re)), content_(std::move(content)) {}
  bool Normalize(std::string_view s, std::string* out) const override {
    std::vector<Span> spans;
    if (re_ != nullptr) {
      re_->FindAll(s, &spans);
    } else if (!literal_.empty()) {
      for (size_t p = s.find(literal_); p != std::string::npos;
           p = s.find(literal_, p + literal_.size())) {
        spans.emplace_back(p, p + literal_.size());
      }
    }
    if (spans.empty()) return false;
    out->clear();
    out->reserve(s.size() + spans.size() * content_.size());
    size_t prev = 0;
    for (auto [b, e] : spans) {
      out->append(s.substr(prev, b - prev));
      *out += content_;
      prev = e;
    }
    out->append(s.substr(prev));
    return true;
  }

 private:
  std::string literal_;
  std::unique_ptr<Regex> re_;
  std::string content_;
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string p) : prefix_(std::move(p)) {}
  bool Normalize(std::string_view s, std::string* out) const override {
    if (s.empty() || prefix_.empty()) return false;
    out->assign(prefix_);
    out->append(s);
    return true;
  }

 private:
  std::string prefix_;
};

// Rust's str::to_lowercase: full mappings, including İ -> i̇ and the final-sigma rule.
class Lowercase : public Normalizer {
 public:
  bool Normalize(std::string_view in, std::string* result) const override {
    const std::string s(in);
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
      size_t len;
      char32_t c = DecodeUtf8(s, i, &len);
      if (c < 0x80) {
        out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
      } else if (c == 0x130) {
        out += "i\xCC\x87";
      } else if (c == 0x3A3) {
        AppendUtf8(IsFinalSigma(s, i, i + len) ? 0x3C2 : 0x3C3, &out);
      } else {
        AppendUtf8(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))), &out);
      }
      i += len;
    }
    if (out == s) return false;
    *result = std::move(out);
    return true;
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
  bool Normalize(std::string_view s, std::string* out) const override {
    size_t b = 0, e = s.size();
    size_t len;
    if (left_) {
      while (b < e && IsRustWhitespace(DecodeUtf8(s, b, &len))) b += len;
    }
    if (right_) {
      while (e > b) {
        size_t p = e - 1;
        while (p > b && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) --p;
        if (!IsRustWhitespace(DecodeUtf8(s, p, &len))) break;
        e = p;
      }
    }
    if (b == 0 && e == s.size()) return false;
    out->assign(s.substr(b, e - b));
    return true;
  }

 private:
  bool left_, right_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts)
      : parts_(std::move(parts)) {}
  bool Normalize(std::string_view in, std::string* out) const override {
    std::string cur, next;
    bool changed = false;
    for (const auto& p : parts_) {
      if (p->Normalize(changed ? std::string_view(cur) : in, &next)) {
        cur.swap(next);
        changed = true;
      }
    }
    if (changed) *out = std::move(cur);
    return changed;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

absl::StatusOr<std::unique_ptr<Normalizer>> ParseReplace(const JsonNode& j) {
  KVR_ASSIGN_OR_RETURN(JsonNode pattern, j.Get("pattern"));
  KVR_ASSIGN_OR_RETURN(std::string content, j.GetString("content"));
  if (std::optional<JsonNode> regex = pattern.Find("Regex")) {
    KVR_ASSIGN_OR_RETURN(std::string_view source, regex->String());
    auto re = Regex::Compile(source);
    if (!re.ok()) return regex->Error(std::string(re.status().message()));
    return std::make_unique<Replace>("", *std::move(re), std::move(content));
  }
  KVR_ASSIGN_OR_RETURN(std::string literal, pattern.GetString("String"));
  return std::make_unique<Replace>(std::move(literal), nullptr, std::move(content));
}

absl::StatusOr<std::unique_ptr<Normalizer>> ParseSequence(const JsonNode& j) {
  KVR_ASSIGN_OR_RETURN(JsonNode list, j.Get("normalizers"));
  KVR_ASSIGN_OR_RETURN(std::vector<JsonNode> items, list.Items());
  std::vector<std::unique_ptr<Normalizer>> parts;
  for (const JsonNode& sub : items) {
    KVR_ASSIGN_OR_RETURN(auto part, ParseNormalizer(sub));
    parts.push_back(std::move(part));
  }
  return std::make_unique<SequenceNormalizer>(std::move(parts));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(const JsonNode& j) {
  KVR_ASSIGN_OR_RETURN(const std::string type, j.GetString("type"));
  constexpr int kStable = UTF8PROC_STABLE;
  if (type == "NFC") {
    return std::make_unique<UnicodeForm>(kStable | UTF8PROC_COMPOSE, UCHAR_NFC_QUICK_CHECK);
  }
  if (type == "NFD") {
    return std::make_unique<UnicodeForm>(kStable | UTF8PROC_DECOMPOSE, UCHAR_NFD_QUICK_CHECK);
  }
  if (type == "NFKC") {
    return std::make_unique<UnicodeForm>(kStable | UTF8PROC_COMPOSE | UTF8PROC_COMPAT,
                                         UCHAR_NFKC_QUICK_CHECK);
  }
  if (type == "NFKD") {
    return std::make_unique<UnicodeForm>(kStable | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT,
                                         UCHAR_NFKD_QUICK_CHECK);
  }
  if (type == "Replace") return ParseReplace(j);
  if (type == "Prepend") {
    KVR_ASSIGN_OR_RETURN(std::string prepend, j.GetString("prepend"));
    return std::make_unique<Prepend>(std::move(prepend));
  }
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Strip") {
    KVR_ASSIGN_OR_RETURN(bool left, j.GetBool("strip_left", true));
    KVR_ASSIGN_OR_RETURN(bool right, j.GetBool("strip_right", true));
    return std::make_unique<Strip>(left, right);
  }
  if (type == "Sequence") return ParseSequence(j);
  return absl::UnimplementedError("unsupported normalizer: " + type);
}

}  // namespace kvr::tokenizer
