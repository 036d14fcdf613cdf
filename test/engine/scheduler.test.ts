// Scheduling logic (queue, budget, batching, cancellation, failures) on the toy model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Scheduler, type EngineVocab } from '../../src/engine/scheduler.js';
import { PrefixCache } from '../../src/engine/prefix-cache.js';
import type { EngineEvent, SamplingParams } from '../../src/engine/api.js';
import { ToyModel } from './toy-model.js';

const vocab: EngineVocab = {
  eosId: 1,
  tokenBytes: (id) => Buffer.from(id === 1 ? '<eos>' : `t${id} `),
  isSpecial: (id) => id <= 2,
};
const greedy: SamplingParams = { temperature: 0, topP: 1, topK: 0, frequencyPenalty: 0, presencePenalty: 0, maxTokens: 6, stop: [], stopAtEos: false };
const opts = { maxBatch: 8, prefillChunk: 16, stateBudgetBytes: 1 << 30, snapshotInterval: 16, maxSeqLen: 4096 };

function setup(o: Partial<typeof opts> = {}, cache: PrefixCache | null = null, model = new ToyModel()) {
  const events = new Map<string, EngineEvent[]>();
  const s = new Scheduler(model, vocab, cache, { ...opts, ...o }, (id, ev) => {
    if (!events.has(id)) events.set(id, []);
    events.get(id)!.push(ev);
  });
  const run = (max = 10000) => {
    for (let i = 0; i < max && s.hasWork; i++) s.step();
  };
  const tokens = (id: string) => events.get(id)!.flatMap((e) => (e.type === 'token' ? [e.tokenId] : []));
  const done = (id: string) => events.get(id)!.find((e) => e.type === 'done') as Extract<EngineEvent, { type: 'done' }> | undefined;
  return { s, events, run, tokens, done, model };
}

const prompt = (n: number, seed: number) => Int32Array.from({ length: n }, (_, i) => 3 + ((i * 7 + seed * 13) % 60));

test('output is identical alone or batched with 7 others, with one forward per step', () => {
  const alone = setup();
  alone.s.submit('a', prompt(40, 1), greedy);
  alone.run();
  const many = setup();
  for (let i = 0; i < 8; i++) many.s.submit(i === 0 ? 'a' : `o${i}`, prompt(40 + i * 5, i === 0 ? 1 : i + 1), greedy);
  many.run();
  assert.deepEqual(many.tokens('a'), alone.tokens('a'));
  assert.equal(many.done('a')!.finishReason, 'length');
  assert.equal(many.model.forwardCalls, many.s.stats()['steps']);
  assert.ok(many.model.forwardCalls < alone.model.forwardCalls * 8, `${many.model.forwardCalls} vs ${alone.model.forwardCalls}`);
});

test('admission waits under the state budget and reports queue positions FIFO', () => {
  const t = setup({ stateBudgetBytes: 2000 }); // toy state: 1024 B + 64 B per token
  for (const id of ['a', 'b', 'c']) t.s.submit(id, prompt(20, 1), greedy);
  assert.deepEqual(t.events.get('c')!.map((e) => e.type === 'queued' && e.position), [3]);
  t.s.step();
  assert.equal(t.s.stats()['active'], 1);
  assert.deepEqual(t.events.get('b')!.slice(-1), [{ type: 'queued', position: 1 }]);
  assert.deepEqual(t.events.get('c')!.slice(-1), [{ type: 'queued', position: 2 }]);
  t.run();
  for (const id of ['a', 'b', 'c']) assert.equal(t.done(id)!.finishReason, 'length');
  // order of starting follows submission
  const startStep = (id: string) => t.events.get(id)!.findIndex((e) => e.type === 'started');
  assert.ok(startStep('a') >= 0 && startStep('b') > 0 && startStep('c') > 0);
});

test('cancel mid-prefill and mid-decode frees the state at once; others carry on', () => {
  const t = setup({ prefillChunk: 8 });
  t.s.submit('p', prompt(200, 1), greedy);
  t.s.submit('d', prompt(4, 2), { ...greedy, maxTokens: 50 });
  t.s.submit('x', prompt(30, 3), greedy);
  t.s.step();
  t.s.step();
  const before = t.s.stateBytes();
  t.s.cancel('p'); // still prefilling (200 tokens at 8 per step)
  assert.equal(t.done('p')!.finishReason, 'cancelled');
  assert.ok(t.s.stateBytes() < before);
  for (let i = 0; i < 10; i++) t.s.step();
  assert.ok(t.tokens('d').length > 0);
  const mid = t.s.stateBytes();
  t.s.cancel('d');
  assert.equal(t.done('d')!.finishReason, 'cancelled');
  assert.ok(t.s.stateBytes() < mid);
  t.run();
  assert.equal(t.done('x')!.finishReason, 'length');
  assert.equal(t.s.stateBytes(), 0);
  assert.equal(t.s.stats()['active'], 0);
});

test('a failing request does not take the others down', () => {
  const t = setup();
  t.s.submit('bad', Int32Array.of(5, 99999), greedy);
  t.s.submit('empty', new Int32Array(0), greedy);
  t.s.submit('ok', prompt(10, 1), greedy);
  t.s.submit('json', prompt(10, 2), greedy, { constraint: { kind: 'json_object' } }); // toy vocab has no '{'
  t.run();
  assert.equal(t.done('bad')!.finishReason, 'error');
  assert.equal(t.done('empty')!.finishReason, 'error');
  assert.equal(t.done('json')!.finishReason, 'error');
  assert.equal(t.done('ok')!.finishReason, 'length');
});

test('EOS and max_tokens end generation; seeds reproduce sampled output', () => {
  const t = setup();
  const sampled: SamplingParams = { ...greedy, temperature: 1.5, maxTokens: 30, seed: 7 };
  t.s.submit('s1', prompt(10, 1), sampled);
  t.s.submit('s2', prompt(10, 1), sampled);
  t.s.submit('s3', prompt(10, 1), { ...sampled, seed: 8 });
  t.run();
  assert.deepEqual(t.tokens('s1'), t.tokens('s2'));
  assert.notDeepEqual(t.tokens('s1'), t.tokens('s3'));
  const e = setup();
  e.s.submit('e', prompt(10, 1), { ...greedy, temperature: 2, seed: 3, maxTokens: 2000, stopAtEos: true });
  e.run();
  const toks = e.tokens('e');
  assert.equal(e.done('e')!.finishReason, toks.at(-1) === 1 ? 'stop' : 'length');
  const at = toks.indexOf(1);
  assert.ok(at === -1 || at === toks.length - 1);
});

test('prefix cache: restored sequences produce the same output and count cached tokens', () => {
  const model = new ToyModel();
  const cache = new PrefixCache({ memoryBytes: 1 << 24, modelId: 'toy', restore: (b) => model.restoreState(b) });
  const t = setup({}, cache, model);
  const p = prompt(50, 4);
  t.s.submit('first', p, greedy);
  t.run();
  t.s.submit('again', p, greedy);
  t.run();
  assert.deepEqual(t.tokens('again'), t.tokens('first'));
  assert.equal(t.done('again')!.usage.cachedTokens, 50);
  // a continuation of the first conversation hits the end-of-generation snapshot
  const cont = Int32Array.from([...p, ...t.tokens('first'), 9, 10]);
  t.s.submit('cont', cont, greedy);
  t.run();
  assert.equal(t.done('cont')!.usage.cachedTokens, 50 + 5);
  const fresh = setup();
  fresh.s.submit('cont', cont, greedy);
  fresh.run();
  assert.deepEqual(t.tokens('cont'), fresh.tokens('cont'));
});
