#!/usr/bin/env python3
"""The simulator grid of docs/BENCHMARKS.md on several seeds, and how a policy fares in it.

For each row set (a workload, a fleet and a load sweep), each seed and each candidate policy,
runs `kvrouter simulate` for the peers and for the candidate, then prints:

  * one line per row: the best peer's mean / p99 TTFT, the candidate's, its prefill tokens
    against the lowest of the peers', and `won` when its mean and p99 are both the lowest (ties
    count) and its prefill is within --prefill-bound of the best peer's;
  * with more than one seed, how many seeds each row was won on;
  * with --per-peer, for every row (rate) over the seeds: the candidate's mean and p99 minus
    each peer's, averaged, with the standard error, and on how many seeds it was ahead.
    "best" is the minimum over the peers of each seed, which is biased low when several peers
    are within noise of each other;
  * with --paired, each candidate after the first minus the first, seed by seed, for every row:
    the mean difference of the mean and p99 TTFT and of the prefill (points against the best
    peer's), with its standard error, `*` when beyond two. Paired differences tell a change's
    effect from the spread between seeds, which row counts do not;
  * with --cells, the grid as docs/BENCHMARKS.md shows it: a row per (set, rate), a column per
    peer and candidate, each cell the mean / p99 TTFT and the hit rate averaged over the seeds,
    the lowest mean and the lowest p99 of the row in bold, and each candidate's prefill against
    the best peer's of each seed, averaged;
  * with --e2e, for every row: the end-to-end latency (first token and decode), the best peer's
    mean and p99 of each seed (each the minimum over the peers), averaged, and each candidate's,
    with the difference in percent.

Usage:
  scripts/sim_grid.py [--kvrouter build/release/kvrouter] [--seeds 1,2,3] [--sets rag,chat]
                      [--policy 'kvrouter[work_weight=0.8]' ...] [--jobs 2] [--cache DIR]
                      [--peers-kvrouter BIN] [--per-peer] [--paired] [--markdown] [--cells]
                      [--e2e]

Runs are cached in --cache (keyed by the arguments and the binary's content), so rerunning with
another candidate only simulates that candidate, and a rebuilt binary simulates everything again.
A trial build that changes only the kvrouter policy can take the peers' runs from another build
with --peers-kvrouter (the peers are then that build's: say so when quoting the figures). The
whole grid is 35 rows a seed; on 2 cores about 60 s a seed for the peers and 15 s for each
candidate.
"""
import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

PEERS = "least_loaded,dynamo,sglang,sglang_events,llmd_optimized,llmd_weighted"
MOONCAKE_PEERS = "dynamo,sglang,sglang_events,llmd_optimized"  # the grid's peers for the bundled trace
SYNTHETIC = "data/traces/mooncake_synthetic_trace.jsonl"

# name: (simulate arguments, peers)
SETS = {
    "rag": (["--workload", "rag", "--requests", "2000", "--rate", "1",
             "--sweep", "rate=3,6,12,20,40"], PEERS),
    "burst": (["--workload", "rag", "--requests", "2000", "--rate", "1", "--burst", "10,0.25",
               "--sweep", "rate=3,12,20"], PEERS),
    "rag_hetero": (["--workload", "rag", "--requests", "2000", "--rate", "1", "--speeds", "1,0.5",
                    "--sweep", "rate=3,10,20"], PEERS),
    "chat": (["--workload", "chat", "--rate", "1", "--sweep", "rate=4,12,36"], PEERS),
    "system_prompts": (["--workload", "system_prompts", "--rate", "1",
                        "--sweep", "rate=4,12,36"], PEERS),
    "agentic": (["--workload", "agentic", "--rate", "1", "--sweep", "rate=4,12,36,60"], PEERS),
    "agentic_8k": (["--workload", "agentic", "--requests", "8000", "--rate", "1",
                    "--sweep", "rate=4,12,36,60"], PEERS),
    "mooncake": (["--sweep", "rate=0.6,1.5,4.5"], MOONCAKE_PEERS),
    "mooncake_hetero": (["--speeds", "1,0.5", "--sweep", "rate=1,3"], MOONCAKE_PEERS),
    # Mooncake's synthetic trace (data/traces/README.md): 65% prefix reuse, the regime issue 14
    # was first measured in; round_robin is 83% busy at 2, past saturation from about 2.4.
    "synthetic": (["--trace", SYNTHETIC, "--sweep", "rate=1.2,2,4,7,10"], PEERS),
    "synthetic_hetero": (["--trace", SYNTHETIC, "--speeds", "1,1,1,1,0.5,0.5,0.5,0.5",
                          "--sweep", "rate=0.8,2,4,6"], PEERS),
}
# agentic at 2,000 requests is outside the grid: its copies do not pay back in so short a run.
GRID = ["rag", "burst", "rag_hetero", "chat", "system_prompts", "agentic_8k", "mooncake",
        "mooncake_hetero", "synthetic", "synthetic_hetero"]


def cannot_run(path, error):
    sys.exit(f"sim_grid: cannot run {path}: {error} (build it, or pass --kvrouter)")


def binary_digest(path):
    """The binary's content hash: a rebuilt kvrouter never reads another build's cached runs."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as e:
        cannot_run(path, e)
    return h.hexdigest()


def simulate(opts, binary, args, policies, seed, tally):
    """The runs (one per sweep point) of `kvrouter simulate` by `binary` (a (path, content
    hash) pair), from the cache when present."""
    exe, digest = binary
    key = hashlib.sha256(json.dumps([digest, args, policies, seed]).encode()).hexdigest()[:24]
    path = os.path.join(opts.cache, key + ".json")
    cached = os.path.exists(path)
    with tally["lock"]:
        tally["cached" if cached else "simulated"] += 1
    if not cached:
        tmp = path + ".tmp"
        cmd = [exe, "simulate", "--seed", str(seed), *args, "--policies", policies,
               "--json", tmp]
        try:
            done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True)
        except OSError as e:
            cannot_run(exe, e)
        if done.returncode != 0:
            sys.exit(f"sim_grid: {' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")
        os.replace(tmp, path)
    with open(path) as f:
        return json.load(f)["runs"]


def mean_se(xs):
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, 0.0
    var = sum((x - m) ** 2 for x in xs) / (len(xs) - 1)
    return m, math.sqrt(var / len(xs))


def average(rows, i):
    """Column i of per-seed tuples, averaged over the seeds."""
    return sum(r[i] for r in rows) / len(rows)


def column(diffs, i):
    """Column i (0: mean, 1: p99) of a row's differences over the seeds: their mean, its
    standard error, and on how many seeds the candidate was ahead (difference <= 0)."""
    xs = [d[i] for d in diffs]
    return (*mean_se(xs), sum(x <= 0 for x in xs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kvrouter", default="build/release/kvrouter")
    ap.add_argument("--peers-kvrouter", metavar="BIN",
                    help="run the peers with this build instead (and reuse its cached runs): "
                         "only for a change that touches the kvrouter policy alone")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--sets", default=",".join(GRID), help="of: " + ", ".join(SETS))
    ap.add_argument("--policy", action="append", help="candidate (repeatable; default kvrouter)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cache", default="build/sim_grid_cache")
    ap.add_argument("--prefill-bound", type=float, default=0.02)
    ap.add_argument("--per-peer", action="store_true")
    ap.add_argument("--paired", action="store_true",
                    help="each candidate after the first minus the first, seed by seed")
    ap.add_argument("--markdown", action="store_true",
                    help="a table per candidate, a row per (set, rate), as in docs/BENCHMARKS.md")
    ap.add_argument("--cells", action="store_true",
                    help="a row per (set, rate), a column per policy: mean / p99 TTFT and hit "
                         "rate averaged over the seeds, the lowest in bold")
    ap.add_argument("--e2e", action="store_true",
                    help="end-to-end latency, a row per (set, rate): the best peer's mean and p99 "
                         "(per seed, averaged) and each candidate's, with the difference")
    opts = ap.parse_args()
    candidates = opts.policy or ["kvrouter"]
    sets = opts.sets.split(",")
    for s in sets:
        if s not in SETS:
            sys.exit(f"sim_grid: unknown set {s!r}; one of {', '.join(SETS)}")
    seeds = [int(s) for s in opts.seeds.split(",")]
    os.makedirs(opts.cache, exist_ok=True)
    candidate_bin = (opts.kvrouter, binary_digest(opts.kvrouter))
    peers_bin = candidate_bin
    if opts.peers_kvrouter:
        peers_bin = (opts.peers_kvrouter, binary_digest(opts.peers_kvrouter))
    tally = {"cached": 0, "simulated": 0, "lock": threading.Lock()}

    with ThreadPoolExecutor(opts.jobs) as pool:
        jobs = []
        for s in sets:
            args, peers = SETS[s]
            for seed in seeds:
                jobs.append((s, seed,
                             pool.submit(simulate, opts, peers_bin, args, peers, seed, tally),
                             [pool.submit(simulate, opts, candidate_bin, args, c, seed, tally)
                              for c in candidates]))
        won = {c: 0 for c in candidates}
        won_by_row = {}  # (set, rate) -> [seeds won by each candidate]
        rows = 0
        diffs = {}  # (candidate, set, rate, peer) -> [(mean diff, p99 diff)]
        # (candidate, set, rate) -> [(mean, p99, prefill against the best peer's %)], by seed
        values = {}
        e2e = {}  # (set, rate) -> {candidate or "best": [(e2e mean, e2e p99)], by seed}
        # (set, rate) -> {policy: [(mean, p99, hit rate)], by seed}, peers then candidates
        grid = {}
        for s, seed, peer_job, cand_jobs in jobs:
            peer_runs = peer_job.result()
            cand_runs = [j.result() for j in cand_jobs]
            for i, run in enumerate(peer_runs):
                pols = run["policies"]
                best_mean = min(v["ttft_ms"]["mean"] for v in pols.values())
                best_p99 = min(v["ttft_ms"]["p99"] for v in pols.values())
                best_prefill = min(v["prefill_tokens"] for v in pols.values())
                row_e2e = e2e.setdefault((s, run["rate"]), {})
                row_e2e.setdefault("best", []).append(
                    (min(v["e2e_ms"]["mean"] for v in pols.values()),
                     min(v["e2e_ms"]["p99"] for v in pols.values())))
                row_grid = grid.setdefault((s, run["rate"]), {})
                for name, v in pols.items():
                    row_grid.setdefault(name, []).append(
                        (v["ttft_ms"]["mean"], v["ttft_ms"]["p99"], v["hit_rate"]))
                cells = []
                rows += 1
                for ci, (c, runs) in enumerate(zip(candidates, cand_runs)):
                    q = next(iter(runs[i]["policies"].values()))
                    mean, p99 = q["ttft_ms"]["mean"], q["ttft_ms"]["p99"]
                    row_e2e.setdefault(c, []).append((q["e2e_ms"]["mean"], q["e2e_ms"]["p99"]))
                    row_grid.setdefault(c, []).append((mean, p99, q["hit_rate"]))
                    prefill = q["prefill_tokens"] / best_prefill - 1
                    ok = mean <= best_mean and p99 <= best_p99 and prefill <= opts.prefill_bound
                    won[c] += ok
                    values.setdefault((c, s, run["rate"]), []).append((mean, p99, prefill * 100))
                    counts = won_by_row.setdefault((s, run["rate"]), [0] * len(candidates))
                    counts[ci] += ok
                    cells.append(f"{mean:9.2f} / {p99:8.1f} {prefill * 100:+5.1f}% "
                                 f"{'won ' if ok else 'lost'}")
                    for name, v in list(pols.items()) + [("best", None)]:
                        m = best_mean if v is None else v["ttft_ms"]["mean"]
                        p = best_p99 if v is None else v["ttft_ms"]["p99"]
                        diffs.setdefault((c, s, run["rate"], name), []).append((mean - m, p99 - p))
                print(f"{s:16} seed {seed:<3} rate {run['rate']:<5g} best peer "
                      f"{best_mean:9.2f} / {best_p99:8.1f} | " + " | ".join(cells), flush=True)
    if len(seeds) > 1:
        print(f"\nseeds won of {len(seeds)}, per row: " + " | ".join(candidates))
        for (s, rate), counts in won_by_row.items():
            print(f"{s:16} rate {rate:<5g} " + " | ".join(f"{n:2d}" for n in counts))
    for c in candidates:
        print(f"{c}: won {won[c]} of {rows} rows")
    print(f"sim_grid: {tally['simulated']} runs simulated, {tally['cached']} from the cache",
          file=sys.stderr)
    if opts.per_peer:
        print("\ncandidate minus peer, over seeds: mean TTFT ms (± s.e., seeds ahead), "
              "p99 TTFT ms (likewise)")
        for (c, s, rate, peer), xs in diffs.items():
            m, m_se, m_ahead = column(xs, 0)
            p, p_se, p_ahead = column(xs, 1)
            print(f"{c:12} {s:16} rate {rate:<5g} {peer:15} {m:+9.2f} ±{m_se:6.2f} "
                  f"({m_ahead}/{len(xs)})  {p:+9.2f} ±{p_se:6.2f} ({p_ahead}/{len(xs)})")
    if opts.paired:
        print_paired(candidates, values)
    if opts.markdown:
        for ci, c in enumerate(candidates):
            print_markdown(c, won_by_row, ci, diffs, values, len(seeds))
    if opts.cells:
        print_cells(candidates, grid, values)
    if opts.e2e:
        print_e2e(candidates, e2e)


def print_cells(candidates, grid, values):
    """The grid: a row per (set, rate), a column per policy (every peer any row has, then the
    candidates), cells mean / p99 TTFT ms and hit rate averaged over the seeds; the lowest
    mean and p99 of the row in bold; then each candidate's prefill against the best peer's."""
    peers = []
    for row in grid.values():
        peers += [p for p in row if p not in peers and p not in candidates]
    columns = peers + candidates
    print("\n| workload | rate | " + " | ".join(f"`{p}`" for p in columns) + " | " +
          " | ".join(f"`{c}` prefill vs best peer" for c in candidates) + " |")
    print("|---|---|" + "---|" * (len(columns) + len(candidates)))

    for (s, rate), row in grid.items():
        best_mean = min(average(xs, 0) for xs in row.values())
        best_p99 = min(average(xs, 1) for xs in row.values())
        cells = []
        for p in columns:
            if p not in row:
                cells.append("—")
                continue
            m, q, h = average(row[p], 0), average(row[p], 1), average(row[p], 2)
            mean = f"**{m:,.1f}**" if m == best_mean else f"{m:,.1f}"
            p99 = f"**{q:,.1f}**" if q == best_p99 else f"{q:,.1f}"
            cells.append(f"{mean} / {p99}, {h * 100:.1f}%")
        for c in candidates:
            pf = [v[2] for v in values[(c, s, rate)]]
            cells.append(f"{sum(pf) / len(pf):+.2f}%")
        print(f"| {s} | {rate:g} | " + " | ".join(cells) + " |")


def print_paired(candidates, values):
    """Each candidate after the first minus the first, per row: the differences seed by seed,
    averaged, with the standard error (`*`: more than two standard errors from zero)."""
    base = candidates[0]
    for c in candidates[1:]:
        print(f"\n{c} minus {base}, seed by seed: mean TTFT ms, p99 TTFT ms, prefill points "
              "(± s.e.; * beyond two)")
        for (cc, s, rate), xs in values.items():
            if cc != c:
                continue
            ys = values[(base, s, rate)]
            cells = []
            for i, name in enumerate(("mean", "p99", "prefill")):
                m, se = mean_se([x[i] - y[i] for x, y in zip(xs, ys)])
                flag = "*" if se > 0 and abs(m) > 2 * se else " "
                cells.append(f"{name} {m:+8.2f} ±{se:6.2f}{flag}")
            print(f"{s:16} rate {rate:<5g} " + "  ".join(cells))


def print_e2e(candidates, e2e):
    """End-to-end latency (first token and decode), averaged over the seeds: the best peer's of
    each seed and each candidate's, mean / p99 ms and the difference in percent."""
    print("\n| workload | rate | best peer: e2e mean / p99 ms | " +
          " | ".join(f"{c}: mean / p99 ms (vs best peer)" for c in candidates) + " |")
    print("|---|---|---|" + "---|" * len(candidates))

    for (s, rate), row in e2e.items():
        bm, bp = average(row["best"], 0), average(row["best"], 1)
        cells = []
        for c in candidates:
            m, p = average(row[c], 0), average(row[c], 1)
            cells.append(f"{m:.0f} ({(m / bm - 1) * 100:+.1f}%) / {p:.0f} ({(p / bp - 1) * 100:+.1f}%)")
        print(f"| {s} | {rate:g} | {bm:.0f} / {bp:.0f} | " + " | ".join(cells) + " |")


def print_markdown(c, won_by_row, ci, diffs, values, n):
    """One row per (set, rate): seeds won, the difference to the best peer of each seed, the
    single peer whose mean is nearest (largest mean difference), and the prefill."""
    print(f"\n{c}\n")
    print(f"| workload | rate | rows won of {n} | against the best peer of each seed: mean / p99 ms "
          "(± s.e.) | the closest single peer: mean / p99 ms (seeds ahead) | prefill vs best "
          "peer: mean (max) |")
    print("|---|---|---|---|---|---|")
    for (s, rate), counts in won_by_row.items():
        bm, bm_se, _ = column(diffs[(c, s, rate, "best")], 0)
        bp, bp_se, _ = column(diffs[(c, s, rate, "best")], 1)
        peers = {k[3]: xs for k, xs in diffs.items()
                 if k[:3] == (c, s, rate) and k[3] != "best"}
        name, xs = max(peers.items(), key=lambda kv: column(kv[1], 0)[0])
        pm, _, m_ahead = column(xs, 0)
        pp, _, p_ahead = column(xs, 1)
        pf = [v[2] for v in values[(c, s, rate)]]
        print(f"| {s} | {rate:g} | {counts[ci]} | {bm:+.2f} ± {bm_se:.2f} / {bp:+.1f} ± "
              f"{bp_se:.1f} | {name}: {pm:+.2f} ({m_ahead}/{n}) / {pp:+.1f} ({p_ahead}/{n}) | "
              f"{sum(pf) / len(pf):+.1f}% ({max(pf):+.1f}%) |")


if __name__ == "__main__":
    main()
