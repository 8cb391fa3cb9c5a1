#!/usr/bin/python3
"""Small Jinja snippets, one behaviour each, rendered by real Jinja2 configured as transformers
configures it (scripts/chat/render_jinja2.py). Writes
tests/data/chat_templates/semantics.json: [{"template", "context", "ok", "rendered"|"error"}].
src/chat/jinja_semantics_test.cc renders each with src/chat and compares.
  /usr/bin/python3 scripts/chat/semantics_cases.py
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from render_jinja2 import make_env  # noqa: E402

MSGS = [{"role": "system", "content": " Be brief. "}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!", "tool_calls": [
            {"function": {"name": "f", "arguments": {"b": 1, "a": [1, 2.5, None, True]}}}]}]
CTX = {"messages": MSGS, "n": 7, "f": 2.5, "s": "Hello, World", "u": "  héllo wörld 你好 ",
       "d": {"z": 1, "a": {"k": "v"}, "m": [3, 1, 2]}, "l": [3, 1, 2], "e": [], "none": None,
       "t": True}

SNIPPETS = [
    # printing Python values
    "{{ 1 }}|{{ 1.0 }}|{{ 2.50 }}|{{ 1e20 }}|{{ 0.0001 }}|{{ 0.00001 }}|{{ 10/4 }}|{{ 10//4 }}",
    "{{ none }}|{{ t }}|{{ false }}|{{ l }}|{{ d }}|{{ [1, 'a', none, true] }}|{{ ('x', 1) }}",
    "{{ \"it's\" }}|{{ ['it\\'s', \"q\\\"\", 'a\\nb'] }}|{{ {'k': 'v'} }}",
    "{{ undefined_thing }}|{{ undefined_thing is defined }}|{{ d.nope is defined }}",
    "{{ -7 % 3 }}|{{ 7 % -3 }}|{{ -7 // 2 }}|{{ 2 ** 10 }}|{{ 7 - 2 * 3 }}|{{ (1 + 2) * 3 }}",
    "{{ 'ab' * 3 }}|{{ [1] * 2 }}|{{ 'a' + 'b' }}|{{ [1] + [2] }}|{{ 1 ~ 2 ~ none }}",
    "{{ 1 == 1.0 }}|{{ true == 1 }}|{{ 'a' < 'b' }}|{{ [1, 2] < [1, 3] }}|{{ 1 < 2 < 3 }}",
    "{{ 'ell' in s }}|{{ 2 in l }}|{{ 'z' in d }}|{{ 'q' not in d }}|{{ 'x' in undefined_thing }}",
    "{{ 1 if t else 2 }}|{{ 1 if false }}|{{ none or 'dflt' }}|{{ 0 and 1 }}|{{ not none }}",
    # strings and slices
    "{{ s[0] }}|{{ s[-1] }}|{{ s[1:4] }}|{{ s[::-1] }}|{{ s[::2] }}|{{ u[2:5] }}|{{ l[-2:] }}",
    "{{ u.strip() }}|{{ u.lstrip() }}|{{ u.rstrip() }}|{{ s.strip('Hd') }}|{{ u|trim }}|",
    "{{ s.split(', ') }}|{{ u.split() }}|{{ 'a,b,,c'.split(',', 1) }}|{{ 'a b c'.rsplit(' ', 1) }}",
    "{{ '  a  b c  '.split(none, 1) }}|{{ '  a  b c  '.rsplit(none, 1) }}|{{ ''.split() }}|"
    "{{ ''.split(',') }}|{{ 'abab'.rsplit('ab') }}|{{ 'a,b,,c'.rsplit(',', 2) }}|{{ u.rsplit() }}|"
    "{{ 'a b   '.split(none, 1) }}|{{ ' a b '.split(none, 0) }}|{{ ' a b '.rsplit(none, 0) }}|"
    "{{ '   '.split(none, 0) }}|{{ 'a b  '.split(none, 2) }}|{{ u.split(none, 1) }}",
    "{{ s.startswith('He') }}|{{ s.endswith(('x', 'ld')) }}|{{ s.lower() }}|{{ s.upper() }}",
    "{{ s.replace('l', 'L') }}|{{ s.replace('l', 'L', 1) }}|{{ s.find('o') }}|{{ s.count('l') }}",
    "{{ 'hello world'.title() }}|{{ 'hello World'.capitalize() }}|{{ '-'.join(['a', 'b']) }}",
    "{{ '{} and {}'.format(1, 'x') }}|{{ '%s-%d' % ('a', 3) }}|{{ '%s' % 'x' }}",
    "{{ u|length }}|{{ l|length }}|{{ d|length }}|{{ undefined_thing|length }}|{{ s|count }}",
    # filters
    "{{ d|tojson }}|{{ l|tojson }}|{{ 'é\"\\n'|tojson }}|{{ none|tojson }}|{{ 1.5|tojson }}",
    "{{ d|tojson(indent=2) }}|{{ e|tojson(indent=2) }}|{{ {}|tojson(indent=2) }}",
    "{{ d|tojson(separators=(',', ':')) }}|{{ d|tojson(sort_keys=true) }}",
    "{{ 'é'|tojson(ensure_ascii=true) }}|{{ '😀'|tojson(ensure_ascii=true) }}|{{ d|tojson(indent='\\t') }}",
    "{{ messages[2].tool_calls[0].function.arguments|tojson }}",
    "{{ l|join(', ') }}|{{ l|sort|list }}|{{ l|sort(reverse=true)|list }}|{{ l|max }}|{{ l|min }}",
    "{{ d|items|list }}|{{ d|dictsort }}|{{ d|list }}|{{ 'abc'|list }}|{{ l|first }}|{{ l|last }}",
    "{{ messages|selectattr('role', 'equalto', 'user')|list|length }}|{{ messages|map(attribute='role')|join(',') }}",
    "{{ messages|rejectattr('role', 'in', ['system'])|map(attribute='role')|list }}",
    "{{ [1, 2, 3, 4]|select('odd')|list }}|{{ [1, 2, 3, 4]|reject('even')|list }}|{{ ['a', 'B']|map('upper')|list }}",
    "{{ undefined_thing|default('x') }}|{{ ''|default('y', true) }}|{{ none|default('z') }}",
    "{{ 'Hello'|upper }}|{{ 'Hello'|lower }}|{{ 'a b'|replace(' ', '_') }}|{{ 3.7|int }}|{{ '4'|int + 1 }}",
    "{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}|{{ [1, 1, 2]|unique|list }}",
    "{{ 42|string }}|{{ none|string }}|{{ [1, 2]|sum }}|{{ -3|abs }}|{{ 2.567|round(2) }}|{{ 'a<b'|e }}",
    "{{ l|map('string')|join }}|{{ 'x'|safe }}|{{ 'x'|safe + '<b>' }}|{{ '<a>' ~ 'x'|safe }}",
    "{{ (l|map('string'))|tojson }}",
    # tests
    "{{ s is string }}|{{ n is number }}|{{ n is integer }}|{{ f is float }}|{{ t is boolean }}",
    "{{ d is mapping }}|{{ l is iterable }}|{{ l is sequence }}|{{ s is sequence }}|{{ none is none }}",
    "{{ t is true }}|{{ false is false }}|{{ n is odd }}|{{ n is divisibleby 7 }}|{{ n is not even }}",
    "{{ l is undefined }}|{{ x is undefined }}|{{ 'ab' is lower }}|{{ n is gt 3 }}|{{ 2 is in l }}",
    "{{ d.items is callable }}|{{ n is eq 7 }}|{{ n is ne 7 }}|{{ none is sameas none }}",
    # statements
    "{% for m in messages %}{{ loop.index }}/{{ loop.length }}:{{ m.role }}{{ ',' if not loop.last }}{% endfor %}",
    "{% for m in messages %}{{ loop.index0 }}{{ loop.first }}{{ loop.revindex }}{{ loop.revindex0 }};{% endfor %}",
    "{% for x in l %}{{ loop.previtem }}-{{ x }}-{{ loop.nextitem }};{% endfor %}",
    "{% for x in l %}{{ loop.cycle('odd', 'even') }}{% endfor %}",
    "{% for x in e %}no{% else %}empty{% endfor %}|{% for x in undefined_thing %}a{% endfor %}",
    "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|{% for k in d %}{{ k }}{% endfor %}",
    "{% for x in l if x > 1 %}{{ x }}:{{ loop.length }};{% endfor %}",
    "{% for x in l %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% if x == 3 %}{% break %}{% endif %}{% endfor %}",
    "{% for x in l %}{% break %}{% endfor %}{{ x }}|{% set y = 1 %}{% for x in l %}{% set y = x %}{% endfor %}{{ y }}",
    "{% set ns = namespace(c=0, s='') %}{% for x in l %}{% set ns.c = ns.c + x %}{% endfor %}{{ ns.c }}",
    "{% set a, b = 1, 2 %}{{ a }}{{ b }}|{% set xs = [1, 2] %}{% set xs = xs + [3] %}{{ xs }}",
    "{% set blk %}  inner {{ n }} {% endset %}[{{ blk }}]|{% set b2 | upper %}x{{ n }}{% endset %}{{ b2 }}",
    "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }}{{ greet('B', punct='?') }}",
    "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}",
    "{% macro w() %}<{{ caller() }}>{% endmacro %}{% call w() %}body {{ n }}{% endcall %}",
    "{% macro w() %}<{{ caller(5) }}>{% endmacro %}{% call(x) w() %}got {{ x }}{% endcall %}",
    "{% macro r(k) %}{% if k > 0 %}{{ k }}{{ r(k - 1) }}{% endif %}{% endmacro %}{{ r(3) }}",
    "{% filter upper %}abc {{ n }}{% endfilter %}|{% raw %}{{ not parsed }}{% endraw %}",
    "{% if n > 5 %}big{% elif n > 2 %}mid{% else %}small{% endif %}|{% if none %}x{% endif %}",
    "{% generation %}gen {{ n }}{% endgeneration %}|{{ range(3)|list }}|{{ range(1, 7, 2)|list }}",
    "{{ strftime_now('%Y-%m-%d %d %b %Y') }}|{{ dict(a=1, b=2) }}",
    "{% set d2 = {'x': 1, 'y': [1, 2]} %}{{ d2.x }}{{ d2['y'][1] }}{{ d2.get('z', 'dz') }}{{ d2.get('x') }}",
    "{{ d.keys()|list }}|{{ d.values()|list }}|{{ d['a']['k'] }}|{{ d.a.k }}|{{ l.0 }}|{{ d.get('nope') }}",
    "{% set m = {0: 'zero', 10: 'ten'} %}{% for k, v in m|dictsort %}{{ k + 1 }}{{ v }}{% endfor %}{{ m }}",
    # whitespace control
    "a\n  {% if t %}\n    b\n  {% endif %}\nc",
    "a  {%- if t -%}  b  {%- endif -%}  c|{{- ' x ' -}}|",
    "  {{ n }}\n  {# comment #}\n  {%+ if t %}x{% endif %}\n{% if t %}  y\n{% endif %}",
    "line1\n{%- for x in l %}\n  item {{ x }}\n{%- endfor %}\nend\n",
    "{% for x in l %}\n{{ x }}\n{% endfor %}\n",
    "x\r\ny{# c -#}\n  z",
    # errors (messages compared only for raise_exception)
    "{{ raise_exception('bad input: ' ~ n) }}",
    "{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}",
    "{{ undefined_thing.attr }}",
    "{{ 1 + 'a' }}",
    "{{ none|list }}",
    "{% for x in none %}{% endfor %}",
    "{{ l.append(4) }}",
    "{{ range(200000)|length }}",
    "{{ 'a'|nosuchfilter }}",
    "{% if false %}{{ 'a'|nosuchfilter }}{% endif %}ok",
    "{{ l|tojson }}{{ x|tojson }}",
    "{{ 1 / 0 }}",
]


def main():
    env = make_env()
    out = []
    for src in SNIPPETS:
        case = {"template": src, "context": CTX}
        try:
            case.update(ok=True, rendered=env.from_string(src).render(**CTX))
        except Exception as e:
            case.update(ok=False, error=f"{type(e).__name__}: {e}")
        out.append(case)
    path = os.path.join(os.path.dirname(__file__), "../../tests/data/chat_templates/semantics.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
    print(sum(c["ok"] for c in out), "render,", sum(not c["ok"] for c in out), "raise")


if __name__ == "__main__":
    main()
