#!/usr/bin/env python3
"""When a Mooncake trace's prompt blocks are asked for again, by the kind of prompt they are in.

For each request (in arrival order) and each of its hash_ids (512-token blocks), finds the next
request that uses the same block, and counts, per class of the request, the blocks asked for
again at all, later than 60 s and later than 150 s (the trace's own time). A prompt is "new"
when less than a quarter of its leading blocks were seen before.

    scripts/trace_reuse.py data/traces/mooncake_synthetic_trace.jsonl
"""
import bisect
import collections
import json
import sys


def main():
    reqs = sorted((json.loads(line) for line in open(sys.argv[1])), key=lambda r: r["timestamp"])
    uses = collections.defaultdict(list)
    for r in reqs:
        for h in r["hash_ids"]:
            uses[h].append(r["timestamp"] / 1000)
    seen = set()
    counts = collections.defaultdict(lambda: [0, 0, 0, 0])  # blocks, again, > 60 s, > 150 s
    for r in reqs:
        ids, t = r["hash_ids"], r["timestamp"] / 1000
        leading = 0
        while leading < len(ids) and ids[leading] in seen:
            leading += 1
        tokens = len(ids) * 512
        size = ("under 4k" if tokens < 4096 else "4k-16k" if tokens < 16384
                else "16k-32k" if tokens < 32768 else "32k or more")
        cls = ("new" if leading < 0.25 * len(ids) else "continuing") + ", " + size
        for h in ids:
            u = uses[h]
            j = bisect.bisect_right(u, t)
            c = counts[cls]
            c[0] += 1
            if j < len(u):
                c[1] += 1
                c[2] += u[j] - t > 60
                c[3] += u[j] - t > 150
        seen.update(ids)
    print("| prompt | blocks | asked for again | later than 60 s | later than 150 s |")
    print("|---|---|---|---|---|")
    for cls in sorted(counts):
        n, again, late60, late150 = counts[cls]
        print(f"| {cls} | {n:,} | {again / n:.0%} | {late60 / n:.0%} | {late150 / n:.0%} |")


if __name__ == "__main__":
    main()
