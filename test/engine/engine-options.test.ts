// Engine options through the worker thread: memoryBudget (expert-cache stats), maxSeqLen on the handle,
// a request cancelled while queued still ends with a done event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createEngine } from '../../src/engine/index.js';
import { collect, greedy, tinyModel, tokensOf } from './fixture.js';

const tiny = await tinyModel();
const prompt = (n: number, seed: number) => Int32Array.from([0, ...tokensOf(n - 1, seed, tiny.vocab)]);

test('engine: memoryBudget streams experts (expertCache* stats), maxSeqLen is exposed, queued cancel ends with done', async () => {
  const engine = await createEngine({ modelDir: tiny.dir, maxSeqLen: 1000, memoryBudget: 1 << 20, maxBatch: 1, prefixCacheBytes: 0 });
  try {
    assert.equal(engine.maxSeqLen, 1000);
    assert.equal(engine.stats()['maxSeqLen'], 1000);
    const a = engine.submit(prompt(12, 1), { ...greedy, maxTokens: 4 });
    const b = engine.submit(prompt(12, 2), { ...greedy, maxTokens: 4 });
    b.cancel();
    const bEvents = await collect(b.events);
    assert.deepEqual(bEvents.at(-1), { type: 'done', finishReason: 'cancelled', usage: { promptTokens: 0, completionTokens: 0, cachedTokens: 0 } });
    assert.ok(!bEvents.some((e) => e.type === 'started' || e.type === 'token'));
    const aEvents = await collect(a.events);
    assert.equal((aEvents.at(-1) as { finishReason: string }).finishReason, 'length');
    // dsml_tools travels through the worker: a forced call to a tool without parameters
    const tools = [{ name: 'ping', parameters: { type: 'object', properties: {} } }];
    const d = engine.submit(prompt(6, 3), { ...greedy, maxTokens: 200, stopAtEos: true }, { constraint: { kind: 'dsml_tools', tools, thinking: false, forced: true } });
    const dEvents = await collect(d.events);
    const text = dEvents.map((e) => (e.type === 'token' ? e.text : '')).join('');
    assert.equal((dEvents.at(-1) as { finishReason: string }).finishReason, 'stop', text);
    assert.match(text, /^\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name="ping">\n\n<\/｜DSML｜invoke>\n/);
    assert.ok(text.endsWith('</｜DSML｜tool_calls>'), text);
    // a spec without tools fails that request only
    const e = engine.submit(prompt(6, 3), greedy, { constraint: { kind: 'dsml_tools', tools: [], thinking: false } });
    const eDone = (await collect(e.events)).at(-1) as { finishReason: string; error?: string };
    assert.equal(eDone.finishReason, 'error');
    assert.match(eDone.error!, /at least one tool/);
    const s = engine.stats();
    assert.equal(s['queued'], 0);
    assert.equal(s['open'], 0);
    for (const k of ['expertCacheHits', 'expertCacheMisses', 'expertCacheHitRate', 'expertCacheBytesRead', 'expertCacheStallMs']) {
      assert.equal(typeof s[k], 'number', k);
    }
    assert.ok(s['expertCacheMisses']! > 0 && s['expertCacheBytesRead']! > 0, JSON.stringify(s));
    assert.ok(s['expertCacheHitRate']! >= 0 && s['expertCacheHitRate']! <= 1);
  } finally {
    await engine.close();
  }
  // without a budget there is no expert cache, and the context is the model's
  const plain = await createEngine({ modelDir: tiny.dir, prefixCacheBytes: 0 });
  try {
    assert.equal(plain.stats()['expertCacheMisses'], undefined);
    assert.ok(plain.maxSeqLen > 1000, String(plain.maxSeqLen));
  } finally {
    await plain.close();
  }
});

test('engine: numerics "fast" reaches the worker (fastNumerics stat) and generates; the default is exact', async () => {
  const fast = await createEngine({ modelDir: tiny.dir, numerics: 'fast', prefixCacheBytes: 0 });
  try {
    assert.equal(fast.stats()['fastNumerics'], 1);
    const done = (await collect(fast.submit(prompt(40, 5), { ...greedy, maxTokens: 3 }).events)).at(-1) as { finishReason: string };
    assert.equal(done.finishReason, 'length');
  } finally {
    await fast.close();
  }
  const exact = await createEngine({ modelDir: tiny.dir, prefixCacheBytes: 0 });
  try {
    assert.equal(exact.stats()['fastNumerics'], 0);
  } finally {
    await exact.close();
  }
});
