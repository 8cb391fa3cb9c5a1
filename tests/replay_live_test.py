#!/usr/bin/python3
"""Live tests of `kvrouter replay`: the gateway (`kvrouter serve`) in front of two engine-sims
serving a real tokenizer (Llama 3's, so the trace's synthetic token ids are all in the
vocabulary), the bundled conversation trace replayed against it. Real processes on 127.0.0.1
(port 0), every one reaped on every path; waits are bounded, never sleeps.

  tests/replay_live_test.py --kvrouter build/release/kvrouter [unittest args]
"""
import json
import os
import select
import signal
import subprocess
import tempfile
import time
import unittest

import live
from live import DEADLINE_S, EngineSim

MODEL = "llama3"
TOKENIZER = os.path.join(live.HERE, "..", "third_party", "npm", "@lenml", "tokenizer-llama3_1",
                         "models")


class Router(live.Server):
    """`kvrouter serve` over the given engine-sims (with their KV events)."""

    def __init__(self, sims, policy="kvrouter"):
        self.dir = tempfile.TemporaryDirectory()
        lines = ["listen: 127.0.0.1:0", "health: {interval_ms: 100, timeout_ms: 1000, failures: 1}",
                 "pools:", f"  - name: {MODEL}",
                 f"    tokenizer: {os.path.abspath(TOKENIZER)}", "    block_size: 16",
                 f"    policy: {policy}", "    workers:"]
        for i, sim in enumerate(sims):
            lines += [f"      - name: w{i}", f"        url: http://{sim.ready['http']}",
                      f"        kv_events: {sim.ready['kv_events']}",
                      f"        replay: {sim.ready['replay']}"]
        path = os.path.join(self.dir.name, "router.yaml")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        super().__init__("serve", "--config", path, "--log-level", "warn")

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self.dir.cleanup()


class ReplayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        assert os.path.isdir(TOKENIZER), "run scripts/setup.sh (fetches the tokenizers)"
        cls.sims, cls.router = [], None
        try:  # tearDownClass does not run when setUpClass fails: reap what started
            for _ in range(2):
                cls.sims.append(EngineSim("--tokenizer", TOKENIZER, "--model", MODEL,
                                          "--speedup", "50", "--kv-events-port", "0",
                                          "--replay-port", "0").__enter__())
            cls.router = Router(cls.sims).__enter__()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.router is not None:
            cls.router.__exit__(None, None, None)
        for s in cls.sims:
            s.__exit__(None, None, None)

    def replay_args(self, out, *flags):
        return [live.KVROUTER, "replay", "--target", f"http://{self.router.host}:{self.router.port}",
                "--model", MODEL, "--json", out, *flags]

    def test_trace_replay_measures_every_stream(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "replay.json")
            run = subprocess.run(self.replay_args(out, "--requests", "30", "--rate-scale", "20"),
                                 capture_output=True, timeout=DEADLINE_S,
                                 preexec_fn=live._die_with_parent)
            self.assertEqual(run.returncode, 0, run.stderr.decode()[-3000:])
            with open(out) as f:
                r = json.load(f)
        for key in ("ttft_ms", "itl_ms", "e2e_ms"):
            self.assertEqual(set(r[key]), {"mean", "p50", "p90", "p99"})
            self.assertGreater(r[key]["p50"], 0)
        self.assertEqual((r["requests"], r["completed"]), (30, 30))
        self.assertEqual((r["failed"], r["failed_mid_stream"], r["cancelled"]), (0, 0, 0))
        self.assertEqual(r["errors"], {})
        self.assertFalse(r["interrupted"])
        # The conversation trace shares prefixes: engines report cached prompt tokens.
        self.assertGreater(r["hit_rate"], 0)
        self.assertEqual(r["prefill_tokens"], r["prompt_tokens"] - r["cached_tokens"])
        self.assertGreater(r["throughput_tok_s"], 0)
        self.assertEqual(set(r["workers"]), {"w0", "w1"})
        self.assertEqual(sum(r["workers"].values()), 30)
        self.assertEqual(len(r["ttft_samples_ms"]), 30)
        self.assertEqual(r["held_back"], 0)
        self.assertIn("30 completed", run.stdout.decode())

    def test_requests_held_back_by_the_concurrency_limit_are_counted(self):
        # All six fall due within microseconds, one may be in flight: each of the five after the
        # first finds the slot taken when it is due.
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "replay.json")
            run = subprocess.run(self.replay_args(out, "--requests", "6", "--rate-scale", "1e6",
                                                  "--concurrency-limit", "1"),
                                 capture_output=True, timeout=DEADLINE_S,
                                 preexec_fn=live._die_with_parent)
            self.assertEqual(run.returncode, 0, run.stderr.decode()[-3000:])
            with open(out) as f:
                r = json.load(f)
        self.assertEqual((r["completed"], r["held_back"]), (6, 5))
        self.assertGreater(r["max_send_lag_ms"], 0)
        self.assertIn("5 requests waited for a free slot", run.stdout.decode())

    def test_an_unreachable_target_fails_every_request(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "replay.json")
            run = subprocess.run([live.KVROUTER, "replay", "--target", "http://127.0.0.1:1",
                                  "--model", MODEL, "--requests", "5", "--json", out],
                                 capture_output=True, timeout=DEADLINE_S,
                                 preexec_fn=live._die_with_parent)
            self.assertEqual(run.returncode, 1, run.stderr.decode()[-3000:])
            with open(out) as f:
                r = json.load(f)
        self.assertEqual((r["requests"], r["failed"], r["completed"]), (5, 5, 0))
        self.assertEqual(sum(r["errors"].values()), 5)

    def test_sigint_stops_early_and_still_reports(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "replay.json")
            proc = subprocess.Popen(self.replay_args(out, "--rate-scale", "4"),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    preexec_fn=live._die_with_parent)
            try:
                # The first progress line (after ~1 s) says requests are under way.
                ready, _, _ = select.select([proc.stderr], [], [], DEADLINE_S)
                self.assertTrue(ready, "no progress line")
                self.assertIn(b"sent", proc.stderr.readline())
                proc.send_signal(signal.SIGINT)
                signalled = time.monotonic()
                stdout, err = proc.communicate(timeout=DEADLINE_S)
                stopped_in = time.monotonic() - signalled
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            self.assertEqual(proc.returncode, 130, err.decode()[-3000:])
            self.assertLess(stopped_in, 5)
            with open(out) as f:
                r = json.load(f)
        self.assertTrue(r["interrupted"])
        self.assertGreater(r["requests"], 0)
        self.assertGreater(r["not_sent"], 0)
        self.assertEqual(r["completed"] + r["failed"] + r["cancelled"], r["requests"])
        self.assertEqual(r["failed"], 0, r["errors"])
        self.assertIn("(interrupted)", stdout.decode())


class EngineKilledMidReplayTest(unittest.TestCase):
    """An engine killed while a replay runs through the gateway: the requests it had not
    started streaming are retried on the other engine, so the replay's only failures are the
    streams it had begun."""

    def test_only_streams_under_way_fail(self):
        assert os.path.isdir(TOKENIZER), "run scripts/setup.sh (fetches the tokenizers)"
        flags = ("--tokenizer", TOKENIZER, "--model", MODEL, "--kv-events-port", "0",
                 "--replay-port", "0")
        # The victim runs at a twentieth of the engine model's speed, so at the kill it holds
        # requests still prefilling and, usually, streams under way (it is killed once it has
        # generated a token); round-robin sends it every other request.
        with EngineSim(*flags, "--speed", "0.05") as victim, \
                EngineSim(*flags, "--speedup", "50") as spare, \
                Router([victim, spare], policy="round_robin") as router, \
                tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "replay.json")
            replay = [live.KVROUTER, "replay", "--target", f"http://{router.host}:{router.port}",
                      "--model", MODEL, "--json", out, "--requests", "40", "--rate-scale", "20"]
            proc = subprocess.Popen(replay, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    preexec_fn=live._die_with_parent)
            try:
                deadline = time.monotonic() + DEADLINE_S
                while True:  # 3 requests on the victim, which has begun to generate
                    _, values = router.metrics()
                    on_victim = live.metric(values, "kvrouter_worker_running_requests",
                                            worker="w0")
                    if on_victim >= 3 and live.metric(victim.metrics()[1],
                                                      "vllm:generation_tokens_total") > 0:
                        break
                    self.assertLess(time.monotonic(), deadline, "requests on the victim")
                    self.assertIsNone(proc.poll(), "the replay ended before the kill")
                    time.sleep(0.02)
                victim.proc.kill()
                _, err = proc.communicate(timeout=DEADLINE_S)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            with open(out) as f:
                r = json.load(f)
            # A failed request, mid-stream too, makes the replay exit 1.
            self.assertEqual(proc.returncode, 1 if r["failed"] else 0, err.decode()[-3000:])
            _, values = router.metrics()
        retries = live.metric(values, "kvrouter_retries_total")
        self.assertEqual(r["requests"], 40)
        # Every failure is a stream under way (`failed` counts them too).
        self.assertEqual(r["failed"], r["failed_mid_stream"], r["errors"])
        self.assertEqual(r["cancelled"], 0)
        self.assertEqual(r["completed"] + r["failed_mid_stream"], 40)
        # What the victim held at the kill either failed mid-stream or went to the spare.
        self.assertLessEqual(r["failed_mid_stream"], on_victim)
        self.assertGreaterEqual(retries + r["failed_mid_stream"], on_victim)
        self.assertEqual(set(r["workers"]) - {"w0"}, {"w1"})
        print(f"\nkilled with {on_victim:.0f} requests on it: {r['failed_mid_stream']} failed "
              f"mid-stream, {retries:.0f} retried, {r['completed']} completed", flush=True)


if __name__ == "__main__":
    live.main()
