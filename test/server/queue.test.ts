// Waiting for capacity (§11.3) on a real engine that runs one sequence at a time: a queued non-streaming
// request gets blank-line keep-alives before its JSON body; one queued past the queue timeout is closed and
// its generation cancelled.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import OpenAI from 'openai';
import type { ServingModel } from '../../src/server/index.js';
import { TEST_KEY, post, startTestServer } from './harness.js';

let server: ServingModel;
before(async () => {
  server = await startTestServer({ keepAliveMs: 20 }, { maxBatch: 1 });
});
after(async () => server?.shutdown());

let n = 0;
// A different prompt each time, so no request is answered straight from the prefix cache.
const body = (max: number) => ({ model: 'deepseek-chat', messages: [{ role: 'user', content: `Hello ${n++}` }], max_tokens: max });

/** Starts a long streaming request and resolves once its generation runs; abort() ends it (a disconnect). */
async function occupy(): Promise<{ abort(): void }> {
  const ctrl = new AbortController();
  const res = await fetch(`${server.url}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ...body(4000), stream: true, seed: 11 }), // seeded: the same long generation every run
    signal: ctrl.signal,
  });
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let text = '';
  while (!text.includes('data: {')) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`stream ended before generating: ${text}`);
    text += dec.decode(value, { stream: true });
  }
  return { abort: () => ctrl.abort() };
}

/** Resolves once `n` more generations wait in the engine queue. */
async function queued(n: number): Promise<void> {
  for (let i = 0; i < 1500 && (server.deps.engine.stats().queued ?? 0) < n; i++) await new Promise((r) => setTimeout(r, 20));
}

it('a queued non-streaming request receives blank lines, then its JSON (the SDK parses it)', async () => {
  const busy = await occupy();
  const raw = post(`${server.url}/chat/completions`, body(1));
  const client = new OpenAI({ baseURL: server.url, apiKey: TEST_KEY, maxRetries: 0 });
  const viaSdk = client.chat.completions.create(body(1) as never) as unknown as Promise<OpenAI.ChatCompletion>;
  await queued(2);
  await new Promise((r) => setTimeout(r, 100)); // a few keep-alive intervals
  busy.abort();
  const res = await raw;
  assert.equal(res.status, 200);
  assert.match(res.text, /^\n+\{"id":/);
  assert.equal((JSON.parse(res.text) as { object: string }).object, 'chat.completion');
  assert.equal((await viaSdk).object, 'chat.completion');
});

it('a request still queued after the queue timeout is closed and never runs', async () => {
  const cfg = server.deps.cfg;
  const busy = await occupy();
  try {
    cfg.queueTimeoutMs = 300;
    const before = server.deps.metrics.cancelled;
    const res = await post(`${server.url}/chat/completions`, { ...body(1), stream: true });
    assert.equal(res.status, 200);
    assert.ok(!res.text.includes('data:'), 'no chunk was sent');
    assert.ok(res.text.includes(': keep-alive'));
    assert.equal(server.deps.metrics.cancelled, before + 1);
  } finally {
    cfg.queueTimeoutMs = 600_000;
    busy.abort();
  }
});
