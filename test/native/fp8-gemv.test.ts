// The FP8 GEMV (native/kernels_avx2.cc fp8Gemv; 1 activation row, or 2) takes 4 (2) weight rows at a time, buffers
// their block sums for up to 64 K blocks, then runs the fp32 block updates 4 rows per vector, and
// prepares the activation row vectorized (NaN codes send the call to the reference). Its row
// tails (1-3 rows), 128-row scale blocks, K = 128 and K beyond one 64-block buffer, and NaN
// activation codes anywhere in a 32-code step must give the reference's bits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runTestFileInChild } from './child.js';
import { loadNative, makeNativeKernels } from '../../src/tensor/native.js';
import { referenceKernels } from '../../src/tensor/reference-kernels.js';
import { exactLinear } from '../../src/model/linear.js';
import type { Fp8Weight, QuantizedActivations } from '../../src/tensor/kernels.js';
import { assertSameBits } from './bits.js';
import { xorshift } from './rng.js';

const { addon, reason } = loadNative();
const skip = addon ? false : `native addon unavailable: ${reason}`;

const rnd = xorshift(0x2545f491);
const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
/** Random e4m3 codes without NaN: all magnitudes, or zeros/subnormals, or large ones; both signs (0x80 = -0 too). */
function e4m3(n: number, mode: 'all' | 'small' | 'large'): Uint8Array {
  const span = mode === 'all' ? 0x7f : 0x1f;
  const base = mode === 'large' ? 0x60 : 0;
  return new Uint8Array(n).map(() => (base + Math.floor(rnd() * span)) | (rnd() < 0.5 ? 0x80 : 0));
}

function acts(cols: number, rows = 1): QuantizedActivations {
  const scales = [1, 2 ** -7, 2 ** 12, 0.75, 2 ** -130, 2 ** 100];
  const q = new Uint8Array(rows * cols);
  for (let m = 0; m < rows; m++) q.set(e4m3(cols, pick(['all', 'small', 'large'] as const)), m * cols);
  return { rows, cols, q, scale: new Float32Array((rows * cols) / 128).map(() => pick(scales)) };
}

function weight(out: number, inF: number): Fp8Weight {
  const data = new Uint8Array(out * inF);
  for (let n = 0; n < out; n++) data.set(e4m3(inF, (['all', 'small', 'large'] as const)[n % 3]!), n * inF);
  const scale = new Uint8Array(Math.ceil(out / 128) * (inF / 128)).map(() => pick([0, 1, 100, 115, 120, 127, 134, 140, 254]));
  return { kind: 'fp8', out, inF, data, scale };
}

function check(x: QuantizedActivations, w: Fp8Weight, what: string): Float32Array {
  const nk = makeNativeKernels(addon!);
  const want = new Float32Array(x.rows * w.out);
  const got = new Float32Array(x.rows * w.out).fill(12345);
  referenceKernels.fp8Gemm(x, w, want);
  nk.fp8Gemm(x, w, got);
  assertSameBits(got, want, what);
  return got;
}

test('fp8 GEMV: row tails, scale blocks, K = 128 and K over one block-sum buffer', { skip }, () => {
  // out % 4 = 1, 2, 3 and 0; 130 and 262 put a group tail after a 128-row scale block; K = 8320
  // and 16512 are 65 and 129 blocks (the 64-block buffer flushed mid-row, then 1 block left)
  const shapes: [out: number, inF: number][] = [
    [1, 128], [2, 128], [3, 128], [4, 128], [5, 256], [6, 384], [7, 128], [8, 1152],
    [130, 256], [262, 384], [129, 128], [9, 8320], [6, 16512], [300, 1024],
  ];
  for (const [out, inF] of shapes) check(acts(inF), weight(out, inF), `out=${out} inF=${inF}`);
});

test('fp8 GEMV, 2 activation rows: 2 weight rows per step, tails, scale blocks, long K, a NaN row', { skip }, () => {
  for (const [out, inF] of [[1, 128], [2, 256], [3, 384], [7, 1152], [130, 256], [129, 128], [5, 8320]] as const) {
    check(acts(inF, 2), weight(out, inF), `2 rows out=${out} inF=${inF}`);
  }
  const x = acts(512, 2);
  x.q[512 + 77] = 0x7f; // NaN code in the second row: the reference path
  check(x, weight(9, 512), '2 rows, NaN in row 1');
});

test('fp8 GEMV, 3-7 activation rows (pairs of rows, then one): tails, scale blocks, long K, a NaN row', { skip }, () => {
  // per group of 4 weight rows, each pair of activation rows then the odd last one; 8 rows take the tiles
  const shapes = [[1, 128], [3, 256], [6, 384], [130, 256], [129, 1152], [5, 8320]] as const;
  for (const rows of [3, 4, 5, 6, 7, 8]) {
    for (const [out, inF] of shapes) check(acts(inF, rows), weight(out, inF), `${rows} rows out=${out} inF=${inF}`);
  }
  const x = acts(512, 5);
  x.q[4 * 512 + 300] = 0x7f; // NaN code in the odd last row: the reference path
  check(x, weight(9, 512), '5 rows, NaN in row 4');
});

test('fp8 GEMV: exact block sums at the extremes (all codes largest / smallest, K = 8192)', { skip }, () => {
  // every product at +-448^2 or at the subnormal lsb: the float64 block sums hit their widest range
  for (const code of [0x7e, 0xfe, 0x01, 0x81]) {
    const inF = 8192;
    const x: QuantizedActivations = { rows: 1, cols: inF, q: new Uint8Array(inF).fill(code), scale: new Float32Array(inF / 128).fill(2 ** -20) };
    const w = weight(5, inF);
    w.data.fill(code, 0, inF);
    w.data.fill(code ^ 0x80, inF, 2 * inF);
    check(x, w, `code 0x${code.toString(16)}`);
  }
});

test('fp8 GEMV: a NaN activation code anywhere in a 32-code step gives the reference (NaN) result', { skip }, () => {
  const inF = 512;
  const w = weight(9, inF);
  for (const pos of [0, 1, 15, 16, 17, 31, 32, 100, 383, 511]) {
    for (const nan of [0x7f, 0xff]) {
      const x = acts(inF);
      x.q[pos] = nan;
      const got = check(x, w, `NaN 0x${nan.toString(16)} at ${pos}`);
      assert.ok(got.every((v) => Number.isNaN(v)), `NaN 0x${nan.toString(16)} at ${pos}: every output NaN`);
    }
  }
});

// wo_a (fp8AsBf16Gemm, FP8 codes as BF16 values) with one activation row: 1-4 weight rows per pass
// (gemvStep), accumulator chains folded every 512 codes; rows that start off the 32-byte grid make
// the loads start before them (more steps than K / 32). Realistic data settles at level 1.
test('wo_a GEMV (fp8AsBf16Gemm, 1 row): row passes, folded chains, unaligned rows == exactLinear', { skip }, () => {
  const nk = makeNativeKernels(addon!);
  const gauss = () => Math.sqrt(-2 * Math.log(rnd() + 2 ** -40)) * Math.cos(2 * Math.PI * rnd());
  for (const [out, K, off] of [[262, 1024, 0], [131, 1056, 5], [9, 2048, 17], [6, 512, 31], [5, 96, 3]] as const) {
    const data = e4m3(out * K + 32, 'all').subarray(off, off + out * K);
    const w: Fp8Weight = { kind: 'fp8', out, inF: K, data, scale: new Uint8Array(Math.ceil(out / 128) * Math.ceil(K / 128)).map(() => pick([116, 118, 120, 122])) };
    const x = new Float32Array(K).map(() => Math.fround(gauss()));
    for (const [r0, n] of [[0, out], [1, out - 1], [out - 3, 3]] as const) {
      const got = new Float32Array(n).fill(NaN);
      const before = addon!.denseStats();
      nk.fp8AsBf16Gemm!(x, 1, w, r0, n, got);
      const after = addon!.denseStats();
      assertSameBits(got, exactLinear(x, 1, w, r0, n), `wo_a out=${out} K=${K} offset ${off} rows ${r0}+${n}`);
      if (addon!.info().isa === 'avx2') assert.equal(after.flagged - before.flagged, 0, `wo_a out=${out} K=${K}: nothing flagged`);
    }
  }
});

test('fp8 GEMV: other thread counts and the portable kernels give the same bits (child processes)', { skip }, () => {
  if (process.env.DSV4_TEST_CHILD) return;
  for (const env of [{ DSV4_THREADS: '1' }, { DSV4_THREADS: '3' }, { DSV4_NO_AVX2: '1' }]) runTestFileInChild(import.meta.url, env, 5);
});
