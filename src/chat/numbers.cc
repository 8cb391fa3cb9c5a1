#include "chat/numbers.h"

#include <charconv>
#include <cmath>
#include <cstdlib>

namespace kvr::chat {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Copies the digits of s[*i...] into *out, allowing single underscores between digits; returns
// false if there is no digit or an underscore is misplaced.
bool TakeDigitPart(std::string_view s, size_t* i, std::string* out) {
  size_t start = *i;
  while (*i < s.size()) {
    if (IsDigit(s[*i])) {
      out->push_back(s[(*i)++]);
    } else if (s[*i] == '_' && *i > start && IsDigit(s[*i - 1]) && *i + 1 < s.size() &&
               IsDigit(s[*i + 1])) {
      ++*i;
    } else {
      break;
    }
  }
  return *i > start;
}

bool EqualsIgnoreCase(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i] >= 'A' && s[i] <= 'Z' ? static_cast<char>(s[i] - 'A' + 'a') : s[i];
    if (c != lower[i]) return false;
  }
  return true;
}

}  // namespace

NumParse ParseDigits(std::string_view digits, int64_t* out) {
  if (digits.empty()) return NumParse::kInvalid;
  for (char c : digits) {
    if (!IsDigit(c)) return NumParse::kInvalid;
  }
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), *out);
  if (ec == std::errc::result_out_of_range) return NumParse::kOutOfRange;
  return ec == std::errc() && end == digits.data() + digits.size() ? NumParse::kOk
                                                                   : NumParse::kInvalid;
}

NumParse ParsePyInt(std::string_view s, int64_t* out) {
  size_t i = 0;
  std::string text;  // sign and digits, underscores dropped
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    if (s[i] == '-') text.push_back('-');
    ++i;
  }
  if (!TakeDigitPart(s, &i, &text) || i != s.size()) return NumParse::kInvalid;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  if (ec == std::errc::result_out_of_range) return NumParse::kOutOfRange;
  return ec == std::errc() && end == text.data() + text.size() ? NumParse::kOk : NumParse::kInvalid;
}

NumParse ParsePyFloat(std::string_view s, double* out) {
  size_t i = 0;
  std::string text;  // what strtod reads: the sign, digits, '.', 'e' and exponent sign
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) text.push_back(s[i++]);
  std::string_view word = s.substr(i);
  if (EqualsIgnoreCase(word, "inf") || EqualsIgnoreCase(word, "infinity") ||
      EqualsIgnoreCase(word, "nan")) {
    text.append(word);
  } else {
    bool int_part = TakeDigitPart(s, &i, &text);
    bool frac_part = false;
    if (i < s.size() && s[i] == '.') {
      text.push_back(s[i++]);
      frac_part = TakeDigitPart(s, &i, &text);
    }
    if (!int_part && !frac_part) return NumParse::kInvalid;
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
      text.push_back(s[i++]);
      if (i < s.size() && (s[i] == '+' || s[i] == '-')) text.push_back(s[i++]);
      if (!TakeDigitPart(s, &i, &text)) return NumParse::kInvalid;
    }
    if (i != s.size()) return NumParse::kInvalid;
  }
  // The text is validated above, so strtod reads all of it (hex floats and "nan(...)", which
  // strtod alone would accept, never get here). Out of range it returns ±HUGE_VAL or 0, as
  // Python's float() does; errno is not consulted.
  *out = std::strtod(text.c_str(), nullptr);
  return NumParse::kOk;
}

NumParse FloatToInt(double f, int64_t* out) {
  if (std::isnan(f)) return NumParse::kInvalid;
  // [-2^63, 2^63): both bounds are exact doubles; the cast below is defined only inside them.
  if (!(f >= -9223372036854775808.0 && f < 9223372036854775808.0)) return NumParse::kOutOfRange;
  *out = static_cast<int64_t>(f);
  return NumParse::kOk;
}

std::string FloatToIntError(double f) {
  if (std::isnan(f)) return "cannot convert float NaN to integer";
  if (std::isinf(f)) return "cannot convert float infinity to integer";
  return "integer out of range (more than 64 bits)";
}

}  // namespace kvr::chat
