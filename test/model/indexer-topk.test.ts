import { test } from 'node:test';
import assert from 'node:assert/strict';
import { topkOrder } from '../../src/tensor/topk.js';
import { roundBf16 } from '../../src/tensor/formats.js';

function fullSort(scores: Float64Array, n: number, topk: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  order.sort((a, b) => scores[b]! - scores[a]! || a - b);
  return order.slice(0, Math.min(topk, n));
}

test('partial top-k equals the full sort (score desc, lowest index wins ties, ±0 equal)', () => {
  let s = 12345;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
  let cases = 0;
  for (const n of [0, 1, 5, 64, 700, 3000]) {
    for (const topk of [1, 4, 512]) {
      for (const levels of [3, 50, 0]) {
        const scores = new Float64Array(n).map(() => (levels ? Math.floor(rnd() * levels) - 1 : rnd() - 0.5));
        if (n > 2) scores[1] = -0; // -0 and +0 compare equal
        assert.deepEqual(topkOrder(scores, n, topk), fullSort(scores, n, topk), `n=${n} topk=${topk} levels=${levels}`);
        cases++;
      }
    }
  }
  const withNaN = new Float64Array([1, NaN, 3, 2]);
  assert.deepEqual(topkOrder(withNaN, 4, 2), fullSort(withNaN, 4, 2));
  assert.equal(cases, 54);
});

test('BF16 scores (histogram selection): same as the full sort, incl. ±0, ±inf, heavy ties, large n', () => {
  let s = 777;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
  for (const n of [2, 300, 600, 32768]) {
    for (const topk of [1, 512]) {
      for (const spread of [0.01, 1, 1e30]) {
        const scores = new Float64Array(n).map(() => roundBf16((rnd() - 0.5) * spread));
        if (n > 10) {
          scores[3] = -0;
          scores[4] = 0;
          scores[5] = Infinity;
          scores[6] = -Infinity;
          scores[7] = scores[8]!;
        }
        assert.deepEqual(topkOrder(scores, n, topk), fullSort(scores, n, topk), `n=${n} topk=${topk} spread=${spread}`);
        assert.deepEqual(topkOrder(Float32Array.from(scores), n, topk), fullSort(scores, n, topk), `f32: n=${n} topk=${topk} spread=${spread}`);
      }
    }
  }
  // the histogram is left clear: a second selection over different scores is unaffected
  const a = new Float64Array([1, 2, 3, 4, 5, 6]);
  assert.deepEqual(topkOrder(a, 6, 2), [5, 4]);
  const b = new Float64Array([0.5, 1, 2, 0.5, 0.25, 1]).map(roundBf16);
  assert.deepEqual(topkOrder(b, 6, 3), [2, 1, 5]);
});
