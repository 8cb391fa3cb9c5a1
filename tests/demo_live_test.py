#!/usr/bin/python3
"""Live tests of `kvrouter demo`: it starts engine-sims and gateways as its own children, replays
the bundled trace under each policy and reports; no child may survive it, whether it finishes,
is interrupted, or a child fails to start. Children are found by an environment marker they
inherit. Waits are bounded, never sleeps.

  tests/demo_live_test.py --kvrouter build/release/kvrouter [unittest args]
"""
import json
import os
import select
import signal
import subprocess
import tempfile
import unittest
import uuid

import live
from live import DEADLINE_S

MARK = "KVR_DEMO_TEST_MARK"


def marked(mark):
    """Pids of live processes whose environment carries MARK=mark (zombies have none)."""
    needle = f"{MARK}={mark}".encode()
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


class DemoTest(unittest.TestCase):
    def start(self, *flags):
        self.mark = uuid.uuid4().hex
        env = dict(os.environ, **{MARK: self.mark})
        return subprocess.Popen([live.KVROUTER, "demo", *flags], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, preexec_fn=live._die_with_parent)

    def finish(self, proc, timeout=DEADLINE_S * 3):
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        self.assertEqual(marked(self.mark), [], "a child outlived the demo")
        return out.decode(), err.decode()

    def test_small_demo_compares_the_policies(self):
        with tempfile.TemporaryDirectory() as d:
            out_json = os.path.join(d, "demo.json")
            html = os.path.join(d, "demo.html")
            proc = self.start("--workers", "2", "--requests", "20", "--json", out_json,
                              "--html", html)
            out, err = self.finish(proc)
            self.assertEqual(proc.returncode, 0, err[-3000:])
            with open(out_json) as f:
                r = json.load(f)
            with open(html) as f:
                page = f.read()
        self.assertEqual(list(r["policies"]), ["round_robin", "dynamo", "kvrouter"])
        for name, p in r["policies"].items():
            self.assertEqual((p["requests"], p["completed"], p["failed"]), (20, 20, 0), name)
            self.assertEqual(set(p["ttft_ms"]), {"mean", "p50", "p90", "p99"})
            self.assertGreater(p["ttft_ms"]["p50"], 0)
            self.assertGreater(p["throughput_tok_s"], 0)
            self.assertEqual(p["prefill_tokens"], p["prompt_tokens"] - p["cached_tokens"])
            self.assertEqual(set(p["workers"]) <= {"w0", "w1"}, True)
            self.assertEqual(len(p["ttft_samples_ms"]), 20)
            self.assertEqual(p["held_back"], 0, name)
            self.assertGreater(p["gateway_peak_rss_mib"], 1, name)
        self.assertEqual(r["workload"]["requests"], 20)
        self.assertFalse(r["interrupted"])
        self.assertEqual(page.count("<svg"), 3)
        for name in ("round_robin", "dynamo", "kvrouter", "TTFT p99 ms", "hit rate %"):
            self.assertIn(name, out)
        self.assertIn("metrics_interval_ms: 50", out)  # llm-d's refresh, the gateway's poll

    def test_requests_the_client_held_back_are_reported(self):
        # Four requests due at once, one in flight at a time: three wait for the slot.
        with tempfile.TemporaryDirectory() as d:
            out_json = os.path.join(d, "demo.json")
            proc = self.start("--workers", "1", "--requests", "4", "--rate-scale", "1e6",
                              "--policies", "kvrouter", "--concurrency-limit", "1",
                              "--json", out_json)
            out, err = self.finish(proc)
            self.assertEqual(proc.returncode, 0, err[-3000:])
            with open(out_json) as f:
                r = json.load(f)
        self.assertEqual(r["policies"]["kvrouter"]["held_back"], 3)
        self.assertIn("demo: kvrouter: 3 requests waited for a free slot", out)
        self.assertIn("raise --concurrency-limit", out)

    def test_engine_speeds_are_cycled_over_the_engines(self):
        # Three engines at 1, 0.5, 1, as the engines themselves report in their readiness lines.
        proc = self.start("--workers", "3", "--requests", "3", "--rate-scale", "1e6",
                          "--policies", "kvrouter", "--speeds", "1,0.5")
        out, err = self.finish(proc)
        self.assertEqual(proc.returncode, 0, err[-3000:])
        self.assertIn("demo: kvrouter: engine speeds 1.0,0.5,1.0", err)
        self.assertIn("speeds: 1,0.5", out)
        proc = self.start("--speeds", "1,0")
        out, err = self.finish(proc)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("--speeds: bad factor '0'", err)

    def test_requests_longer_than_the_engines_context_fail_and_are_counted(self):
        # The trace's first four requests need 7,258, 7,812, 8,030 and 2,606 tokens of context
        # (prompt and answer): at 7,500 the engine-sims answer the middle two HTTP 400.
        with tempfile.TemporaryDirectory() as d:
            out_json = os.path.join(d, "demo.json")
            proc = self.start("--workers", "1", "--requests", "4", "--rate-scale", "1e6",
                              "--policies", "kvrouter", "--max-model-len", "7500",
                              "--json", out_json)
            out, err = self.finish(proc)
            self.assertEqual(proc.returncode, 1, err[-3000:])
            with open(out_json) as f:
                r = json.load(f)
        p = r["policies"]["kvrouter"]
        self.assertEqual((p["requests"], p["completed"], p["failed"]), (4, 2, 2))

    def test_ctrl_c_stops_and_reaps_every_child(self):
        proc = self.start("--workers", "2", "--requests", "400", "--rate-scale", "1")
        try:
            # Wait until the first replay is under way (its progress lines), then interrupt.
            deadline_lines = 200
            for _ in range(deadline_lines):
                ready, _, _ = select.select([proc.stderr], [], [], DEADLINE_S)
                self.assertTrue(ready, "no progress")
                line = proc.stderr.readline()
                self.assertTrue(line, "the demo ended early")
                if b"sent" in line:
                    break
            self.assertGreater(len(marked(self.mark)), 0)
            proc.send_signal(signal.SIGINT)
        finally:
            out, err = self.finish(proc, timeout=DEADLINE_S)
        self.assertEqual(proc.returncode, 130, err[-3000:])
        self.assertIn("(interrupted)", out)

    def test_a_child_that_cannot_start_fails_the_demo_loudly(self):
        with tempfile.TemporaryDirectory() as empty:  # a tokenizer folder without a tokenizer
            proc = self.start("--workers", "2", "--requests", "5", "--tokenizer", empty)
            out, err = self.finish(proc)
        self.assertEqual(proc.returncode, 1, err[-3000:])
        self.assertIn("FAILED", err)
        self.assertIn("engine-sim", err)


if __name__ == "__main__":
    live.main()
