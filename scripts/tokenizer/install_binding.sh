#!/usr/bin/env bash
# Installs the official Hugging Face tokenizers Node binding (pinned) into
# third_party/npm/_binding/ for the golden-generation and comparison scripts. Idempotent.
# The test suite does not need it (it reads committed golden output).
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=third_party/npm/_binding
if [ ! -f "$DEST/node_modules/tokenizers/package.json" ]; then
  mkdir -p "$DEST"
  echo '{"private": true}' > "$DEST/package.json"
  npm install --silent --no-audit --no-fund --prefix "$DEST" tokenizers@0.23.2 >&2
fi
scripts/fetch_npm.sh
