#!/usr/bin/env bash
# Builds every libFuzzer target (clang, ASan+UBSan, `fuzz` preset) and runs each for a short,
# bounded time from its committed seed corpus (fuzz/corpus/<name>/, if any). Any crash, leak,
# timeout or sanitizer report fails the run.
#   FUZZ_SECONDS=N scripts/fuzz_smoke.sh     (default 20 s per target)
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-20}
targets=$(sed -n 's/^kvr_fuzzer(NAME \([a-z_0-9]*\).*/\1/p' fuzz/CMakeLists.txt)
cmake --preset fuzz >/dev/null || exit 1
cmake --build --preset fuzz --target $targets || exit 1
failed=0
for t in $targets; do
  corpus=$(mktemp -d)
  [ -d "fuzz/corpus/$t" ] && cp -r "fuzz/corpus/$t/." "$corpus/"
  if ./build/fuzz/fuzz/"$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
       -print_final_stats=0 "$corpus" >"/tmp/fuzz_$t.log" 2>&1; then
    echo "fuzz: $t ok ($(grep -c . "/tmp/fuzz_$t.log") log lines)"
  else
    echo "fuzz: $t FAILED"; tail -30 "/tmp/fuzz_$t.log"; failed=$((failed + 1))
  fi
  rm -rf "$corpus"
done
echo "fuzz: $(($(echo $targets | wc -w) - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
