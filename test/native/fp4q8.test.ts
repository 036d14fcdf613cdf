// The int8 FP4 products of fast numerics (fast-products.ts 4; native/fp4q8_*.cc through the addon's
// fastDecode) give the bits of the TypeScript reference fp4q8Gemm: 1..15 activation rows, K from one
// 128-block to 8192 (half chunks included), odd outputs and row ranges, all-zero blocks, blocks whose
// max is 1 (X = 1: one subnormal code), the largest codes (448), subnormal codes, weight scale bytes 0
// and 255 (the portable loop for that 4-row group), NaN activation codes (NaN rows); FP8 and FP4 jobs
// mixed in one fastDecode call give the bits of the jobs one by one; then on the portable kernels and
// one thread (child processes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runTestFileInChild } from './child.js';
import { assertSameValues } from './bits.js';
import { loadNative } from '../../src/tensor/native.js';
import { nativeFastProducts } from '../../src/tensor/fast-native.js';
import { fp4q8Gemm, Q8_ROWS, referenceFastProducts as ref } from '../../src/tensor/fast-products.js';
import type { Fp4Weight, Fp8Weight, GemmJob, QuantizedActivations } from '../../src/tensor/kernels.js';
import { xorshift } from './rng.js';

const { addon, reason } = loadNative();
const skip = addon ? (addon.fastDecode ? false : 'addon built without fastDecode') : `native addon unavailable: ${reason}`;

const rnd = xorshift(0x6b43a9b5);
const randInt = (n: number) => Math.floor(rnd() * n);
const pick = <T>(a: readonly T[]): T => a[randInt(a.length)]!;

/** e4m3 codes without NaN: zeros, subnormals, the largest finite (0x7e, 448), random. */
function codes(n: number): Uint8Array {
  return new Uint8Array(n).map(() => {
    const r = rnd();
    return (r < 0.1 ? randInt(8) : r < 0.15 ? 0x7e : randInt(0x7f)) | (rnd() < 0.5 ? 0x80 : 0);
  });
}

function acts(rows: number, K: number): QuantizedActivations {
  return { rows, cols: K, q: codes(rows * K), scale: new Float32Array((rows * K) / 128).map(() => pick([2 ** -8, 2 ** -5, 3.7e-5, 1, 7.1e-39])) };
}

/** FP4 weight; `extreme`: some scale bytes 0 (2^-127) and 255 (NaN). */
function fp4Weight(out: number, K: number, extreme = false): Fp4Weight {
  const scale = new Uint8Array((out * K) / 32).map(() => (extreme && rnd() < 0.05 ? pick([0, 255]) : 110 + randInt(30)));
  return { kind: 'fp4', out, inF: K, data: new Uint8Array((out * K) / 2).map(() => randInt(256)), scale };
}

function fp8Weight(out: number, K: number): Fp8Weight {
  return { kind: 'fp8', out, inF: K, data: codes(out * K), scale: new Uint8Array(Math.ceil(out / 128) * (K / 128)).map(() => 112 + randInt(20)) };
}

const outOf = (n: number) => new Float32Array(n).fill(12345);

/** fastDecode of one FP4 job over weight rows [r0, r0 + n). */
function decode(x: QuantizedActivations, w: Fp4Weight, r0: number, n: number, y: Float32Array): void {
  addon!.fastDecode!([x.q, x.scale, x.rows, x.cols], [0, 1, w.data, w.scale, r0, n, y]);
}

/** The reference over rows [r0, r0 + n) of w. */
function reference(x: QuantizedActivations, w: Fp4Weight, r0: number, n: number): Float32Array {
  const K = w.inF;
  const part: Fp4Weight = { kind: 'fp4', out: n, inF: K, data: w.data.subarray((r0 * K) / 2, ((r0 + n) * K) / 2), scale: w.scale.subarray((r0 * K) / 32, ((r0 + n) * K) / 32) };
  const y = outOf(x.rows * n);
  fp4q8Gemm(x, part, y);
  return y;
}

function check(x: QuantizedActivations, w: Fp4Weight, r0 = 0, n = w.out, what = ''): void {
  const got = outOf(x.rows * n);
  decode(x, w, r0, n, got);
  assertSameValues(got, reference(x, w, r0, n), `fp4 q8 ${x.rows}x[${r0}, ${r0 + n})x${w.inF} ${what}`);
}

test('fp4 q8: rows 1..15, odd outputs, K from 128 to 8192, row ranges', { skip }, () => {
  for (let rows = 1; rows <= Q8_ROWS; rows++) {
    const K = pick([128, 384, 1024, 2048]);
    check(acts(rows, K), fp4Weight(pick([1, 3, 5, 8, 13, 37]), K));
  }
  for (const K of [128, 256, 384, 640, 1024, 2048, 4096, 8192]) for (const rows of [1, 2, 5]) check(acts(rows, K), fp4Weight(pick([7, 9, 21]), K));
  check(acts(1, 2048), fp4Weight(300, 2048), 37, 201); // a range not on the 4-row groups
  check(acts(4, 1024), fp4Weight(64, 1024), 3, 5);
  check(acts(15, 4096), fp4Weight(11, 4096)); // 4 groups of activation rows, 8-piece segments
});

test('fp4 q8: zero blocks, M = 1, max and subnormal codes, scale bytes 0 and 255, NaN activation codes', { skip }, () => {
  const K = 512;
  const x = acts(5, K);
  x.q.fill(0, 0, 32); // row 0 block 0 all +0
  x.q.fill(0x80, 64, 96); // row 0 block 2 all -0
  x.q.fill(0, K, K + 32);
  x.q[K + 7] = 0x81; // row 1 block 0: M = 1 (one subnormal -2^-9)
  x.q.fill(0x7e, 2 * K, 2 * K + 32); // row 2 block 0: all 448
  x.q[2 * K + 40] = 0xfe; // -448 beside smaller values
  for (let k = 3 * K; k < 3 * K + 64; k++) x.q[k] = randInt(8) | (rnd() < 0.5 ? 0x80 : 0); // subnormal blocks
  // row 4: per block a max M = d 2^s (every significand d) and an element M / 2, whose q = 64 is an exact
  // quotient (254 M / 2 + M) / (2 M): a float64 reciprocal of 2M must not floor it to 63
  x.q.fill(0, 4 * K, 5 * K);
  for (let b = 0; b < K / 32; b++) {
    const c = ((2 + randInt(13)) << 3) | (b & 7);
    x.q[4 * K + 32 * b] = c | (b & 8 ? 0x80 : 0);
    x.q[4 * K + 32 * b + 1 + randInt(31)] = (c - 8) | (rnd() < 0.5 ? 0x80 : 0);
  }
  for (const extreme of [false, true]) check(x, fp4Weight(23, K, extreme), 0, 23, extreme ? 'scales 0/255' : 'edge codes');
  const w = fp4Weight(12, K);
  w.scale.fill(0, 0, 16); // row 0: 2^-127 scales (the portable loop for its 4-row group)
  w.scale[5 * 16 + 3] = 255;
  check(x, w, 0, 12, 'scale bytes in some groups');
  const xn = acts(3, K);
  xn.q[K + 100] = 0x7f; // row 1: NaN
  const got = outOf(3 * 9);
  decode(xn, fp4Weight(9, K), 0, 9, got);
  assert.ok(got.slice(9, 18).every(Number.isNaN), 'NaN row');
  assert.ok(got.slice(0, 9).every(Number.isFinite) && got.slice(18).every(Number.isFinite), 'other rows finite');
  check(xn, fp4Weight(9, K), 0, 9, 'NaN row');
  xn.q[2 * K + 3] = 0xff;
  check(xn, fp4Weight(9, K), 0, 9, 'two NaN rows');
});

test('fastDecode: FP8 and FP4 jobs in one call give the bits of the jobs one by one; fast gemmBatch routes them there', { skip }, () => {
  const fast = nativeFastProducts(addon!)!;
  const x1 = acts(1, 1024);
  const x2 = acts(2, 512);
  const x5 = acts(5, 1024);
  const jobs: GemmJob[] = [
    { x: x1, w: fp4Weight(64, 1024), y: outOf(64) },
    { x: x1, w: fp8Weight(40, 1024), y: outOf(40) }, // shares the activation matrix with an FP4 job
    { x: x2, w: fp4Weight(30, 512), y: outOf(60) },
    { x: x2, w: fp8Weight(33, 512), y: outOf(66) },
    { x: x5, w: fp4Weight(17, 1024, true), y: outOf(85) },
    { x: x5, w: fp8Weight(129, 1024), y: outOf(645) },
    { x: x1, w: fp4Weight(600, 1024), y: outOf(600) }, // several pieces
  ];
  let calls = 0;
  const counting = nativeFastProducts({ ...addon!, hasNanE4m3: (d: Uint8Array) => addon!.hasNanE4m3(d), fastBatch: addon!.fastBatch, fastGemv: addon!.fastGemv, fastDecode: (a: unknown[], j: unknown[]) => (calls++, addon!.fastDecode!(a, j)) })!;
  counting.gemmBatch!(jobs);
  assert.equal(calls, 1, 'one fastDecode call for the batch');
  for (const j of jobs) {
    const want = outOf(j.y.length);
    if (j.w.kind === 'fp4') ref.fp4Gemm(j.x, j.w, want);
    else ref.fp8Gemm(j.x, j.w, want);
    assertSameValues(j.y, want, `batch job ${j.w.kind} ${j.x.rows}x${j.w.out}x${j.w.inF}`);
    const one = outOf(j.y.length);
    if (j.w.kind === 'fp4') fast.fp4Gemm(j.x, j.w, one);
    else fast.fp8Gemm(j.x, j.w, one);
    assertSameValues(one, want, `job alone ${j.w.kind} ${j.x.rows}x${j.w.out}`);
  }
  // an addon without fastDecode: FP4 products of up to Q8_ROWS rows take the reference (fastBatch does not give them)
  const old = nativeFastProducts({ ...addon!, hasNanE4m3: (d: Uint8Array) => addon!.hasNanE4m3(d), fastBatch: addon!.fastBatch, fastGemv: addon!.fastGemv, fastDecode: undefined })!;
  const y = outOf(64);
  old.fp4Gemm(x1, jobs[0]!.w as Fp4Weight, y);
  assertSameValues(y, jobs[0]!.y, 'without fastDecode');
});

test('fp4 q8 on the portable kernels and on one thread', { skip: skip || (process.env.DSV4_TEST_CHILD ? 'in a child already' : false) }, () => {
  runTestFileInChild(import.meta.url, { DSV4_NO_AVX2: '1' }, 3);
  runTestFileInChild(import.meta.url, { DSV4_THREADS: '1' }, 3);
});
