#include "tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>

#include "tokenizer/fast_split.h"
#include "tokenizer/unicode.h"

namespace kvr::tokenizer {
namespace {

using nlohmann::json;

constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct Part {
  size_t begin, end;
  bool match;
};

void Emit(Piece piece, size_t b, size_t e, std::vector<Piece>* out) {
  if (e > b) out->push_back({piece.text.substr(b, e - b), piece.at_start && b == 0});
}

// Folds the covering list the way Hugging Face's NormalizedString::split does per behavior.
void ApplyBehavior(Piece piece, std::vector<Part>& parts, SplitBehavior behavior,
                   std::vector<Piece>* out) {
  std::vector<Part> acc;
  bool prev_match = false;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (const Part& p : parts) {
        if (!p.match) Emit(piece, p.begin, p.end, out);
      }
      return;
    case SplitBehavior::kIsolated:
      for (const Part& p : parts) Emit(piece, p.begin, p.end, out);
      return;
    case SplitBehavior::kMergedWithPrevious:
      for (const Part& p : parts) {
        if (p.match && !prev_match && !acc.empty()) {
          acc.back().end = p.end;
        } else {
          acc.push_back(p);
        }
        prev_match = p.match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (size_t i = parts.size(); i-- > 0;) {
        const Part& p = parts[i];
        if (p.match && !prev_match && !acc.empty()) {
          acc.back().begin = p.begin;
        } else {
          acc.push_back(p);
        }
        prev_match = p.match;
      }
      std::reverse(acc.begin(), acc.end());
      break;
    case SplitBehavior::kContiguous:
      for (const Part& p : parts) {
        if (p.match == prev_match && !acc.empty()) {
          acc.back().end = p.end;
        } else {
          acc.push_back(p);
        }
        prev_match = p.match;
      }
      break;
  }
  for (const Part& p : acc) Emit(piece, p.begin, p.end, out);
}

using Finder = std::function<void(std::string_view, std::vector<Span>*)>;

void SplitAll(std::vector<Piece>* pieces, std::vector<Piece>* scratch, const Finder& find,
              SplitBehavior behavior, bool invert) {
  scratch->clear();
  std::vector<Span> spans;
  for (const Piece& piece : *pieces) {
    spans.clear();
    find(piece.text, &spans);
    SplitAround(piece, spans, behavior, invert, scratch);
  }
  pieces->swap(*scratch);
}

Finder CharFinder(std::function<bool(char32_t)> pred) {
  return [pred = std::move(pred)](std::string_view s, std::vector<Span>* out) {
    for (size_t i = 0; i < s.size();) {
      size_t len;
      if (pred(DecodeUtf8(s, i, &len))) out->emplace_back(i, i + len);
      i += len;
    }
  };
}

Finder LiteralFinder(std::string lit) {
  return [lit = std::move(lit)](std::string_view s, std::vector<Span>* out) {
    if (lit.empty()) return;
    for (size_t p = s.find(lit); p != std::string_view::npos; p = s.find(lit, p + lit.size())) {
      out->emplace_back(p, p + lit.size());
    }
  };
}

Finder RegexFinder(std::shared_ptr<Regex> re) {
  return [re = std::move(re)](std::string_view s, std::vector<Span>* out) { re->FindAll(s, out); };
}

class SplitPre : public PreTokenizer {
 public:
  SplitPre(Finder find, SplitBehavior b, bool invert)
      : find_(std::move(find)), behavior_(b), invert_(invert) {}
  void Apply(std::vector<Piece>* pieces, std::vector<Piece>* scratch,
             PieceArena* /*arena*/) const override {
    SplitAll(pieces, scratch, find_, behavior_, invert_);
  }

 private:
  Finder find_;
  SplitBehavior behavior_;
  bool invert_;
};

// The byte-to-char mapping itself is folded into the byte-level vocabulary; what is left here
// is the optional prefix space and the optional GPT-2 split.
class ByteLevelPre : public PreTokenizer {
 public:
  ByteLevelPre(bool add_prefix_space, Finder gpt2)
      : add_prefix_space_(add_prefix_space), gpt2_(std::move(gpt2)) {}
  void Apply(std::vector<Piece>* pieces, std::vector<Piece>* scratch,
             PieceArena* arena) const override {
    if (add_prefix_space_) {
      for (Piece& p : *pieces) {
        if (p.text.front() == ' ') continue;
        std::string s(1, ' ');
        s.append(p.text);
        p.text = arena->Add(std::move(s));
      }
    }
    if (gpt2_) SplitAll(pieces, scratch, gpt2_, SplitBehavior::kIsolated, false);
  }

 private:
  bool add_prefix_space_;
  Finder gpt2_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePre : public PreTokenizer {
 public:
  MetaspacePre(std::string replacement, PrependScheme scheme, bool split)
      : rep_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void Apply(std::vector<Piece>* pieces, std::vector<Piece>* scratch,
             PieceArena* arena) const override {
    for (Piece& p : *pieces) {
      std::string s;
      s.reserve(p.text.size() + rep_.size());
      for (char c : p.text) {
        if (c == ' ') {
          s += rep_;
        } else {
          s.push_back(c);
        }
      }
      bool starts = s.compare(0, rep_.size(), rep_) == 0;
      if (!starts &&
          (scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && p.at_start))) {
        s.insert(0, rep_);
      }
      p.text = arena->Add(std::move(s));
    }
    if (split_) {
      SplitAll(pieces, scratch, LiteralFinder(rep_), SplitBehavior::kMergedWithNext, false);
    }
  }

 private:
  std::string rep_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePre : public PreTokenizer {
 public:
  explicit SequencePre(std::vector<std::unique_ptr<PreTokenizer>> parts)
      : parts_(std::move(parts)) {}
  void Apply(std::vector<Piece>* pieces, std::vector<Piece>* scratch,
             PieceArena* arena) const override {
    for (const auto& p : parts_) p->Apply(pieces, scratch, arena);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

absl::StatusOr<SplitBehavior> ParseBehavior(const std::string& s) {
  if (s == "Removed") return SplitBehavior::kRemoved;
  if (s == "Isolated") return SplitBehavior::kIsolated;
  if (s == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (s == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (s == "Contiguous") return SplitBehavior::kContiguous;
  return absl::UnimplementedError("unsupported split behavior: " + s);
}

absl::StatusOr<Finder> PatternFinder(const json& pattern) {
  if (pattern.contains("Regex")) {
    std::string re = pattern.at("Regex").get<std::string>();
    if (FastMatchFn fast = FindFastMatcher(re)) {
      return Finder([fast](std::string_view s, std::vector<Span>* out) { fast(s, out); });
    }
    ASSIGN_OR_RETURN(std::unique_ptr<Regex> compiled, Regex::Compile(re));
    return RegexFinder(std::shared_ptr<Regex>(std::move(compiled)));
  }
  return LiteralFinder(pattern.at("String").get<std::string>());
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParseSplit(const json& j) {
  ASSIGN_OR_RETURN(Finder find, PatternFinder(j.at("pattern")));
  ASSIGN_OR_RETURN(SplitBehavior b, ParseBehavior(j.at("behavior").get<std::string>()));
  return std::make_unique<SplitPre>(std::move(find), b, j.value("invert", false));
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParseMetaspace(const json& j) {
  std::string rep = j.value("replacement", std::string("\xE2\x96\x81"));
  PrependScheme scheme = PrependScheme::kAlways;
  if (j.contains("prepend_scheme")) {
    std::string s = j.at("prepend_scheme").get<std::string>();
    if (s == "first") {
      scheme = PrependScheme::kFirst;
    } else if (s == "never") {
      scheme = PrependScheme::kNever;
    } else if (s != "always") {
      return absl::UnimplementedError("unsupported Metaspace prepend_scheme: " + s);
    }
  } else if (!j.value("add_prefix_space", true)) {
    scheme = PrependScheme::kNever;
  }
  return std::make_unique<MetaspacePre>(std::move(rep), scheme, j.value("split", true));
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParseByteLevel(const json& j) {
  Finder gpt2;
  if (j.value("use_regex", true)) {
    ASSIGN_OR_RETURN(gpt2, PatternFinder(json{{"Regex", std::string(kGpt2Pattern)}}));
  }
  return std::make_unique<ByteLevelPre>(j.value("add_prefix_space", true), std::move(gpt2));
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParseOne(const json& j, bool last, bool* byte_level);

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParseSequence(const json& j, bool last,
                                                            bool* byte_level) {
  std::vector<std::unique_ptr<PreTokenizer>> parts;
  const json& list = j.at("pretokenizers");
  for (size_t i = 0; i < list.size(); ++i) {
    ASSIGN_OR_RETURN(auto part, ParseOne(list[i], last && i + 1 == list.size(), byte_level));
    parts.push_back(std::move(part));
  }
  return std::make_unique<SequencePre>(std::move(parts));
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParseOne(const json& j, bool last, bool* byte_level) {
  const std::string type = j.at("type").get<std::string>();
  if (type == "Sequence") return ParseSequence(j, last, byte_level);
  if (type == "ByteLevel") {
    if (!last) return absl::UnimplementedError("unsupported pre_tokenizer: ByteLevel not last");
    *byte_level = true;
    return ParseByteLevel(j);
  }
  if (type == "Split") return ParseSplit(j);
  if (type == "Metaspace") return ParseMetaspace(j);
  if (type == "Digits") {
    bool individual = j.value("individual_digits", false);
    return std::make_unique<SplitPre>(
        CharFinder(IsRustNumeric),
        individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous, false);
  }
  if (type == "Punctuation") {
    ASSIGN_OR_RETURN(SplitBehavior b, ParseBehavior(j.value("behavior", std::string("Isolated"))));
    return std::make_unique<SplitPre>(CharFinder(IsPunctuation), b, false);
  }
  if (type == "Whitespace") {
    ASSIGN_OR_RETURN(Finder find, PatternFinder(json{{"Regex", R"(\w+|[^\w\s]+)"}}));
    return std::make_unique<SplitPre>(std::move(find), SplitBehavior::kRemoved, true);
  }
  if (type == "WhitespaceSplit") {
    return std::make_unique<SplitPre>(CharFinder(IsRustWhitespace), SplitBehavior::kRemoved, false);
  }
  return absl::UnimplementedError("unsupported pre_tokenizer: " + type);
}

}  // namespace

void SplitAround(Piece piece, const std::vector<Span>& matches, SplitBehavior behavior, bool invert,
                 std::vector<Piece>* out) {
  if (!invert && behavior == SplitBehavior::kIsolated) {  // the hot path: no folding needed
    size_t prev = 0;
    for (auto [b, e] : matches) {
      Emit(piece, prev, b, out);
      Emit(piece, b, e, out);
      prev = e;
    }
    Emit(piece, prev, piece.text.size(), out);
    return;
  }
  std::vector<Part> parts;
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (b != prev) parts.push_back({prev, b, invert});
    parts.push_back({b, e, !invert});
    prev = e;
  }
  if (prev != piece.text.size()) parts.push_back({prev, piece.text.size(), invert});
  ApplyBehavior(piece, parts, behavior, out);
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const json& j, bool* byte_level) {
  *byte_level = false;
  return ParseOne(j, true, byte_level);
}

}  // namespace kvr::tokenizer
