// Native lightning-indexer scores equal the model's TypeScript scoring bit for
// bit (including the entries the native code flags for an exact recompute),
// and select the same entries as model/indexer.ts indexerSelect. The integer
// kernel on compact FP4 keys: indexer-fp4.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadNative, makeNativeKernels, indexerScoreTs } from '../../src/tensor/native.js';
import { indexerSelect, type IndexerWeights } from '../../src/model/indexer.js';
import { E2M1_VALUES, roundBf16 } from '../../src/tensor/formats.js';
import { IndexerKeyCache } from '../../src/model/state.js';

/** The rows of keys [n, d] in an indexer key cache (they are not fake-FP4: no compact form). */
function keyCache(keys: Float32Array, d: number): IndexerKeyCache {
  const c = new IndexerKeyCache(d);
  for (let o = 0; o < keys.length; o += d) c.push(keys, o);
  return c;
}

const { addon, reason } = loadNative();
const skip = addon ? false : `native addon unavailable: ${reason}`;

let seed = 12345;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);

function data(H: number, d: number, visible: number) {
  // queries: FP4-simulated (e2m1 x power-of-two per 32), keys and head weights: BF16
  const q = new Float32Array(2 * H * d).map((_, i) => E2M1_VALUES[Math.floor(rnd() * 16)]! * 2 ** (((i >> 5) % 7) - 3));
  const keys = new Float32Array(visible * d).map(() => roundBf16((rnd() * 2 - 1) * 2 ** Math.floor(rnd() * 12 - 6)));
  const hw = new Float32Array(2 * H).map(() => roundBf16(rnd() * 2 - 1));
  // exact ties and zero scores: repeated and zero keys
  keys.copyWithin(5 * d, 3 * d, 4 * d);
  keys.fill(0, 7 * d, 8 * d);
  return { q, keys, hw };
}

test('indexerScores: native == model scoring bit for bit, same selection', { skip }, () => {
  const nk = makeNativeKernels(addon!);
  for (const [H, d, visible] of [[4, 128, 300], [3, 12, 40], [64, 128, 33]] as const) {
    const { q, keys, hw } = data(H, d, visible);
    for (const row of [0, 1]) {
      const got = new Float64Array(visible);
      nk.indexerScores!(q, row * H * d, hw, row * H, H, d, keys, visible, got);
      for (let t = 0; t < visible; t++) {
        const want = indexerScoreTs(q, row * H * d, hw, row * H, H, d, keys, t);
        assert.ok(Object.is(got[t], want), `H=${H} d=${d} row ${row} entry ${t}: native ${got[t]} != ${want}`);
      }
      const w = { nHeads: H, headDim: d, topk: Math.min(16, visible) } as IndexerWeights;
      const sel = indexerSelect(w, q, row, hw, keyCache(keys, d), visible);
      const order = Array.from({ length: visible }, (_, i) => i).sort((a, b) => got[b]! - got[a]! || a - b);
      assert.deepEqual(order.slice(0, sel.length), sel);
    }
  }
});

test('indexerScores: NaN keys fall back to the exact TypeScript path', { skip }, () => {
  const nk = makeNativeKernels(addon!);
  const { q, keys, hw } = data(2, 16, 10);
  keys[3 * 16 + 5] = NaN;
  const got = new Float64Array(10);
  nk.indexerScores!(q, 0, hw, 0, 2, 16, keys, 10, got);
  for (let t = 0; t < 10; t++) assert.ok(Object.is(got[t], indexerScoreTs(q, 0, hw, 0, 2, 16, keys, t)), `entry ${t}`);
});
