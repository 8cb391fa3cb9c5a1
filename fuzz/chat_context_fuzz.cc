// libFuzzer: arbitrary bytes as the JSON render context of real-world-shaped templates (roles,
// tool calls, tojson, namespace, slicing, string methods). Bad contexts must give errors, never
// crashes; raise_exception paths must stay errors.
#include <cstddef>
#include <cstdint>
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

const kvr::chat::ChatTemplate& Template() {
  static const auto* t = [] {
    auto compiled = kvr::chat::ChatTemplate::Compile(kTemplate);
    if (!compiled.ok()) __builtin_trap();
    return new std::shared_ptr<const kvr::chat::ChatTemplate>(*compiled);
  }();
  return **t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view ctx(reinterpret_cast<const char*>(data), size);
  kvr::chat::RenderOptions opt;
  opt.limits.max_steps = 200000;
  opt.limits.max_output_bytes = 1 << 20;
  (void)Template().RenderJson(ctx, opt);
  return 0;
}
