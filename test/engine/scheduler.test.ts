// Scheduling logic (queue, budget, batching, cancellation, failures) with the real tiny model, in-thread.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PrefixCache } from '../../src/engine/prefix-cache.js';
import type { SamplingParams } from '../../src/engine/api.js';
import { loadModel } from '../../src/model/index.js';
import { loadTokenizer } from '../../src/tokenizer/load.js';
import { engineVocab, greedy as greedyBase, inThread, tinyModel, tokensOf } from './fixture.js';

const tiny = await tinyModel();
const model = await loadModel(tiny.dir);
const tokenizer = await loadTokenizer();
const vocab = engineVocab(tokenizer);
const greedy: SamplingParams = { ...greedyBase, maxTokens: 3 };
const opts = { maxBatch: 8, prefillChunk: 16, stateBudgetBytes: 1 << 30, snapshotInterval: 16, maxSeqLen: 4096 };

const setup = (o: Partial<typeof opts> = {}, cache: PrefixCache | null = null) => inThread(model, vocab, cache, { ...opts, ...o });

const prompt = (n: number, seed: number) => Int32Array.from([0, ...tokensOf(n - 1, seed, tiny.vocab)]);

test('the first chunk covers min(prompt, window) tokens, later chunks prefillChunk', () => {
  const t = setup({ prefillChunk: 4 });
  t.s.submit('a', prompt(tiny.window + 6, 1), greedy);
  t.s.step();
  assert.equal(t.s.stats()['prefillTokens'], tiny.window);
  t.s.step();
  assert.equal(t.s.stats()['prefillTokens'], tiny.window + 4);
  t.run();
  assert.equal(t.done('a')!.finishReason, 'length');
});

test('admission waits under the state budget and reports queue positions FIFO', () => {
  const one = model.newState().byteSize();
  const t = setup({ stateBudgetBytes: Math.floor(one * 1.5) });
  for (const id of ['a', 'b', 'c']) t.s.submit(id, prompt(6, 1), { ...greedy, maxTokens: 2 });
  assert.deepEqual(t.events.get('c')!.map((e) => e.type === 'queued' && e.position), [3]);
  t.s.step();
  assert.equal(t.s.stats()['active'], 1);
  assert.deepEqual(t.events.get('b')!.slice(-1), [{ type: 'queued', position: 1 }]);
  assert.deepEqual(t.events.get('c')!.slice(-1), [{ type: 'queued', position: 2 }]);
  t.s.cancel('b');
  assert.deepEqual(t.events.get('c')!.slice(-1), [{ type: 'queued', position: 1 }]);
  t.run();
  assert.equal(t.done('a')!.finishReason, 'length');
  assert.equal(t.done('b')!.finishReason, 'cancelled');
  assert.equal(t.done('c')!.finishReason, 'length');
  assert.deepEqual(t.tokens('a'), t.tokens('c')); // same prompt, same greedy output
});

test('a failing request does not take the others down', () => {
  const t = setup();
  t.s.submit('bad', Int32Array.of(5, 999999), greedy);
  t.s.submit('empty', new Int32Array(0), greedy);
  t.s.submit('ok', prompt(6, 1), greedy);
  t.s.submit('none', prompt(6, 2), greedy, { constraint: { kind: 'json_schema', schema: { enum: [] } } }); // nothing allowed
  t.run();
  assert.equal(t.done('bad')!.finishReason, 'error');
  assert.equal(t.done('empty')!.finishReason, 'error');
  assert.match(t.done('none')!.error!, /no token is allowed/);
  assert.equal(t.done('ok')!.finishReason, 'length');
  assert.equal(t.tokens('ok').length, 3);
});

test('seeds reproduce sampled output; EOS ends generation; stop strings end it without the stop text', () => {
  const t = setup();
  const sampled: SamplingParams = { ...greedy, temperature: 1.5, maxTokens: 6, seed: 7 };
  t.s.submit('s1', prompt(6, 1), sampled);
  t.s.submit('s2', prompt(6, 1), sampled);
  t.s.submit('s3', prompt(6, 1), { ...sampled, seed: 8 });
  t.run();
  assert.deepEqual(t.tokens('s1'), t.tokens('s2'));
  assert.notDeepEqual(t.tokens('s1'), t.tokens('s3'));
  // a stop string spanning a token boundary: generation ends there and no stop text is emitted
  const g = setup();
  g.s.submit('g', prompt(6, 3), { ...greedy, maxTokens: 8 });
  g.run();
  const pieces = g.events.get('g')!.flatMap((e) => (e.type === 'token' ? [e.text] : []));
  const full = pieces.join('');
  const k = pieces.findIndex((p, i) => i > 0 && p.length > 0 && pieces[i - 1]!.length > 0);
  assert.ok(k > 0, JSON.stringify(pieces));
  const boundary = pieces.slice(0, k).join('').length;
  const stop = full.slice(boundary - 1, boundary + 1);
  const st = setup();
  st.s.submit('st', prompt(6, 3), { ...greedy, maxTokens: 8, stop: [stop] });
  st.run();
  assert.equal(st.done('st')!.finishReason, 'stop');
  const text = st.events.get('st')!.map((e) => (e.type === 'token' ? e.text : '')).join('');
  assert.equal(text, full.slice(0, full.indexOf(stop)));
  // EOS, whenever drawn, is the last token and ends with 'stop'
  const e = setup();
  e.s.submit('e', prompt(6, 1), { ...greedy, temperature: 3, seed: 5, maxTokens: 40, stopAtEos: true });
  e.run();
  const toks = e.tokens('e');
  const at = toks.indexOf(tokenizer.eosId);
  assert.ok(at === -1 || (at === toks.length - 1 && e.done('e')!.finishReason === 'stop'));
});

test('a detected common prefix of successive prompts becomes a snapshot the next turn hits', () => {
  const cache = new PrefixCache({ memoryBytes: 1 << 28, modelId: 'tiny', restore: (b) => model.restoreState(b) });
  const t = setup({ snapshotInterval: 4096 }, cache);
  const shared = Array.from(prompt(tiny.window + 3, 4));
  // turn 2 re-renders turn 1's ending differently (as chat templates drop reasoning): only `shared` is common
  t.s.submit('t1', Int32Array.from([...shared, 11, 12]), { ...greedy, maxTokens: 1 });
  t.run();
  t.s.submit('t2', Int32Array.from([...shared, 13, 14, 15]), { ...greedy, maxTokens: 1 });
  t.run();
  assert.equal(t.done('t2')!.usage.cachedTokens, 0);
  t.s.submit('t3', Int32Array.from([...shared, 16, 17]), { ...greedy, maxTokens: 2 });
  t.run();
  assert.equal(t.done('t3')!.usage.cachedTokens, shared.length);
  // and the hit changes nothing in the output
  const fresh = setup();
  fresh.s.submit('t3', Int32Array.from([...shared, 16, 17]), { ...greedy, maxTokens: 2 });
  fresh.run();
  assert.deepEqual(t.tokens('t3'), fresh.tokens('t3'));
});
