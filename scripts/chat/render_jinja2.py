#!/usr/bin/python3
"""Reference renderer for src/chat's golden data: real Jinja2 set up as transformers sets it up.

Usage: render_jinja2.py CORPUS_DIR
  CORPUS_DIR/templates/*.jinja and CORPUS_DIR/special_tokens.json (template file -> special tokens)
  are inputs; CORPUS_DIR/cases.json (every template x the standard conversations below) and
  CORPUS_DIR/rendered_jinja2.json (Jinja2's text or exception per case) are written.

The environment mirrors transformers' _compile_jinja_template: ImmutableSandboxedEnvironment with
trim_blocks and lstrip_blocks, loopcontrols, a {% generation %} tag that renders its body,
tojson = json.dumps(ensure_ascii=False, indent, separators, sort_keys), and the globals
raise_exception (TemplateError) and strftime_now (clock pinned so output is reproducible).
Render kwargs are what apply_chat_template passes: messages, tools, documents,
add_generation_prompt, the special tokens that are set, then extra kwargs.
"""
import datetime
import json
import os
import sys

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

NOW = datetime.datetime(2026, 11, 27, 12, 0, 0)


class GenerationTag(jinja2.ext.Extension):
    """{% generation %}...{% endgeneration %}: transformers uses it to mark assistant tokens."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        call = self.call_method("_render_body")
        return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _render_body(self, caller):
        return caller()


def make_env():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, jinja2.ext.loopcontrols])

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: NOW.strftime(fmt)
    return env


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name, e.g. Paris"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city"]}}}
CALL_ID = "abc123XYZ"  # 9 alphanumerics: Mistral templates insist on it


def tool_conversation(arguments, content):
    return [
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": content, "tool_calls": [
            {"id": CALL_ID, "type": "function",
             "function": {"name": "get_weather", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": CALL_ID, "name": "get_weather",
         "content": "{\"temperature\": 18, \"unit\": \"celsius\"}"},
        {"role": "user", "content": "Thanks! Should I take an umbrella?"},
    ]


CONV3 = [
    {"role": "user", "content": "Hello, how are you?"},
    {"role": "assistant", "content": "I'm doing great. How can I help you today?"},
    {"role": "user", "content": "I'd like to show off how chat templating works!"},
]
SYSTEM = {"role": "system", "content": "You are a friendly assistant. Answer briefly."}

# name -> (messages, use tools, add_generation_prompt, extra kwargs)
CONVERSATIONS = {
    "system": ([SYSTEM] + CONV3, False, True, {}),
    "multi_turn": (CONV3 + [
        {"role": "assistant", "content": "Sure. Templates turn messages into one prompt."},
        {"role": "user", "content": "Show me an example with three turns."}], False, True, {}),
    "unicode": ([
        {"role": "user", "content": "  你好，世界！ 🌍 مرحبا بالعالم \n\t"},
        {"role": "assistant", "content": "\nこんにちは 👋 — «ça va?» "},
        {"role": "user", "content": "Ünïcödé ✓ 한국어 "}], False, True, {}),
    "tools_dict_args": (tool_conversation({"city": "Paris", "unit": "celsius"}, ""),
                        True, True, {}),
    "tools_string_args": (tool_conversation("{\"city\": \"Paris\", \"unit\": \"celsius\"}", None),
                          True, True, {}),
    "thinking": ([
        {"role": "user", "content": "What is 17 * 23?"},
        {"role": "assistant", "content": "<think>\n17 * 23 = 17 * 20 + 17 * 3 = 391\n</think>\n\n391",
         "reasoning_content": "17 * 23 = 17 * 20 + 17 * 3 = 391"},
        {"role": "user", "content": "And 19 * 21?"}], False, True, {}),
    "thinking_disabled": ([
        {"role": "user", "content": "What is 17 * 23?"},
        {"role": "assistant", "content": "391"},
        {"role": "user", "content": "And 19 * 21?"}], False, True, {"enable_thinking": False}),
    "no_generation_prompt": ([SYSTEM] + CONV3 + [
        {"role": "assistant", "content": "Happy to help with that."}], False, False, {}),
}


def context_for(conv, special):
    messages, use_tools, add_gen, extra = CONVERSATIONS[conv]
    ctx = {"messages": messages, "tools": [WEATHER_TOOL] if use_tools else None,
           "documents": None, "add_generation_prompt": add_gen}
    ctx.update(special)
    ctx.update(extra)
    return ctx


def main():
    corpus = sys.argv[1]
    special_by_template = json.load(open(os.path.join(corpus, "special_tokens.json")))
    env = make_env()
    cases, results = [], []
    for name in sorted(special_by_template):
        src = open(os.path.join(corpus, "templates", name), encoding="utf-8").read()
        try:
            template = env.from_string(src)
        except Exception as e:  # a template Jinja2 cannot compile: every case records it
            template, compile_error = None, f"{type(e).__name__}: {e}"
        for conv in CONVERSATIONS:
            case_id = f"{name[:-len('.jinja')]}::{conv}"
            ctx = context_for(conv, special_by_template[name])
            cases.append({"id": case_id, "template": name, "context": ctx})
            if template is None:
                results.append({"id": case_id, "ok": False, "error": compile_error})
                continue
            try:
                results.append({"id": case_id, "ok": True, "rendered": template.render(**ctx)})
            except Exception as e:
                results.append({"id": case_id, "ok": False, "error": f"{type(e).__name__}: {e}"})
    with open(os.path.join(corpus, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
    with open(os.path.join(corpus, "rendered_jinja2.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, ensure_ascii=False, indent=1)
    ok = sum(r["ok"] for r in results)
    print(f"{ok} rendered, {len(results) - ok} raised, of {len(results)} cases "
          f"({len(special_by_template)} templates); jinja2 {jinja2.__version__}")


if __name__ == "__main__":
    main()
