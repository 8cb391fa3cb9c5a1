// Helpers shared by the builtin implementation files (not part of the module's interface).
#pragma once

#include <string>
#include <string_view>

#include "chat/builtins.h"
#include "chat/value.h"

namespace kvr::chat::internal {

inline const Value& Arg0(const Args& a) {
  static const Value kUndefined;
  return a.pos.empty() ? kUndefined : a.pos[0];
}

int FindFilterImpl(std::string_view name);
const Builtin& FilterAtImpl(int i);

// Python str.strip/lstrip/rstrip: `chars` null strips Unicode whitespace.
std::string PyStrip(std::string_view s, const std::string* chars, bool left, bool right);
// Python str.lower()/upper() (per code point, simple case mapping).
std::string PyLower(std::string_view s);
std::string PyUpper(std::string_view s);
// Python str.title() / str.capitalize().
std::string PyTitle(std::string_view s);
std::string PyCapitalize(std::string_view s);
// str.replace(old, new, count). Stops early once the result exceeds `max_bytes` (the caller's
// size check then fails): a short `from` and a long `to` multiply the size.
std::string PyReplace(const std::string& s, const std::string& from, const std::string& to,
                      int64_t count, size_t max_bytes);
// markupsafe.escape for a plain string.
std::string HtmlEscape(std::string_view s);
// Python's `fmt % args` for strings (%s %r %d %i %f %%).
Value PyPercentFormat(Interp& in, const std::string& fmt, const Value& args);
// Python str.format with positional {} / {0} and keyword {name} fields.
Value PyStrFormat(Interp& in, const std::string& fmt, const Args& args);

}  // namespace kvr::chat::internal
