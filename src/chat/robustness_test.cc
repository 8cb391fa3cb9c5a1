// Numbers at and beyond 64 bits, in templates and in JSON contexts, and inputs that once threw,
// trapped or hung: each has a defined result (Jinja2 3.1.6's where we can produce it, an
// explicit error where Python's result is an int we cannot hold) and none may crash.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "chat/chat_template.h"
#include "chat/json.h"
#include "chat/numbers.h"
#include "nlohmann/json.hpp"

namespace kvr::chat {
namespace {

using ::testing::HasSubstr;

const std::string kBig = std::string(30, '9');  // 30 digits: beyond int64 and uint64

absl::StatusOr<std::string> Render(std::string_view src, std::string_view ctx = "{}") {
  KVR_ASSIGN_OR_RETURN(auto t, ChatTemplate::Compile(src));
  return t->RenderJson(ctx, RenderOptions{});
}

// The rendered text, or "ERROR: <message>".
std::string R(std::string_view src, std::string_view ctx = "{}") {
  auto out = Render(src, ctx);
  return out.ok() ? *out : "ERROR: " + std::string(out.status().message());
}

// Found by chat_template_fuzz: a slice inside a tuple subscript had no object to slice.
TEST(SubscriptTest, SliceInATupleSubscriptIsAnErrorNotACrash) {
  for (const char* src : {"{{ messages[1::, g] }}", "{{ x[a, :2] }}", "{{ x[1:2, 3:4] }}"}) {
    auto out = Render(src, R"({"messages": [1, 2], "x": [1, 2, 3]})");
    ASSERT_FALSE(out.ok()) << src;
    EXPECT_NE(out.status().message().find("slices in a tuple subscript"), std::string_view::npos)
        << out.status();
  }
  EXPECT_EQ(*Render("{{ x[1:] }}", R"({"x": [1, 2, 3]})"), "[2, 3]");
}

TEST(NumbersTest, ParseDigits) {
  int64_t v = 0;
  EXPECT_EQ(ParseDigits("9223372036854775807", &v), NumParse::kOk);
  EXPECT_EQ(v, INT64_MAX);
  EXPECT_EQ(ParseDigits("9223372036854775808", &v), NumParse::kOutOfRange);
  EXPECT_EQ(ParseDigits(kBig + kBig + kBig, &v), NumParse::kOutOfRange);
  EXPECT_EQ(ParseDigits("", &v), NumParse::kInvalid);
  EXPECT_EQ(ParseDigits("-1", &v), NumParse::kInvalid);
  EXPECT_EQ(ParseDigits("1 ", &v), NumParse::kInvalid);
}

TEST(NumbersTest, PythonIntAndFloatGrammar) {
  int64_t i = 0;
  EXPECT_EQ(ParsePyInt("-9223372036854775808", &i), NumParse::kOk);
  EXPECT_EQ(i, INT64_MIN);
  EXPECT_EQ(ParsePyInt("+1_000", &i), NumParse::kOk);
  EXPECT_EQ(i, 1000);
  EXPECT_EQ(ParsePyInt("-9223372036854775809", &i), NumParse::kOutOfRange);
  for (const char* bad : {"", "+", "1_", "_1", "1__0", "1.0", "0x10", "1e3", "١"}) {
    EXPECT_EQ(ParsePyInt(bad, &i), NumParse::kInvalid) << bad;
  }
  double f = 0;
  EXPECT_EQ(ParsePyFloat("1_0.2_5e1_0", &f), NumParse::kOk);
  EXPECT_EQ(f, 10.25e10);
  EXPECT_EQ(ParsePyFloat("-InFiNiTy", &f), NumParse::kOk);
  EXPECT_EQ(f, -INFINITY);
  EXPECT_EQ(ParsePyFloat("1e400", &f), NumParse::kOk);  // Python: inf
  EXPECT_EQ(f, INFINITY);
  EXPECT_EQ(ParsePyFloat(".5", &f), NumParse::kOk);
  EXPECT_EQ(ParsePyFloat("5.", &f), NumParse::kOk);
  EXPECT_EQ(ParsePyFloat(kBig, &f), NumParse::kOk);
  for (const char* bad : {"", ".", "e5", "1e", "0x1p3", "nan(1)", "1_", "in f", "1.5x"}) {
    EXPECT_EQ(ParsePyFloat(bad, &f), NumParse::kInvalid) << bad;
  }
}

TEST(NumbersTest, FloatToInt) {
  int64_t i = 0;
  EXPECT_EQ(FloatToInt(-2.9, &i), NumParse::kOk);
  EXPECT_EQ(i, -2);
  EXPECT_EQ(FloatToInt(-9223372036854775808.0, &i), NumParse::kOk);
  EXPECT_EQ(FloatToInt(9223372036854775808.0, &i), NumParse::kOutOfRange);
  EXPECT_EQ(FloatToInt(INFINITY, &i), NumParse::kOutOfRange);
  EXPECT_EQ(FloatToInt(NAN, &i), NumParse::kInvalid);
  EXPECT_EQ(FloatToIntError(INFINITY), "cannot convert float infinity to integer");
  EXPECT_EQ(FloatToIntError(NAN), "cannot convert float NaN to integer");
}

TEST(LongDigitsTest, TemplateLiterals) {
  EXPECT_EQ(R("{{ 9223372036854775807 }}"), "9223372036854775807");
  EXPECT_EQ(R("{{ 1_000 }}"), "1000");
  EXPECT_EQ(R("{{ 1e400 }}"), "inf");
  // Python renders these exactly; a 64-bit renderer cannot, so compiling fails and says why.
  for (std::string lit : {std::string("9223372036854775808"), kBig, std::string(5000, '7')}) {
    auto t = ChatTemplate::Compile("{{ " + lit + " }}");
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(t.status().message()), HasSubstr("integer literal out of range"));
  }
  EXPECT_THAT(R("{{ 9223372036854775807 + 1 }}"), HasSubstr("integer overflow"));
}

TEST(LongDigitsTest, IntAndFloatFilters) {
  EXPECT_EQ(R("{{ '9223372036854775807'|int }}"), "9223372036854775807");
  EXPECT_EQ(R("{{ ' -9223372036854775808 '|int }}"), "-9223372036854775808");
  EXPECT_EQ(R("{{ '1_000'|int }}|{{ '1e5'|int }}|{{ '42.9'|int }}|{{ 'x'|int(7) }}"),
            "1000|100000|42|7");
  EXPECT_EQ(R("{{ 'inf'|int }}|{{ 'nan'|int }}|{{ '0x10'|int }}"), "0|0|0");  // as Jinja2 3.1.6
  EXPECT_THAT(R("{{ '" + kBig + "'|int }}"), HasSubstr("integer out of range"));
  EXPECT_THAT(R("{{ '1e300'|int }}"), HasSubstr("integer out of range"));
  EXPECT_THAT(R("{{ x|int }}", R"({"x": 1e300})"), HasSubstr("integer out of range"));
  EXPECT_THAT(R("{{ ('inf'|float)|int }}"), HasSubstr("cannot convert float infinity"));
  EXPECT_EQ(R("{{ ('nan'|float)|int }}"), "0");
  EXPECT_EQ(R("{{ '" + kBig + "'|float }}|{{ '1e999'|float }}|{{ '0x10'|float }}"),
            "1e+30|inf|0.0");
}

TEST(LongDigitsTest, AttributePathsAndFormatFields) {
  // make_attrgetter turns a digit part into an int; one beyond 64 bits finds nothing.
  std::string ctx = R"({"l": [[1, 2]]})";
  EXPECT_EQ(R("{{ l|map(attribute='0')|list }}", ctx), "[1]");
  EXPECT_EQ(R("{{ l|map(attribute='" + kBig + "')|list }}", ctx), "[Undefined]");
  EXPECT_EQ(R("{{ l|map(attribute='0." + kBig + "')|list }}", ctx), "[Undefined]");
  EXPECT_EQ(R("{{ '{1}{0}'.format('a', 'b') }}"), "ba");
  EXPECT_THAT(R("{{ '{" + kBig + "}'.format(1) }}"),
              HasSubstr("Too many decimal digits in format string"));
  EXPECT_THAT(R("{{ '{9}'.format(1) }}"), HasSubstr("not found"));
}

TEST(LongDigitsTest, JsonContexts) {
  EXPECT_EQ(R("{{ x }}|{{ y }}", R"({"x": 9223372036854775807, "y": -9223372036854775808})"),
            "9223372036854775807|-9223372036854775808");
  EXPECT_EQ(R("{{ x }}", R"({"x": 1.5e300})"), "1.5e+300");
  // Python's json.loads keeps these exact; we cannot, and say so rather than print a float.
  for (std::string n : {kBig, std::string("18446744073709551615"),
                        std::string("-9223372036854775809"), std::string(100000, '1')}) {
    auto out = Render("{{ x }}", "{\"a\": [{\"x\": " + n + "}]}");
    ASSERT_FALSE(out.ok()) << n.size();
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(out.status().message()), HasSubstr("out of range")) << n.size();
  }
  // tokenizer_config.json: model_max_length is often 10**30-ish; it is read (as a float).
  auto cfg = ParseTokenizerConfig(
      R"({"model_max_length": 1000000000000000019884624838656, "chat_template": "{{ 1 }}"})");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->templates.size(), 1u);
}

TEST(JsonContextTest, MalformedDeepAndLarge) {
  auto out = Render("{{ x }}", R"({"x": [1, 2})");
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("invalid JSON"));
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("line 1, column"));
  for (size_t depth : {300u, 1000000u}) {
    out = Render("{{ x }}", "{\"x\": " + std::string(depth, '[') + std::string(depth, ']') + "}");
    ASSERT_FALSE(out.ok());
    EXPECT_THAT(std::string(out.status().message()), HasSubstr("nested too deeply"));
  }
  // A repeated key keeps its first position and its last value, as in Python.
  EXPECT_EQ(R("{{ x }}", R"({"x": {"a": 1, "b": 2, "a": 3}})"), "{'a': 3, 'b': 2}");
  // A large object builds in linear time (a scan per key would take minutes here).
  std::string big = "{\"x\": {";
  for (int i = 0; i < 200000; ++i) big += (i ? ",\"k" : "\"k") + std::to_string(i) + "\": 0";
  big += ", \"k7\": 1}}";
  EXPECT_EQ(R("{{ x|length }}|{{ x.k7 }}", big), "200000|1");
}

TEST(JsonContextTest, FromJsonCapsDepth) {
  nlohmann::ordered_json j = 1;
  for (int i = 0; i < 5000; ++i) j = nlohmann::ordered_json::array({j});
  Value v = FromJson(j);  // deeper than 256 levels becomes None instead of deep recursion later
  int depth = 0;
  for (const Value* p = &v; p->is_list(); p = &p->list()[0]) ++depth;
  EXPECT_EQ(depth, 257);
}

TEST(OverflowTest, OperatorsAndBuiltins) {
  const std::string min = R"({"m": -9223372036854775808})";
  EXPECT_THAT(R("{{ -m }}", min), HasSubstr("integer overflow"));
  EXPECT_THAT(R("{{ m|abs }}", min), HasSubstr("integer overflow"));
  EXPECT_EQ(R("{{ m is divisibleby(-1) }}|{{ m % -1 }}|{{ 7.5 is divisibleby 2.5 }}", min),
            "True|0|True");
  EXPECT_THAT(R("{{ m // -1 }}", min), HasSubstr("integer overflow"));
  EXPECT_THAT(R("{{ 4 is divisibleby(0) }}"), HasSubstr("division or modulo by zero"));
  EXPECT_THAT(R("{{ '%d' % x }}", R"({"x": 1e300})"), HasSubstr("integer out of range"));
  EXPECT_THAT(R("{{ '%d' % ('inf'|float) }}"), HasSubstr("cannot convert float infinity"));
  EXPECT_EQ(R("{{ '%d' % 2.9 }}"), "2");
}

TEST(OverflowTest, NothingHangs) {
  EXPECT_EQ(R("{{ 1 ** 999999999999999999 }}|{{ 0 ** 99999999999 }}|{{ (-1) ** 999999999999 }}"),
            "1|0|-1");
  EXPECT_EQ(R("{{ (-2) ** 63 }}"), "-9223372036854775808");
  EXPECT_THAT(R("{{ 2 ** 63 }}"), HasSubstr("integer overflow"));
  EXPECT_THAT(R("{{ 0 ** -1 }}"), HasSubstr("cannot be raised to a negative power"));
  EXPECT_EQ(R("[{{ '' * 9223372036854775807 }}]"), "[]");
  EXPECT_EQ(R("{{ 'a b c'.split(none, 9223372036854775807) }}"), "['a', 'b', 'c']");
  EXPECT_EQ(R("{{ [1, 2, 3][1::9223372036854775807] }}|{{ 'abc'[2::9223372036854775807] }}"),
            "[2]|c");
  EXPECT_THAT(R("{{ range(-9223372036854775807 - 1, 9223372036854775807)|length }}"),
              HasSubstr("Range too big"));
}

TEST(OverflowTest, DeepValuesAreRefused) {
  // 100000 levels would overflow the stack when printed or freed; refused at 1000.
  for (std::string body : {"{% set ns.x = [ns.x] %}", "{% set ns.x = {'k': ns.x} %}",
                           "{% set ns.x = namespace(y=ns.x) %}"}) {
    auto out = Render("{% set ns = namespace(x=none) %}{% for i in range(100000) %}" + body +
                      "{% endfor %}{{ ns.x }}");
    ASSERT_FALSE(out.ok()) << body;
    EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted) << out.status();
  }
  EXPECT_EQ(R("{% set ns = namespace(x=0) %}{% for i in range(999) %}{% set ns.x = [ns.x] %}"
              "{% endfor %}{{ (ns.x|string)[:4] }}"),
            "[[[[");
}

TEST(OverflowTest, SizesAreCheckedBeforeAllocating) {
  for (std::string src : {"{{ 'x'|indent(99999999999999) }}", "{{ [1]|tojson(indent=10**12) }}",
                          "{{ ('a' * 100000).replace('a', 'b' * 100000) }}",
                          "{{ ('\\n' * 100000)|indent('x' * 100000, blank=true) }}",
                          "{% set s = 'x' * 1000000 %}{{ [s, s, s, s, s, s, s, s, s, s, s, s, s, "
                          "s, s, s, s]|join }}",
                          "{{ {'a': {'b': {'c': [1, 2]}}}|tojson(indent=6000000) }}"}) {
    auto out = Render(src);
    ASSERT_FALSE(out.ok()) << src;
    EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted) << out.status();
  }
}

}  // namespace
}  // namespace kvr::chat
