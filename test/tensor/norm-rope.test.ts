import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmsNorm } from '../../src/tensor/norm.js';
import { applyRope, ropeFrequencies, ropeTable } from '../../src/tensor/rope.js';
import { roundBf16 } from '../../src/tensor/formats.js';

const fr = Math.fround;

test('RMSNorm: fp32 mean of squares rounded once, rsqrt, weight, BF16 out', () => {
  const x = new Float32Array([1, -2, 3, 0.5].map(roundBf16));
  const w = new Float32Array([1, 0.5, 2, -1].map(roundBf16));
  const y = rmsNorm(x, 1, 4, w, 1e-6);
  const mean = fr((1 + 4 + 9 + 0.25) / 4);
  const r = fr(1 / Math.sqrt(fr(mean + fr(1e-6))));
  for (let i = 0; i < 4; i++) assert.equal(y[i], roundBf16(fr(w[i]! * fr(x[i]! * r))));
  assert.ok(Math.abs(y[2]! - (2 * 3) / Math.sqrt(mean)) < 0.02);
});

test('RoPE: interleaved pairs, one rounding per component, inverse = conjugate, lazy table', () => {
  const p = { dim: 64, base: 10000, originalSeqLen: 0, factor: 16, betaFast: 32, betaSlow: 1 };
  const t = ropeTable(p, 100000);
  const f = ropeFrequencies(p);
  const x = new Float32Array(70).map((_, i) => roundBf16(Math.sin(i + 1)));
  const y = x.slice();
  applyRope(y, 6, t, 0);
  assert.deepEqual([...y], [...x]); // position 0 is the identity
  applyRope(y, 6, t, 77777);
  for (const i of [0, 5, 31]) {
    const ang = fr(77777 * f[i]!);
    const c = fr(Math.cos(ang));
    const s = fr(Math.sin(ang));
    const a = x[6 + 2 * i]!;
    const b = x[6 + 2 * i + 1]!;
    assert.equal(y[6 + 2 * i], roundBf16(a * c - b * s));
    assert.equal(y[6 + 2 * i + 1], roundBf16(a * s + b * c));
  }
  assert.deepEqual([...y.subarray(0, 6)], [...x.subarray(0, 6)]); // only the 64 dims from offset 6
  applyRope(y, 6, t, 77777, true);
  for (let i = 6; i < 70; i++) assert.ok(Math.abs(y[i]! - x[i]!) < 0.02, `dim ${i}`);
  assert.throws(() => applyRope(y, 6, t, 100000), /beyond the RoPE table/);
});
