// The synthetic long-context fill (model/synthetic-context.ts) leaves a state shaped like
// one after a real prefill to the same position (same cache counts and sizes), holding
// values in the stored formats, and the model decodes from it like from any state
// (deterministically, through clone and serialize).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../../src/model/index.js';
import { fillSyntheticContext } from '../../src/model/synthetic-context.js';
import type { ModelState } from '../../src/model/state.js';
import { codeIndex, FP4_CODE_OFFSET } from '../../src/tensor/fp4-rows.js';
import { roundBf16 } from '../../src/tensor/formats.js';

const dir = (name: string) => new URL(`../../../test/fixtures/golden/${name}/checkpoint`, import.meta.url).pathname;
const tokens = (n: number, vocab: number) => new Int32Array(n).map((_, i) => (i * 7919 + 13) % vocab);

function shape(s: ModelState) {
  return s.layers.map((l) => ({ caches: l.caches().map((c) => c.count), bytes: l.ring.length, comp: l.comp?.kv.length ?? 0 }));
}

test('synthetic fill: same cache counts as a real prefill, stored formats, decodes deterministically', async () => {
  const m = await loadModel(dir('tiny-a'));
  const P = 37; // not a multiple of the compress ratios: pending rows in flight
  const real = m.newState();
  m.forward([{ state: real, tokens: tokens(P, m.vocabSize) }]);
  const syn = fillSyntheticContext(m.newState(), P, m.args.ropeHeadDim, 5);
  assert.equal(syn.position, P);
  assert.deepEqual(shape(syn), shape(real));
  let compressed = 0;
  for (const l of syn.layers) {
    const ring = new Float32Array(new Uint32Array(Array.from(l.ring, (b) => b << 16)).buffer);
    assert.ok(ring.every(Number.isFinite));
    if (l.cache) compressed += l.cache.count;
    const ic = l.idxCache;
    if (ic) {
      // indexer keys: FP4-simulated, so every entry has its exact compact form
      const v = ic.values();
      const w = ic.width;
      for (let t = 0; t < ic.count; t++) {
        assert.equal(ic.exact[t], 1, `indexer key ${t}`);
        for (let i = 0; i < w; i++) {
          const code: number = ic.codes[codeIndex(t, i, w)]! - FP4_CODE_OFFSET;
          assert.equal(code * ic.units[(t * w + i) >> 5]!, v[t * w + i] || 0);
        }
      }
    }
    for (const c of l.caches()) for (const x of c.values()) assert.equal(x, roundBf16(x));
  }
  assert.ok(compressed > 0, 'the fill wrote compressed entries');
  // decoding from the synthetic state: finite logits, the same through clone and serialize
  const next = tokens(3, m.vocabSize).map((t) => (t + 5) % m.vocabSize);
  const copy = syn.clone();
  const restored = m.restoreState(syn.serialize());
  const run = (s: ModelState) => m.forward([{ state: s, tokens: next }])[0]!;
  const a = run(syn);
  assert.ok(a.every(Number.isFinite));
  assert.deepEqual(run(copy), a);
  assert.deepEqual(run(restored), a);
  // the same seed gives the same state
  const again = fillSyntheticContext(m.newState(), P, m.args.ropeHeadDim, 5);
  assert.deepEqual(Array.from(again.serialize()), Array.from(fillSyntheticContext(m.newState(), P, m.args.ropeHeadDim, 5).serialize()));
});
