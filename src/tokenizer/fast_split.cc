#include "tokenizer/fast_split.h"

#include <oniguruma.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>

#include "tokenizer/unicode.h"

namespace kvr::tokenizer {
namespace {

std::atomic<bool> g_enabled{true};

// Character classes, one bit each, for every code point.
enum : uint8_t { kL = 1, kN = 2, kSpace = 4, kP = 8, kS = 16, kM = 32 };

// The table is filled from Oniguruma's own property ranges (the ones its \p{..} and \s use),
// so the fast matchers and the regex engine cannot disagree on a class, whatever Unicode
// version the installed library carries.
const uint8_t* ClassTable() {
  static uint8_t* table = [] {
    OnigEncoding encs[] = {ONIG_ENCODING_UTF8};
    onig_initialize(encs, 1);
    OnigEncoding enc = ONIG_ENCODING_UTF8;
    auto* t = new uint8_t[0x110000]();
    auto fill = [&](OnigCtype ctype, uint8_t bit) {
      OnigCodePoint sb_out;
      const OnigCodePoint* ranges = nullptr;
      if (enc->get_ctype_code_range(ctype, &sb_out, &ranges) != 0 || ranges == nullptr) return;
      for (OnigCodePoint k = 0; k < ranges[0]; ++k) {
        for (OnigCodePoint c = ranges[1 + 2 * k]; c <= ranges[2 + 2 * k] && c < 0x110000; ++c) {
          t[c] |= bit;
        }
      }
    };
    for (auto [name, bit] : {std::pair{"L", kL}, std::pair{"N", kN}, std::pair{"P", kP},
                             std::pair{"S", kS}, std::pair{"M", kM}}) {
      auto* p = reinterpret_cast<OnigUChar*>(const_cast<char*>(name));
      int ctype = enc->property_name_to_ctype(enc, p, p + std::strlen(name));
      if (ctype >= 0) fill(static_cast<OnigCtype>(ctype), bit);
    }
    fill(ONIGENC_CTYPE_SPACE, kSpace);
    return t;
  }();
  return table;
}

struct Text {
  std::string_view s;
  const uint8_t* cls;
  // Code point at i (i < size) and its length.
  char32_t At(size_t i, size_t* len) const {
    unsigned char b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      *len = 1;
      return b;
    }
    return DecodeUtf8(s, i, len);
  }
  uint8_t Cls(size_t i, size_t* len) const { return cls[At(i, len)]; }
  // End of the run of chars whose class intersects `mask`, starting at i. ASCII stays in
  // registers: going through At's out-parameter put a store and a reload on every char's path.
  size_t RunOf(size_t i, uint8_t mask) const {
    const size_t n = s.size();
    while (i < n) {
      const unsigned char b = static_cast<unsigned char>(s[i]);
      if (b < 0x80) {
        if (!(cls[b] & mask)) return i;
        ++i;
        continue;
      }
      size_t len;
      if (!(cls[DecodeUtf8(s, i, &len)] & mask)) return i;
      i += len;
    }
    return i;
  }
  bool Is(size_t i, uint8_t mask) const {
    size_t len;
    return i < s.size() && (Cls(i, &len) & mask);
  }
};

bool IsCrLf(char32_t c) { return c == '\r' || c == '\n'; }

// \s*[\r\n]+ | \s+(?!\S) | \s+ at i (a whitespace char): the three alternatives resolve to
// "up to the last CR/LF of the run", else "the run minus its last char unless the run ends
// the text or is one char", else "the run".
size_t MatchSpaces(const Text& t, size_t i) {
  size_t j = i, last_crlf = std::string_view::npos, last_start = i, len;
  while (j < t.s.size() && (t.Cls(j, &len) & kSpace)) {
    if (IsCrLf(static_cast<unsigned char>(t.s[j]))) last_crlf = j;
    last_start = j;
    j += len;
  }
  if (last_crlf != std::string_view::npos) return last_crlf + 1;
  if (j == t.s.size() || last_start == i) return j;
  return last_start;
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d) at i (s[i] == '\''); returns end or npos. Case folding makes
// U+017F (long s) match 's'.
size_t MatchContraction(std::string_view s, size_t i) {
  auto lower = [&](size_t k) -> char {
    return k < s.size() ? static_cast<char>(s[k] | 0x20) : '\0';
  };
  char a = lower(i + 1);
  if (i + 1 < s.size() && (s[i + 1] & 0x80) == 0) {
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
    char b = lower(i + 2);
    if (i + 2 < s.size() && (s[i + 2] & 0x80) == 0 &&
        ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))) {
      return i + 3;
    }
  } else if (s.substr(i + 1, 2) == "\xC5\xBF") {
    return i + 3;
  }
  return std::string_view::npos;
}

// Llama 3 / Qwen 2-3 (kMaxDigits 3 / 1):
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,kMaxDigits}|
//  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
template <int kMaxDigits>
size_t MatchLlamaAt(const Text& t, size_t i) {
  size_t len;
  char32_t c = t.At(i, &len);
  uint8_t f = t.cls[c];
  if (c == '\'') {
    size_t e = MatchContraction(t.s, i);
    if (e != std::string_view::npos) return e;
  }
  if (f & kL) return t.RunOf(i + len, kL);
  if (!(f & kN) && !IsCrLf(c) && t.Is(i + len, kL)) return t.RunOf(i + len, kL);
  if (f & kN) {
    size_t j = i + len;
    for (int k = 1; k < kMaxDigits && t.Is(j, kN); ++k) {
      t.At(j, &len);
      j += len;
    }
    return j;
  }
  constexpr uint8_t kWordOrSpace = kL | kN | kSpace;
  size_t p = (c == ' ') ? i + 1 : i;
  if (p < t.s.size() && !t.Is(p, kWordOrSpace)) {
    size_t j = p;
    while (j < t.s.size() && !t.Is(j, kWordOrSpace)) {
      t.At(j, &len);
      j += len;
    }
    while (j < t.s.size() && IsCrLf(static_cast<unsigned char>(t.s[j]))) ++j;
    return j;
  }
  if (f & kSpace) return MatchSpaces(t, i);
  return i;  // unreachable for valid UTF-8: every char matches one alternative
}

// DeepSeek V3, third Split:
// [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
//  ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
size_t MatchDeepSeekAt(const Text& t, size_t i) {
  size_t len;
  char32_t c = t.At(i, &len);
  uint8_t f = t.cls[c];
  auto ascii_alpha = [&](size_t k) {
    return k < t.s.size() && ((t.s[k] | 0x20) >= 'a' && (t.s[k] | 0x20) <= 'z');
  };
  bool ascii_punct = c < 0x80 && ((c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) ||
                                  (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E));
  if (ascii_punct && ascii_alpha(i + 1)) {
    size_t j = i + 1;
    while (ascii_alpha(j)) ++j;
    return j;
  }
  if (!IsCrLf(c) && !(f & (kL | kP | kS)) && t.Is(i + len, kL | kM)) {
    return t.RunOf(i + len, kL | kM);
  }
  if (f & (kL | kM)) return t.RunOf(i, kL | kM);
  size_t p = (c == ' ') ? i + 1 : i;
  if (t.Is(p, kP | kS)) {
    size_t j = t.RunOf(p, kP | kS);
    while (j < t.s.size() && IsCrLf(static_cast<unsigned char>(t.s[j]))) ++j;
    return j;
  }
  if (f & kSpace) return MatchSpaces(t, i);
  return i;  // no alternative matches here: the search moves on
}

template <size_t (*kMatchAt)(const Text&, size_t)>
void Scan(std::string_view s, std::vector<Span>* out) {
  Text t{s, ClassTable()};
  size_t i = 0, len;
  while (i < s.size()) {
    size_t e = kMatchAt(t, i);
    if (e > i) {
      out->emplace_back(i, e);
      i = e;
    } else {
      t.At(i, &len);
      i += len;
    }
  }
}

// \p{N}{1,3}
void ScanDigits3(std::string_view s, std::vector<Span>* out) {
  Text t{s, ClassTable()};
  size_t i = 0, len;
  while (i < s.size()) {
    if (!t.Is(i, kN)) {
      t.At(i, &len);
      i += len;
      continue;
    }
    size_t j = i;
    for (int k = 0; k < 3 && t.Is(j, kN); ++k) {
      t.At(j, &len);
      j += len;
    }
    out->emplace_back(i, j);
    i = j;
  }
}

// [一-龥\u3040-ゟ゠-ヿ]+ (CJK unified U+4E00..U+9FA5, hiragana, katakana)
void ScanDeepSeekCjk(std::string_view s, std::vector<Span>* out) {
  auto in = [](char32_t c) { return (c >= 0x4E00 && c <= 0x9FA5) || (c >= 0x3040 && c <= 0x30FF); };
  size_t i = 0, len;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0xE3 || !in(DecodeUtf8(s, i, &len))) {
      i += Utf8Len(static_cast<unsigned char>(s[i]));
      continue;
    }
    size_t j = i;
    while (j < s.size() && static_cast<unsigned char>(s[j]) >= 0xE3 && in(DecodeUtf8(s, j, &len))) {
      j += len;
    }
    out->emplace_back(i, j);
    i = j;
  }
}

constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3})"
    R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwenPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N})"
    R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kDigits3Pattern = R"(\p{N}{1,3})";
constexpr std::string_view kDeepSeekCjkPattern =
    "[\xE4\xB8\x80-\xE9\xBE\xA5\xE3\x81\x80-\xE3\x82\x9F\xE3\x82\xA0-\xE3\x83\xBF]+";
// The file has real CR and LF characters inside the classes here (JSON "\r\n" escapes).
constexpr std::string_view kDeepSeekMainPattern =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?"
    "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";

}  // namespace

void SetFastMatchersEnabled(bool enabled) { g_enabled = enabled; }

bool CutsAfterNewline(std::string_view pattern) {
  return pattern == kLlama3Pattern || pattern == kQwenPattern;
}

FastMatchFn FindFastMatcher(std::string_view pattern) {
  if (!g_enabled) return nullptr;
  if (pattern == kLlama3Pattern) return &Scan<MatchLlamaAt<3>>;
  if (pattern == kQwenPattern) return &Scan<MatchLlamaAt<1>>;
  if (pattern == kDigits3Pattern) return &ScanDigits3;
  if (pattern == kDeepSeekCjkPattern) return &ScanDeepSeekCjk;
  if (pattern == kDeepSeekMainPattern) return &Scan<MatchDeepSeekAt>;
  return nullptr;
}

}  // namespace kvr::tokenizer
