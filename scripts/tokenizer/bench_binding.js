#!/usr/bin/env node
// Throughput of the official Hugging Face binding (tokenizers@0.23.2) on FILE, measured the way
// `kvrouter bench tokenizer` measures ours: 8,000-byte chunks (cut at UTF-8 boundaries) encoded
// one after another, and the whole file as one string. Prints one JSON line.
//   node scripts/tokenizer/bench_binding.js TOKENIZER_JSON FILE [CHUNK_BYTES] [REPEAT]
'use strict';
const fs = require('fs');
const path = require('path');
const root = path.resolve(__dirname, '../..');
const { Tokenizer } = require(path.join(root, 'third_party/npm/_binding/node_modules/tokenizers'));

function chunks(buf, size) {
  const out = [];
  let pos = 0;
  while (pos < buf.length) {
    let end = Math.min(buf.length, pos + size);
    while (end < buf.length && (buf[end] & 0xc0) === 0x80) ++end;
    out.push(buf.subarray(pos, end).toString('utf8'));
    pos = end;
  }
  return out;
}

async function timeIt(fn) {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const tokens = await fn();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1e6, tokens };
}

async function main() {
  const [tokPath, file, chunkArg, repeatArg] = process.argv.slice(2);
  const buf = fs.readFileSync(file);
  const parts = chunks(buf, Number(chunkArg || 8000));
  const repeat = Number(repeatArg || 2);
  const tok = Tokenizer.fromFile(tokPath);
  const seq = async () => {
    let n = 0;
    for (const p of parts) n += (await tok.encode(p, null, { addSpecialTokens: false })).getIds().length;
    return n;
  };
  const whole = async () => (await tok.encode(buf.toString('utf8'), null, { addSpecialTokens: false })).getIds().length;
  let best = null, bestWhole = null;
  for (let r = 0; r < repeat; ++r) {
    const s = await timeIt(seq);
    if (!best || s.wall < best.wall) best = s;
    const w = await timeIt(whole);
    if (!bestWhole || w.wall < bestWhole.wall) bestWhole = w;
  }
  const mb = buf.length / 1e6;
  console.log(JSON.stringify({
    binding: 'tokenizers@0.23.2', bytes: buf.length, chunks: parts.length, tokens: best.tokens,
    mb_per_s: mb / best.wall, mb_per_s_cpu: mb / best.cpu, tokens_per_s: best.tokens / best.wall,
    mb_per_s_whole: mb / bestWhole.wall, mb_per_s_whole_cpu: mb / bestWhole.cpu,
    tokens_whole: bestWhole.tokens,
  }));
}

main().catch((e) => { console.error(e); process.exit(1); });
