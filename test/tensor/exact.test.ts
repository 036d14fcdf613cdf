import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sumF32, dotF32, dotF32x32, meanSquareF32, exactSumToF32, exactBigSumToF32, fma32, sum2F32 } from '../../src/tensor/exact.js';
import { hadamardBf16 } from '../../src/tensor/hadamard.js';
import { ropeFrequencies } from '../../src/tensor/rope.js';
import { referenceKernels } from '../../src/tensor/reference-kernels.js';
import { actQuant } from '../../src/tensor/quant.js';
import { roundBf16, E4M3_VALUES } from '../../src/tensor/formats.js';

test('exact sums round once: cancellation, ties, subnormals', () => {
  assert.equal(sumF32([1e30, 1, -1e30]), 1);
  const tie = 1 + 2 ** -24; // exact midpoint between 1 and 1+2^-23
  assert.equal(sumF32([1, 2 ** -24]), 1);
  assert.equal(sumF32([1, 2 ** -24, 2 ** -80]), Math.fround(1 + 2 ** -23));
  assert.equal(sumF32([tie, -(2 ** -90)]), 1);
  assert.equal(sum2F32(1, 2 ** -24 + 2 ** -70), Math.fround(1 + 2 ** -23));
  assert.equal(fma32(3, 1 / 3, -1), Math.fround(3 * (1 / 3) - 1));
  assert.equal(exactSumToF32([2 ** -149, 2 ** -151]), 2 ** -149);
  assert.equal(exactSumToF32([2 ** -150]), 0); // tie to even (0)
  assert.equal(exactSumToF32([3 * 2 ** -151]), 2 ** -149);
  assert.equal(exactSumToF32([1, 1, 1], 3, 3), 1);
  assert.equal(exactSumToF32([1], 1, 3), Math.fround(1 / 3));
  assert.equal(meanSquareF32([3, 4, 0], 0, 3), Math.fround(25 / 3));
});

test('filtered fast path equals the exact BigInt path on random data', () => {
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  for (let trial = 0; trial < 200; trial++) {
    const n = 1 + (trial % 97);
    const a = new Float64Array(n).map(() => roundBf16(rnd() * 2 ** Math.floor(rnd() * 20)));
    const b = new Float64Array(n).map(() => Math.fround(rnd()));
    const prods = a.map((v, i) => v * b[i]!);
    assert.equal(dotF32(a, 0, b, 0, n), exactBigSumToF32(prods));
    assert.equal(exactSumToF32(prods), exactBigSumToF32(prods));
    const a32 = Float32Array.from(a), b32 = Float32Array.from(b.map(roundBf16));
    assert.equal(dotF32x32(a32, 0, b32, 0, n), exactBigSumToF32(Float64Array.from(a32, (v, i) => v * b32[i]!)));
    assert.equal(meanSquareF32(a, 0, n), exactBigSumToF32(a.map((v) => Math.fround(v * v)), n, n));
  }
});

test('Hadamard (Sylvester) is orthonormal up to rounding and matches the definition', () => {
  const x = new Float32Array(128).map((_, i) => roundBf16(Math.sin(i)));
  const y = x.slice();
  hadamardBf16(y, 0, 128);
  let popc = (v: number) => { let c = 0; for (; v; v &= v - 1) c++; return c; };
  for (const j of [0, 1, 77, 127]) {
    let s = 0;
    for (let i = 0; i < 128; i++) s += (popc(i & j) & 1 ? -1 : 1) * x[i]!;
    assert.equal(y[j], roundBf16(Math.fround(Math.fround(s) * Math.fround(128 ** -0.5))));
  }
  hadamardBf16(y, 0, 128);
  for (let i = 0; i < 128; i++) assert.ok(Math.abs(y[i]! - x[i]!) < 0.02);
});

test('YaRN ramp bounds of §2.6 (theta 160000, L0 65536, factor 16)', () => {
  const plain = ropeFrequencies({ dim: 64, base: 160000, originalSeqLen: 0, factor: 16, betaFast: 32, betaSlow: 1 });
  const yarn = ropeFrequencies({ dim: 64, base: 160000, originalSeqLen: 65536, factor: 16, betaFast: 32, betaSlow: 1 });
  for (let i = 0; i <= 15; i++) assert.equal(yarn[i], plain[i]);
  for (let i = 25; i < 32; i++) assert.equal(yarn[i], Math.fround(plain[i]! / 16));
  assert.ok(yarn[20]! < plain[20]! && yarn[20]! > plain[20]! / 16);
});

test('reference fp8Gemm equals dequantize-then-blockwise math', () => {
  const K = 256, N = 130;
  const x = new Float32Array(2 * K).map((_, i) => roundBf16(Math.cos(i * 0.7) * 3));
  const qa = actQuant(x, 2, K);
  const data = new Uint8Array(N * K).map((_, i) => (i * 37) % 256 & 0xf7);
  const scale = new Uint8Array(2 * 2).map((_, i) => 120 + i);
  const w = { kind: 'fp8' as const, out: N, inF: K, data, scale };
  const y = new Float32Array(2 * N);
  referenceKernels.fp8Gemm(qa, w, y);
  for (const [m, n] of [[0, 0], [1, 129], [1, 5]] as const) {
    let acc = 0;
    for (let kb = 0; kb < 2; kb++) {
      let dot = 0;
      for (let k = kb * 128; k < kb * 128 + 128; k++) dot += E4M3_VALUES[qa.q[m * K + k]!]! * E4M3_VALUES[data[n * K + k]!]!;
      acc = Math.fround(acc + Math.fround(Math.fround(dot) * Math.fround(qa.scale[m * 2 + kb]! * 2 ** (scale[(n >> 7) * 2 + kb]! - 127))));
    }
    assert.equal(y[m * N + n], acc);
  }
});
