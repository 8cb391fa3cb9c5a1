// libFuzzer: arbitrary bytes as the JSON render context of real-world-shaped templates (roles,
// tool calls, tojson, namespace, slicing, string methods) and of one that feeds context numbers
// and strings to every numeric path (int/float filters, %d, str.format, unary minus, abs, **,
// divisibleby, range, slices, split, attribute paths, indent widths). Bad contexts must give
// errors, never crashes; an Internal status (an exception caught at the module's boundary) is
// reported as a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>

#include "chat/chat_template.h"

namespace {

// Condensed from the Llama 3.1 and Qwen3 templates: the constructs contexts steer.
constexpr std::string_view kTemplate = R"({{- bos_token }}
{%- set ns = namespace(last_query=messages|length - 1, sys='') %}
{%- if messages[0]['role'] == 'system' %}{% set ns.sys = messages[0]['content']|trim %}{% endif %}
{%- if tools is not none %}{% for t in tools %}{{ t|tojson(indent=4) }}
{% endfor %}{% endif %}
{%- for message in messages[::-1] %}{% set index = (messages|length - 1) - loop.index0 %}
{%- if message.role == 'user' and message.content is string and not message.content.startswith('<tool') %}
{%- set ns.last_query = index %}{% endif %}{% endfor %}
{%- for message in messages %}
{%- if message.content is string %}{% set content = message.content %}{% else %}{% set content = '' %}{% endif %}
{%- if '</think>' in content %}{% set content = content.split('</think>')[-1].lstrip('\n') %}{% endif %}
{%- if message.role not in ['system', 'user', 'assistant', 'tool'] %}{{ raise_exception('bad role') }}{% endif %}
<|{{ message.role }}|>{{ content }}
{%- for tc in message.tool_calls|default([]) %}{% if tc.function is defined %}{% set tc = tc.function %}{% endif %}
{{ tc.name }}({% if tc.arguments is string %}{{ tc.arguments }}{% else %}{{ tc.arguments|tojson }}{% endif %})
{%- endfor %}{{ eos_token }}
{%- endfor %}
{%- if add_generation_prompt %}<|assistant|>{% if enable_thinking is defined and enable_thinking is false %}<think>

</think>{% endif %}{% endif %})";

// Each line reaches a numeric path with values from the context (undefined ones are skipped
// by `is defined` or give errors, both fine).
constexpr std::string_view kNumbersTemplate = R"(
{%- if s is defined %}{{ s|int }} {{ s|int(-1) }} {{ s|float }} {{ '{' ~ s ~ '}' }}{% endif %}
{%- if s is defined and s is string %}{{ ('{' ~ s ~ '}').format(1, 2) }}{{ l|map(attribute=s)|list }}{% endif %}
{%- if n is defined %}{{ n|int }} {{ -n }} {{ n|abs }} {{ '%d' % n }} {{ n ** 3 }} {{ 2 ** n }}{% endif %}
{%- if n is number and m is number %}{{ n is divisibleby(m) }} {{ n % m }} {{ n // m }}{% endif %}
{%- if n is integer and m is integer %}{{ range(n, m)|length }} {{ l[n:m] }} {{ l[::m] }}{% endif %}
{%- if n is integer %}{{ 'a b c'.split(none, n) }} {{ 'x
y'|indent(n) }} {{ l|tojson(indent=n) }}{% endif %}
{%- if n is integer %}{{ 'ab' * n }} {{ 'ab'.replace('a', 'xy', n) }}{% endif %})";

// Compiled once and kept for the process (held by a static pointer, so LeakSanitizer sees it).
const std::shared_ptr<const kvr::chat::ChatTemplate>* Compiled(std::string_view source) {
  auto compiled = kvr::chat::ChatTemplate::Compile(source);
  if (!compiled.ok()) __builtin_trap();
  return new std::shared_ptr<const kvr::chat::ChatTemplate>(*compiled);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto* chat = Compiled(kTemplate);
  static const auto* numbers = Compiled(kNumbersTemplate);
  std::string_view ctx(reinterpret_cast<const char*>(data), size);
  kvr::chat::RenderOptions opt;
  opt.limits.max_steps = 200000;
  opt.limits.max_output_bytes = 1 << 20;
  for (const kvr::chat::ChatTemplate* t : {chat->get(), numbers->get()}) {
    auto out = t->RenderJson(ctx, opt);
    if (out.status().code() == absl::StatusCode::kInternal) std::abort();
  }
  return 0;
}
