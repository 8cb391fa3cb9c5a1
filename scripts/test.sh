#!/usr/bin/env bash
# The full test suite, as CI runs it: setup, then the release build with every test, the
# ASan+UBSan build with every test, the TSan build of the concurrency tests, clang's
# -Wthread-safety analysis of the annotated libraries (a build, no tests), and a short run of
# every libFuzzer target. Prints ctest's summary per stage and a final "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
# ccache keyed on paths relative to the checkout, so clones in other folders share hits.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
bash scripts/setup.sh --deps || exit 1

passed=0; failed=0
# stage NAME PRESET "BUILD TARGETS (empty: all)" [ctest args...]
stage() {
  local name=$1 preset=$2 targets=$3; shift 3
  echo "=== $name ==="
  local t0=$SECONDS build=(cmake --build --preset "$preset")
  [ -n "$targets" ] && build+=(--target $targets)
  if ! cmake --preset "$preset" >/dev/null || ! "${build[@]}"; then
    echo "$name: build failed"; failed=$((failed + 1)); return
  fi
  if ctest --preset "$preset" "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  echo "$name: $((SECONDS - t0)) s"
}

# check NAME PRESET: a stage that only compiles the preset's targets (static analysis).
check() {
  local name=$1 preset=$2 t0=$SECONDS
  echo "=== $name ==="
  if cmake --preset "$preset" >/dev/null && cmake --build --preset "$preset"; then
    passed=$((passed + 1)); echo "$name: $((SECONDS - t0)) s"
  else
    echo "$name: build failed"; failed=$((failed + 1))
  fi
}

stage "release" release "" -j2
# Live tests against llama.cpp (label llama) run in the release stage only: the gateway's
# sanitizer coverage comes from the engine-sim live tests, and llama-server is not ours.
stage "asan+ubsan" asan "" -j2 -LE llama
stage "tsan" tsan "common_concurrency_test index_concurrency_test scheduler_concurrency_test events_test" \
  -j2 -L concurrency
check "thread-safety" thread-safety
echo "=== fuzz smoke ==="
if bash scripts/fuzz_smoke.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
