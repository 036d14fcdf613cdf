// The engine end to end on the real tiny checkpoint, through its worker thread.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createEngine } from '../../src/engine/index.js';
import type { EngineEvent } from '../../src/engine/api.js';
import { JsonMachine } from '../../src/engine/json-constraint.js';
import { collect, greedy, tinyModel, tokensOf } from './fixture.js';

const tiny = await tinyModel();
const prompt = (n: number, seed: number) => Int32Array.from([0, ...tokensOf(n - 1, seed, tiny.vocab)]);

test('engine: streams tokens, text, logprobs and usage; cancel frees state; JSON mode stays valid', async () => {
  const engine = await createEngine({ modelDir: tiny.dir, prefillChunk: 8, prefixCacheBytes: 0 });
  try {
    const h = engine.submit(prompt(10, 1), { ...greedy, maxTokens: 3, logprobs: true, topLogprobs: 2 });
    const evs = await collect(h.events);
    assert.deepEqual(evs.map((e) => e.type), ['queued', 'started', 'token', 'token', 'token', 'done']);
    const done = evs.at(-1) as Extract<EngineEvent, { type: 'done' }>;
    assert.deepEqual(done.usage, { promptTokens: 10, completionTokens: 3, cachedTokens: 0 });
    assert.equal(done.finishReason, 'length');
    for (const e of evs) {
      if (e.type !== 'token') continue;
      assert.ok(e.tokenId >= 0 && e.tokenId < tiny.vocab);
      assert.equal(e.logprob!.top.length, 2);
      assert.equal(e.logprob!.top[0]!.logprob, e.logprob!.logprob); // greedy: the chosen token is the top one
      assert.ok(e.logprob!.logprob <= 0);
    }

    // cancel mid-prefill (64 tokens at 8 per step) and mid-decode; the third request carries on
    const long = engine.submit(prompt(64, 2), greedy);
    const dec = engine.submit(prompt(6, 3), { ...greedy, maxTokens: 1000 });
    const other = engine.submit(prompt(12, 4), { ...greedy, maxTokens: 3 });
    const bytesAt: number[] = [];
    const longEvents: EngineEvent[] = [];
    for await (const ev of long.events) {
      longEvents.push(ev);
      if (ev.type === 'started') {
        bytesAt.push(engine.stats()['stateBytes']!);
        long.cancel();
      }
    }
    assert.equal((longEvents.at(-1) as { finishReason: string }).finishReason, 'cancelled');
    // measured: the three live states shrink to two at once (others only grow by a few KB per token)
    bytesAt.push(engine.stats()['stateBytes']!);
    assert.ok(bytesAt[0]! > 0 && bytesAt[1]! < bytesAt[0]!, String(bytesAt));
    let decTokens = 0;
    for await (const ev of dec.events) {
      if (ev.type === 'token' && ++decTokens === 2) dec.cancel();
      if (ev.type === 'done') assert.equal(ev.finishReason, 'cancelled');
    }
    const otherEvents = await collect(other.events);
    assert.equal((otherEvents.at(-1) as { finishReason: string }).finishReason, 'length');
    assert.equal(engine.stats()['stateBytes'], 0);
    assert.equal(engine.stats()['active'], 0);

    // json_object: whatever the (random) model wants, the text is a valid JSON prefix
    const j = engine.submit(prompt(5, 5), { ...greedy, temperature: 1, seed: 1, maxTokens: 12, stopAtEos: true }, { constraint: { kind: 'json_object' } });
    let text = '';
    for await (const ev of j.events) if (ev.type === 'token') text += ev.text;
    const m = new JsonMachine(null);
    for (const b of Buffer.from(text)) assert.ok(m.push(b), text);
    assert.ok(text.startsWith('{'), text);

    // json_schema: the text stays a valid prefix of a document matching the schema
    const schema = { type: 'object', properties: { a: { type: 'integer' }, b: { enum: ['x', 'y'] } }, required: ['a', 'b'] };
    const js = engine.submit(prompt(5, 6), { ...greedy, temperature: 1, seed: 2, maxTokens: 12, stopAtEos: true }, { constraint: { kind: 'json_schema', schema } });
    let jtext = '';
    for await (const ev of js.events) if (ev.type === 'token') jtext += ev.text;
    const sm = new JsonMachine(schema);
    for (const b of Buffer.from(jtext)) assert.ok(sm.push(b), jtext);
  } finally {
    await engine.close();
  }
});

test('engine: a bad model directory rejects createEngine with one clear message', async () => {
  await assert.rejects(createEngine({ modelDir: '/nonexistent/dsv4-model' }), (err: Error) => {
    assert.ok(err.message.length > 0 && !err.message.includes('\n    at '), err.message);
    return true;
  });
});
