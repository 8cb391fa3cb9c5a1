#!/usr/bin/python3
"""Live tests of `kvrouter serve` in front of `kvrouter engine-sim`s: real processes on
127.0.0.1 (port 0), real HTTP and ZeroMQ, every process reaped on every path.

Every test ends with the router's books empty (no booked prefill, nothing running) and every
process exiting 0 on SIGTERM. Waits are on responses and conditions, each bounded.

  tests/gateway_live_test.py --kvrouter build/release/kvrouter [unittest args]
"""
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import uuid
from concurrent.futures import ThreadPoolExecutor

import live
from live import DEADLINE_S, Cache, EngineSim, metric, replay, sse_events
import sglang_events  # noqa: E402  (tests/tools, on the path through live)

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MODEL = "kvrouter-sim"  # engine-sim's default served name


def worker_yaml(name, sim, events=True):
    lines = [f"      - name: {name}", f"        url: http://{sim.ready['http']}"]
    if events and sim.ready.get("kv_events"):
        lines.append(f"        kv_events: {sim.ready['kv_events']}")
        if sim.ready.get("replay"):
            lines.append(f"        replay: {sim.ready['replay']}")
    return "\n".join(lines)


def router_yaml(workers, token=TOKEN, extra="", pool_extra="", model=MODEL):
    """A one-pool config; `workers` is a list of (name, sim-or-url, events)."""
    out = ["listen: 127.0.0.1:0", "health: {interval_ms: 100, timeout_ms: 1000, failures: 1}"]
    if token:
        out.append(f"admin_token: {token}")
    out.append(extra)
    out += ["pools:", f"  - name: {model}", "    tokenizer: bytes", "    block_size: 16",
            pool_extra, "    workers:"]
    for name, target, events in workers:
        if isinstance(target, str):
            out.append(f"      - name: {name}\n        url: {target}")
        else:
            out.append(worker_yaml(name, target, events))
    return "\n".join(line for line in out if line) + "\n"


class Router(live.Server):
    """`kvrouter serve` on a config written to a temporary file."""

    def __init__(self, config):
        self.dir = tempfile.TemporaryDirectory()
        path = os.path.join(self.dir.name, "router.yaml")
        with open(path, "w") as f:
            f.write(config)
        super().__init__("serve", "--config", path, "--log-level", "warn")

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self.dir.cleanup()

    def admin(self, method, path, body=None):
        status, _, text = self.request(method, path, body, headers=AUTH)
        return status, json.loads(text)

    def workers(self):
        status, body = self.admin("GET", "/admin/workers")
        assert status == 200, body
        return {w["name"]: w for w in body["workers"]}

    def wait_for(self, condition, what):
        """Polls `condition()` (a cheap read of the router's state) until true; bounded."""
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}")

    def assert_idle(self):
        """No booking left behind: zero booked prefill and running requests on every worker."""
        def idle():
            _, values = self.metrics()
            return (metric(values, "kvrouter_worker_booked_prefill_tokens") == 0 and
                    metric(values, "kvrouter_worker_running_requests") == 0)
        self.wait_for(idle, "the router's books to empty")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique_text(n=300):
    """A prompt no other test shares (so caches from earlier tests do not interfere)."""
    seed = uuid.uuid4().hex
    return (seed * (n // len(seed) + 1))[:n]


def complete(router, max_tokens=2, prompt=None):
    """A small completion, of a fresh prompt unless given one: (status, body, the serving worker
    or None)."""
    headers = {}
    status, r = router.post("/v1/completions", {"model": MODEL, "prompt": prompt or unique_text(),
                                                "max_tokens": max_tokens},
                            response_headers=headers)
    return status, r, headers.get("x-kvrouter-worker")


def endless_stream(test, router, prompt):
    """A streamed completion the engine does not end on its own (100,000 tokens, ignore_eos),
    once its first event has arrived: (the connection, the response). Closing the connection
    ends the request."""
    c = router.conn()
    c.request("POST", "/v1/completions", body=json.dumps(
        {"model": MODEL, "prompt": prompt, "max_tokens": 100000, "ignore_eos": True,
         "stream": True}), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    test.assertTrue(r.readline().startswith(b"data: "))
    return c, r


def send_in_background(router, out, prompt):
    """A completion sent from a thread (returned, started): its (status, headers, text) goes to
    out["r"], its response headers into `out`."""
    t = threading.Thread(target=lambda: out.update(
        r=router.request("POST", "/v1/completions", {"model": MODEL, "prompt": prompt},
                         response_headers=out)))
    t.start()
    return t


def chat(content, history=()):
    return {"model": MODEL, "messages": [*history, {"role": "user", "content": content}],
            "max_tokens": 4, "ignore_eos": True}


def post_stream(server, path, body, headers=None):
    c = server.conn()
    try:
        c.request("POST", path, body=json.dumps(body),
                  headers={"Content-Type": "application/json", **(headers or {})})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
    finally:
        c.close()


class RoutingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sims, cls.router = [], None
        try:  # tearDownClass does not run when setUpClass fails: reap what started
            for _ in range(2):
                cls.sims.append(EngineSim("--speedup", "1000", "--kv-events-port", "0",
                                          "--replay-port", "0").__enter__())
            cls.router = Router(router_yaml([("w0", cls.sims[0], True),
                                             ("w1", cls.sims[1], True)])).__enter__()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.router is not None:
            cls.router.__exit__(None, None, None)
        for s in cls.sims:
            s.__exit__(None, None, None)

    def tearDown(self):
        self.router.assert_idle()

    def test_both_endpoints_stream_and_not(self):
        prompt = unique_text()
        cases = [("/v1/completions", {"model": MODEL, "prompt": prompt, "max_tokens": 5,
                                      "ignore_eos": True}),
                 ("/v1/chat/completions", chat(prompt))]
        for path, body in cases:
            with self.subTest(path=path, stream=False):
                headers = {}
                status, r = self.router.post(path, body, response_headers=headers)
                self.assertEqual(status, 200, r)
                self.assertIn(headers["x-kvrouter-worker"], ("w0", "w1"))
                self.assertGreater(r["usage"]["prompt_tokens"], 0)
            with self.subTest(path=path, stream=True):
                streamed = dict(body, stream=True, stream_options={"include_usage": True})
                status, headers, raw = post_stream(self.router, path, streamed)
                self.assertEqual(status, 200, raw)
                self.assertTrue(headers["content-type"].startswith("text/event-stream"))
                self.assertIn(headers["x-kvrouter-worker"], ("w0", "w1"))
                events = sse_events(raw)
                self.assertEqual(events[-1], "[DONE]")
                self.assertIn("usage", json.loads(events[-2]))
                # The streamed answer's inter-token latency reached its worker's decode model.
                worker = headers["x-kvrouter-worker"]
                self.router.wait_for(lambda: self.router.workers()[worker]["decode_step_s"] > 0,
                                     f"{worker}'s decode step")

    def test_next_turn_lands_on_the_worker_holding_its_prefix(self):
        for _ in range(4):
            first = chat(unique_text(400))
            headers = {}
            status, r1 = self.router.post("/v1/chat/completions", first, response_headers=headers)
            self.assertEqual(status, 200, r1)
            holder = headers["x-kvrouter-worker"]
            history = [*first["messages"], r1["choices"][0]["message"]]
            second = chat("And then?", history)
            headers = {}
            status, r2 = self.router.post("/v1/chat/completions", second, response_headers=headers)
            self.assertEqual(status, 200, r2)
            self.assertEqual(headers["x-kvrouter-worker"], holder)
            cached = r2["usage"]["prompt_tokens_details"]["cached_tokens"]
            self.assertGreaterEqual(cached, 400)  # the whole first turn, in full blocks

    def test_debug_route_explains_the_decision(self):
        prompt = unique_text(320)
        headers = {}
        body = {"model": MODEL, "prompt": prompt, "max_tokens": 2}
        status, _ = self.router.post("/v1/completions", body, response_headers=headers)
        self.assertEqual(status, 200)
        holder = headers["x-kvrouter-worker"]

        def explained():
            status, d = self.router.post("/debug/route", body, headers=AUTH)
            assert status == 200, d
            return d
        # Events confirm the blocks shortly after the response: wait for the index to see them
        # (and for the request's release: then no prompt in flight holds them).
        def settled():
            c = {c["worker"]: c for c in explained()["candidates"]}[holder]
            return c["device_blocks"] == 20 and c["in_flight_blocks"] == 0
        self.router.wait_for(settled, "the holder's events")
        d = explained()
        self.assertEqual(d["worker"], holder)
        self.assertEqual((d["model"], d["prompt_tokens"], d["blocks"]), (MODEL, 320, 20))
        self.assertEqual(d["policy"], "kvrouter")
        self.assertEqual(sorted(c["worker"] for c in d["candidates"]), ["w0", "w1"])
        for c in d["candidates"]:
            self.assertTrue(c["healthy"])
            self.assertIn("ttft_s", c["terms"])
            self.assertIn("cost", c)
            self.assertEqual(c["in_flight_blocks"], 0)
        status, _, _ = self.router.request("POST", "/debug/route", json.dumps(body))
        self.assertEqual(status, 401)

    def test_models_ready_health_and_metrics(self):
        status, _, text = self.router.request("GET", "/v1/models")
        self.assertEqual([m["id"] for m in json.loads(text)["data"]], [MODEL])
        self.assertEqual(self.router.request("GET", "/health")[0], 200)
        status, _, text = self.router.request("GET", "/ready")
        self.assertEqual(status, 200, text)
        self.router.post("/v1/completions", {"model": MODEL, "prompt": unique_text(), "max_tokens": 1})
        # The request's KV events reach the router over ZeroMQ after its answer: wait for them.
        self.router.wait_for(
            lambda: metric(self.router.metrics()[1], "kvrouter_events_applied_total") > 0,
            "the request's KV events")
        text, values = self.router.metrics()
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool is missing (Debian package prometheus)")
        check = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                               capture_output=True, timeout=DEADLINE_S)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        # The byte tokenizer is the engine's: the router counts exactly what engines report.
        router = metric(values, "kvrouter_prompt_tokens_total", source="router")
        self.assertGreater(router, 0)
        self.assertEqual(router, metric(values, "kvrouter_prompt_tokens_total", source="engine"))
        self.assertGreater(metric(values, "kvrouter_requests_total", status="200"), 0)
        self.assertGreater(metric(values, "kvrouter_events_applied_total"), 0)
        # The process's own figures, under Prometheus's standard names.
        rss = metric(values, "process_resident_memory_bytes")
        self.assertGreater(rss, 1 << 20)
        self.assertGreaterEqual(metric(values, "process_resident_memory_max_bytes"), rss)
        self.assertGreater(metric(values, "process_open_fds"), 3)
        self.assertGreaterEqual(metric(values, "process_max_fds"), metric(values, "process_open_fds"))
        self.assertGreaterEqual(metric(values, "process_cpu_seconds_total"), 0)
        self.assertAlmostEqual(metric(values, "process_start_time_seconds"), time.time(), delta=600)


class KvCapacityTest(unittest.TestCase):
    def test_each_worker_takes_the_kv_capacity_its_engine_reports(self):
        # engine-sim's default engine holds 1,048,576 tokens of KV (vLLM's cache_config_info:
        # 65,536 blocks of 16), which replace the pool's default of 16,384 blocks; a worker whose
        # capacity is configured keeps it (and the engine's figure is shown beside it).
        with EngineSim("--speedup", "1000") as a, EngineSim("--speedup", "1000") as b, Router(
                router_yaml([("a", a, False)], extra="engine_metrics_interval_ms: 100")) as router:
            status, w = router.admin("POST", "/admin/workers", {
                "model": MODEL, "name": "b", "url": f"http://{b.ready['http']}",
                "kv_capacity_blocks": 1000, "max_batched_tokens": 2048})
            self.assertEqual(status, 201, w)
            router.wait_for(lambda: all(w["engine_kv_capacity_blocks"] == 65536
                                        for w in router.workers().values()),
                            "both engines' reports")
            workers = router.workers()
            self.assertEqual(workers["a"]["kv_capacity_blocks"], 65536)
            self.assertEqual(workers["b"]["kv_capacity_blocks"], 1000)
            # The step size no engine publishes: the pool's default, or as configured.
            self.assertEqual(workers["a"]["max_batched_tokens"], 8192)
            self.assertEqual(workers["b"]["max_batched_tokens"], 2048)
            self.assertEqual(complete(router)[0], 200)
            router.assert_idle()


class MaxBatchedTokensTest(unittest.TestCase):
    def test_each_worker_takes_the_step_size_its_sglang_engine_reports(self):
        # An engine that answers /server_info as SGLang does gives its step size
        # (chunked_prefill_size), which replaces the pool's default of 8,192; vLLM's answers 404
        # and keeps the default; a worker whose step size is configured keeps it, with a warning
        # (the router's log level is warn) and the engine's figure shown beside it.
        with EngineSim("--sglang-server-info", "--max-num-batched-tokens", "2048") as a, \
                EngineSim() as b, EngineSim("--sglang-server-info") as c, Router(
                    router_yaml([("a", a, False), ("b", b, False)])) as router:
            status, w = router.admin("POST", "/admin/workers", {
                "model": MODEL, "name": "c", "url": f"http://{c.ready['http']}",
                "max_batched_tokens": 4096})
            self.assertEqual(status, 201, w)
            router.wait_for(lambda: router.workers()["a"]["max_batched_tokens"] == 2048
                            and router.workers()["c"]["engine_max_batched_tokens"] == 8192,
                            "the SGLang engines' reports")
            workers = router.workers()
            self.assertEqual(workers["a"]["engine_max_batched_tokens"], 2048)
            self.assertEqual(workers["b"]["max_batched_tokens"], 8192)
            self.assertIsNone(workers["b"]["engine_max_batched_tokens"])
            self.assertEqual(workers["c"]["max_batched_tokens"], 4096)
            self.assertIn("worker c: max_batched_tokens is configured as 4096 but its engine "
                          "reports 8192", router.log())
            self.assertEqual(complete(router)[0], 200)
            router.assert_idle()

    def test_the_server_info_endpoint_follows_the_engine(self):
        with EngineSim("--sglang-server-info", "--max-num-batched-tokens", "3000",
                       "--block-size", "32") as sim:
            for path in ("/server_info", "/get_server_info"):
                status, _, text = sim.request("GET", path)
                self.assertEqual(status, 200)
                info = json.loads(text)
                self.assertEqual(info["chunked_prefill_size"], 3000)
                self.assertEqual(info["max_prefill_tokens"], 16384)
                self.assertEqual(info["page_size"], 32)
                self.assertEqual(info["max_total_num_tokens"], 1 << 20)
        with EngineSim() as sim:  # vLLM has no such endpoint
            self.assertEqual(sim.request("GET", "/server_info")[0], 404)


class ApproximateModeTest(unittest.TestCase):
    def test_without_events_predictions_keep_conversations_together(self):
        with EngineSim("--speedup", "1000") as a, EngineSim("--speedup", "1000") as b, \
                Router(router_yaml([("a", a, False), ("b", b, False)])) as router:
            self.assertEqual({w["mode"] for w in router.workers().values()}, {"approximate"})
            for _ in range(3):
                first = chat(unique_text(400))
                headers = {}
                _, r1 = router.post("/v1/chat/completions", first, response_headers=headers)
                holder = headers["x-kvrouter-worker"]
                second = chat("More.", [*first["messages"], r1["choices"][0]["message"]])
                headers = {}
                status, r2 = router.post("/v1/chat/completions", second, response_headers=headers)
                self.assertEqual(status, 200, r2)
                self.assertEqual(headers["x-kvrouter-worker"], holder)
                self.assertGreaterEqual(r2["usage"]["prompt_tokens_details"]["cached_tokens"], 400)
            router.assert_idle()


def engine_cache(sim):
    """The engine's device cache, rebuilt from every batch its replay buffer holds."""
    cache = Cache()
    batches = replay(sim.ready["replay"], 0)
    for _, payload in batches:
        cache.apply(payload)
    return cache, (batches[-1][0] if batches else None)


class CopiesTest(unittest.TestCase):
    """A prompt prefix most requests share is worth a second engine: after 24 requests with the
    same 640-token system prompt (40 blocks) on a two-engine pool, the gateway's own bookings
    make it hot (more than 1.2 x its one holder's half of the fleet), and the engine without it
    is costed as holding it (copy_blocks), unless a copy has already been made."""

    def run_pool(self, pool_extra):
        system = unique_text(640)
        with EngineSim("--speedup", "1000", "--kv-events-port", "0", "--replay-port", "0") as a, \
                EngineSim("--speedup", "1000", "--kv-events-port", "0", "--replay-port", "0") as b, \
                Router(router_yaml([("a", a, True), ("b", b, True)],
                                   pool_extra=pool_extra)) as router:
            def body():
                return {"model": MODEL, "prompt": system + unique_text(64), "max_tokens": 2}
            served = set()
            for _ in range(24):
                headers = {}
                status, r = router.post("/v1/completions", body(), response_headers=headers)
                self.assertEqual(status, 200, r)
                served.add(headers["x-kvrouter-worker"])
            status, d = router.post("/debug/route", body(), headers=AUTH)
            self.assertEqual(status, 200, d)
            router.assert_idle()
            return served, {c["worker"]: c for c in d["candidates"]}

    def test_a_prefix_most_requests_share_is_copied(self):
        served, by_worker = self.run_pool("")
        held = {w for w, c in by_worker.items()
                if max(c["device_blocks"], c["predicted_blocks"]) >= 40}
        if held == {"a", "b"}:  # copied already: nothing is hot any more
            self.assertEqual(served, {"a", "b"})
            self.assertTrue(all(c["terms"]["copy_blocks"] == 0 for c in by_worker.values()))
        else:
            self.assertEqual(len(held), 1)
            for w, c in by_worker.items():
                self.assertEqual(c["terms"]["copy_blocks"], 0 if w in held else 40, w)
                if w not in held:  # costed as holding the system prompt: its suffix only
                    self.assertEqual(c["terms"]["uncached_tokens"], 64)

    def test_without_copies_the_prompt_stays_on_one_engine(self):
        served, by_worker = self.run_pool("    policy: 'kvrouter[replicate_share=0]'")
        self.assertEqual(len(served), 1)
        self.assertTrue(all(c["terms"]["copy_blocks"] == 0 for c in by_worker.values()))


def route_term(test, router, prompt, term):
    """Each worker's `term` in /debug/route's costing of `prompt` (a dry run: nothing routed)."""
    status, d = router.post("/debug/route", {"model": MODEL, "prompt": prompt}, headers=AUTH)
    test.assertEqual(status, 200, d)
    return {w["worker"]: w["terms"][term] for w in d["candidates"]}


class DecodeChargeTest(unittest.TestCase):
    def test_a_worker_decoding_is_charged_for_the_prefill_it_would_wait_through(self):
        """The decode charge (docs/POLICIES.md, decode_w) reads the router's own counts: a
        request past its first token on a worker is a decode that a new prompt's prefill there
        would hold up, and /debug/route prices it on that worker only."""
        with EngineSim("--speedup", "1") as a, EngineSim("--speedup", "1") as b, \
                Router(router_yaml([("w0", a, False), ("w1", b, False)])) as router:
            c, r = endless_stream(self, router, unique_text(64))
            decoding = r.getheader("x-kvrouter-worker")
            charge = route_term(self, router, unique_text(320), "decode_s")
            self.assertGreater(charge[decoding], 0, charge)
            self.assertEqual(charge["w1" if decoding == "w0" else "w0"], 0)
            c.close()
            router.assert_idle()


class TailChargeTest(unittest.TestCase):
    def test_a_prompt_past_the_recent_tail_is_charged_its_excess(self):
        """The tail charge (docs/POLICIES.md, tail_w) reads the router's own predictions: once
        every worker's rate fit has settled (32 streamed first tokens each) and 100 requests were
        routed, a worker whose predicted TTFT exceeds the 97th percentile of the recent soonest
        ones is charged the excess again. /debug/route shows it for a prompt far longer than any
        routed, and a dry run teaches the router nothing."""
        with EngineSim("--speedup", "1") as a, EngineSim("--speedup", "1") as b, \
                Router(router_yaml([("w0", a, False), ("w1", b, False)])) as router:
            long_prompt = unique_text(8000)
            for _ in range(150):  # dry runs, not measured
                self.assertEqual(route_term(self, router, long_prompt, "tail_s"),
                                 {"w0": 0, "w1": 0})
            # Four at a time, so that both engines answer: alone, each request would go to
            # whichever idle engine's fit predicts sooner.
            served = {"w0": 0, "w1": 0}

            def first_token(n):
                return post_stream(router, "/v1/completions", {
                    "model": MODEL, "prompt": unique_text(n), "max_tokens": 1, "stream": True})

            with ThreadPoolExecutor(4) as pool:
                for i in range(150):  # bounded; ends once both fits have settled
                    if 4 * i >= 100 and min(served.values()) >= 32:
                        break
                    for status, headers, raw in pool.map(first_token, [200, 280, 360, 440]):
                        self.assertEqual(status, 200, raw)
                        served[headers["x-kvrouter-worker"]] += 1
            self.assertGreaterEqual(min(served.values()), 32, served)
            charge = route_term(self, router, long_prompt, "tail_s")
            self.assertGreater(charge["w0"], 0, charge)
            self.assertGreater(charge["w1"], 0, charge)
            router.assert_idle()


class HitDelayTest(unittest.TestCase):
    def test_a_long_prompt_is_charged_the_delay_it_would_add_to_a_caches_hits(self):
        """The hit-delay charge (docs/POLICIES.md, hit_delay_w) reads the router's own bookings
        and its index: once a document cached on one engine (by its KV events) is asked for
        again, /debug/route charges a long fresh prompt there for the delay it would add to such
        hits, and nothing on the engine that holds nothing asked for."""
        flags = ("--speedup", "1000", "--kv-events-port", "0", "--replay-port", "0")
        with EngineSim(*flags) as a, EngineSim(*flags) as b, \
                Router(router_yaml([("w0", a, True), ("w1", b, True)])) as router:
            self.assertEqual(route_term(self, router, unique_text(8000), "hit_delay_s"),
                             {"w0": 0, "w1": 0})
            document = unique_text(2000)
            status, r, holder = complete(router, 1, document)
            self.assertEqual(status, 200, r)
            router.wait_for(lambda: router.workers()[holder]["cached_blocks"] >= 2000 // 16,
                            "the document's blocks in the index")
            status, r, worker = complete(router, 1, document + " and then?")
            self.assertEqual(status, 200, r)
            self.assertEqual(worker, holder)
            charge = route_term(self, router, unique_text(8000), "hit_delay_s")
            self.assertGreater(charge[holder], 0, charge)
            self.assertEqual(charge["w1" if holder == "w0" else "w0"], 0, charge)
            router.assert_idle()


class EventsTest(unittest.TestCase):
    def test_index_converges_despite_dropped_batches(self):
        with EngineSim("--speedup", "1000", "--preset", "test", "--kv-events-port", "0",
                       "--replay-port", "0", "--drop-event-batches", "0.3", "--seed", "7") as sim, \
                Router(router_yaml([("w", sim, True)])) as router:
            for i in range(25):
                status, r = router.post("/v1/completions", {"model": MODEL, "prompt": unique_text(
                    200 + 16 * i), "max_tokens": 3})
                self.assertEqual(status, 200, r)
            cache, last = engine_cache(sim)
            router.wait_for(lambda: router.workers()["w"]["last_seq"] == last, "the last batch")
            w = router.workers()["w"]
            self.assertEqual(w["cached_blocks"], len(cache.blocks))
            self.assertGreater(w["gaps"], 0)
            self.assertGreater(w["replays"], 0)
            self.assertEqual(w["lost_batches"], 0)
            router.assert_idle()

    def test_restarted_engine_is_cleared_and_rebuilt(self):
        ports = [str(free_port()) for _ in range(3)]
        flags = ["--speedup", "1000", "--kv-events-port", ports[1], "--replay-port", ports[2]]
        first = EngineSim(*flags).__enter__()
        try:
            router = Router(router_yaml([("w", first, True)])).__enter__()
        except BaseException:
            first.__exit__(None, None, None)
            raise
        try:
            for _ in range(3):
                router.post("/v1/completions", {"model": MODEL, "prompt": unique_text(), "max_tokens": 2})
            _, last = engine_cache(first)
            router.wait_for(lambda: router.workers()["w"]["last_seq"] == last, "the first run's events")
            self.assertGreater(router.workers()["w"]["cached_blocks"], 0)
            first.__exit__(None, None, None)
            # Same HTTP and ZeroMQ ports: to the router it is the same worker, restarted.
            with live.Server("engine-sim", "--port", str(first.port), "--log-level", "warn",
                             *flags) as second:
                router.wait_for(lambda: router.workers()["w"]["healthy"], "the restarted engine")
                # Batches published before the router's SUB reconnects are not seen live (ZMQ
                # drops them); after it reconnects, the first one seen is checked against the
                # old run's. Each request publishes more; requests go on until the router
                # notices (bounded).
                deadline = time.monotonic() + DEADLINE_S
                while router.workers()["w"]["restarts"] == 0 and time.monotonic() < deadline:
                    status, r = router.post("/v1/completions", {"model": MODEL,
                                                                "prompt": unique_text(),
                                                                "max_tokens": 2})
                    self.assertEqual(status, 200, r)
                cache, last = engine_cache(second)
                router.wait_for(lambda: router.workers()["w"]["restarts"] >= 1 and
                                router.workers()["w"]["last_seq"] == last, "the restart")
                # Only what the new engine holds: the old run's blocks were cleared.
                self.assertEqual(router.workers()["w"]["cached_blocks"], len(cache.blocks))
                router.assert_idle()
        finally:
            router.__exit__(None, None, None)


class WireFormatsTest(unittest.TestCase):
    """vLLM's own encodings, from the project's Python publisher (tests/tools), through the
    router's subscriber into its index: every schema decodes, nothing is skipped."""

    SCHEMAS = [("latest", []), ("pr40984", ["--int-hashes", "0", "--topic", "kv-events"]),
               ("pr19737", []), ("pr16750", [])]

    def test_every_schema_reaches_the_index(self):
        tool = os.path.join(live.HERE, "tools", "make_vllm_events.py")
        for schema, flags in self.SCHEMAS:
            with self.subTest(schema=schema):
                pub, replay_ep = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
                topic = flags[flags.index("--topic") + 1] if "--topic" in flags else ""
                config = router_yaml([("pub", f"http://127.0.0.1:{free_port()}", False)])
                config += f"        kv_events: {pub}\n        replay: {replay_ep}\n"
                config += f"        topic: '{topic}'\n"
                with Router(config) as router:
                    repeat = 3
                    proc = subprocess.Popen(
                        ["/usr/bin/python3", tool, "--endpoint", pub, "--replay-endpoint",
                         replay_ep, "--schema", schema, "--repeat", str(repeat), "--delay", "0.2",
                         "--interval", "0.01", "--linger", "30", *flags],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    try:
                        last = 5 * repeat - 1
                        router.wait_for(lambda: router.workers()["pub"]["last_seq"] == last,
                                        f"{schema}: batch {last}")
                        w = router.workers()["pub"]
                        self.assertEqual(w["events_applied"], 6 * repeat)
                        self.assertEqual(w["lost_batches"], 0)
                        self.assertEqual(w["cached_blocks"], 0)  # each run ends AllBlocksCleared
                        _, values = router.metrics()
                        self.assertEqual(metric(values, "kvrouter_events_skipped_total"), 0)
                    finally:
                        proc.kill()
                        proc.wait()


class SglangEventsTest(unittest.TestCase):
    """SGLang's own encoding through the router's subscriber: one event per page, signed 64-bit
    page hashes, array events before SGLang's PR #37482 and map events after it, the
    three-element batch. The index holds what the engine announced, and the route follows it."""

    def test_sglang_pages_reach_the_index_and_decide_the_route(self):
        page = 16  # the pool's block size, as SGLang's --page-size must be for routing
        tokens = [(7 * i + 3) % 251 for i in range(6 * page + 5)]  # 6 full pages + a partial
        hashes = sglang_events.page_hashes(tokens, page)
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        with EngineSim("--speedup", "1000") as other, EngineSim("--speedup", "1000") as sgl:
            publisher = sglang_events.Publisher(endpoint)
            try:
                config = router_yaml([("other", other, False), ("sgl", sgl, False)])
                config += f"        kv_events: {endpoint}\n"
                with Router(config) as router:
                    publisher.wait_for_subscriber(DEADLINE_S)
                    publisher.publish(sglang_events.stored_events(tokens, page, False, range(4)))
                    publisher.publish(sglang_events.stored_events(tokens, page, True, range(4, 6)))
                    publisher.publish([sglang_events.removed_event([hashes[5]], True)])
                    router.wait_for(lambda: router.workers()["sgl"]["last_seq"] == 2,
                                    "the third SGLang batch")
                    w = router.workers()["sgl"]
                    self.assertEqual((w["events_applied"], w["cached_blocks"]), (7, 5))
                    self.assertEqual((w["gaps"], w["lost_batches"]), (0, 0))
                    _, values = router.metrics()
                    self.assertEqual(metric(values, "kvrouter_events_skipped_total"), 0)

                    body = {"model": MODEL, "prompt": tokens, "max_tokens": 2}
                    status, d = router.post("/debug/route", body, headers=AUTH)
                    self.assertEqual(status, 200, d)
                    overlap = {c["worker"]: c["device_blocks"] for c in d["candidates"]}
                    self.assertEqual(overlap, {"sgl": 5, "other": 0})
                    self.assertEqual((d["blocks"], d["worker"]), (6, "sgl"))
                    headers = {}
                    status, _ = router.post("/v1/completions", body, response_headers=headers)
                    self.assertEqual(status, 200)
                    self.assertEqual(headers["x-kvrouter-worker"], "sgl")
                    router.assert_idle()
            finally:
                publisher.close()


LLAMA3 = os.path.join(live.HERE, "..", "third_party", "npm", "@lenml", "tokenizer-llama3_1",
                      "models")


class TokenizerCheckTest(unittest.TestCase):
    """Each worker's token ids on fixed probes against the router's own: an engine that
    tokenizes differently (here Llama 3's tokenizer behind a router told one token per byte) is
    flagged, and with `tokenizer_check: refuse` left out of routing."""

    def check(self, refuse):
        with EngineSim("--speedup", "1000") as same, \
                EngineSim("--speedup", "1000", "--tokenizer", LLAMA3) as other:
            extra = "    tokenizer_check: refuse" if refuse else ""
            workers = [("same", same, False), ("other", other, False)]
            with Router(router_yaml(workers, pool_extra=extra)) as router:
                router.wait_for(lambda: router.workers()["other"]["tokenizer"] == "mismatch",
                                "the mismatch to be found")
                router.wait_for(lambda: router.workers()["same"]["tokenizer"] == "agrees",
                                "the matching worker to pass")
                detail = router.workers()["other"]["tokenizer_detail"]
                # Llama 3 starts every prompt with <|begin_of_text|> (128000); bytes do not.
                self.assertIn("probe 'plain': token 0 differs (router 84, engine 128000", detail)
                self.assertEqual(router.workers()["same"]["tokenizer_detail"], "")
                status, _, text = router.request("GET", "/ready")
                ready = json.loads(text)["pools"][MODEL]
                self.assertEqual((status, ready["tokenizer_mismatch"]), (200, ["other"]))
                self.assertEqual(ready["healthy_workers"], 1 if refuse else 2)
                _, values = router.metrics()
                self.assertEqual(metric(values, "kvrouter_worker_tokenizer_mismatch",
                                        worker="other"), 1)
                self.assertEqual(metric(values, "kvrouter_worker_tokenizer_mismatch",
                                        worker="same"), 0)
                served = {complete(router)[2] for _ in range(12)}
                self.assertEqual(served, {"same"} if refuse else {"same", "other"})
                router.assert_idle()

    def test_a_mismatched_worker_is_flagged_and_still_routed(self):
        self.check(refuse=False)

    def test_refuse_leaves_a_mismatched_worker_out_of_routing(self):
        self.check(refuse=True)


class ForwardTokensTest(unittest.TestCase):
    def test_token_ids_go_only_to_workers_whose_tokenizer_agrees(self):
        """`forward_tokens: true`: a text completion reaches a worker that computes the router's
        ids as those ids, and one that tokenizes differently (Llama 3 behind a byte router) as
        the text it was sent, which it tokenizes itself."""
        with EngineSim("--speedup", "1000") as same, \
                EngineSim("--speedup", "1000", "--tokenizer", LLAMA3) as other:
            workers = [("same", same, False), ("other", other, False)]
            with Router(router_yaml(workers, pool_extra="    forward_tokens: true")) as router:
                router.wait_for(lambda: router.workers()["other"]["tokenizer"] == "mismatch",
                                "the mismatch to be found")
                router.wait_for(lambda: router.workers()["same"]["tokenizer"] == "agrees",
                                "the matching worker to pass")
                served = {"same": 0, "other": 0}
                for _ in range(12):
                    status, body, worker = complete(router)
                    self.assertEqual(status, 200, body)
                    served[worker] += 1
                    # complete() sends 300 ASCII characters: 300 ids from the byte router, fewer
                    # where Llama 3 merged the text's bytes itself.
                    if worker == "same":
                        self.assertEqual(body["usage"]["prompt_tokens"], 300)
                    else:
                        self.assertLess(body["usage"]["prompt_tokens"], 300)
                self.assertGreater(served["same"], 0)
                self.assertGreater(served["other"], 0)
                # Forwarded as sent: token-id prompts, echo, chat.
                status, _ = router.post("/v1/completions", {"model": MODEL, "prompt": [1, 2, 3],
                                                            "max_tokens": 1})
                self.assertEqual(status, 200)
                status, _ = router.post("/v1/completions", {"model": MODEL, "prompt": "abc",
                                                            "echo": True, "max_tokens": 1})
                self.assertEqual(status, 200)
                _, values = router.metrics()
                self.assertEqual(metric(values, "kvrouter_token_prompts_total", model=MODEL),
                                 served["same"])
                self.assertEqual(metric(values, "kvrouter_worker_tokenizer_agrees",
                                        worker="same"), 1)
                router.assert_idle()


class InlinePrepareTest(unittest.TestCase):
    def test_small_bodies_prepared_on_the_io_thread_answer_alike(self):
        """`inline_prepare_bytes`: bodies up to it are prepared on the I/O thread, larger ones on
        the CPU pool; both answer, stream and fail as usual."""
        with EngineSim("--speedup", "1000") as sim, \
                Router(router_yaml([("w", sim, False)],
                                   extra="cpu_threads: 2\ninline_prepare_bytes: 1024")) as router:
            for n in (300, 2000):  # a body under the limit, one over it
                status, r = router.post("/v1/completions", {"model": MODEL,
                                                            "prompt": unique_text(n),
                                                            "max_tokens": 2})
                self.assertEqual(status, 200, r)
                self.assertEqual(r["usage"]["prompt_tokens"], n)
            status, _, raw = post_stream(router, "/v1/completions", {
                "model": MODEL, "prompt": unique_text(), "max_tokens": 3, "stream": True})
            self.assertEqual(status, 200, raw)
            self.assertEqual(sse_events(raw)[-1], "[DONE]")
            status, _, text = router.request("POST", "/v1/completions", b"{not json")
            self.assertEqual(status, 400, text)
            self.assertIn("message", json.loads(text)["error"])
            router.assert_idle()

    def test_without_a_cpu_pool_the_io_thread_prepares_everything(self):
        """`cpu_threads: 0`: every body, small or not, chat or completion, and /debug/route's,
        is prepared on the I/O thread; requests in flight together all answer."""
        self.concurrent_bodies_answer("cpu_threads: 0")

    def test_with_a_cpu_pool_every_body_can_go_to_it(self):
        """`cpu_threads: 2` and no inline preparation: every body goes to the pool and back (the
        default on 4 CPUs or more; left out on fewer, so it is set here)."""
        self.concurrent_bodies_answer("cpu_threads: 2\ninline_prepare_bytes: 0")

    def concurrent_bodies_answer(self, extra):
        with EngineSim("--speedup", "1000") as sim, \
                Router(router_yaml([("w", sim, False)], extra=extra)) as router:
            bodies = [{"model": MODEL, "prompt": unique_text(n), "max_tokens": 2}
                      for n in (300, 20000)]
            bodies.append({"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                           "max_tokens": 2})
            results = [None] * 6
            def send(i):
                results[i] = router.post("/v1/completions" if "prompt" in bodies[i % 3]
                                         else "/v1/chat/completions", bodies[i % 3])
            threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(DEADLINE_S)
            for status, r in results:
                self.assertEqual(status, 200, r)
            self.assertEqual(results[1][1]["usage"]["prompt_tokens"], 20000)
            status, r = router.admin("POST", "/debug/route", bodies[0])
            self.assertEqual(status, 200, r)
            router.assert_idle()


class StaleTest(unittest.TestCase):
    def test_worker_running_requests_without_events_is_reported_stale(self):
        # Every batch is dropped and there is no replay socket: no event ever arrives.
        with EngineSim("--speedup", "1", "--kv-events-port", "0", "--drop-event-batches", "1") as sim, \
                Router(router_yaml([("w", sim, True)],
                                   extra="events: {stale_after_ms: 300}")) as router:
            c, _ = endless_stream(self, router, unique_text())
            router.wait_for(lambda: router.workers()["w"]["stale"], "the stale flag")
            _, values = router.metrics()
            self.assertEqual(metric(values, "kvrouter_worker_stale", worker="w"), 1)
            c.close()
            router.assert_idle()
            # Idle again: nothing runs, so nothing is missing.
            router.wait_for(lambda: not router.workers()["w"]["stale"], "the flag to clear")


class FailuresTest(unittest.TestCase):
    def test_unreachable_worker_is_retried_elsewhere_then_left_out(self):
        dead = f"http://127.0.0.1:{free_port()}"
        with EngineSim("--speedup", "1000") as good, \
                Router(router_yaml([("dead", dead, False), ("good", good, False)]).replace(
                    "interval_ms: 100", "interval_ms: 600000")) as router:
            for _ in range(6):
                status, r, worker = complete(router)
                self.assertEqual(status, 200, r)
                self.assertEqual(worker, "good")
            # Out at once: by the first failed forward (a retry) or the check at startup.
            self.assertFalse(router.workers()["dead"]["healthy"])
            self.assertEqual(router.request("GET", "/ready")[0], 200)
            router.assert_idle()

    def test_5xx_before_the_first_byte_is_retried_elsewhere(self):
        with EngineSim("--speedup", "1000", "--fail-requests", "1") as failing, \
                EngineSim("--speedup", "1000") as good, \
                Router(router_yaml([("failing", failing, False), ("good", good, False)])) as router:
            for _ in range(6):
                status, r, worker = complete(router)
                self.assertEqual(status, 200, r)
                self.assertEqual(worker, "good")
            _, values = router.metrics()
            self.assertGreaterEqual(metric(values, "kvrouter_retries_total"), 1)
            router.assert_idle()

    def test_every_worker_failing_is_a_502_and_none_healthy_a_503(self):
        with EngineSim("--speedup", "1000", "--fail-requests", "1") as failing, \
                Router(router_yaml([("failing", failing, False)])) as router:
            body = {"model": MODEL, "prompt": "hello", "max_tokens": 2}
            status, r = router.post("/v1/completions", body)
            self.assertEqual(status, 502, r)
            self.assertEqual(r["error"]["type"], "BadGatewayError")
            self.assertIn("answered 500", r["error"]["message"])
            router.assert_idle()
        dead = f"http://127.0.0.1:{free_port()}"
        with Router(router_yaml([("dead", dead, False)])) as router:
            router.wait_for(lambda: not router.workers()["dead"]["healthy"], "a failed check")
            status, r = router.post("/v1/completions", body)
            self.assertEqual(status, 503, r)
            self.assertEqual(r["error"]["type"], "ServiceUnavailableError")
            self.assertEqual(router.request("GET", "/ready")[0], 503)

    def test_engine_dying_mid_stream_ends_the_stream_with_an_error_event(self):
        with EngineSim("--speedup", "100", "--exit-after", "1") as sim, \
                Router(router_yaml([("w", sim, False)])) as router:
            body = {"model": MODEL, "prompt": "x" * 50, "max_tokens": 2000, "ignore_eos": True,
                    "stream": True}
            status, _, raw = post_stream(router, "/v1/completions", body)
            self.assertEqual(status, 200)
            events = sse_events(raw)
            self.assertNotEqual(events[-1], "[DONE]")
            self.assertEqual(json.loads(events[-1])["error"]["code"], 502)
            sim.proc.wait(DEADLINE_S)
            router.assert_idle()

    def test_engine_dying_before_the_first_token_loses_no_request(self):
        # `slow` prefills at a thousandth of the speed: its streams have their headers but no
        # token yet when it is killed; its unstreamed answers have nothing at all.
        with EngineSim("--speed", "0.001") as slow, EngineSim("--speedup", "1000") as spare, \
                Router(router_yaml([("slow", slow, False)], token=TOKEN)) as router:
            results = [None] * 4

            def send(i):
                body = {"model": MODEL, "prompt": unique_text(), "max_tokens": 3,
                        "stream": i % 2 == 0}
                results[i] = post_stream(router, "/v1/completions", body)
            threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
            for t in threads:
                t.start()
            router.wait_for(lambda: router.workers()["slow"]["running"] == 4,
                            "four requests prefilling on the slow engine")
            status, _ = router.admin("POST", "/admin/workers", {
                "model": MODEL, "name": "spare", "url": f"http://{spare.ready['http']}"})
            self.assertEqual(status, 201)
            slow.proc.kill()
            for t in threads:
                t.join(DEADLINE_S)
            for i, (status, headers, text) in enumerate(results):
                self.assertEqual(status, 200, text)
                self.assertEqual(headers["x-kvrouter-worker"], "spare")
                if i % 2 == 0:
                    self.assertEqual(sse_events(text)[-1], "[DONE]")
                else:
                    self.assertEqual(json.loads(text)["usage"]["completion_tokens"], 3)
            _, values = router.metrics()
            self.assertEqual(metric(values, "kvrouter_retries_total"), 4)
            self.assertFalse(router.workers()["slow"]["healthy"])
            router.assert_idle()

    def test_saturated_pool_queues_then_answers_429(self):
        with EngineSim("--speedup", "1") as sim, Router(router_yaml(
                [("w", sim, False)],
                extra="limits: {max_running_per_worker: 1, queue_size: 1, queue_timeout_ms: 1500}")
        ) as router:
            c, _ = endless_stream(self, router, "long")
            queued = {}
            waiter = send_in_background(router, queued, "q")
            try:
                router.wait_for(lambda: metric(router.metrics()[1], "kvrouter_queued_requests") == 1,
                                "a queued request")
                headers = {}
                status, r = router.post("/v1/completions", {"model": MODEL, "prompt": "full"},
                                        response_headers=headers)
                self.assertEqual(status, 429, r)  # the queue is full: at once
                self.assertEqual(r["error"]["type"], "RateLimitError")
                self.assertEqual(headers["retry-after"], "2")
            finally:
                waiter.join(DEADLINE_S)
            self.assertEqual(queued["r"][0], 429)  # waited out queue_timeout_ms
            c.close()  # the client leaves: the engine aborts, the worker frees up
            router.assert_idle()
            status, r = router.post("/v1/completions", {"model": MODEL, "prompt": "after"})
            self.assertEqual(status, 200, r)

    def test_a_worker_added_while_a_request_waits_takes_it_at_once(self):
        # One request at a time per worker, and the one worker's answer held open (a stream the
        # test ends): a second request waits. The worker added then takes it, without waiting
        # for the first to end or for the queue's timeout (longer than any wait of the test).
        with EngineSim("--speedup", "1") as a, EngineSim("--speedup", "1000") as b, Router(
                router_yaml([("a", a, False)],
                            extra="limits: {max_running_per_worker: 1, queue_timeout_ms: 600000}")
        ) as router:
            c, _ = endless_stream(self, router, "long")
            queued = {}
            waiter = send_in_background(router, queued, "q")
            try:
                router.wait_for(lambda: metric(router.metrics()[1], "kvrouter_queued_requests") == 1,
                                "a queued request")
                status, w = router.admin("POST", "/admin/workers", {
                    "model": MODEL, "name": "b", "url": f"http://{b.ready['http']}"})
                self.assertEqual(status, 201, w)
            finally:
                waiter.join(DEADLINE_S)
            self.assertFalse(waiter.is_alive(), "the waiting request was not admitted")
            self.assertEqual(queued["r"][0], 200, queued["r"])
            self.assertEqual(queued["x-kvrouter-worker"], "b")
            c.close()  # the client leaves: the engine aborts, the worker frees up
            router.assert_idle()

    def test_dynamo_holds_requests_while_every_worker_is_prefill_busy(self):
        # Dynamo's router queue, with no limits configured: its threshold this low makes a worker
        # busy while any prefill is booked on it. The engine holds each first byte 3 s (a fault
        # window, not a wait): the second request queues behind the first, is routed once the
        # first's first token frees the worker, and answers.
        with EngineSim("--speedup", "1", "--stall-ms", "3000") as sim, Router(router_yaml(
                [("w", sim, False)],
                pool_extra="    policy: 'dynamo[dynamo_queue_threshold=0.0001]'")) as router:
            results = {}

            def send(key):
                results[key] = router.request("POST", "/v1/completions",
                                              {"model": MODEL, "prompt": key, "max_tokens": 2})
            first = threading.Thread(target=send, args=("first",))
            first.start()
            router.wait_for(lambda: router.workers()["w"]["running"] == 1, "the first request")
            second = threading.Thread(target=send, args=("second",))
            second.start()
            try:
                router.wait_for(lambda: metric(router.metrics()[1], "kvrouter_queued_requests") == 1,
                                "the second request held at the router")
                self.assertEqual(router.workers()["w"]["running"], 1)
            finally:
                first.join(DEADLINE_S)
                second.join(DEADLINE_S)
            self.assertEqual(results["first"][0], 200, results["first"])
            self.assertEqual(results["second"][0], 200, results["second"])
            _, values = router.metrics()
            self.assertEqual(metric(values, "kvrouter_queued_requests"), 0)
            router.assert_idle()

    def test_kvrouter_releases_the_shortest_waiting_request_first(self):
        # kvrouter's router queue holds while every worker has more than 4 steps of prefill
        # booked; with a step of one token (max_batched_tokens), a worker is busy while any
        # prompt longer than 4 tokens is booked on it. The engine holds each first byte 2 s (a
        # fault window, not a wait). A long prompt and then a short one (8 tokens, so that it
        # keeps the worker busy in turn: the long one leaves the queue only after its first
        # token, and they finish 2 s apart) wait behind the first request; when it frees the
        # worker, the short one goes first, though it came later.
        with EngineSim("--speedup", "1", "--stall-ms", "2000") as sim, Router(router_yaml(
                [("w", sim, False)], pool_extra="    max_batched_tokens: 1")) as router:
            self.assertEqual(router.workers()["w"]["max_batched_tokens"], 1)
            done = []

            def send(key, prompt):
                status, _, text = router.request("POST", "/v1/completions",
                                                 {"model": MODEL, "prompt": prompt, "max_tokens": 2})
                done.append((key, status, text))
            threads = [threading.Thread(target=send, args=("first", "a first prompt"))]
            threads[0].start()
            router.wait_for(lambda: router.workers()["w"]["running"] == 1, "the first request")
            threads.append(threading.Thread(target=send, args=("long", "x" * 3000)))
            threads[1].start()
            router.wait_for(lambda: metric(router.metrics()[1], "kvrouter_queued_requests") == 1,
                            "the long request waiting")
            threads.append(threading.Thread(target=send, args=("short", "y" * 8)))
            threads[2].start()
            try:
                router.wait_for(lambda: metric(router.metrics()[1], "kvrouter_queued_requests") == 2,
                                "both waiting")
            finally:
                for t in threads:
                    t.join(DEADLINE_S)
            self.assertEqual([key for key, _, _ in done], ["first", "short", "long"])
            for key, status, text in done:
                self.assertEqual(status, 200, (key, text))
            router.assert_idle()

    def test_client_disconnect_cancels_the_engine_request(self):
        with EngineSim("--speedup", "1") as sim, Router(router_yaml([("w", sim, False)])) as router:
            c, _ = endless_stream(self, router, "abc")
            c.sock.shutdown(socket.SHUT_RDWR)
            c.close()
            router.wait_for(lambda: metric(sim.metrics()[1], "vllm:request_success_total",
                                           finished_reason="abort") == 1, "the engine's abort")
            self.assertEqual(metric(sim.metrics()[1], "vllm:num_requests_running"), 0)
            router.assert_idle()

    def test_bad_requests_get_openai_errors(self):
        with tempfile.NamedTemporaryFile("w", suffix=".jinja") as template, \
                EngineSim("--speedup", "1000") as sim:
            template.write("{% if messages[0].role == 'system' %}"
                           "{{ raise_exception('System role not supported') }}{% endif %}"
                           "{% for m in messages %}{{ m.content }}{% endfor %}")
            template.flush()
            config = router_yaml([("w", sim, False)], extra="limits: {max_body_bytes: 4096}",
                                 pool_extra=f"    chat_template: {template.name}")
            with Router(config) as router:
                cases = [
                    ("/v1/completions", b"{not json", 400),
                    ("/v1/completions", json.dumps({"model": MODEL, "prompt": 5}), 400),
                    ("/v1/completions", json.dumps({"model": MODEL, "prompt": "a", "stream": 1}), 400),
                    ("/v1/completions", json.dumps({"model": "nope", "prompt": "a"}), 404),
                    ("/v1/completions", json.dumps({"model": MODEL, "prompt": "a" * 5000}), 413),
                    ("/v1/completions", b'{"model":"kvrouter-sim","prompt":"\xff\xfe"}', 400),
                    ("/v1/chat/completions", json.dumps(
                        {"model": MODEL, "messages": [{"role": "system", "content": "x"}]}), 400),
                    ("/v1/nothing", b"{}", 404),
                ]
                for path, body, expected in cases:
                    with self.subTest(path=path, body=body[:40]):
                        status, _, text = router.request("POST", path, body)
                        self.assertEqual(status, expected, text)
                        self.assertIn("message", json.loads(text)["error"])
                status, _, text = router.request("POST", "/v1/chat/completions", json.dumps(
                    {"model": MODEL, "messages": [{"role": "system", "content": "x"}]}))
                self.assertIn("System role not supported", json.loads(text)["error"]["message"])
                self.assertEqual(router.request("GET", "/v1/completions")[0], 405)
                _, values = sim.metrics()
                self.assertEqual(metric(values, "vllm:request_success_total"), 0)  # none forwarded


class AdminTest(unittest.TestCase):
    def test_auth_and_adding_and_removing_workers(self):
        with EngineSim("--speedup", "1000", "--kv-events-port", "0", "--replay-port", "0") as a, \
                EngineSim("--speedup", "1000", "--kv-events-port", "0", "--replay-port", "0") as b, \
                Router(router_yaml([("a", a, True)])) as router:
            self.assertEqual(router.request("GET", "/admin/workers")[0], 401)
            self.assertEqual(router.request("GET", "/admin/workers",
                                            headers={"Authorization": "Bearer wrong"})[0], 401)
            added = {"model": MODEL, "name": "b", "url": f"http://{b.ready['http']}",
                     "kv_events": b.ready["kv_events"], "replay": b.ready["replay"]}
            status, w = router.admin("POST", "/admin/workers", added)
            self.assertEqual(status, 201, w)
            self.assertEqual((w["name"], w["mode"]), ("b", "events"))
            self.assertEqual(router.admin("POST", "/admin/workers", added)[0], 409)
            self.assertEqual(router.admin("POST", "/admin/workers", dict(added, name="c",
                                                                        url="ftp://x"))[0], 400)
            self.assertEqual(router.admin("POST", "/admin/workers", dict(added, model="m2"))[0], 404)
            self.assertEqual(sorted(router.workers()), ["a", "b"])
            seen = set()
            for _ in range(6):
                seen.add(complete(router)[2])
            self.assertEqual(seen, {"a", "b"})
            router.wait_for(lambda: router.workers()["b"]["cached_blocks"] > 0, "b's events")
            status, body = router.admin("DELETE", "/admin/workers/b")
            self.assertEqual(status, 200, body)
            self.assertEqual(sorted(router.workers()), ["a"])
            self.assertEqual(router.admin("DELETE", "/admin/workers/b")[0], 404)
            for _ in range(3):
                self.assertEqual(complete(router)[2], "a")
            router.assert_idle()

    def test_admin_and_debug_are_off_without_a_token(self):
        with EngineSim("--speedup", "1000") as a, Router(router_yaml([("a", a, False)],
                                                                     token="")) as router:
            self.assertEqual(router.request("GET", "/admin/workers", headers=AUTH)[0], 403)
            self.assertEqual(router.request("POST", "/debug/route", json.dumps(
                {"model": MODEL, "prompt": "x"}), headers=AUTH)[0], 403)


class ConfigTest(unittest.TestCase):
    def test_invalid_config_exits_2_naming_the_field(self):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write("pools:\n  - name: m\n    tokenizer: bytes\n    block_size: -3\n")
            f.flush()
            p = subprocess.run([live.KVROUTER, "serve", "--config", f.name], capture_output=True,
                               timeout=DEADLINE_S)
            self.assertEqual(p.returncode, 2)
            self.assertIn(b"pools[0].block_size", p.stderr)
            self.assertEqual(p.stdout, b"")


if __name__ == "__main__":
    live.main()
