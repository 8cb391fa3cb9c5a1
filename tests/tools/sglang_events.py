#!/usr/bin/python3
"""SGLang-format KV-cache events, as SGLang's scheduler publishes them, for the live tests.

Written from SGLang's python/sglang/srt/disaggregation/kv_events.py (EventBatch, BlockStored,
BlockRemoved) and mem_cache/utils.py (get_hash_str, hash_str_to_int64); see wire.md §2:
  * one BlockStored per page: block_hashes has one entry, block_size = the page's token count,
    parent_block_hash = the previous page's hash (None under the root);
  * a page hash is sha256(previous page's raw digest, if any || each token as u32 little-endian),
    sent as its first 8 bytes read big-endian as a SIGNED int64 (negative values are common);
  * EventBatch is array_like: [ts, events, attn_dp_rank]; events are tagged arrays
    ["BlockStored", [h], parent, tokens, block_size, lora_id, medium] before SGLang PR #37482
    and tagged maps {"type": "BlockStored", ...} after it;
  * the transport is vLLM's: PUB frames [topic, seq as 8-byte big-endian, msgpack(batch)].

The publisher is an XPUB socket, so a test can wait for the router's subscription to arrive
instead of sleeping before the first batch (a PUB drops messages sent before that).

Debian packages: python3-zmq python3-msgpack.
"""
import hashlib
import time

import msgpack
import zmq


def page_digests(tokens, page_size):
    """Raw sha256 digests of each full page, chained as SGLang's get_hash_str does."""
    digests, prior = [], b""
    for start in range(0, len(tokens) - page_size + 1, page_size):
        h = hashlib.sha256(prior)
        for t in tokens[start:start + page_size]:
            h.update(int(t).to_bytes(4, "little"))
        prior = h.digest()
        digests.append(prior)
    return digests


def to_int64(digest):
    """hash_str_to_int64: the first 16 hex characters as a signed 64-bit integer."""
    return int.from_bytes(digest[:8], "big", signed=True)


def page_hashes(tokens, page_size):
    return [to_int64(d) for d in page_digests(tokens, page_size)]


def stored_events(tokens, page_size, as_map, pages=None, medium="GPU"):
    """One BlockStored per full page of `tokens` in the range `pages` (default: all), each
    chained to the page before it, as SGLang announces a radix node's pages."""
    hashes = page_hashes(tokens, page_size)
    events = []
    for i in pages if pages is not None else range(len(hashes)):
        parent = hashes[i - 1] if i > 0 else None
        page = list(tokens[i * page_size:(i + 1) * page_size])
        if as_map:
            events.append({"type": "BlockStored", "block_hashes": [hashes[i]],
                           "parent_block_hash": parent, "token_ids": page,
                           "block_size": page_size, "lora_id": None, "medium": medium})
        else:
            events.append(["BlockStored", [hashes[i]], parent, page, page_size, None, medium])
    return events


def removed_event(hashes, as_map, medium="GPU"):
    if as_map:
        return {"type": "BlockRemoved", "block_hashes": list(hashes), "medium": medium}
    return ["BlockRemoved", list(hashes), medium]


class Publisher:
    """An SGLang KV-event publisher bound at `endpoint` (tcp://127.0.0.1:PORT)."""

    def __init__(self, endpoint, topic=b""):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(endpoint)
        self.topic = topic
        self.seq = 0

    def wait_for_subscriber(self, timeout_s):
        """Blocks until a SUB's subscription message arrives (or raises after timeout_s)."""
        if not self.sock.poll(int(timeout_s * 1000)):
            raise AssertionError("no subscriber connected to the SGLang publisher")
        message = self.sock.recv()
        assert message[:1] == b"\x01", message

    def publish(self, events, dp_rank=None):
        payload = msgpack.packb([time.time(), events, dp_rank], use_bin_type=True)
        self.sock.send_multipart([self.topic, self.seq.to_bytes(8, "big"), payload])
        self.seq += 1
        return self.seq - 1

    def close(self):
        self.sock.close()
        self.ctx.term()


# wire.md §2's test vector: tokens 0..31, page size 16.
assert page_hashes(list(range(32)), 16) == [6738917275443968386, 5080553031686747138]
