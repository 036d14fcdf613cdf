// The native exact BF16-valued products (native/bf16_*.cc) against the TypeScript
// reference (model/linear.ts exactLinear) bit for bit: BF16 weights (the head) and
// FP8 weights used as BF16 values (wo_a), random and adversarial inputs, plus the
// fallback counts (level 2: tight bound in C, level 3: flagged to TypeScript).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runTestFileInChild } from './child.js';
import { loadNative, makeNativeKernels } from '../../src/tensor/native.js';
import { exactLinear } from '../../src/model/linear.js';
import type { Bf16Weight, Fp8Weight } from '../../src/tensor/kernels.js';
import { xorshift } from './rng.js';
import { bf16Bits, bf16Value } from '../../src/tensor/formats.js';

const { addon, reason } = loadNative();
const skip = addon ? false : `native addon unavailable: ${reason}`;
const nk = addon ? makeNativeKernels(addon) : undefined;
const avx2 = addon ? addon.info().isa === 'avx2' : false;

const rnd = xorshift(0x2545f491);
const randInt = (n: number) => Math.floor(rnd() * n);
const gauss = () => Math.sqrt(-2 * Math.log(rnd() + 2 ** -40)) * Math.cos(2 * Math.PI * rnd());

function expectSame(got: Float32Array, want: Float32Array, what: string): void {
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i]) && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) assert.fail(`${what}[${i}]: native ${got[i]} != reference ${want[i]}`);
  }
}

function bf16Product(x: Float32Array, rows: number, w: Bf16Weight, what: string): void {
  const got = new Float32Array(rows * w.out).fill(NaN);
  nk!.bf16Gemm!(x, rows, w, got);
  expectSame(got, exactLinear(x, rows, w), what);
}

function fp8Product(x: Float32Array, rows: number, w: Fp8Weight, r0: number, n: number, what: string): void {
  const got = new Float32Array(rows * n).fill(NaN);
  nk!.fp8AsBf16Gemm!(x, rows, w, r0, n, got);
  expectSame(got, exactLinear(x, rows, w, r0, n), what);
}

/** Counter deltas of fn: elements, level-2 recomputations, level-3 flags. */
function stats(fn: () => void): { elements: number; tight: number; flagged: number } {
  const a = addon!.denseStats();
  fn();
  const b = addon!.denseStats();
  return { elements: b.elements - a.elements, tight: b.tight - a.tight, flagged: b.flagged - a.flagged };
}

const wide = () => bf16Bits((rnd() * 2 - 1) * 2 ** (randInt(40) - 20));
const wideX = () => Math.fround((rnd() * 2 - 1) * 2 ** (randInt(30) - 15));

test('bf16Gemm: random wide-range inputs, odd K (not a multiple of 8/16/128), 1..70 rows, K-sliced 3-4 rows', { skip }, () => {
  for (const [rows, out, K] of [[1, 37, 200], [3, 9, 13], [1, 5, 7], [2, 64, 1024], [1, 300, 2048], [5, 17, 1000], [4, 130, 129], [70, 5, 1024], [3, 21, 2000], [4, 23, 1500]] as const) {
    const w: Bf16Weight = { kind: 'bf16', out, inF: K, data: new Uint16Array(out * K).map(wide) };
    bf16Product(new Float32Array(rows * K).map(wideX), rows, w, `bf16 ${rows}x${out}x${K}`);
  }
});

test('bf16Gemm: realistic data (RMS-normed BF16 activations with outlier channels) needs no TypeScript fallback', { skip }, () => {
  const out = 2048, K = 2048;
  const w: Bf16Weight = { kind: 'bf16', out, inF: K, data: new Uint16Array(out * K).map(() => bf16Bits(gauss() * 0.02)) };
  for (const rows of [1, 5]) {
    const x = new Float32Array(rows * K).map((_, i) => bf16Value(bf16Bits(gauss() * (i % 97 === 0 ? 20 : 1))));
    const s = stats(() => bf16Product(x, rows, w, `realistic ${rows} rows`));
    assert.equal(s.elements, rows * out);
    if (!avx2) continue; // the portable kernel settles with the looser whole-row bound
    assert.equal(s.flagged, 0);
    assert.ok(s.tight <= rows * out * 0.02, `level-2 recomputations ${s.tight} of ${s.elements}`);
  }
});

/** Weights and activations that need every settling level: row 0 cancels to a tiny remainder (level 2
 *  or the certificate), row 1 with the last activation row is an exact tie, then BF16 subnormals, zeros
 *  and negative zeros, +Inf, NaN, and products that cancel to 0; activation rows 1-3 (when not the
 *  last) hold an Inf, a NaN and an fp32 subnormal. */
function adversarialBf16(rows: number, K: number, out: number): { w: Uint16Array; x: Float32Array } {
  const w = new Uint16Array(out * K).map(wide);
  const x = new Float32Array(rows * K).map(wideX);
  const row = (n: number) => w.subarray(n * K, n * K + K);
  for (let k = 0; k + 1 < K; k += 2) {
    row(0)[k] = wide();
    row(0)[k + 1] = row(0)[k]! ^ 0x8000;
    for (let m = 0; m < rows; m++) x[m * K + k + 1] = x[m * K + k]!;
  }
  x[K - 1] = 2 ** -60;
  row(1).fill(0);
  row(1)[0] = bf16Bits(1);
  row(1)[1] = bf16Bits(1);
  x[(rows - 1) * K] = 1;
  x[(rows - 1) * K + 1] = 2 ** -24; // with row 1: 1 + 2^-24 is a tie, rounds to even (1)
  row(2).forEach((_, k) => (row(2)[k] = randInt(0x7f) | (k & 1 ? 0x8000 : 0)));
  row(3).forEach((_, k) => (row(3)[k] = k & 1 ? 0x8000 : 0));
  row(4)[17] = 0x7f80;
  row(5)[42] = 0x7fc0;
  for (let k = 0; k < K; k++) row(6)[k] = bf16Bits(k & 1 ? -1 : 1);
  if (rows > 2) x[K + 5] = Infinity;
  if (rows > 3) x[2 * K + 9] = NaN;
  if (rows > 4) x[3 * K + 2] = 1e-45;
  return { w, x };
}

test('bf16Gemm: cancellation, ties, subnormals, zeros, signed zeros, Inf/NaN (GEMV and tiled GEMM)', { skip }, () => {
  const K = 300, out = 13;
  for (const rows of [1, 2, 3, 4, 6]) {
    const { w, x } = adversarialBf16(rows, K, out);
    const wt: Bf16Weight = { kind: 'bf16', out, inF: K, data: w };
    const s = stats(() => bf16Product(x, rows, wt, `adversarial ${rows} rows`));
    if (avx2) assert.ok(s.tight > 0, `${rows} rows: the cancelling row goes through level 2`);
    assert.ok(s.flagged >= 2 * rows, `${rows} rows: non-finite weights are flagged to the exact TypeScript sum`);
    const y = new Float32Array(rows * out);
    nk!.bf16Gemm!(x, rows, wt, y);
    assert.equal(y[(rows - 1) * out + 1], 1);
  }
  // non-finite and subnormal activations in the GEMV
  const { w } = adversarialBf16(1, K, out);
  for (const v of [Infinity, NaN, 1e-45]) {
    const xi = new Float32Array(K).map(wideX);
    xi[5] = v;
    bf16Product(xi, 1, { kind: 'bf16', out, inF: K, data: w }, `activation ${v}`);
  }
});

test('bf16Gemm, 1-4 rows (GEMV, 4 weight rows settled together): a cancelling and a non-finite row at each place of a group, 1-9 outputs', { skip }, () => {
  const K = 304;
  for (const rows of [1, 2, 3, 4])
    for (let out = 1; out <= 9; out++) {
      for (let at = 0; at < Math.min(out, 4); at++) {
        const w = new Uint16Array(out * K).map(wide);
        const x = new Float32Array(rows * K).map(wideX);
        const row = (n: number) => w.subarray(n * K, n * K + K);
        // row `at`: pairs w, -w against equal activations, plus one tiny term (level 2 or the certificate)
        for (let k = 0; k + 1 < K; k += 2) {
          row(at)[k + 1] = row(at)[k]! ^ 0x8000;
          for (let m = 0; m < rows; m++) x[m * K + k + 1] = x[m * K + k]!;
        }
        x[K - 1] = 2 ** -60;
        if (at + 4 < out) row(at + 4)[K - 3] = 0x7fc0; // NaN weight in the next group: flagged
        const s = stats(() => bf16Product(x, rows, { kind: 'bf16', out, inF: K, data: w }, `gemv ${rows}x${out}, special row ${at}`));
        if (at + 4 < out) assert.ok(s.flagged >= rows, `${rows}x${out}: the NaN row is flagged`);
      }
    }
});

/** Random e4m3 codes (NaN codes 0x7f/0xff excluded unless asked). */
const codes = (n: number, nan = false) =>
  new Uint8Array(n).map(() => (nan && rnd() < 0.01 ? 0x7f : randInt(0x7f)) | (rnd() < 0.5 ? 0x80 : 0));

test('bf16Gemm and fp8AsBf16Gemm: weights at every alignment (the kernel peels a scalar head to align its loads)', { skip }, () => {
  const K = 272, out = 9;
  for (let off = 0; off < 16; off++) {
    const rows = 1 + (off % 3);
    const x = new Float32Array(rows * K).map(wideX);
    const w16 = new Uint16Array(out * K + 16).map(wide);
    bf16Product(x, rows, { kind: 'bf16', out, inF: K, data: w16.subarray(off, off + out * K) }, `bf16 offset ${off}`);
    const w8 = codes(200 * K + 16);
    const scale = new Uint8Array(2 * Math.ceil(K / 128)).map(() => 100 + randInt(40));
    fp8Product(x, rows, { kind: 'fp8', out: 200, inF: K, data: w8.subarray(off, off + 200 * K), scale }, 50, 150, `fp8 offset ${off}`);
  }
});

test('fp8AsBf16Gemm: FP8 used as BF16 values == exactLinear, row ranges not aligned to 128', { skip }, () => {
  for (const [rows, out, K] of [[1, 300, 1024], [3, 130, 200], [1, 257, 13], [4, 64, 384], [2, 1024, 1024]] as const) {
    const nb = Math.ceil(K / 128);
    const scale = new Uint8Array(Math.ceil(out / 128) * nb).map(() => 110 + randInt(30));
    const w: Fp8Weight = { kind: 'fp8', out, inF: K, data: codes(out * K), scale };
    const x = new Float32Array(rows * K).map(() => bf16Value(bf16Bits(gauss())));
    for (const [r0, n] of [[0, out], [5, out - 5], [out >> 1, 1]] as const) fp8Product(x, rows, w, r0, n, `fp8 ${rows}x${K} rows ${r0}+${n}`);
  }
});

test('fp8AsBf16Gemm: NaN codes, scales where bf16Bits(fp8*scale) rounds or overflows, wide activations', { skip }, () => {
  const out = 260, K = 300, rows = 2, nb = Math.ceil(K / 128);
  const scale = new Uint8Array(Math.ceil(out / 128) * nb).map(() => 100 + randInt(50));
  scale[1] = 0; // 2^-127: subnormal products round in BF16
  scale[3] = 2;
  scale[4] = 250; // overflows BF16
  const w: Fp8Weight = { kind: 'fp8', out, inF: K, data: codes(out * K, true), scale };
  fp8Product(new Float32Array(rows * K).map(wideX), rows, w, 0, out, 'fp8 special');
  // realistic: no TypeScript fallback
  const wr: Fp8Weight = { kind: 'fp8', out: 1024, inF: 1024, data: codes(1024 * 1024), scale: new Uint8Array(64).map(() => 118 + randInt(4)) };
  const x = new Float32Array(1024).map(() => bf16Value(bf16Bits(gauss())));
  const s = stats(() => fp8Product(x, 1, wr, 0, 1024, 'fp8 realistic'));
  if (avx2) assert.equal(s.flagged, 0);
});

test('denseBounds: block bounds >= sum |w| (and not loose), row lsb <= the exact one, NaN for non-finite', { skip }, () => {
  const K = 300, out = 6, stride = Math.ceil(K / 128) + 1;
  const w = new Uint16Array(out * K).map(wide);
  w.fill(0, 2 * K, 3 * K); // an all-zero row
  for (let k = 0; k < K; k++) w[3 * K + k] = randInt(0x80) | (k & 1 ? 0x8000 : 0); // subnormals
  w[4 * K + 200] = 0x7f80; // +Inf
  w[5 * K + 7] = 0xffc1; // NaN
  const b = new Float32Array(out * stride);
  addon!.denseBounds(false, w, new Uint8Array(0), K, out, b);
  for (let r = 0; r < out; r++) {
    let lsb = Infinity;
    for (let blk = 0; blk < stride - 1; blk++) {
      let sum = 0;
      for (let k = blk * 128; k < Math.min(K, blk * 128 + 128); k++) {
        const v = Math.abs(bf16Value(w[r * K + k]!));
        sum += v;
        if (v > 0 && Number.isFinite(v)) lsb = Math.min(lsb, lsbOf(v));
      }
      const got = b[r * stride + blk]!;
      if (!Number.isFinite(sum)) assert.ok(!Number.isFinite(got), `row ${r} block ${blk}: ${got} for a non-finite block`);
      else {
        assert.ok(got >= sum * (1 + 2 ** -40), `row ${r} block ${blk}: bound ${got} < sum ${sum}`);
        assert.ok(got <= sum * (1 + 2 ** -10) || sum === 0 && got === 0, `row ${r} block ${blk}: bound ${got} loose for ${sum}`);
      }
    }
    if (r < 4) assert.ok(b[r * stride + stride - 1]! <= lsb, `row ${r}: lsb ${b[r * stride + stride - 1]} > ${lsb}`);
  }
});

/** Exponent of the lowest set bit of a positive finite value (the largest e with v / 2^e an integer). */
function lsbOf(v: number): number {
  let e = Math.floor(Math.log2(v));
  while (!Number.isInteger(v / 2 ** e)) e--;
  return e;
}

test('the portable kernel and other thread counts give the same bits (child processes)', { skip }, () => {
  if (process.env.DSV4_TEST_CHILD) return;
  for (const env of [{ DSV4_NO_AVX2: '1', DSV4_THREADS: '3' }, { DSV4_THREADS: '1' }]) runTestFileInChild(import.meta.url, env, 10);
});

// The tiled GEMM (native/bf16_avx2.cc, from 4 activation rows): 4x3 register tiles over 8-row weight
// panels and 96-row activation chunks, 4 outputs settled per vector; and the FP8 GEMV of wo_a
// (one activation row: 32 codes per step on the aligned grid, 4 rows settled together).

test('bf16Gemm / fp8AsBf16Gemm tiled: rows 4..13 and across the 96-row chunks, odd output counts and K', { skip }, () => {
  for (const [rows, out, K] of [[4, 9, 200], [5, 1, 13], [6, 17, 129], [7, 3, 256], [11, 12, 1000], [13, 33, 64], [95, 7, 128], [97, 10, 300], [100, 20, 40]] as const) {
    const w: Bf16Weight = { kind: 'bf16', out, inF: K, data: new Uint16Array(out * K).map(wide) };
    bf16Product(new Float32Array(rows * K).map(wideX), rows, w, `bf16 tiled ${rows}x${out}x${K}`);
    const nb = Math.ceil(K / 128);
    const fout = 300;
    const scale = new Uint8Array(Math.ceil(fout / 128) * nb).map(() => 100 + randInt(40));
    const wf: Fp8Weight = { kind: 'fp8', out: fout, inF: K, data: codes(fout * K), scale };
    const x = new Float32Array(rows * K).map(() => bf16Value(bf16Bits(gauss())));
    // row ranges inside one 128-row scale group and across two
    for (const [r0, n] of [[0, out], [121, out], [127, 2 * out + 3]] as const) fp8Product(x, rows, wf, r0, n, `fp8 tiled ${rows}x${K} rows ${r0}+${n}`);
  }
});

test('fp8AsBf16Gemm, 1-7 rows (GEMV): every alignment of K % 32 == 0 rows, row ranges across scale groups, NaN codes', { skip }, () => {
  const K = 256, out = 260, nb = K / 128;
  const scale = new Uint8Array(Math.ceil(out / 128) * nb).map(() => 100 + randInt(40));
  const x = new Float32Array(7 * K).map(() => bf16Value(bf16Bits(gauss())));
  for (let off = 0; off < 32; off += 3) {
    const data = codes(out * K + 32).subarray(off, off + out * K);
    const w: Fp8Weight = { kind: 'fp8', out, inF: K, data, scale };
    const rows = 1 + (off % 7);
    for (const [r0, n] of [[0, out], [125, 7], [1, 1], [126, 130]] as const) fp8Product(x, rows, w, r0, n, `fp8 gemv ${rows} rows offset ${off} rows ${r0}+${n}`);
  }
  // a NaN code and an inexact scale byte: flagged, the reference's value
  const data = codes(out * K);
  data[3 * K + 7] = 0x7f;
  const sc = scale.slice();
  sc[nb + 1] = 250;
  fp8Product(x, 1, { kind: 'fp8', out, inF: K, data, scale: sc }, 0, out, 'fp8 gemv NaN code / inexact scale');
  const xi = x.slice();
  xi[100] = Infinity;
  fp8Product(xi, 1, { kind: 'fp8', out, inF: K, data: codes(out * K), scale }, 0, out, 'fp8 gemv Inf activation');
});
