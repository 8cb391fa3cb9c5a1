// The dynamic value of the template language, with Python semantics: what Jinja2 computes with
// is Python objects, so printing, equality, ordering and truthiness follow CPython (str(True) is
// "True", 1 == 1.0 == True, dicts keep insertion order, strings index by code point).
//
// A Value is a small tagged handle. Strings, lists and dicts are shared and immutable once built
// (the reference environment is ImmutableSandboxedEnvironment, so templates cannot mutate them);
// only namespaces are mutable, and they are shared on purpose (`ns.x = ...` in a loop must be
// seen after it). Copying a Value is one refcount increment at most.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvr::chat {

class Value;
class Object;
class Interp;
struct Args;
using List = std::vector<Value>;

// An insertion-ordered dict with string keys (JSON contexts and template literals only ever use
// string keys). Lookup is linear: chat dicts have a handful of keys.
// Keys are stored as their str(); `key_values` keeps the original keys only when some key is
// not a string (`{0: 'a', 100: 'b'}` in a template), so integer keys iterate as integers.
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  std::vector<Value> key_values;  // empty, or one original key per item
  const Value* Find(std::string_view key) const;
  void Set(std::string_view key, Value v);
  void SetKey(const Value& key, Value v);
  Value KeyAt(size_t i) const;
};

class Value {
 public:
  enum class Kind : uint8_t {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kDict,
    kNamespace,
    kObject,
    kGenerator,  // what map/select/... return in Jinja2: iterable once, no len(), not JSON
  };

  Value() = default;  // undefined
  static Value None() { return Value(Kind::kNone); }
  static Value Undefined(const std::string* name = nullptr) {
    Value v;
    v.u_.name = name;
    return v;
  }
  Value(bool b) : kind_(Kind::kBool) { u_.b = b; }      // NOLINT: implicit on purpose
  Value(int64_t i) : kind_(Kind::kInt) { u_.i = i; }    // NOLINT
  Value(int i) : Value(static_cast<int64_t>(i)) {}      // NOLINT
  Value(double f) : kind_(Kind::kFloat) { u_.f = f; }   // NOLINT
  Value(std::string s);                                 // NOLINT
  Value(std::string_view s) : Value(std::string(s)) {}  // NOLINT
  Value(const char* s) : Value(std::string(s)) {}       // NOLINT
  // A markupsafe.Markup string (from `|safe` or `|escape`): `+` escapes the other operand.
  static Value Markup(std::string s) {
    Value v(std::move(s));
    v.markup_ = true;
    return v;
  }
  static Value FromList(List l);
  // A Python tuple: a list that prints as (a, b) and is not equal to a list.
  static Value Tuple(List l) {
    Value v = FromList(std::move(l));
    v.tuple_ = true;
    return v;
  }
  static Value Generator(List l);
  static Value FromDict(Dict d);
  static Value NewNamespace(Dict d);
  static Value FromObject(std::shared_ptr<Object> o);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  // Python's numbers.Number includes bool.
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_markup() const { return markup_; }
  bool is_tuple() const { return tuple_; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_generator() const { return kind_ == Kind::kGenerator; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_object() const { return kind_ == Kind::kObject; }

  bool as_bool() const { return u_.b; }
  int64_t as_int() const { return is_bool() ? (u_.b ? 1 : 0) : u_.i; }
  double as_float() const { return is_float() ? u_.f : static_cast<double>(as_int()); }
  const std::string& str() const { return *static_cast<const std::string*>(p_.get()); }
  // Also the items of a generator.
  const List& list() const { return *static_cast<const List*>(p_.get()); }
  const Dict& dict() const { return *static_cast<const Dict*>(p_.get()); }
  Dict& mutable_namespace() const { return *static_cast<Dict*>(p_.get()); }
  Object& object() const { return *static_cast<Object*>(p_.get()); }
  const void* identity() const { return p_.get(); }
  // Container nesting, as computed when the container was built (0 for scalars; a namespace
  // counts what it held when created). Deep values recurse deeply when printed or destroyed,
  // so the interpreter refuses to store one deeper than its limit.
  int depth() const { return depth_; }
  // The variable or attribute name an undefined value came from (for error messages).
  const std::string* undefined_name() const { return is_undefined() ? u_.name : nullptr; }

  // Python truthiness.
  bool Truthy() const;
  // Python's type(x).__name__, for error messages.
  const char* TypeName() const;

 private:
  explicit Value(Kind k) : kind_(k) {}
  Kind kind_ = Kind::kUndefined;
  bool markup_ = false;
  bool tuple_ = false;
  uint16_t depth_ = 0;  // saturates
  union {
    bool b;
    int64_t i;
    double f;
    const std::string* name;
  } u_{.i = 0};
  std::shared_ptr<void> p_;
};

// Callables and other host objects (macros, bound methods, `loop`, `caller`, globals).
class Object {
 public:
  virtual ~Object() = default;
  virtual const char* TypeName() const = 0;
  // Attribute lookup; an undefined Value when missing.
  virtual Value GetAttr(std::string_view /*name*/) const { return Value(); }
  virtual bool Callable() const { return true; }
  // Calls the object; errors are reported through `in` (see Interp::Fail).
  virtual Value Call(Interp& in, const Args& args);
};

// str(v) appended to *out. Undefined prints as "", None as "None".
void AppendStr(const Value& v, std::string* out);
std::string ToStr(const Value& v);
// repr(v) appended to *out (used for str() of lists and dicts).
void AppendRepr(const Value& v, std::string* out);
// Python ==.
bool PyEquals(const Value& a, const Value& b);
// Python <: returns false and sets *ok=false when the types are unorderable.
bool PyLess(const Value& a, const Value& b, bool* ok);
// Python float repr ("1.0", "1e+16", "0.1").
void AppendFloat(double f, std::string* out);

// UTF-8 helpers: strings index by code point, as Python's str does.
size_t CodePointCount(std::string_view s);
// Byte offsets of each code point start, plus s.size() at the end.
std::vector<size_t> CodePointOffsets(std::string_view s);
// Decodes one code point at s[*i], advancing *i. Invalid bytes decode as themselves.
uint32_t DecodeUtf8(std::string_view s, size_t* i);
void AppendUtf8(uint32_t cp, std::string* out);
// Python str.isspace() for one code point.
bool IsPySpace(uint32_t cp);

}  // namespace kvr::chat
