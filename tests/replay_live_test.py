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

    def __init__(self, sims):
        self.dir = tempfile.TemporaryDirectory()
        lines = ["listen: 127.0.0.1:0", "pools:", f"  - name: {MODEL}",
                 f"    tokenizer: {os.path.abspath(TOKENIZER)}", "    block_size: 16",
                 "    workers:"]
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
        self.assertIn("30 completed", run.stdout.decode())

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


if __name__ == "__main__":
    live.main()
