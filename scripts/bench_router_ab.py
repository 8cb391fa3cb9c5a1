#!/usr/bin/python3
"""A/B of kvrouter builds as the gateway: the router's CPU per request, binaries alternated.

Two `kvrouter engine-sim`s (the build given by --engines; Qwen3 tokenizer, --speedup 1e9) stay up
for the whole run; each router binary in turn is started in front of them (`cpu_threads` as
given), warmed up for 2 s and then loaded by `wrk` for --duration seconds with the same 256
2k-token text prompts as scripts/bench_overhead.py. Per run: requests/s and the router process's
task-clock per request (`perf stat`), split into user and system time (/proc). The binaries
alternate --rounds times, so drift in the machine hits them alike; the medians are printed last.

  scripts/bench_router_ab.py BINARY_A,BINARY_B [--rounds 4] [--connections 32] [--stream]
      [--cpu-threads N] [--engines build/release/kvrouter]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_overhead as bo  # noqa: E402
import live  # noqa: E402  (bench_overhead put tests/ on the path)
from gateway_live_test import Router  # noqa: E402


def ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])  # utime, stime


def run_one(binary, sims, args, bodies, workdir):
    live.KVROUTER = os.path.abspath(binary)
    with Router(bo.router_config(sims, bo.DEFAULT_TOKENIZER, "qwen3",
                                 cpu_threads=args.cpu_threads)) as router:
        router.wait_for(lambda: router.request("GET", "/ready")[0] == 200, "the router")
        url = f"http://{router.host}:{router.port}/v1/completions"
        env = dict(os.environ, WRK_BODIES=bodies, WRK_ADDRS="")
        wrk = ["wrk", f"-t{min(2, args.connections)}", f"-c{args.connections}", "-s",
               os.path.join(HERE, "wrk_bodies.lua"), url]
        subprocess.run(wrk[:3] + ["-d2s"] + wrk[3:], env=env, capture_output=True, check=True)
        stat = os.path.join(workdir, "stat.csv")
        user0, sys0 = ticks(router.proc.pid)
        perf = subprocess.Popen(["perf", "stat", "-e", "task-clock", "-x,", "-o", stat, "-p",
                                 str(router.proc.pid)])
        try:
            out = subprocess.run(wrk[:3] + [f"-d{args.duration}s"] + wrk[3:], env=env,
                                 capture_output=True, text=True, check=True)
        finally:
            perf.send_signal(2)
            perf.wait()
        user1, sys1 = ticks(router.proc.pid)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    n = result["requests"]
    task_ms = next(float(line.split(",")[0]) for line in open(stat)
                   if ",task-clock," in line)
    return {"rps": result["rps"], "cpu_us": task_ms * 1e3 / n,
            "user_us": (user1 - user0) / bo.CLK_TCK * 1e6 / n,
            "sys_us": (sys1 - sys0) / bo.CLK_TCK * 1e6 / n}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binaries", help="comma-separated kvrouter binaries")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--duration", type=int, default=4, help="seconds of wrk per run")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--cpu-threads", type=int, default=0)
    ap.add_argument("--engines", default=os.path.join(bo.ROOT, "build", "release", "kvrouter"))
    args = ap.parse_args()
    binaries = args.binaries.split(",")
    live.KVROUTER = os.path.abspath(args.engines)
    text = bo.corpus()
    results = {b: [] for b in binaries}
    with tempfile.TemporaryDirectory(prefix="bench-router-ab-") as workdir:
        sims = []
        try:
            for _ in range(2):
                sims.append(live.EngineSim("--tokenizer", bo.DEFAULT_TOKENIZER, "--model", "qwen3",
                                           "--speedup", "1e9", "--kv-events-port", "0",
                                           "--replay-port", "0").__enter__())
            chars, _ = bo.calibrate(sims[0], text, 2048, "qwen3")
            bodies = os.path.join(workdir, "bodies.jsonl")
            with open(bodies, "w") as f:
                for i in range(256):
                    f.write(bo.body(text, i, chars, "qwen3", 8, args.stream) + "\n")
            for r in range(args.rounds):
                for b in binaries:
                    row = run_one(b, sims, args, bodies, workdir)
                    results[b].append(row)
                    print(f"round {r + 1} {b}: " +
                          " ".join(f"{k} {v:.1f}" for k, v in row.items()), flush=True)
        finally:
            for s in sims:
                s.__exit__(None, None, None)
    print("medians:")
    for b in binaries:
        print(b + ": " + " ".join(f"{k} {statistics.median(x[k] for x in results[b]):.1f}"
                                  for k in results[b][0]))


if __name__ == "__main__":
    main()
