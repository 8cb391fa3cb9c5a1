// The official OpenAI Node client (npm `openai`, pinned in scripts/fetch_npm.sh) against
// `kvrouter serve`: what a user's application sees. Run by tests/openai_client_test.py, which
// starts the engine-sims and the gateway and passes their address:
//
//   node tests/openai_client_test.js OPENAI_PACKAGE_DIR BASE_URL MODEL
//
// Prints one line per check and `N passed, N failed`; exits non-zero on any failure.
'use strict';

const assert = require('node:assert/strict');

const [packageDir, baseURL, model] = process.argv.slice(2);
const OpenAI = require(packageDir);
// maxRetries 0: the client would otherwise retry 429/5xx itself and hide what the router said.
const client = new OpenAI({ apiKey: 'unused', baseURL, maxRetries: 0, timeout: 60_000 });

const checks = [];
function check(name, fn) {
  checks.push({ name, fn });
}

async function collect(stream) {
  let text = '';
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks += 1;
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      text += choice.text ?? choice.delta?.content ?? '';
    }
  }
  return { text, usage, chunks };
}

check('completions, not streamed', async () => {
  const { data, response } = await client.completions
    .create({ model, prompt: 'The quick brown fox', max_tokens: 5 })
    .withResponse();
  assert.equal(data.object, 'text_completion');
  assert.equal(typeof data.choices[0].text, 'string');
  assert.equal(data.usage.completion_tokens, 5);
  assert.ok(data.usage.prompt_tokens > 0);
  assert.ok(response.headers.get('x-kvrouter-worker'), 'x-kvrouter-worker header');
});

check('completions, streamed with usage', async () => {
  const stream = await client.completions.create({
    model, prompt: 'Jumps over the lazy dog', max_tokens: 6, stream: true,
    stream_options: { include_usage: true },
  });
  const { usage, chunks } = await collect(stream);
  assert.ok(chunks >= 6, `${chunks} chunks`);
  assert.equal(usage.completion_tokens, 6);
});

check('chat, not streamed', async () => {
  const r = await client.chat.completions.create({
    model, max_tokens: 4, messages: [{ role: 'user', content: 'Hello there' }],
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.equal(r.usage.completion_tokens, 4);
});

check('chat, streamed with usage', async () => {
  const stream = await client.chat.completions.create({
    model, max_tokens: 5, stream: true, stream_options: { include_usage: true },
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }],
  });
  const { usage, chunks } = await collect(stream);
  assert.ok(chunks >= 5, `${chunks} chunks`);
  assert.equal(usage.completion_tokens, 5);
});

check('a repeated conversation reuses its prefix on the same worker', async () => {
  const history = [
    { role: 'system', content: `Session ${process.pid}-${Date.now()}. ${'Context. '.repeat(60)}` },
    { role: 'user', content: 'First question about the context above?' },
  ];
  const first = await client.chat.completions
    .create({ model, max_tokens: 4, messages: history }).withResponse();
  history.push({ role: 'assistant', content: first.data.choices[0].message.content });
  history.push({ role: 'user', content: 'And a follow-up?' });
  const second = await client.chat.completions
    .create({ model, max_tokens: 4, messages: history }).withResponse();
  const cached = second.data.usage.prompt_tokens_details?.cached_tokens ?? 0;
  assert.ok(cached >= 400, `cached_tokens ${cached} of ${second.data.usage.prompt_tokens}`);
  assert.equal(second.response.headers.get('x-kvrouter-worker'),
    first.response.headers.get('x-kvrouter-worker'));
});

async function expectError(promise, Type, status, fragment) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof Type, `${err.constructor.name}: ${err.message}`);
    assert.equal(err.status, status);
    assert.ok(err.message.includes(fragment), err.message);
    assert.equal(typeof err.error?.message, 'string', 'an OpenAI error object');
    return true;
  });
}

check('an unknown model is a NotFoundError', () => expectError(
  client.completions.create({ model: 'no-such-model', prompt: 'x', max_tokens: 1 }),
  OpenAI.NotFoundError, 404, 'no-such-model'));

check('a wrong field type is a BadRequestError', () => expectError(
  client.completions.create({ model, prompt: 'x', max_tokens: 'many' }),
  OpenAI.BadRequestError, 400, 'max_tokens'));

check('a chat without messages is a BadRequestError', () => expectError(
  client.chat.completions.create({ model, max_tokens: 1 }),
  OpenAI.BadRequestError, 400, 'messages'));

(async () => {
  let failed = 0;
  for (const { name, fn } of checks) {
    try {
      await fn();
      console.log(`ok   ${name}`);
    } catch (err) {
      failed += 1;
      console.log(`FAIL ${name}\n     ${String(err.stack || err).split('\n').join('\n     ')}`);
    }
  }
  console.log(`${checks.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})();
