// The FP4 GEMV's fast paths (native/fp4_avx2.cc fp4Gemv1 and fp4Gemv<R, true>) run only for 4-row groups
// whose weight scale bytes are neither 0 nor 255, K a multiple of 256 (the checkpoints' case);
// kernels.test.ts draws scale bytes with 0 and 255 in most rows, so these shapes use plain bytes (1..254,
// extremes included) and compare with the TypeScript reference bit for bit: 1-7 activation rows (the
// GEMV; one row: K up to 4096 read row by row, longer rows as 4 interleaved streams), 9 (GEMM tiles plus
// one GEMV row), odd output counts (the 4-row groups' tail), thread splits,
// plain and special scale bytes in one weight, and act scales whose 2^-10 multiple is not exact (the
// reference path).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runTestFileInChild } from './child.js';
import { loadNative, makeNativeKernels } from '../../src/tensor/native.js';
import { referenceKernels } from '../../src/tensor/reference-kernels.js';
import type { Fp4Weight, GemmJob, QuantizedActivations } from '../../src/tensor/kernels.js';
import { xorshift } from './rng.js';
import { assertSameBits } from './bits.js';

const { addon, reason } = loadNative();
const skip = addon ? false : `native addon unavailable: ${reason}`;

const rnd = xorshift(0x85ebca6b);
const randInt = (n: number) => Math.floor(rnd() * n);

/** e4m3 codes without NaN: per row all codes, small ones (zeros, subnormals) or large ones. */
function acts(rows: number, cols: number, scales: number[]): QuantizedActivations {
  const q = new Uint8Array(rows * cols);
  for (let i = 0; i < q.length; i++) {
    const mode = Math.floor(i / cols) % 3;
    const c = mode === 0 ? randInt(0x7f) : mode === 1 ? randInt(24) : 0x60 + randInt(0x1f);
    q[i] = c | (rnd() < 0.5 ? 0x80 : 0);
  }
  return { rows, cols, q, scale: new Float32Array((rows * cols) / 128).map(() => scales[randInt(scales.length)]!) };
}

const xScales = [1, 2 ** -7, 2 ** -20, 2 ** 10, 2 ** -126, 2 ** -135, 2 ** 100, 0.75];
const plainBytes = [1, 2, 60, 110, 120, 127, 130, 140, 200, 253, 254];

/** Random nibbles; scale bytes from `bytes` (plain: no 0 or 255). */
function fp4Weight(out: number, inF: number, bytes = plainBytes): Fp4Weight {
  return {
    kind: 'fp4', out, inF,
    data: new Uint8Array((out * inF) / 2).map(() => randInt(256)),
    scale: new Uint8Array((out * inF) / 32).map(() => bytes[randInt(bytes.length)]!),
  };
}

function check(x: QuantizedActivations, w: Fp4Weight, what: string): void {
  const nk = makeNativeKernels(addon!);
  const want = new Float32Array(x.rows * w.out);
  const got = new Float32Array(x.rows * w.out).fill(NaN);
  referenceKernels.fp4Gemm(x, w, want);
  nk.fp4Gemm(x, w, got);
  assertSameBits(got, want, what);
}

test('fp4Gemm with plain scale bytes: native == reference (1-7 and 9 rows, odd outputs, K = 256..8192)', { skip }, () => {
  const shapes: [rows: number, out: number, inF: number][] = [
    [1, 1, 256], [1, 3, 512], [1, 4, 256], [1, 5, 1024], [1, 131, 2048], [1, 1501, 1024], [1, 9, 384],
    [2, 6, 512], [3, 7, 256], [4, 9, 1024], [5, 4, 512], [7, 13, 256], [9, 11, 512],
  ];
  for (const [rows, out, inF] of shapes) check(acts(rows, inF, xScales), fp4Weight(out, inF), `rows=${rows} out=${out} inF=${inF}`);
  // rows longer than 4096 (one row: 4 interleaved streams), moderate scales: with 2^100 or byte 254 somewhere
  // in every row, every output would overflow and a wrong sum could not show
  for (const [rows, out, inF] of [[1, 9, 4608], [1, 131, 8192], [2, 5, 4608]] as const) {
    check(acts(rows, inF, [1, 2 ** -7, 2 ** -20, 0.75]), fp4Weight(out, inF, [110, 120, 127, 130, 140]), `rows=${rows} out=${out} inF=${inF}`);
  }
});

test('fp4Gemm: extreme plain scale bytes (overflow to inf, subnormal results) and 0/255 bytes in some rows', { skip }, () => {
  for (const bytes of [[1], [254], [1, 254]]) check(acts(1, 512, [2 ** -126, 2 ** 100, 1]), fp4Weight(37, 512, bytes), `bytes ${bytes}`);
  // the same through the GEMM tiles (8 rows and more), with a trailing half chunk
  for (const bytes of [[1], [254], [1, 254]]) check(acts(9, 640, [2 ** -126, 2 ** 100, 1]), fp4Weight(13, 640, bytes), `bytes ${bytes}, 9 rows`);
  // 0 / 255 in the last rows only: threads (and 4-row groups) before them keep the fast path
  const w = fp4Weight(1501, 1024);
  w.scale[1499 * 32 + 5] = 0;
  w.scale[1500 * 32 + 31] = 255;
  check(acts(1, 1024, xScales), w, 'special bytes at the end');
  const w2 = fp4Weight(9, 256);
  w2.scale[0] = 0;
  check(acts(1, 256, xScales), w2, 'special byte in row 0');
});

test('fp4Gemm: act scales whose 2^-10 multiple rounds go to the reference path, same bits', { skip }, () => {
  for (const s of [2 ** -140, 3 * 2 ** -149, 2 ** -149]) {
    const x = acts(2, 512, [1]);
    x.scale[1] = s;
    check({ ...x, rows: 1, q: x.q.subarray(0, 512), scale: x.scale.subarray(0, 4) }, fp4Weight(7, 512), `act scale ${s}, 1 row`);
    check(x, fp4Weight(7, 512), `act scale ${s}, 2 rows`);
    const x9 = acts(9, 512, [1]);
    x9.scale.fill(s, 32, 36);  // all of row 8: its outputs are these blocks' alone
    check(x9, fp4Weight(7, 512), `act scale ${s}, 9 rows`);
  }
});

test('gemmBatch: decode-like expert products with plain scale bytes == reference', { skip: skip || (addon!.gemmBatch ? false : 'no gemmBatch') }, () => {
  const nk = makeNativeKernels(addon!);
  const x1 = acts(1, 1024, xScales);
  const x2 = acts(1, 512, xScales);
  const jobs: GemmJob[] = [];
  for (let e = 0; e < 3; e++) {
    for (const w of [fp4Weight(512, 1024), fp4Weight(509, 1024), fp4Weight(1024, 512)]) {
      const x = w.inF === 1024 ? x1 : x2;
      jobs.push({ x, w, y: new Float32Array(w.out).fill(NaN) });
    }
  }
  nk.gemmBatch!(jobs);
  jobs.forEach((j, i) => {
    const want = new Float32Array(j.w.out);
    referenceKernels.fp4Gemm(j.x, j.w as Fp4Weight, want);
    assertSameBits(j.y, want, `job ${i}`);
  });
});

test('the same with 1 and 3 threads and the portable kernels (child processes)', { skip }, () => {
  if (process.env.DSV4_TEST_CHILD) return;
  for (const env of [{ DSV4_THREADS: '1' }, { DSV4_THREADS: '3' }, { DSV4_NO_AVX2: '1', DSV4_THREADS: '2' }]) runTestFileInChild(import.meta.url, env, 4);
});
