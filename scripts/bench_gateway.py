#!/usr/bin/python3
"""The gateway's own added latency: the same small requests sent straight to one engine-sim and
through `kvrouter serve` in front of it, interleaved round by round over kept-alive
connections, so both sides see the same engine, client and machine noise. Prints JSON.

  scripts/bench_gateway.py [--kvrouter build/release/kvrouter] [--requests 2000] [--stream]
"""
import argparse
import http.client
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import live  # noqa: E402
from gateway_live_test import Router, router_yaml  # noqa: E402


def one(conn, body):
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    assert r.status == 200, data
    return time.perf_counter() - t0


def summary(samples):
    s = sorted(samples)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))] * 1e6
    return {"mean_us": statistics.fmean(s) * 1e6, "p50_us": pick(0.5), "p90_us": pick(0.9),
            "p99_us": pick(0.99)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kvrouter", default=os.path.join(HERE, "..", "build", "release", "kvrouter"))
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--prompt-bytes", type=int, default=200)
    ap.add_argument("--stream", action="store_true")
    args = ap.parse_args()
    live.KVROUTER = os.path.abspath(args.kvrouter)
    with live.EngineSim("--speedup", "1000000", "--kv-events-port", "0", "--replay-port", "0") as sim, \
            Router(router_yaml([("w", sim, True)])) as router:
        direct = http.client.HTTPConnection(sim.host, sim.port)
        routed = http.client.HTTPConnection(router.host, router.port)
        times = {"direct": [], "router": []}
        for i in range(args.requests + 100):  # the first 100 rounds warm up
            prompt = (f"{i:08d} " + "x" * args.prompt_bytes)[:args.prompt_bytes]
            body = json.dumps({"model": "kvrouter-sim", "prompt": prompt, "max_tokens": 1,
                               "stream": args.stream})
            order = [("direct", direct), ("router", routed)]
            if i % 2:
                order.reverse()
            for name, conn in order:
                t = one(conn, body)
                if i >= 100:
                    times[name].append(t)
        direct.close()
        routed.close()
        d, r = summary(times["direct"]), summary(times["router"])
        out = {"requests": args.requests, "prompt_bytes": args.prompt_bytes, "stream": args.stream,
               "direct": d, "router": r,
               "added_p50_us": r["p50_us"] - d["p50_us"], "added_p99_us": r["p99_us"] - d["p99_us"]}
        print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
