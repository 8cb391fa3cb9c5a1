// The environment's filters, tests, globals and Python methods, as transformers' Jinja2
// environment has them (tojson is json.dumps with ensure_ascii=False; raise_exception and
// strftime_now are globals; loopcontrols and {% generation %} are enabled).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat/value.h"

namespace kvr::chat {

class Interp;

// Evaluated call arguments: positional, then keyword in source order.
struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;

  // Positional i, else keyword `name`, else nullptr (Python's parameter binding).
  const Value* Get(size_t i, std::string_view name) const;
  Value GetOr(size_t i, std::string_view name, Value fallback) const;
};

using BuiltinFn = Value (*)(Interp& in, const Value& self, const Args& args);

struct Builtin {
  const char* name;
  BuiltinFn fn;
};

// Index of a builtin by name, or -1.
int FindFilter(std::string_view name);
int FindTest(std::string_view name);
int FindGlobal(std::string_view name);
const Builtin& FilterAt(int i);
const Builtin& TestAt(int i);
const Builtin& GlobalAt(int i);

// `obj.name` for the Python methods of str, dict and list (a bound method object), or an
// undefined value when there is none. Mutating list/dict methods give a callable that fails
// with the sandbox's SecurityError message, as ImmutableSandboxedEnvironment does.
Value GetMethod(const Value& self, std::string_view name);

// A global function value (range, namespace, raise_exception, ...).
Value MakeGlobal(int index);

}  // namespace kvr::chat
