// The order of the scale multiplications in the exact FP8 and FP4 products (reference-kernels.ts): FP8 takes
// RN32(block dot * RN32(act scale * weight scale)), FP4 RN32(RN32(block dot * act scale) * weight scale).
// Power-of-two scales make every order agree unless an intermediate overflows or lands among the
// subnormals, so random inputs rarely tell the orders apart. Here act scales of 2^119 (the product with a
// large block dot overflows first) and 2^-135 / 2^-140 (it loses low bits, or the scale product flushes to
// 0) meet weight scales of 2^-27 and 2^-20; the test first checks that those inputs do separate the
// reference from the swapped orders, then that every native path (GEMV 1-2 rows, the 4-row groups, GEMM
// tiles, a batch; AVX2 and portable; checked to fail with the order swapped in the FP8 GEMV, the FP8 and
// FP4 GEMM tiles and the portable FP4 kernel) gives the reference's bits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runTestFileInChild } from './child.js';
import { loadNative, makeNativeKernels } from '../../src/tensor/native.js';
import { referenceKernels } from '../../src/tensor/reference-kernels.js';
import { E2M1_VALUES, E4M3_VALUES } from '../../src/tensor/formats.js';
import type { Fp4Weight, Fp8Weight, Kernels, QuantizedActivations } from '../../src/tensor/kernels.js';
import { assertSameBits } from './bits.js';
import { xorshift } from './rng.js';

const { addon, reason } = loadNative();
const skip = addon ? false : `native addon unavailable: ${reason}`;

const rnd = xorshift(0x1b873593);
const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
const fr = Math.fround;
// and 2^119 in block 0 of even rows; 2^-140 (its 2^-10 multiple is not an fp32: the FP4 kernels' reference
// path, for the whole call) only where asked
const ACT_SCALES = [2 ** -135, 1, 2 ** -7];
// 2^-20, 2^-27: with 2^119 an overflow in one order only (FP8: the reference's, FP4: the swapped one)
const WEIGHT_BYTES = [107, 100];

/**
 * Blocks of large codes (FP8 block dots near 2^20) and of odd small ones (dots with low bits set), both
 * signs, no NaN; even rows have act scale 2^119 in block 0 (their outputs overflow in one order only).
 */
function acts(rows: number, cols: number, tiny = false): QuantizedActivations {
  const q = new Uint8Array(rows * cols).map((_, i) => (Math.floor(i / 128) % 2 ? 1 + 2 * Math.floor(rnd() * 8) : 0x70 + Math.floor(rnd() * 14)) | (rnd() < 0.3 ? 0x80 : 0));
  const nb = cols / 128;
  const scale = new Float32Array(rows * nb).map((_, i) => (i % nb === 0 && (i / nb) % 2 === 0 ? 2 ** 119 : pick(ACT_SCALES)));
  if (tiny) scale[scale.length - 1] = 2 ** -140;
  return { rows, cols, q, scale };
}

function fp8Weight(out: number, inF: number): Fp8Weight {
  const data = new Uint8Array(out * inF).map(() => (0x60 + Math.floor(rnd() * 0x1e)) | (rnd() < 0.3 ? 0x80 : 0));
  const scale = new Uint8Array(Math.ceil(out / 128) * (inF / 128)).map(() => pick(WEIGHT_BYTES));
  return { kind: 'fp8', out, inF, data, scale };
}

function fp4Weight(out: number, inF: number): Fp4Weight {
  return {
    kind: 'fp4', out, inF,
    data: new Uint8Array((out * inF) / 2).map(() => Math.floor(rnd() * 256)),
    scale: new Uint8Array((out * inF) / 32).map(() => pick(WEIGHT_BYTES)),
  };
}

/** The reference's loops with the scale steps swapped: (dot * act) * weight for FP8, (dot * weight) * act for FP4. */
function swapped(x: QuantizedActivations, w: Fp8Weight | Fp4Weight): Float32Array {
  const K = w.inF, y = new Float32Array(x.rows * w.out);
  const wv = (n: number, k: number) => (w.kind === 'fp8' ? E4M3_VALUES[w.data[n * K + k]!]! : E2M1_VALUES[(w.data[(n * K + k) >> 1]! >> ((k & 1) * 4)) & 15]!);
  const block = w.kind === 'fp8' ? 128 : 32;
  for (let m = 0; m < x.rows; m++)
    for (let n = 0; n < w.out; n++) {
      let acc = 0;
      for (let k0 = 0; k0 < K; k0 += block) {
        let dot = 0;
        for (let k = k0; k < k0 + block; k++) dot += E4M3_VALUES[x.q[m * K + k]!]! * wv(n, k);
        const sa = x.scale[m * (K / 128) + (k0 >> 7)]!;
        const sw = 2 ** (w.kind === 'fp8' ? w.scale[(n >> 7) * (K / 128) + (k0 >> 7)]! - 127 : w.scale[n * (K / 32) + (k0 >> 5)]! - 127);
        acc = fr(acc + (w.kind === 'fp8' ? fr(fr(fr(dot) * sa) * sw) : fr(fr(fr(dot) * sw) * sa)));
      }
      y[m * w.out + n] = acc;
    }
  return y;
}

function product(k: Kernels, x: QuantizedActivations, w: Fp8Weight | Fp4Weight, y: Float32Array): void {
  if (w.kind === 'fp8') k.fp8Gemm(x, w, y);
  else k.fp4Gemm(x, w, y);
}

function differs(a: Float32Array, b: Float32Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) n++;
  return n;
}

const SHAPES: [rows: number, out: number][] = [[1, 12], [2, 12], [3, 9], [9, 12], [16, 20], [48, 8]];

test('scale order: these inputs tell the reference from the swapped orders', () => {
  for (const [rows, out] of [[1, 12], [9, 12]] as const) {
    for (const w of [fp8Weight(out, 512), fp4Weight(out, 512)]) {
      const x = acts(rows, 512), want = new Float32Array(rows * out);
      product(referenceKernels, x, w, want);
      const d = differs(want, swapped(x, w));
      assert.ok(d >= (out * Math.ceil(rows / 2)) / 2, `${w.kind} rows=${rows}: only ${d} of ${want.length} outputs differ from the swapped order`);
    }
  }
});

test('scale order: native FP8 and FP4 products (GEMV, GEMM tiles, a batch) keep the reference order', { skip }, () => {
  const nk = makeNativeKernels(addon!);
  for (const [rows, out] of SHAPES) {
    for (const [inF, tiny] of [[512, false], [1024, false], [512, true]] as const) {
      const x = acts(rows, inF, tiny);
      for (const w of [fp8Weight(out, inF), fp4Weight(out, inF)]) {
        const want = new Float32Array(rows * out), got = new Float32Array(rows * out).fill(NaN), gotB = new Float32Array(rows * out).fill(NaN);
        product(referenceKernels, x, w, want);
        product(nk, x, w, got);
        const what = `${w.kind} rows=${rows} out=${out} inF=${inF}${tiny ? ', a 2^-140 act scale' : ''}`;
        assertSameBits(got, want, what);
        nk.gemmBatch!([{ x, w, y: gotB }, { x, w, y: new Float32Array(rows * out) }]);
        assertSameBits(gotB, want, `${what}, gemmBatch`);
      }
    }
  }
});

test('scale order: the portable kernels and one thread keep it too (child processes)', { skip: skip || !!process.env.DSV4_TEST_CHILD }, () => {
  for (const env of [{ DSV4_NO_AVX2: '1', DSV4_THREADS: '2' }, { DSV4_THREADS: '1' }]) runTestFileInChild(import.meta.url, env, 2);
});
