#!/usr/bin/env bash
# The full test suite, as CI runs it: setup, then release / ASan+UBSan / TSan builds with ctest,
# then a short run of every fuzzer. Prints ctest's summary for each stage and a final line.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --deps || exit 1

passed=0; failed=0
stage() {  # stage NAME PRESET [ctest args...]
  local name=$1 preset=$2; shift 2
  echo "=== $name ==="
  if ! cmake --preset "$preset" >/dev/null || ! cmake --build --preset "$preset"; then
    echo "$name: build failed"; failed=$((failed + 1)); return
  fi
  if ctest --preset "$preset" "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

stage "release" release -j2
stage "asan+ubsan" asan -j2
stage "tsan" tsan -j2 -L concurrency
if [ -x scripts/fuzz_smoke.sh ]; then
  echo "=== fuzz smoke ==="
  if bash scripts/fuzz_smoke.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
fi
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
