#include "chat/lexer.h"

#include <cstdlib>
#include <cstring>

#include "chat/numbers.h"
#include "chat/value.h"

namespace kvr::chat {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || IsDigit(c); }

// Python's \s over a UTF-8 string: the byte length of the whitespace run starting at i.
size_t SpaceRunEnd(std::string_view s, size_t i) {
  while (i < s.size()) {
    size_t j = i;
    if (!IsPySpace(DecodeUtf8(s, &j))) break;
    i = j;
  }
  return i;
}

// str.rstrip(): strips trailing Unicode whitespace.
std::string_view RStripSpace(std::string_view s) {
  size_t end = 0;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = DecodeUtf8(s, &i);
    if (!IsPySpace(cp)) end = i;
  }
  return s.substr(0, end);
}

constexpr const char* kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*",
                                "/",  "%",  "~",  "<",  ">",  "=",  ".", ",", ":",
                                "|",  "(",  ")",  "[",  "]",  "{",  "}", ";"};

class Lexer {
 public:
  explicit Lexer(std::string src) { res_.source = std::move(src); }

  absl::StatusOr<LexResult> Run() {
    const std::string& s = res_.source;
    while (pos_ < s.size()) {
      size_t start = FindTagStart(pos_);
      if (start == std::string::npos) {
        Emit(Tok::kData, s.substr(pos_), pos_);
        break;
      }
      char kind = s[start + 1];
      char sign =
          start + 2 < s.size() && (s[start + 2] == '-' || s[start + 2] == '+') ? s[start + 2] : 0;
      std::string_view text(s.data() + pos_, start - pos_);
      text = StripBefore(text, kind, sign);
      if (!text.empty()) Emit(Tok::kData, std::string(text), pos_);
      pos_ = start + 2 + (sign ? 1 : 0);
      absl::Status st = kind == '#'           ? SkipComment(start)
                        : TryRaw(start, sign) ? absl::OkStatus()
                                              : LexTag(kind == '%', start);
      if (!st.ok()) return st;
    }
    Emit(Tok::kEof, "", static_cast<uint32_t>(s.size()));
    return std::move(res_);
  }

 private:
  size_t FindTagStart(size_t from) const {
    const std::string& s = res_.source;
    for (size_t i = s.find('{', from); i != std::string::npos; i = s.find('{', i + 1)) {
      if (i + 1 < s.size() && (s[i + 1] == '{' || s[i + 1] == '%' || s[i + 1] == '#')) return i;
    }
    return std::string::npos;
  }

  // `-` strips all whitespace before the tag; lstrip_blocks strips a line's leading spaces
  // before a block or comment tag unless the tag says `+`.
  std::string_view StripBefore(std::string_view text, char kind, char sign) const {
    if (sign == '-') return RStripSpace(text);
    if (sign == '+' || kind == '{') return text;
    size_t nl = text.rfind('\n');
    size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
    if ((l_pos > 0 || line_starting_) && l_pos < text.size() &&
        SpaceRunEnd(text, l_pos) == text.size()) {
      return text.substr(0, l_pos);
    }
    return text;
  }

  void Emit(Tok t, std::string text, size_t offset) {
    Token tok{t, std::move(text)};
    tok.offset = static_cast<uint32_t>(offset);
    res_.tokens.push_back(std::move(tok));
  }

  absl::Status Fail(const std::string& msg, size_t offset) const {
    return absl::InvalidArgumentError("template syntax error at " +
                                      DescribePosition(res_.source, offset) + ": " + msg);
  }

  // After an end delimiter: `-` eats all following whitespace, trim_blocks eats one newline.
  void AfterEnd(size_t end, char sign, bool trims_newline) {
    const std::string& s = res_.source;
    pos_ = end;
    if (sign == '-') {
      pos_ = SpaceRunEnd(s, pos_);
    } else if (sign != '+' && trims_newline && pos_ < s.size() && s[pos_] == '\n') {
      ++pos_;
    }
    line_starting_ = pos_ > 0 && s[pos_ - 1] == '\n';
  }

  absl::Status SkipComment(size_t start) {
    size_t j = res_.source.find("#}", pos_);
    if (j == std::string::npos) return Fail("Missing end of comment tag", start);
    char sign = j > pos_ && (res_.source[j - 1] == '-' || res_.source[j - 1] == '+')
                    ? res_.source[j - 1]
                    : 0;
    AfterEnd(j + 2, sign, true);
    return absl::OkStatus();
  }

  // {% raw %}...{% endraw %}: the body is data, untouched.
  bool TryRaw(size_t start, char sign) {
    const std::string& s = res_.source;
    if (s[start + 1] != '%') return false;
    size_t i = SpaceRunEnd(s, pos_);
    if (s.compare(i, 3, "raw") != 0) return false;
    i = SpaceRunEnd(s, i + 3);
    if (i + 1 >= s.size()) return false;
    char close_sign = s[i] == '-' ? '-' : 0;
    if (s.compare(i + (close_sign ? 1 : 0), 2, "%}") != 0) return false;
    (void)sign;
    size_t body = i + (close_sign ? 3 : 2);
    if (close_sign) body = SpaceRunEnd(s, body);
    for (size_t j = s.find("{%", body); j != std::string::npos; j = s.find("{%", j + 1)) {
      size_t k = j + 2;
      char bsign = (s[k] == '-' || s[k] == '+') ? s[k++] : 0;
      k = SpaceRunEnd(s, k);
      if (s.compare(k, 6, "endraw") != 0) continue;
      k = SpaceRunEnd(s, k + 6);
      char esign = (s[k] == '-' || s[k] == '+') ? s[k++] : 0;
      if (s.compare(k, 2, "%}") != 0) continue;
      std::string_view text(s.data() + body, j - body);
      line_starting_ = false;
      text = StripBefore(text, '%', bsign);
      Emit(Tok::kData, std::string(text), body);
      AfterEnd(k + 2, esign, true);
      return true;
    }
    pos_ = s.size();  // unterminated raw: the parser reports the missing endraw
    Emit(Tok::kBlockBegin, "", start);
    Emit(Tok::kName, "raw", start);
    return true;
  }

  absl::Status LexTag(bool block, size_t start) {
    const std::string& s = res_.source;
    Emit(block ? Tok::kBlockBegin : Tok::kVarBegin, "", start);
    int depth = 0;  // end delimiters only count outside brackets, as in Jinja2
    while (true) {
      pos_ = SpaceRunEnd(s, pos_);
      if (pos_ >= s.size()) {
        return Fail(block ? "unexpected end of template, expected end of block"
                          : "unexpected end of template, expected '}}'",
                    start);
      }
      if (depth == 0 && TryEnd(block)) return absl::OkStatus();
      KVR_RETURN_IF_ERROR(LexOne(&depth));
    }
  }

  bool TryEnd(bool block) {
    const std::string& s = res_.source;
    const char* close = block ? "%}" : "}}";
    char sign = (s[pos_] == '-' || (block && s[pos_] == '+')) ? s[pos_] : 0;
    size_t at = pos_ + (sign ? 1 : 0);
    if (s.compare(at, 2, close) != 0) return false;
    Emit(block ? Tok::kBlockEnd : Tok::kVarEnd, "", pos_);
    AfterEnd(at + 2, sign, block);
    return true;
  }

  absl::Status LexOne(int* depth) {
    const std::string& s = res_.source;
    char c = s[pos_];
    if (IsDigit(c)) return LexNumber();
    if (IsNameStart(c)) {
      size_t e = pos_;
      while (e < s.size() && IsNameChar(s[e])) ++e;
      Emit(Tok::kName, s.substr(pos_, e - pos_), pos_);
      pos_ = e;
      return absl::OkStatus();
    }
    if (c == '\'' || c == '"') return LexString();
    for (const char* op : kOps) {
      size_t n = std::strlen(op);
      if (s.compare(pos_, n, op) == 0) {
        if (n == 1 && (c == '(' || c == '[' || c == '{')) ++*depth;
        if (n == 1 && (c == ')' || c == ']' || c == '}')) {
          if (*depth == 0) return Fail(std::string("unexpected '") + c + "'", pos_);
          --*depth;
        }
        Emit(Tok::kOp, op, pos_);
        pos_ += n;
        return absl::OkStatus();
      }
    }
    return Fail(std::string("unexpected char '") + c + "'", pos_);
  }

  absl::Status LexNumber() {
    const std::string& s = res_.source;
    size_t b = pos_;
    auto digits = [&](size_t i) {
      while (i < s.size() &&
             (IsDigit(s[i]) || (s[i] == '_' && i + 1 < s.size() && IsDigit(s[i + 1]))))
        ++i;
      return i;
    };
    size_t e = digits(b);
    bool is_float = false;
    bool after_dot = b > 0 && s[b - 1] == '.';  // `x.0.1` is two subscripts, as in Jinja2
    if (!after_dot && e + 1 < s.size() && s[e] == '.' && IsDigit(s[e + 1])) {
      e = digits(e + 1);
      is_float = true;
    }
    if (!after_dot && e < s.size() && (s[e] == 'e' || s[e] == 'E')) {
      size_t x = e + 1;
      if (x < s.size() && (s[x] == '+' || s[x] == '-')) ++x;
      if (x < s.size() && IsDigit(s[x])) {
        e = digits(x);
        is_float = true;
      }
    }
    std::string text;
    for (size_t i = b; i < e; ++i) {
      if (s[i] != '_') text.push_back(s[i]);
    }
    Token tok{is_float ? Tok::kFloat : Tok::kInt, text};
    tok.offset = static_cast<uint32_t>(b);
    if (is_float) {
      tok.float_value = std::strtod(text.c_str(), nullptr);  // 1e400 is inf, as in Python
    } else if (ParseDigits(text, &tok.int_value) != NumParse::kOk) {
      // Python's ints are unbounded; ours are 64-bit, so a longer literal cannot be rendered.
      return Fail("integer literal out of range", b);
    }
    res_.tokens.push_back(std::move(tok));
    pos_ = e;
    return absl::OkStatus();
  }

  absl::Status LexString();

  LexResult res_;
  size_t pos_ = 0;
  bool line_starting_ = true;
};

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Python's "unicode-escape" decoding of a string literal body, as Jinja2's lexer applies it.
size_t Unescape(std::string_view s, size_t i, std::string* out) {
  char c = s[i];
  static constexpr std::string_view kSimple = "n\nt\tr\r\\\\''\"\"a\ab\bf\fv\v";
  for (size_t k = 0; k + 1 < kSimple.size(); k += 2) {
    if (c == kSimple[k]) {
      out->push_back(kSimple[k + 1]);
      return i + 1;
    }
  }
  if (c == '\n') return i + 1;  // line continuation
  int width = c == 'x' ? 2 : c == 'u' ? 4 : c == 'U' ? 8 : 0;
  if (width > 0 && i + width < s.size()) {
    uint32_t cp = 0;
    for (int k = 1; k <= width; ++k) {
      int h = HexValue(s[i + k]);
      if (h < 0) return (out->push_back('\\'), i);
      cp = cp * 16 + static_cast<uint32_t>(h);
    }
    AppendUtf8(cp, out);
    return i + 1 + width;
  }
  if (c >= '0' && c <= '7') {
    uint32_t cp = 0;
    size_t k = i;
    while (k < s.size() && k < i + 3 && s[k] >= '0' && s[k] <= '7') cp = cp * 8 + (s[k++] - '0');
    AppendUtf8(cp, out);
    return k;
  }
  out->push_back('\\');
  return i;
}

absl::Status Lexer::LexString() {
  const std::string& s = res_.source;
  char quote = s[pos_];
  std::string value;
  size_t i = pos_ + 1;
  while (true) {
    if (i >= s.size()) return Fail("unterminated string", pos_);
    char c = s[i];
    if (c == quote) break;
    if (c == '\\' && i + 1 < s.size()) {
      i = Unescape(s, i + 1, &value);
      continue;
    }
    value.push_back(c);
    ++i;
  }
  Emit(Tok::kString, std::move(value), pos_);
  pos_ = i + 1;
  return absl::OkStatus();
}

}  // namespace

std::string DescribePosition(std::string_view source, uint32_t offset) {
  size_t line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < offset && i < source.size(); ++i) {
    if (source[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  size_t col = CodePointCount(source.substr(line_start, offset - line_start)) + 1;
  return "line " + std::to_string(line) + ", column " + std::to_string(col);
}

absl::StatusOr<LexResult> Lex(std::string_view source) {
  std::string norm;
  norm.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      norm.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      norm.push_back(source[i]);
    }
  }
  if (!norm.empty() && norm.back() == '\n') norm.pop_back();  // keep_trailing_newline=False
  return Lexer(std::move(norm)).Run();
}

}  // namespace kvr::chat
