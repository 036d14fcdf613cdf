// Engine follow-ups on the real tiny model, in-thread: cancel before start, done.stopSequence,
// prefix-cache isolation by SubmitOptions.cacheScope.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PrefixCache } from '../../src/engine/prefix-cache.js';
import type { SamplingParams, SubmitOptions } from '../../src/engine/api.js';
import { loadModel } from '../../src/model/index.js';
import { loadTokenizer } from '../../src/tokenizer/load.js';
import { engineVocab, greedy as greedyBase, inThread, tinyModel, tokensOf } from './fixture.js';

const tiny = await tinyModel();
const model = await loadModel(tiny.dir);
const tokenizer = await loadTokenizer();
const vocab = engineVocab(tokenizer);
const greedy: SamplingParams = { ...greedyBase, maxTokens: 3 };
const opts = { maxBatch: 8, prefillChunk: 16, stateBudgetBytes: 1 << 30, snapshotInterval: 4096, maxSeqLen: 4096 };
const prompt = (n: number, seed: number) => Int32Array.from([0, ...tokensOf(n - 1, seed, tiny.vocab)]);

function setup(o: Partial<typeof opts> = {}, cache: PrefixCache | null = null) {
  const t = inThread(model, vocab, cache, { ...opts, ...o });
  const submit = (id: string, p: Int32Array, sp: SamplingParams = greedy, so: SubmitOptions = {}) => t.s.submit(id, p, sp, so);
  return { ...t, submit };
}

test('cancel before start: done(cancelled) with zero usage, queue slot freed, others unaffected', () => {
  const t = setup({ maxBatch: 1 });
  t.submit('a', prompt(8, 1));
  t.submit('b', prompt(8, 2));
  t.submit('c', prompt(8, 3));
  t.s.cancel('b'); // still queued, never computed
  assert.deepEqual(t.events.get('b')!.map((e) => e.type), ['queued', 'done']);
  assert.deepEqual(t.done('b'), { type: 'done', finishReason: 'cancelled', usage: { promptTokens: 0, completionTokens: 0, cachedTokens: 0 } });
  assert.equal(t.s.stats()['queued'], 2);
  assert.deepEqual(t.events.get('c')!.at(-1), { type: 'queued', position: 2 }); // moved up behind 'a'
  t.s.cancel('b'); // a second cancel is a no-op (no second done)
  assert.equal(t.events.get('b')!.filter((e) => e.type === 'done').length, 1);
  t.run();
  assert.equal(t.done('a')!.finishReason, 'length');
  assert.equal(t.done('c')!.finishReason, 'length');
  assert.equal(t.s.stats()['queued'], 0);
  // cancelled after computing: usage counts what was used
  const u = setup();
  u.submit('d', prompt(8, 4), { ...greedy, maxTokens: 100 });
  u.s.step();
  u.s.step();
  u.s.cancel('d');
  assert.equal(u.done('d')!.finishReason, 'cancelled');
  assert.deepEqual(u.done('d')!.usage, { promptTokens: 8, completionTokens: 2, cachedTokens: 0 });
});

test('done.stopSequence names the stop string that ended the generation', () => {
  const g = setup();
  g.submit('g', prompt(6, 3), { ...greedy, maxTokens: 8 });
  g.run();
  const full = g.text('g');
  assert.ok(full.length >= 4, JSON.stringify(full));
  const stop = full.slice(2, 4);
  const t = setup();
  t.submit('s', prompt(6, 3), { ...greedy, maxTokens: 8, stop: ['\u0000never', stop] });
  t.submit('n', prompt(6, 3), { ...greedy, maxTokens: 2, stop: ['\u0000never'] });
  t.run();
  assert.equal(t.done('s')!.finishReason, 'stop');
  assert.equal(t.done('s')!.stopSequence, stop);
  assert.equal(t.done('n')!.finishReason, 'length');
  assert.equal('stopSequence' in t.done('n')!, false);
});

test('cacheScope: lookups and snapshots only match within the same scope (memory and disk)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dsv4-scope-'));
  try {
    const mk = () => new PrefixCache({ memoryBytes: 1 << 28, dir, modelId: 'tiny-scope', restore: (b) => model.restoreState(b) });
    const t = setup({}, mk());
    const p = prompt(tiny.window + 4, 5);
    t.submit('alice1', p, greedy, { cacheScope: 'alice' });
    t.run();
    assert.equal(t.done('alice1')!.usage.cachedTokens, 0);
    t.submit('bob', p, greedy, { cacheScope: 'bob' });
    t.submit('shared', p, greedy);
    t.run();
    assert.equal(t.done('bob')!.usage.cachedTokens, 0);
    assert.equal(t.done('shared')!.usage.cachedTokens, 0);
    t.submit('alice2', p, greedy, { cacheScope: 'alice' });
    t.submit('shared2', p, greedy);
    t.run();
    assert.equal(t.done('alice2')!.usage.cachedTokens, p.length);
    assert.equal(t.done('shared2')!.usage.cachedTokens, p.length);
    assert.deepEqual(t.tokens('alice2'), t.tokens('alice1'));
    // after a restart the files keep their scope
    const r = setup({}, mk());
    r.submit('carol', p, greedy, { cacheScope: 'carol' });
    r.submit('bob2', p, greedy, { cacheScope: 'bob' });
    r.run();
    assert.equal(r.done('carol')!.usage.cachedTokens, 0);
    assert.equal(r.done('bob2')!.usage.cachedTokens, p.length);
    assert.deepEqual(r.tokens('bob2'), t.tokens('bob'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
