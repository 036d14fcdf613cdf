import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, argmax, processLogits, sampleToken, topIds } from '../../src/engine/sampling.js';
import type { SamplingParams } from '../../src/engine/api.js';

const base: SamplingParams = { temperature: 0, topP: 1, topK: 0, frequencyPenalty: 0, presencePenalty: 0, maxTokens: 10, stop: [] };

test('greedy picks the argmax, ties go to the lowest id', () => {
  assert.equal(argmax([1, 3, 3, 2]), 1);
  const r = sampleToken(Float32Array.of(0, 5, 5, 1), base, new Map(), null, new Rng(1));
  assert.equal(r.tokenId, 1);
});

test('constraint mask restricts the choice', () => {
  const r = sampleToken(Float32Array.of(0, 5, 4, 1), base, new Map(), Int32Array.of(2, 3), new Rng(1));
  assert.equal(r.tokenId, 2);
  assert.throws(() => sampleToken(Float32Array.of(0, 1), base, new Map(), Int32Array.of(), new Rng(1)));
});

test('frequency and presence penalties follow OpenAI semantics', () => {
  const x = processLogits(Float32Array.of(1, 1, 1), { frequencyPenalty: 0.5, presencePenalty: 0.25 }, new Map([[1, 2]]), null);
  assert.deepEqual(Array.from(x), [1, 1 - 2 * 0.5 - 0.25, 1]);
  const r = sampleToken(Float32Array.of(1, 1.2, 1.1), { ...base, frequencyPenalty: 1 }, new Map([[1, 1]]), null, new Rng(1));
  assert.equal(r.tokenId, 2);
});

test('same seed gives the same draws; different seeds differ', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const c = new Rng(43);
  const xa = Array.from({ length: 8 }, () => a.next());
  const xb = Array.from({ length: 8 }, () => b.next());
  const xc = Array.from({ length: 8 }, () => c.next());
  assert.deepEqual(xa, xb);
  assert.notDeepEqual(xa, xc);
  for (const v of xa) assert.ok(v >= 0 && v < 1);
  assert.notDeepEqual(new Rng(2 ** 40).next(), new Rng(2 ** 41).next());
});

test('temperature sampling follows the distribution; top_k and top_p truncate', () => {
  const logits = Float32Array.from([Math.log(0.5), Math.log(0.3), Math.log(0.15), Math.log(0.05)]);
  const p: SamplingParams = { ...base, temperature: 1 };
  const rng = new Rng(7);
  const n = 20000;
  const hist = [0, 0, 0, 0];
  for (let i = 0; i < n; i++) hist[sampleToken(logits, p, new Map(), null, rng).tokenId]!++;
  assert.ok(Math.abs(hist[0]! / n - 0.5) < 0.02 && Math.abs(hist[3]! / n - 0.05) < 0.01, String(hist));
  const hk = new Set<number>();
  for (let i = 0; i < 2000; i++) hk.add(sampleToken(logits, { ...p, topK: 2 }, new Map(), null, rng).tokenId);
  assert.deepEqual([...hk].sort(), [0, 1]);
  const hp = new Set<number>();
  for (let i = 0; i < 2000; i++) hp.add(sampleToken(logits, { ...p, topP: 0.85 }, new Map(), null, rng).tokenId);
  assert.deepEqual([...hp].sort(), [0, 1, 2]);
  const h1 = new Set<number>();
  for (let i = 0; i < 200; i++) h1.add(sampleToken(logits, { ...p, topP: 0.4 }, new Map(), null, rng).tokenId);
  assert.deepEqual([...h1], [0]);
});

test('logprobs are the log-softmax of the temperature-scaled logits, top sorted', () => {
  const logits = Float32Array.of(2, 1, 0, 1);
  const r = sampleToken(logits, { ...base, logprobs: true, topLogprobs: 3 }, new Map(), null, new Rng(1));
  const lse = Math.log(Math.exp(2) + 2 * Math.exp(1) + 1);
  assert.equal(r.tokenId, 0);
  assert.ok(Math.abs(r.logprob - (2 - lse)) < 1e-12);
  assert.deepEqual(r.top.map(([id]) => id), [0, 1, 3]);
  const t = sampleToken(logits, { ...base, temperature: 2, seed: 1, logprobs: true }, new Map(), null, new Rng(3));
  const lse2 = Math.log(Math.exp(1) + 2 * Math.exp(0.5) + 1);
  assert.ok(Math.abs(t.logprob - (logits[t.tokenId]! / 2 - lse2)) < 1e-12);
  assert.deepEqual(topIds([1, 5, 5, -Infinity, 2], 10), [1, 2, 4, 0]);
});
