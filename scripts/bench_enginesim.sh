#!/usr/bin/env bash
# What one engine-sim costs as a server: requests/s and latency for small completions, streaming
# and not, with --speedup so large that the engine model takes no time. wrk (Debian) drives it at
# bounded concurrency against 127.0.0.1; engine-sim and wrk are pinned to different cores.
#   scripts/bench_enginesim.sh [KVROUTER] [SECONDS] [CONNECTIONS...]
# Prints one JSON line per case.
set -euo pipefail
cd "$(dirname "$0")/.."
kvrouter=${1:-build/release/kvrouter}
seconds=${2:-10}
shift $(( $# > 2 ? 2 : $# )) || true
conns=("$@"); [ ${#conns[@]} -eq 0 ] && conns=(1 16 64)
command -v wrk >/dev/null || { echo "bench_enginesim: wrk is missing (apt-get install wrk)" >&2; exit 1; }

out=$(mktemp); err=$(mktemp); bodies=$(mktemp)
taskset -c 0 "$kvrouter" engine-sim --port 0 --speedup 1e9 --log-level warn >"$out" 2>"$err" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -f "$out" "$err" "$bodies"' EXIT
for _ in $(seq 100); do [ -s "$out" ] && break; read -rt 0.1 <> <(:) || true; done
addr=$(sed -n 's/.*"http":"\([^"]*\)".*/\1/p' "$out")
[ -n "$addr" ] || { echo "bench_enginesim: engine-sim did not start: $(cat "$err")" >&2; exit 1; }

small='"prompt":"The quick brown fox jumps over the lazy dog","max_tokens":8,"ignore_eos":true'
for c in "${conns[@]}"; do
  for mode in whole stream; do
    body="{$small}"; [ "$mode" = stream ] && body="{$small,\"stream\":true}"
    echo "$body" >"$bodies"
    result=$(WRK_BODIES="$bodies" taskset -c 1 wrk -t1 -c"$c" -d"${seconds}s" --latency \
               -s scripts/wrk_bodies.lua "http://$addr/" | tail -1)
    echo "{\"case\":\"completions_$mode\",\"connections\":$c,\"max_tokens\":8,${result#\{}"
  done
done
