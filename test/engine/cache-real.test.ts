// Prefix cache and batching on the real tiny model: restores are bit-exact, conversations hit,
// hits survive a restart with cacheDir, and batching never changes a sequence's output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEngine } from '../../src/engine/index.js';
import type { Engine, EngineEvent } from '../../src/engine/api.js';
import { PrefixCache } from '../../src/engine/prefix-cache.js';
import { loadModel } from '../../src/model/index.js';
import { greedy, tinyModel, tokensOf as tokensIn } from './fixture.js';

const tiny = await tinyModel();
const dir = tiny.dir;
const W = tiny.window;
const tokensOf = (n: number, seed: number) => tokensIn(n, seed, tiny.vocab);

async function run(engine: Engine, prompt: number[], maxTokens: number) {
  const h = engine.submit(Int32Array.from(prompt), { ...greedy, maxTokens });
  const tokens: number[] = [];
  let done: Extract<EngineEvent, { type: 'done' }> | undefined;
  for await (const ev of h.events) {
    if (ev.type === 'token') tokens.push(ev.tokenId);
    if (ev.type === 'done') done = ev;
  }
  assert.ok(done && done.finishReason === 'length', JSON.stringify(done));
  return { tokens, usage: done!.usage };
}

test('logits after a restore equal recomputing from scratch, bit for bit (memory and disk)', async () => {
  const model = await loadModel(dir);
  const cacheDir = mkdtempSync(join(tmpdir(), 'dsv4-eng-'));
  try {
    // a prefix longer than the window is a canonical snapshot for any longer prompt
    const n = W + 2;
    const all = Int32Array.from([0, ...tokensOf(n + 5, 1)]);
    const mk = () => new PrefixCache({ memoryBytes: 1 << 26, dir: cacheDir, modelId: 'tiny-a', restore: (b) => model.restoreState(b) });
    const cache = mk();
    const st = model.newState();
    const ln = model.forward([{ state: st, tokens: all.subarray(0, n) }])[0]!;
    cache.insert(all.slice(0, n), st, ln);
    // from scratch the reference way: the whole prompt in one prefill, then one decode step
    const scratch = model.newState();
    const expect = model.forward([{ state: scratch, tokens: all }])[0]!;
    const expectNext = model.forward([{ state: scratch, tokens: Int32Array.of(7) }])[0]!;
    for (const c of [cache, mk()]) {
      const hit = c.lookup(all)!;
      assert.equal(hit.length, n);
      assert.deepEqual(hit.logits, ln);
      const got = model.forward([{ state: hit.state, tokens: all.subarray(n) }])[0]!;
      assert.deepEqual(got, expect);
      assert.deepEqual(model.forward([{ state: hit.state, tokens: Int32Array.of(7) }])[0], expectNext);
    }
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
});

test('a sequence is identical alone or batched with 7 others (greedy)', async () => {
  const engine = await createEngine({ modelDir: dir, prefillChunk: 16, prefixCacheBytes: 0 });
  try {
    const p = [0, ...tokensOf(9, 1)];
    const alone = await run(engine, p, 4);
    const runs = [run(engine, p, 4), ...Array.from({ length: 7 }, (_, i) => run(engine, [0, ...tokensOf(5 + i, i + 2)], 4))];
    const batched = await Promise.all(runs);
    assert.deepEqual(batched[0]!.tokens, alone.tokens);
    assert.ok(engine.stats()['steps']! < 2 * 8 * 5, String(engine.stats()['steps'])); // shared steps, not 8 sequential runs
  } finally {
    await engine.close();
  }
});

test('a 20-turn conversation hits the cache on all but its new tokens, also after a restart', async () => {
  const cacheDir = mkdtempSync(join(tmpdir(), 'dsv4-eng-'));
  try {
    const turns: Array<{ prompt: number[]; tokens: number[]; cached: number }> = [];
    let engine = await createEngine({ modelDir: dir, cacheDir, prefillChunk: 16, prefixCacheBytes: 1 << 26 });
    try {
      let convo = [0, ...tokensOf(W - 1, 9)]; // a system prompt as long as the window
      for (let t = 0; t < 20; t++) {
        const prompt = [...convo, ...tokensOf(2, 100 + t)]; // the new user turn
        const r = await run(engine, prompt, 2);
        turns.push({ prompt, tokens: r.tokens, cached: r.usage.cachedTokens });
        // previous turn: prompt + first generated token were consumed (snapshot at the end of the generation)
        if (t > 0) assert.equal(r.usage.cachedTokens, convo.length - 1, `turn ${t}`);
        convo = [...prompt, ...r.tokens];
      }
      assert.ok(engine.stats()['cacheHits']! >= 19);
    } finally {
      await engine.close();
    }
    // restart: replaying the conversation hits on every whole prompt and generates the same tokens
    engine = await createEngine({ modelDir: dir, cacheDir, prefillChunk: 16, prefixCacheBytes: 1 << 26 });
    try {
      for (const [t, turn] of turns.entries()) {
        const r = await run(engine, turn.prompt, 2);
        assert.equal(r.usage.cachedTokens, turn.prompt.length, `turn ${t}`);
        assert.deepEqual(r.tokens, turn.tokens, `turn ${t}`);
      }
      assert.equal(engine.stats()['prefillTokens'], 0);
      assert.ok(engine.stats()['cacheDiskHits']! >= 1);
    } finally {
      await engine.close();
    }
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
});
