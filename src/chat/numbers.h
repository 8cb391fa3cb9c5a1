// Number parsing and conversion with Python's grammar, for a renderer whose ints are 64-bit.
// Python's ints are unbounded, so where Python would produce an integer outside int64 there is
// no faithful value: these functions report kOutOfRange and callers turn it into a template
// error, instead of saturating, wrapping or throwing (std::stoll would throw on such input,
// strtoll silently saturates). None of them throws.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kvr::chat {

enum class NumParse { kOk, kInvalid, kOutOfRange };

// ASCII decimal digits only (no sign, space or underscore): template integer literals (after the
// lexer drops their underscores), str.format field numbers, attribute-path parts.
NumParse ParseDigits(std::string_view digits, int64_t* out);

// Python's int(s) for base 10 on an already stripped string: an optional sign, then ASCII digits
// with single underscores between them ("1_000"). Unicode digits are not accepted (kInvalid).
NumParse ParsePyInt(std::string_view s, int64_t* out);

// Python's float(s) on an already stripped string: an optional sign, then digits with optional
// fraction and exponent (underscores between digits), or inf / infinity / nan in any case. Never
// kOutOfRange: like Python, a too large magnitude is ±inf and a too small one 0.
NumParse ParsePyFloat(std::string_view s, double* out);

// Python's int(f), truncating toward zero: kInvalid for NaN (a ValueError in Python),
// kOutOfRange for ±inf (OverflowError) and for |f| >= 2^63 (a big int in Python).
NumParse FloatToInt(double f, int64_t* out);
// Python's message for a FloatToInt failure on `f`.
std::string FloatToIntError(double f);

}  // namespace kvr::chat
