// The native top-k of BF16 scores (native/topk.cc) selects exactly what tensor/topk.ts topkOrder
// selects, in its order (value descending, ties to the lower index, ±0 equal): heavy ties, ±inf, k at
// and beyond n, and n above 65536 (past the reference's 16-bit packing). Scores that are not BF16
// values, or NaN, are refused (-1), and a refused call leaves nothing behind for the next one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { xorshift } from './rng.js';
import { loadNative, makeNativeKernels } from '../../src/tensor/native.js';
import { roundBf16 } from '../../src/tensor/formats.js';
import { topkOrder, topkWith } from '../../src/tensor/topk.js';

const { addon, reason } = loadNative();
const nk = addon ? makeNativeKernels(addon) : null;
const skip = nk?.topk ? false : `native top-k unavailable: ${addon ? 'addon predates it' : reason}`;
const rnd = xorshift(4242);

function nativeTopk(scores: Float32Array, n: number, k: number): number[] | -1 {
  const out = new Int32Array(Math.max(1, Math.min(n, k)) + 4).fill(-7);
  const m = nk!.topk!(scores, n, k, out);
  if (m < 0) return -1;
  assert.equal(m, Math.min(n, k));
  assert.ok(out.subarray(m).every((v) => v === -7), 'nothing written past the count');
  return Array.from(out.subarray(0, m));
}

test('native top-k == topkOrder on BF16 scores (ties, ±0, ±inf, k >= n, n > 65536)', { skip }, () => {
  let cases = 0;
  for (const n of [1, 2, 7, 300, 4096, 32768, 70000]) {
    for (const k of [1, 5, 512, n, n + 3]) {
      for (const levels of [0, 3, 40]) {
        // levels 0: spread BF16 values; else few distinct values (long runs of ties at the k-th key)
        const scores = new Float32Array(n).map(() => roundBf16(levels ? Math.floor(rnd() * levels) - levels / 2 : (rnd() - 0.5) * 2 ** (rnd() * 40 - 20)));
        if (n > 10) {
          scores[1] = -0;
          scores[2] = 0;
          scores[3] = Infinity;
          scores[4] = -Infinity;
          scores[n - 1] = scores[5]!;
        }
        assert.deepEqual(nativeTopk(scores, n, k), topkOrder(scores, n, k), `n=${n} k=${k} levels=${levels}`);
        cases++;
      }
    }
  }
  assert.equal(cases, 105);
  // a prefix of a longer array: entries past n are not looked at
  const a = Float32Array.from([1, 2, 3, 100, 200].map(roundBf16));
  assert.deepEqual(nativeTopk(a, 3, 2), [2, 1]);
  assert.deepEqual(nativeTopk(a, 0, 2), []);
});

test('native top-k refuses scores that are not BF16 values or NaN; the next call is unaffected', { skip }, () => {
  const notBf16 = Float32Array.from([1, 2, 1 + 2 ** -20, 3]);
  assert.equal(nativeTopk(notBf16, 4, 2), -1);
  const nan = Float32Array.from([1, NaN, 3, 2]);
  assert.equal(nativeTopk(nan, 4, 2), -1);
  // a refusal after some keys were counted leaves the histogram clear
  const b = Float32Array.from([0.5, 1, 2, 0.5, 0.25, 1]);
  assert.deepEqual(nativeTopk(b, 6, 3), [2, 1, 5]);
  assert.deepEqual(nativeTopk(b, 6, 6), [2, 1, 5, 0, 3, 4]);
  // topkWith: the native path for BF16 Float32Array scores, the reference for the rest (same answers)
  assert.deepEqual(topkWith(nk!, b, 6, 3), [2, 1, 5]);
  assert.deepEqual(topkWith(nk!, notBf16, 4, 2), topkOrder(notBf16, 4, 2));
  assert.deepEqual(topkWith(nk!, Float64Array.from([0.1, 0.3, 0.2]), 3, 2), [1, 2]);
});
