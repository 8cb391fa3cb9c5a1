#!/usr/bin/python3
"""End to end with what users run: the official OpenAI Node client against `kvrouter serve`,
and two gateways in front of the same engine-sims. Real processes on 127.0.0.1 (port 0),
every process reaped on every path, every wait bounded.

  tests/end_to_end_test.py --kvrouter build/release/kvrouter [unittest args]
"""
import os
import subprocess
import sys
import unittest

import live
from live import DEADLINE_S, EngineSim
from gateway_live_test import AUTH, MODEL, Router, chat, router_yaml, unique_text

ROOT = os.path.dirname(live.HERE)
OPENAI_PACKAGE = os.path.join(ROOT, "third_party", "npm", "openai")


def start_fleet(n):
    """n engine-sims with KV events; the caller reaps them (also when this raises)."""
    sims = []
    try:
        for _ in range(n):
            sims.append(EngineSim("--speedup", "1000", "--kv-events-port", "0",
                                  "--replay-port", "0").__enter__())
    except BaseException:
        for s in sims:
            s.__exit__(None, None, None)
        raise
    return sims


class OpenAIClientTest(unittest.TestCase):
    def test_official_node_client(self):
        self.assertTrue(os.path.isfile(os.path.join(OPENAI_PACKAGE, "package.json")),
                        "the openai npm package is missing: run scripts/setup.sh")
        sims = start_fleet(2)
        try:
            workers = [("w0", sims[0], True), ("w1", sims[1], True)]
            with Router(router_yaml(workers)) as router:
                node = subprocess.run(
                    ["node", os.path.join(live.HERE, "openai_client_test.js"), OPENAI_PACKAGE,
                     f"http://{router.ready['http']}/v1", MODEL],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=4 * DEADLINE_S,
                    preexec_fn=live._die_with_parent)
                out = node.stdout.decode(errors="replace")
                sys.stderr.write(out)
                self.assertEqual(node.returncode, 0, out)
                self.assertIn("8 passed, 0 failed", out)
                router.assert_idle()
        finally:
            for s in sims:
                s.__exit__(None, None, None)


class TwoGatewaysTest(unittest.TestCase):
    """Both gateways subscribe to every engine, so with no broker between them their indexes
    converge: what one routed, the other sees cached on the same worker."""

    def test_two_gateways_agree_on_cached_prefixes(self):
        sims = start_fleet(3)
        try:
            workers = [(f"w{i}", s, True) for i, s in enumerate(sims)]
            with Router(router_yaml(workers)) as a, Router(router_yaml(workers)) as b:
                bodies = [chat(unique_text(200 + 40 * i)) for i in range(6)]
                for i, body in enumerate(bodies):  # alternate the gateway that serves
                    status, _ = (a if i % 2 == 0 else b).post("/v1/chat/completions", body)
                    self.assertEqual(status, 200)

                def overlaps(router, body):
                    status, d = router.post("/debug/route", body, headers=AUTH)
                    assert status == 200, d
                    return {c["worker"]: c["device_blocks"] for c in d["candidates"]}

                for body in bodies:
                    a.wait_for(lambda: overlaps(a, body) == overlaps(b, body)
                               and max(overlaps(a, body).values()) > 0,
                               "the two gateways' indexes to agree")
                    # The worker that served it holds all of it; the others at most the
                    # first block, which the chat template makes common to every prompt.
                    held = sorted(overlaps(a, body).values())
                    self.assertGreater(held[-1], 1)
                    self.assertLessEqual(held[-2], 1)
                a.assert_idle()
                b.assert_idle()
        finally:
            for s in sims:
                s.__exit__(None, None, None)


if __name__ == "__main__":
    live.main()
