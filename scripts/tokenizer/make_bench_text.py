#!/usr/bin/env python3
"""Builds a ~10 MB mixed UTF-8 benchmark text from files every Debian 12 machine has, so the
benchmark is reproducible without downloads:
  ~5 MB English prose (license texts, package copyright files), ~3 MB code (libstdc++ headers,
  Python stdlib), ~1.5 MB multilingual text and emoji (the committed tokenizer corpus),
  ~0.5 MB chat-request JSON; cut into 8,000-character chunks and shuffled with a fixed seed.
Usage: scripts/tokenizer/make_bench_text.py OUT [MEGABYTES]"""
import glob
import json
import os
import random
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def read_files(patterns, budget):
    out, total = [], 0
    for path in sorted(p for pat in patterns for p in glob.glob(pat, recursive=True)):
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, OSError):
            continue
        out.append(text)
        total += len(text.encode())
        if total >= budget:
            break
    return "\n".join(out)


def main():
    out_path = sys.argv[1]
    mb = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    scale = int(mb * 1e6)
    prose = read_files(["/usr/share/common-licenses/*", "/usr/share/doc/*/copyright"],
                       scale // 2)
    code = read_files(["/usr/include/c++/12/bits/*.h", "/usr/lib/python3.11/*.py"],
                      scale * 3 // 10)
    with open(os.path.join(ROOT, "tests/data/tokenizer_golden/corpus/texts.jsonl"),
              encoding="utf-8") as f:
        # Short corpus lines only: the long synthetic ones (100 KB words, 3,000 'a's) are
        # stress tests, not text.
        texts = [t for t in (json.loads(line)["text"] for line in f) if 0 < len(t) < 2000]
    rng = random.Random(20261127)
    multi = []
    size = 0
    while size < scale * 15 // 100:
        t = rng.choice(texts)[:4000]
        multi.append(t)
        size += len(t.encode())
    lines = [l for l in prose.splitlines() if l.strip()]
    chat = []
    size = 0
    while size < scale // 20:
        req = {"model": "m", "messages": [
            {"role": "system", "content": rng.choice(lines)},
            {"role": "user", "content": " ".join(rng.choice(lines) for _ in range(3))}],
            "stream": True}
        s = json.dumps(req, ensure_ascii=False) + "\n"
        chat.append(s)
        size += len(s.encode())
    text = prose + code + "\n".join(multi) + "".join(chat)
    chunks = [text[i:i + 8000] for i in range(0, len(text), 8000)]
    rng.shuffle(chunks)
    with open(out_path, "w", encoding="utf-8") as f:
        f.write("".join(chunks))


if __name__ == "__main__":
    main()
