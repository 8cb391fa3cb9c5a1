#!/usr/bin/python3
"""Live: the router's model of a llama.cpp server's slots against a real `llama-server`.

One llama-server with two slots and no host prompt cache (`-np 2 --cache-ram 0`); the router
learns the slot count from its /props. Three conversations interleave, so that the server evicts
each conversation's prefix from its slots in turn: for every turn the router's prediction of the
cached tokens (its `kvrouter_cached_tokens_total{source="router"}` counter) matches what
llama.cpp reports (`usage.prompt_tokens_details.cached_tokens`) — no hit predicted that the
server does not have, every hit it has predicted. Then a request sent to the server behind the
router's back takes a slot the model believed held a conversation: the next turn of that
conversation is predicted wrongly once, the report corrects the model
(`kvrouter_slot_model_corrections_total`), and the turns after it are predicted right again.

Every process listens on 127.0.0.1 port 0 and is reaped on every path; waits are on readiness
lines, responses and conditions, each bounded. Exits 77 (skipped) without the llama.cpp build.

  tests/llama_slots_test.py --kvrouter build/release/kvrouter [unittest args]
"""
import os
import sys
import unittest

import live
from live import metric
from gateway_live_test import Router
from llama_server_test import LlamaServer, long_prompt
from llama_gateway_test import (LLAMA3, LLAMA3_GGUF, LLAMA3_TOK, SERVER, chat_body,
                                router_yaml)

BLOCK = 16
# Enough words a turn that the chat template's shared opening (system header and dates, ~30
# tokens) stays under llama.cpp's 10 % slot-similarity threshold: a conversation that is not in
# a slot goes to the least recently used one, as the model assumes.
WORDS = 300


def slot_pool(server):
    return "\n".join([f"  - name: {LLAMA3}", f"    tokenizer: {LLAMA3_TOK}",
                      f"    block_size: {BLOCK}", "    workers:", "      - name: s",
                      f"        url: http://127.0.0.1:{server.port}", "        engine: llama.cpp",
                      "        prompt_cache_tokens: 0"])


class SlotModelTest(unittest.TestCase):
    def turn(self, router, messages):
        """Sends the conversation; returns (router's predicted cached tokens, llama.cpp's)."""
        _, before = router.metrics()
        predicted_before = metric(before, "kvrouter_cached_tokens_total", source="router")
        answered = metric(before, "kvrouter_requests_total")
        status, r = router.post("/v1/chat/completions", chat_body(LLAMA3, messages))
        self.assertEqual(status, 200, r)
        messages.append({"role": "assistant", "content": r["choices"][0]["message"]["content"]})
        # The router records a request just after answering it.
        router.wait_for(lambda: metric(router.metrics()[1], "kvrouter_requests_total") > answered,
                        "the request's record")
        _, after = router.metrics()
        predicted = metric(after, "kvrouter_cached_tokens_total", source="router") - predicted_before
        usage = r["usage"]
        return int(predicted), usage["prompt_tokens_details"]["cached_tokens"], usage["prompt_tokens"]

    def check(self, label, predicted, reported, hit):
        print(f"{label}: router predicted {predicted}, llama.cpp reported {reported}",
              file=sys.stderr)
        # Never a hit the server does not have: the router counts whole blocks of the slot's
        # prompt, the server every token it shares, so the router is at most a block short...
        self.assertLessEqual(predicted, reported, label)
        if hit:
            # ...plus, after a hit, what the server generated when the next turn repeats it.
            self.assertGreater(reported, WORDS, label)
            self.assertLess(reported - predicted, 4 * BLOCK, label)
        else:
            # A miss shares only the chat template's opening with the slot's prompt.
            self.assertLess(reported, 4 * BLOCK, label)
            self.assertLess(reported - predicted, BLOCK, label)

    def test_prediction_follows_the_slots_and_learns_from_reports(self):
        with LlamaServer(SERVER, LLAMA3_GGUF, "-np", "2", "-c", "16384", "--cache-ram", "0") as srv, \
                Router(router_yaml(slot_pool(srv))) as router:
            router.wait_for(lambda: router.workers()["s"]["tokenizer"] == "agrees" and
                            router.workers()["s"]["slot_model"] is not None,
                            "the tokenizer check and the slot count from /props")
            self.assertEqual(router.workers()["s"]["slot_model"]["slots"], 2)
            convs = {c: [{"role": "system", "content": f"Conversation {c}."}] for c in "ABC"}
            turns = {c: 0 for c in "ABC"}

            def say(c, hit):
                turns[c] += 1
                convs[c].append({"role": "user",
                                 "content": long_prompt(ord(c) * 10 + turns[c], WORDS)})
                predicted, reported, prompt = self.turn(router, convs[c])
                self.check(f"{c}{turns[c]} ({prompt} tokens)", predicted, reported, hit)
                return predicted, reported

            # Two slots, three conversations: A and C find their slot once each; B's prefix is
            # evicted by C, A's by B, B's again by A.
            for c, hit in [("A", False), ("B", False), ("A", True), ("C", False), ("B", False),
                           ("C", True), ("A", False), ("B", False)]:
                say(c, hit)
            _, values = router.metrics()
            self.assertEqual(metric(values, "kvrouter_slot_model_corrections_total"), 0)

            # Behind the router's back: the server gives this request its least recently used
            # slot, A's. The router still believes A is there: one misprediction, corrected.
            srv.post("/v1/chat/completions", chat_body(LLAMA3, [
                {"role": "user", "content": long_prompt(999, WORDS)}]))
            turns["A"] += 1
            convs["A"].append({"role": "user", "content": long_prompt(ord("A") * 10 + 9, WORDS)})
            predicted, reported, _ = self.turn(router, convs["A"])
            print(f"A{turns['A']} after the direct request: router predicted {predicted}, "
                  f"llama.cpp reported {reported}", file=sys.stderr)
            self.assertGreater(predicted, reported + BLOCK)
            self.assertLess(reported, 4 * BLOCK)
            _, values = router.metrics()
            self.assertEqual(metric(values, "kvrouter_slot_model_corrections_total", worker="s"), 1)
            # Corrected: B's prefix (evicted by A's turn on the server) is no longer predicted,
            # and A's is where the server put it.
            say("B", False)
            say("A", True)
            _, values = router.metrics()
            self.assertEqual(metric(values, "kvrouter_slot_model_corrections_total"), 1)
            model = router.workers()["s"]["slot_model"]
            self.assertEqual(model["corrections"], 1)
            self.assertEqual(len(model["slot"]), 2)
            self.assertTrue(all(s["tokens"] > 0 and not s["busy"] for s in model["slot"]), model)
            router.assert_idle()


if __name__ == "__main__":
    missing = [p for p in (SERVER, LLAMA3_GGUF, LLAMA3_TOK) if not os.path.exists(p)]
    if missing:
        print(f"skipped: {', '.join(missing)} missing (run scripts/setup_llama.sh)")
        sys.exit(77)
    live.main()
