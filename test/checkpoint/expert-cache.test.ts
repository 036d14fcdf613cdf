import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { openCheckpoint } from '../../src/checkpoint/index.js';
import { ExpertCache } from '../../src/checkpoint/expert-cache.js';
import { summarizeInventory } from '../../src/checkpoint/inventory.js';
import { Dsv4Model, loadModel } from '../../src/model/index.js';
import { makeScratch, type Scratch } from './helpers.js';

let s: Scratch;
before(async () => {
  s = await makeScratch();
});
after(() => s.cleanup());

test('LRU: hits, misses, evictions, bytes, and the bytes served equal the stored tensors', () => {
  const ck = openCheckpoint(s.tiny);
  const one = summarizeInventory(ck.args).expertBytes;
  const cache = new ExpertCache(ck, { budgetBytes: 2 * one });
  const e = cache.get(1, 3);
  assert.equal(e.w1.kind, 'fp4');
  assert.equal(e.w1.out, ck.args.moeInterDim);
  assert.equal(e.w1.inF, ck.args.dim);
  assert.equal(e.w2.out, ck.args.dim);
  if (e.w1.kind === 'fp4') {
    assert.deepEqual(e.w1.data, ck.tensor('layers.1.ffn.experts.3.w1.weight').bytes);
    assert.deepEqual(e.w1.scale, ck.tensor('layers.1.ffn.experts.3.w1.scale').bytes);
  }
  cache.get(1, 4); // miss
  cache.get(1, 3); // hit; 4 is now least recent
  cache.get(4, 0); // miss (MTP block experts: layer = n_layers + 0); evicts 4
  cache.get(1, 3); // hit
  cache.get(1, 4); // miss, evicts (4,0)
  const st = cache.stats();
  assert.equal(st.hits, 2);
  assert.equal(st.misses, 4);
  assert.equal(st.evictions, 2);
  assert.equal(st.resident, 2);
  assert.equal(st.bytesRead, 4 * one);
  assert.ok(st.peakBytes <= 2 * one);
  assert.equal(st.hitRate, 2 / 6);
  const m = cache.get(4, 0);
  if (m.w2.kind === 'fp4') assert.deepEqual(m.w2.data, ck.tensor('mtp.0.ffn.experts.0.w2.weight').bytes);
  ck.close();
});

test('prefetch: a worker reads announced experts ahead; bytes identical; the budget still holds', () => {
  const ck = openCheckpoint(s.tiny);
  const one = summarizeInventory(ck.args).expertBytes;
  const cache = new ExpertCache(ck, { budgetBytes: 2 * one, prefetch: true });
  cache.prefetch(2, [1, 5, 6]); // only two fit: 6 is left to load on demand
  for (const x of [1, 5, 6]) {
    const e = cache.get(2, x);
    if (e.w3.kind === 'fp4') {
      assert.deepEqual(e.w3.data, ck.tensor(`layers.2.ffn.experts.${x}.w3.weight`).bytes);
      assert.deepEqual(e.w3.scale, ck.tensor(`layers.2.ffn.experts.${x}.w3.scale`).bytes);
    }
  }
  cache.prefetch(2, [6, 7]); // 6 cached (kept), 7 read ahead, evicting 5
  const e7 = cache.get(2, 7);
  if (e7.w2.kind === 'fp4') assert.deepEqual(e7.w2.data, ck.tensor('layers.2.ffn.experts.7.w2.weight').bytes);
  cache.get(2, 6); // hit
  const st = cache.stats();
  assert.equal(st.misses, 4);
  assert.equal(st.prefetched, 3);
  assert.equal(st.hits, 1);
  assert.ok(st.peakBytes <= 2 * one);
  cache.close();
  ck.close();
});

test('generation under a budget of a small fraction of the experts gives bit-identical logits', () => {
  const ck = openCheckpoint(s.tiny);
  const sum = summarizeInventory(ck.args);
  const budget = 3 * sum.expertBytes; // 40 experts on disk: > 10x the budget
  assert.ok(sum.routedExpertBytes >= 2 * budget);
  const run = (experts?: ExpertCache): Float32Array[] => {
    const m = new Dsv4Model(ck, experts ? { experts } : {});
    const st = m.newState();
    const out = m.forward([{ state: st, tokens: Int32Array.of(0, 17, 99, 3, 250, 7) }]);
    for (const t of [5, 301]) out.push(...m.forward([{ state: st, tokens: Int32Array.of(t) }]));
    return out;
  };
  const full = run();
  assert.ok(full[0]!.every(Number.isFinite));
  for (const prefetch of [false, true]) {
    const cache = new ExpertCache(ck, { budgetBytes: budget, prefetch });
    const limited = run(cache);
    assert.equal(limited.length, full.length);
    for (let i = 0; i < full.length; i++) assert.deepEqual(limited[i], full[i], `logits of step ${i} (prefetch ${prefetch})`);
    const st = cache.stats();
    assert.ok(st.peakBytes <= budget, `peak ${st.peakBytes} > budget ${budget}`);
    assert.ok(st.evictions > 0);
    if (prefetch) assert.ok(st.prefetched > 0, 'the model announces its experts');
    cache.close();
  }
  ck.close();
});

test('loadModel({ memoryBudget }) serves routed experts from an ExpertCache (prefetching by default)', async () => {
  const one = summarizeInventory(openCheckpoint(s.tiny).args).expertBytes;
  const m = await loadModel(s.tiny, { memoryBudget: 4 * one });
  assert.ok(m.experts instanceof ExpertCache);
  const [logits] = m.forward([{ state: m.newState(), tokens: Int32Array.of(0, 42, 7) }]);
  assert.ok(logits!.every(Number.isFinite));
  const st = (m.experts as ExpertCache).stats();
  assert.ok(st.misses > 0 && st.prefetched > 0 && st.peakBytes <= 4 * one);
  (m.experts as ExpertCache).close();
});
