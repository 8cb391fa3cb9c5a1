#!/usr/bin/env python3
"""Where two policies' results differ, request by request.

Reads the JSON lines of `kvrouter simulate --requests-out` and, for one load (`--rate`, default:
the first in the file), compares policy A with each other policy B over the same requests:

- per engine speed class: requests, mean TTFT, prefill tokens (prompt - cached), the prefix
  found cached nowhere (evicted, or still being computed) or only elsewhere at dispatch, and the
  decode time per output token (end to end minus first token, over the output tokens);
- the requests paired by whether each policy served most of the prompt from cache (hit) or not
  (miss), with the mean TTFT of each and each class's share of the difference in mean TTFT;
- among the requests both policies missed, where each sent them (full-speed or slower engine);
- on a heterogeneous fleet, for each policy, the share of the tokens of fresh prompts (less
  than a quarter of the prompt held, evicted or computing anywhere at dispatch) it sent to
  slower engines, by prompt length, and the requests that computed 32k tokens or more of a
  prefix evicted everywhere.

    kvrouter simulate --trace T --speeds 1,1,1,1,0.5,0.5,0.5,0.5 --rate-scale 0.8 \\
        --policies kvrouter,sglang --requests-out /tmp/r.jsonl --quiet
    scripts/compare_requests.py /tmp/r.jsonl kvrouter sglang

With `--request ID`, instead: that request under each policy named, and where the file was
written with `simulate --explain`, its routing decision (every engine's cost and terms).

With `--rates` (a file written with `--explain`, policies that cost in seconds: `kvrouter`),
instead: for each policy named, the prefill rates it costed the engines of each speed at, the
decisions that costed a slower engine nearer a faster one's rate than their speeds say (above
the geometric mean of equal and true), and how far the chosen engine's predicted TTFT was from
the observed one.
"""
import argparse
import collections
import json
import math
import signal
import sys


def load(path, rate):
    runs = collections.defaultdict(dict)  # (rate, policy) -> id -> record
    rates = []
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r["rate_scale"] not in rates:
                rates.append(r["rate_scale"])
            runs[(r["rate_scale"], r["policy"])][r["id"]] = r
    if not rates:
        sys.exit("no records in " + path)
    rate = rates[0] if rate is None else rate
    return rate, {p: recs for (x, p), recs in runs.items() if x == rate}


def hit(r):
    return r["cached_tokens"] > r["prompt_tokens"] / 2


def prefill(r):
    return r["prompt_tokens"] - r["cached_tokens"]


def decode_ms_per_token(rs):
    """The time after the first token over the output tokens, summed over `rs`."""
    tokens = sum(r["output_tokens"] for r in rs)
    return sum(r["e2e_ms"] - r["ttft_ms"] for r in rs) / tokens if tokens else 0.0


def paired(a, b, ids, n):
    """Requests `ids` under A and B: how many, their mean TTFT under each, and their share of
    the difference in mean TTFT over all `n` requests."""
    ta = sum(a[i]["ttft_ms"] for i in ids)
    tb = sum(b[i]["ttft_ms"] for i in ids)
    return (f"requests {len(ids):6d}  TTFT A {ta / len(ids):8.1f}  B {tb / len(ids):8.1f}"
            f"  share {(ta - tb) / n:+8.2f} ms")


def by_class(recs):
    fastest = max(r["speed"] for r in recs.values())
    out = collections.OrderedDict()
    for name, keep in (("all", lambda r: True), ("full speed", lambda r: r["speed"] == fastest),
                       ("slower", lambda r: r["speed"] < fastest)):
        rs = [r for r in recs.values() if keep(r) and r["ttft_ms"] is not None]
        if rs:
            out[name] = rs
    return out


# Prompt lengths as scripts/trace_reuse.py classes them (whole 512-token blocks).
SIZES = ((0, 4096, "under 4k"), (4096, 16384, "4k-16k"), (16384, 32768, "16k-32k"),
         (32768, float("inf"), "32k or more"))


def placement(policy, recs, fastest):
    """Where `policy` sent fresh prompts, by length, on a fleet with engines slower than
    `fastest`."""
    rs = [r for r in recs.values() if r["ttft_ms"] is not None]
    fresh = [r for r in rs if 4 * (r["cached_tokens"] + r["cached_nowhere_tokens"]
                                   + r["cached_elsewhere_tokens"]) < r["prompt_tokens"]]
    cells = []
    for lo, hi, name in SIZES:
        c = [r for r in fresh if lo <= r["prompt_tokens"] < hi]
        total = sum(r["prompt_tokens"] for r in c)
        slow = sum(r["prompt_tokens"] for r in c if r["speed"] < fastest)
        cells.append(f"{name} {100 * slow / total if total else 0:3.0f}%")
    evicted = [r for r in rs if r["cached_nowhere_tokens"] > 0 and prefill(r) >= 32768]
    print(f"  {policy:28s} fresh prompt tokens sent to slower engines: {', '.join(cells)}; "
          f"32k+ computed over an evicted prefix: {len(evicted)} requests "
          f"({sum(prefill(r) for r in evicted) / 1e6:.2f}M)")


def decision(policy, r):
    """One request under one policy: where it went, what it cost, and why (when explained)."""
    ttft = "rejected" if r["ttft_ms"] is None else f"TTFT {r['ttft_ms']:.1f} ms"
    print(f"{policy}: engine {r['worker']} (speed {r['speed']}), {ttft}, prompt "
          f"{r['prompt_tokens']}, cached {r['cached_tokens']}, waited at the router "
          f"{r['router_wait_ms']:.1f} ms")
    if "candidates" not in r:
        print("  (no decision recorded: write the file with simulate --explain)")
        return
    terms = list(r["candidates"][0]["terms"])
    print("  " + " ".join(f"{h:>14s}" for h in ["engine", "cost"] + terms))
    for c in r["candidates"]:
        mark = "*" if c["worker"] == r["worker"] else ("-" if not c["eligible"] else " ")
        cells = [f"{mark}{c['worker']}", f"{c['cost']:.4f}"] + [f"{c['terms'][t]:.4g}" for t in terms]
        print("  " + " ".join(f"{x:>14s}" for x in cells))


def quantile(xs, q):
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def rates(policy, recs):
    """How a policy costed its engines' speeds, and how near its predicted TTFTs came."""
    speed = {r["worker"]: r["speed"] for r in recs.values()}  # the engines it ever chose
    by_speed, errors, explained, wrong = collections.defaultdict(list), [], 0, 0
    recorded = any(r.get("candidates") for r in recs.values())
    for r in recs.values():
        cands = r.get("candidates") or []
        if not cands or "rate_tok_s" not in cands[0]["terms"]:
            continue
        explained += 1
        rated = {c["worker"]: c["terms"]["rate_tok_s"] for c in cands if c["worker"] in speed}
        for w, x in rated.items():
            by_speed[speed[w]].append(x)
        if any(speed[u] < speed[v] and rated[u] > rated[v] * math.sqrt(speed[u] / speed[v])
               for u in rated for v in rated):
            wrong += 1
        chosen = next(c for c in cands if c["worker"] == r["worker"])
        if r["ttft_ms"] is not None and r["router_wait_ms"] == 0:
            errors.append(abs(chosen["terms"]["ttft_s"] * 1000 - r["ttft_ms"]))
    if explained == 0:
        why = ("its terms have no rate_tok_s" if recorded
               else "write the file with simulate --explain")
        print(f"{policy}: no decision costed in rates ({why})")
        return
    print(f"{policy}: {explained} decisions")
    for s in sorted(by_speed, reverse=True):
        xs = sorted(by_speed[s])
        print(f"  engines at speed {s}: costed at p10 / p50 / p90 "
              + " / ".join(f"{quantile(xs, q) / 1000:.1f}k" for q in (0.1, 0.5, 0.9))
              + " tokens/s")
    print(f"  decisions costing a slower engine nearer a faster one than their speeds say: "
          f"{wrong} ({100 * wrong / explained:.1f}%)")
    if errors:
        errors.sort()
        print(f"  chosen engine's predicted TTFT against the observed ({len(errors)} requests "
              f"not held at the router): |error| mean {sum(errors) / len(errors):.1f} ms, "
              f"p50 {quantile(errors, 0.5):.1f}, p90 {quantile(errors, 0.9):.1f}")


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet when piped into head
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("requests", help="the --requests-out file")
    ap.add_argument("a", help="the policy to explain")
    ap.add_argument("b", nargs="*", help="the policies to compare it with (default: all others)")
    ap.add_argument("--rate", type=float, help="the run's rate scale (default: the first)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--request", type=int, metavar="ID",
                      help="show this request (its trace line or generated index) under each "
                           "policy, with its routing decision (* chosen, - filtered out)")
    mode.add_argument("--rates", action="store_true",
                      help="the rates each policy costed its engines at, and its TTFT errors")
    args = ap.parse_args()
    rate, runs = load(args.requests, args.rate)
    others = args.b or [p for p in runs if p != args.a]
    for p in [args.a] + others:
        if p not in runs:
            sys.exit(f"no policy {p!r} at rate {rate}: have {', '.join(runs)}")
    print(f"rate scale {rate}")
    if args.request is not None:
        for p in [args.a] + args.b:
            if args.request not in runs[p]:
                sys.exit(f"no request {args.request} of {p!r} at rate {rate}")
            decision(p, runs[p][args.request])
        return
    if args.rates:
        for p in [args.a] + args.b:
            rates(p, runs[p])
        return
    for p in [args.a] + others:
        for name, rs in by_class(runs[p]).items():
            print(f"  {p:28s} {name:10s} requests {len(rs):6d}  TTFT mean "
                  f"{sum(r['ttft_ms'] for r in rs) / len(rs):9.1f} ms  prefill "
                  f"{sum(prefill(r) for r in rs) / 1e6:7.2f}M  cached nowhere "
                  f"{sum(r['cached_nowhere_tokens'] for r in rs) / 1e6:6.2f}M  elsewhere "
                  f"{sum(r['cached_elsewhere_tokens'] for r in rs) / 1e6:6.2f}M  decode "
                  f"{decode_ms_per_token(rs):5.1f} ms/token")
    speeds = {r["speed"] for recs in runs.values() for r in recs.values()}
    fastest, mixed = max(speeds), len(speeds) > 1  # the fleet's, whichever engines a policy used
    if mixed:
        for p in [args.a] + others:
            placement(p, runs[p], fastest)
    a = runs[args.a]
    for p in others:
        b = runs[p]
        ids = [i for i in a
               if i in b and a[i]["ttft_ms"] is not None and b[i]["ttft_ms"] is not None]
        n = len(ids)
        print(f"\n{args.a} (A) against {p} (B), {n} requests both served; share of the "
              f"difference in mean TTFT, A - B:")
        classes = collections.defaultdict(list)
        for i in ids:
            classes[("hit" if hit(a[i]) else "miss") + " / "
                    + ("hit" if hit(b[i]) else "miss")].append(i)
        for k in sorted(classes):
            c = classes[k]
            print(f"  A {k:12s} {paired(a, b, c, n)}  prefill A "
                  f"{sum(prefill(a[i]) for i in c) / 1e6:6.2f}M  B "
                  f"{sum(prefill(b[i]) for i in c) / 1e6:6.2f}M")
        if not mixed:
            continue  # an equal fleet: no speed classes
        print("  both missed, by where each sent them (F: full speed, S: slower):")
        placed = collections.defaultdict(list)
        for i in classes.get("miss / miss", []):
            placed[("F" if a[i]["speed"] == fastest else "S")
                   + ("F" if b[i]["speed"] == fastest else "S")].append(i)
        for k in sorted(placed):
            c = placed[k]
            print(f"    A {k[0]} B {k[1]}  {paired(a, b, c, n)}  mean prompt "
                  f"{sum(a[i]['prompt_tokens'] for i in c) / len(c):8.0f}")


if __name__ == "__main__":
    main()
