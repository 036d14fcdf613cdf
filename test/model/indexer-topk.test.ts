import { test } from 'node:test';
import assert from 'node:assert/strict';
import { topkOrder } from '../../src/model/indexer.js';

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
