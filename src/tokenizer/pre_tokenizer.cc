#include "tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <functional>

#include "tokenizer/fast_split.h"
#include "tokenizer/json_reader.h"
#include "tokenizer/unicode.h"

namespace kvr::tokenizer {
namespace {

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
void ApplyBehavior(Piece piece, const std::vector<Part>& parts, SplitBehavior behavior,
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

using Finder = PreTokenizer::SpanFinder;

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
  SplitPre(Finder find, SplitBehavior b, bool invert, bool cuts_after_newline = false)
      : find_(std::move(find)), behavior_(b), invert_(invert),
        cuts_after_newline_(cuts_after_newline) {}
  void Apply(std::vector<Piece>* pieces, std::vector<Piece>* scratch,
             PieceArena* /*arena*/) const override {
    SplitAll(pieces, scratch, find_, behavior_, invert_);
  }
  const SpanFinder* IsolatedSplit() const override {
    return behavior_ == SplitBehavior::kIsolated && !invert_ ? &find_ : nullptr;
  }
  bool CutsAfterNewline() const override {
    return cuts_after_newline_ && IsolatedSplit() != nullptr;
  }

 private:
  Finder find_;
  SplitBehavior behavior_;
  bool invert_;
  bool cuts_after_newline_;
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
  const SpanFinder* IsolatedSplit() const override {
    return !add_prefix_space_ && gpt2_ ? &gpt2_ : nullptr;
  }
  bool IsIdentity() const override { return !add_prefix_space_ && !gpt2_; }

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
  // One isolated split among stages that change nothing is that split.
  const SpanFinder* IsolatedSplit() const override {
    const SpanFinder* split = nullptr;
    for (const auto& p : parts_) {
      if (p->IsIdentity()) continue;
      if (split != nullptr || (split = p->IsolatedSplit()) == nullptr) return nullptr;
    }
    return split;
  }
  bool CutsAfterNewline() const override {
    if (IsolatedSplit() == nullptr) return false;
    for (const auto& p : parts_) {
      if (!p->IsIdentity()) return p->CutsAfterNewline();
    }
    return false;
  }
  bool IsIdentity() const override {
    return std::all_of(parts_.begin(), parts_.end(), [](const auto& p) { return p->IsIdentity(); });
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

absl::StatusOr<SplitBehavior> ParseBehavior(std::string_view s) {
  if (s == "Removed") return SplitBehavior::kRemoved;
  if (s == "Isolated") return SplitBehavior::kIsolated;
  if (s == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (s == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (s == "Contiguous") return SplitBehavior::kContiguous;
  return absl::UnimplementedError("unsupported split behavior: " + std::string(s));
}

absl::StatusOr<Finder> RegexPatternFinder(std::string_view re) {
  if (FastMatchFn fast = FindFastMatcher(re)) {
    return Finder([fast](std::string_view s, std::vector<Span>* out) { fast(s, out); });
  }
  KVR_ASSIGN_OR_RETURN(std::unique_ptr<Regex> compiled, Regex::Compile(re));
  return RegexFinder(std::shared_ptr<Regex>(std::move(compiled)));
}

absl::StatusOr<Finder> PatternFinder(const JsonNode& pattern) {
  if (std::optional<JsonNode> regex = pattern.Find("Regex")) {
    KVR_ASSIGN_OR_RETURN(std::string_view re, regex->String());
    auto finder = RegexPatternFinder(re);
    if (!finder.ok()) return regex->Error(std::string(finder.status().message()));
    return finder;
  }
  KVR_ASSIGN_OR_RETURN(std::string literal, pattern.GetString("String"));
  return LiteralFinder(std::move(literal));
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParseSplit(const JsonNode& j) {
  KVR_ASSIGN_OR_RETURN(JsonNode pattern, j.Get("pattern"));
  KVR_ASSIGN_OR_RETURN(Finder find, PatternFinder(pattern));
  KVR_ASSIGN_OR_RETURN(std::string behavior, j.GetString("behavior"));
  KVR_ASSIGN_OR_RETURN(SplitBehavior b, ParseBehavior(behavior));
  KVR_ASSIGN_OR_RETURN(bool invert, j.GetBool("invert", false));
  std::optional<JsonNode> regex = pattern.Find("Regex");
  bool cuts = false;
  if (regex) {
    KVR_ASSIGN_OR_RETURN(std::string_view re, regex->String());
    cuts = CutsAfterNewline(re);
  }
  return std::make_unique<SplitPre>(std::move(find), b, invert, cuts);
}

absl::StatusOr<PrependScheme> ParsePrependScheme(const JsonNode& j) {
  std::optional<JsonNode> scheme = j.Find("prepend_scheme");
  if (!scheme) {
    KVR_ASSIGN_OR_RETURN(bool add_prefix_space, j.GetBool("add_prefix_space", true));
    return add_prefix_space ? PrependScheme::kAlways : PrependScheme::kNever;
  }
  KVR_ASSIGN_OR_RETURN(std::string_view s, scheme->String());
  if (s == "always") return PrependScheme::kAlways;
  if (s == "first") return PrependScheme::kFirst;
  if (s == "never") return PrependScheme::kNever;
  return absl::UnimplementedError("unsupported Metaspace prepend_scheme: " + std::string(s));
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParseMetaspace(const JsonNode& j) {
  KVR_ASSIGN_OR_RETURN(std::string rep, j.GetString("replacement", "\xE2\x96\x81"));
  KVR_ASSIGN_OR_RETURN(PrependScheme scheme, ParsePrependScheme(j));
  KVR_ASSIGN_OR_RETURN(bool split, j.GetBool("split", true));
  return std::make_unique<MetaspacePre>(std::move(rep), scheme, split);
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParseByteLevel(const JsonNode& j) {
  Finder gpt2;
  KVR_ASSIGN_OR_RETURN(bool use_regex, j.GetBool("use_regex", true));
  if (use_regex) {
    KVR_ASSIGN_OR_RETURN(gpt2, RegexPatternFinder(kGpt2Pattern));
  }
  KVR_ASSIGN_OR_RETURN(bool add_prefix_space, j.GetBool("add_prefix_space", true));
  return std::make_unique<ByteLevelPre>(add_prefix_space, std::move(gpt2));
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParseOne(const JsonNode& j, bool last,
                                                       bool* byte_level);

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParseSequence(const JsonNode& j, bool last,
                                                            bool* byte_level) {
  KVR_ASSIGN_OR_RETURN(JsonNode list, j.Get("pretokenizers"));
  KVR_ASSIGN_OR_RETURN(std::vector<JsonNode> items, list.Items());
  std::vector<std::unique_ptr<PreTokenizer>> parts;
  for (size_t i = 0; i < items.size(); ++i) {
    KVR_ASSIGN_OR_RETURN(auto part, ParseOne(items[i], last && i + 1 == items.size(), byte_level));
    parts.push_back(std::move(part));
  }
  return std::make_unique<SequencePre>(std::move(parts));
}

// The pre-tokenizers that take at most a behavior or a flag.
absl::StatusOr<std::unique_ptr<PreTokenizer>> ParseSimple(const JsonNode& j,
                                                          std::string_view type) {
  if (type == "Digits") {
    KVR_ASSIGN_OR_RETURN(bool individual, j.GetBool("individual_digits", false));
    return std::make_unique<SplitPre>(
        CharFinder(IsRustNumeric),
        individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous, false);
  }
  if (type == "Punctuation") {
    KVR_ASSIGN_OR_RETURN(std::string behavior, j.GetString("behavior", "Isolated"));
    KVR_ASSIGN_OR_RETURN(SplitBehavior b, ParseBehavior(behavior));
    return std::make_unique<SplitPre>(CharFinder(IsPunctuation), b, false);
  }
  if (type == "Whitespace") {
    KVR_ASSIGN_OR_RETURN(Finder find, RegexPatternFinder(R"(\w+|[^\w\s]+)"));
    return std::make_unique<SplitPre>(std::move(find), SplitBehavior::kRemoved, true);
  }
  if (type == "WhitespaceSplit") {
    return std::make_unique<SplitPre>(CharFinder(IsRustWhitespace), SplitBehavior::kRemoved, false);
  }
  return absl::UnimplementedError("unsupported pre_tokenizer: " + std::string(type));
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParseOne(const JsonNode& j, bool last,
                                                       bool* byte_level) {
  KVR_ASSIGN_OR_RETURN(const std::string type, j.GetString("type"));
  if (type == "Sequence") return ParseSequence(j, last, byte_level);
  if (type == "ByteLevel") {
    if (!last) return absl::UnimplementedError("unsupported pre_tokenizer: ByteLevel not last");
    *byte_level = true;
    return ParseByteLevel(j);
  }
  if (type == "Split") return ParseSplit(j);
  if (type == "Metaspace") return ParseMetaspace(j);
  return ParseSimple(j, type);
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

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const JsonNode& j,
                                                                bool* byte_level) {
  *byte_level = false;
  return ParseOne(j, true, byte_level);
}

}  // namespace kvr::tokenizer
