"""The live tests' harness: kvrouter processes on 127.0.0.1 (port 0) that are always reaped,
HTTP helpers (the Python standard library), SSE framing checks, the ZeroMQ replay protocol and
an engine's prefix cache rebuilt from its KV events. Nothing here sleeps to wait: every wait is
on a line, a response or a condition, each bounded by DEADLINE_S."""
import ctypes
import http.client
import json
import os
import select
import signal
import subprocess
import sys
import tempfile

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "tools"))
import sub_vllm_events  # noqa: E402  (the project's reference decoder, both encodings)

KVROUTER = None
END_SEQ = b"\xff" * 8
BLOCK = 16
DEADLINE_S = 60  # upper bound on any single wait


def _die_with_parent():
    """In the child, before exec: SIGKILL when the test process dies, however it dies (Linux
    PR_SET_PDEATHSIG), so no server outlives a killed test run."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1


class Server:
    """One kvrouter server process (`kvrouter SUBCOMMAND ...`); a context manager that always
    reaps it. Ready once it prints its JSON readiness line on stdout."""

    def __init__(self, subcommand, *flags):
        self.subcommand = subcommand
        self.flags = list(flags)
        self.proc = None

    def __enter__(self):
        args = [KVROUTER, self.subcommand, *self.flags]
        # stderr goes to a file: a pipe nobody reads could fill up and block the process.
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.stderr,
                                     preexec_fn=_die_with_parent)
        ready, _, _ = select.select([self.proc.stdout], [], [], DEADLINE_S)
        if not ready:
            self.kill()
            raise AssertionError(f"{self.subcommand} printed no readiness line")
        line = self.proc.stdout.readline()
        if not line:
            log = self.log()
            self.kill()
            raise AssertionError(f"{self.subcommand} exited before ready: {log}")
        self.ready = json.loads(line)
        host, port = self.ready["http"].rsplit(":", 1)
        self.host, self.port = host, int(port)
        return self

    def __exit__(self, exc_type, *exc):
        stopped_here = self.proc.poll() is None
        if stopped_here:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(DEADLINE_S)
            except subprocess.TimeoutExpired:
                pass
        code = self.proc.poll()
        log = self.log()
        self.kill()
        # A clean SIGTERM exit is part of every test (and where sanitizers report leaks).
        if stopped_here and code != 0 and exc_type is None:
            raise AssertionError(f"{self.subcommand} exited {code} on SIGTERM: {log[-3000:]}")
        return False

    def log(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.stderr.close()

    def conn(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=DEADLINE_S)

    def request(self, method, path, body=None, headers=None, response_headers=None):
        """(status, content type, body text); `response_headers`, a dict, gets them all."""
        c = self.conn()
        try:
            data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
            h = {"Content-Type": "application/json"} if data is not None else {}
            h.update(headers or {})
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            if response_headers is not None:
                response_headers.update({k.lower(): v for k, v in r.getheaders()})
            return r.status, r.getheader("Content-Type"), r.read().decode()
        finally:
            c.close()

    def post(self, path, body, headers=None, response_headers=None):
        status, _, text = self.request("POST", path, body, headers, response_headers)
        return status, (json.loads(text) if text.startswith("{") else text)

    def metrics(self):
        status, _, text = self.request("GET", "/metrics")
        assert status == 200
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        return text, values


class EngineSim(Server):
    """`kvrouter engine-sim` on port 0."""

    def __init__(self, *flags):
        super().__init__("engine-sim", "--port", "0", "--log-level", "warn", *flags)


def metric(values, name, **labels):
    total = 0.0
    for key, v in values.items():
        base = key.split("{", 1)[0]
        if base == name and all(f'{k}="{val}"' in key for k, val in labels.items()):
            total += v
    return total


def sse_events(raw):
    """Splits an SSE body into its data payloads, checking vLLM's framing on the way."""
    assert raw.endswith("\n\n"), raw[-50:]
    events = raw.split("\n\n")[:-1]
    for e in events:
        assert e.startswith("data: "), e
    return [e[len("data: "):] for e in events]


def stream(sim, path, body):
    c = sim.conn()
    try:
        c.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        assert r.status == 200, r.read()
        assert r.getheader("Content-Type").startswith("text/event-stream")
        return sse_events(r.read().decode())
    finally:
        c.close()


def replay(endpoint, start=0):
    """Every buffered batch from `start`, through the DEALER protocol, up to the end marker."""
    ctx = zmq.Context.instance()
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(endpoint)
    try:
        dealer.send_multipart([b"", start.to_bytes(8, "big")])
        batches = []
        while True:
            assert dealer.poll(DEADLINE_S * 1000), "no replay answer"
            empty, seq, payload = dealer.recv_multipart()
            assert empty == b""
            if seq == END_SEQ:
                assert payload == b""
                return batches
            batches.append((int.from_bytes(seq, "big"), payload))
    finally:
        dealer.close(linger=0)


def as_u64(h):
    """A wire block hash as the u64 vLLM would have sent as an int (bytes: the last 8, BE)."""
    return int.from_bytes(h[-8:], "big") if isinstance(h, bytes) else h & (2**64 - 1)


class Cache:
    """The engine's prefix cache rebuilt from its KV events alone (Python decoding)."""

    def __init__(self):
        self.blocks = {}  # engine hash -> (parent hash, tokens)
        self.by_content = {}  # (parent hash, tokens) -> engine hash

    def apply(self, payload):
        _, events, _ = sub_vllm_events.decode_batch(payload)
        for e in events:
            if e["type"] == "BlockStored":
                parent, toks = e["parent_block_hash"], e["token_ids"]
                bs = e["block_size"]
                for i, h in enumerate(e["block_hashes"]):
                    key = (parent, tuple(toks[i * bs:(i + 1) * bs]))
                    self.blocks[h] = key
                    self.by_content[key] = h
                    parent = h
            elif e["type"] == "BlockRemoved":
                for h in e["block_hashes"]:
                    key = self.blocks.pop(h, None)
                    if key is not None and self.by_content.get(key) == h:
                        del self.by_content[key]
            elif e["type"] == "AllBlocksCleared":
                self.blocks.clear()
                self.by_content.clear()

    def predicted_hit(self, ids):
        """vLLM's hit: leading cached full blocks, at most (len-1)//block tokens' worth."""
        parent, hit = None, 0
        for i in range((len(ids) - 1) // BLOCK):
            h = self.by_content.get((parent, tuple(ids[i * BLOCK:(i + 1) * BLOCK])))
            if h is None:
                break
            parent, hit = h, hit + BLOCK
        return hit


def main():
    """A live test file's entry point: `FILE --kvrouter PATH [unittest args]`."""
    import argparse
    import unittest
    ap = argparse.ArgumentParser()
    ap.add_argument("--kvrouter", required=True)
    args, rest = ap.parse_known_args()
    global KVROUTER
    KVROUTER = os.path.abspath(args.kvrouter)
    unittest.main(module="__main__", argv=[sys.argv[0], "-v", *rest])
