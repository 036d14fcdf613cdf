import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hadamardBf16, hadamardBf16Reference } from '../../src/tensor/hadamard.js';
import { roundBf16 } from '../../src/tensor/formats.js';

// Deterministic LCG so failures reproduce.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
}

test('fast hadamardBf16 gives the bits of the exact O(n²) reference (wide exponents, cancellations, ties)', () => {
  const r = rng(7);
  let checked = 0;
  for (const n of [1, 2, 8, 64, 128]) {
    for (let trial = 0; trial < 60; trial++) {
      const x = new Float32Array(n + 3);
      for (let i = 0; i < n; i++) {
        const kind = trial % 4;
        let v = (r() - 0.5) * 4;
        if (kind === 1) v *= 2 ** Math.floor(r() * 80 - 40); // wide exponent spread
        if (kind === 2) v = Math.floor(r() * 5) - 2; // small integers: exact sums, zeros, ties
        if (kind === 3) v = (i % 2 ? 1 : -1) * (1 + 2 ** -7 * Math.floor(r() * 3)); // heavy cancellation
        x[3 + i] = roundBf16(v);
      }
      const a = x.slice();
      const b = x.slice();
      hadamardBf16(a, 3, n);
      hadamardBf16Reference(b, 3, n);
      assert.deepEqual(Array.from(new Uint32Array(a.buffer)), Array.from(new Uint32Array(b.buffer)), `n=${n} trial=${trial}`);
      checked++;
    }
  }
  assert.equal(checked, 300);
});
