// The FP8/FP4 native kernels tile their work (GEMV: 2 or 4 weight rows at once; FP4 GEMM:
// 8 converted weight rows x 16 activation rows, 4 weight rows per activation load and fp32
// accumulation vector, any row count from 8 on); every tile edge must still give the reference's bits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadNative, makeNativeKernels } from '../../src/tensor/native.js';
import { referenceKernels } from '../../src/tensor/reference-kernels.js';
import type { Fp4Weight, Fp8Weight, QuantizedActivations } from '../../src/tensor/kernels.js';
import { xorshift } from './rng.js';

const { addon, reason } = loadNative();
const skip = addon ? false : `native addon unavailable: ${reason}`;

const rnd = xorshift(0x1234567);
/** Random e4m3 codes, NaN codes (0x7f/0xff) excluded. */
const e4m3 = (n: number) => new Uint8Array(n).map(() => Math.floor(rnd() * 0x7f) | (rnd() < 0.5 ? 0x80 : 0));

function acts(rows: number, cols: number): QuantizedActivations {
  const scales = [1, 2 ** -7, 2 ** 12, 0.75, 2 ** -130];
  return { rows, cols, q: e4m3(rows * cols), scale: new Float32Array((rows * cols) / 128).map(() => scales[Math.floor(rnd() * 5)]!) };
}

function sameBits(got: Float32Array, want: Float32Array, what: string): void {
  const g = new Uint32Array(got.buffer);
  const w = new Uint32Array(want.buffer);
  for (let i = 0; i < got.length; i++) {
    if (g[i] !== w[i]) assert.fail(`${what}: element ${i}: ${got[i]} != ${want[i]}`);
  }
}

// rows around the 4-row and 16-row groups and the FP8 GEMM's activation chunks (at most 64 rows, equal
// sizes: 65 -> 36 + 29, 130 -> 44 + 44 + 42), outputs around the 2/4/8-row groups, the FP8 GEMM's 4-row
// vectors, 12-row tiles and converted groups and 128-row scale blocks, K with a trailing half chunk
// (K % 256 == 128) and without, and the model's K = 1024 / 2048 / 4096
const shapes: [rows: number, out: number, inF: number][] = [
  [1, 2, 128], [1, 3, 384], [1, 5, 256], [1, 9, 1152],
  [2, 8, 128], [3, 7, 384], [4, 9, 640], [5, 16, 256], [15, 17, 384], [16, 8, 128], [17, 25, 1152], [33, 3, 256],
  [2, 13, 1152], [47, 13, 128], [50, 30, 256], [97, 131, 384], [6, 150, 128],
  [8, 12, 1024], [10, 6, 4096], [48, 21, 2048], [65, 28, 1024], [64, 40, 2048], [130, 13, 256],
];

test('fp8/fp4 GEMV and GEMM tile edges match the reference bit for bit', { skip }, () => {
  const nk = makeNativeKernels(addon!);
  for (const [rows, out, inF] of shapes) {
    const x = acts(rows, inF);
    const w8: Fp8Weight = { kind: 'fp8', out, inF, data: e4m3(out * inF), scale: new Uint8Array(Math.ceil(out / 128) * (inF / 128)).map(() => 115 + Math.floor(rnd() * 20)) };
    const w4: Fp4Weight = { kind: 'fp4', out, inF, data: new Uint8Array((out * inF) / 2).map(() => Math.floor(rnd() * 256)), scale: new Uint8Array((out * inF) / 32).map(() => [0, 1, 127, 120, 140, 254][Math.floor(rnd() * 6)]!) };
    for (const w of [w8, w4]) {
      const want = new Float32Array(rows * out);
      const got = new Float32Array(rows * out).fill(NaN);
      if (w.kind === 'fp8') {
        referenceKernels.fp8Gemm(x, w, want);
        nk.fp8Gemm(x, w, got);
      } else {
        referenceKernels.fp4Gemm(x, w, want);
        nk.fp4Gemm(x, w, got);
      }
      sameBits(got, want, `${w.kind} rows=${rows} out=${out} inF=${inF}`);
    }
  }
});

test('fp4 GEMM (several activation rows) over every e2m1 code and e4m3 activation code', { skip }, () => {
  const nk = makeNativeKernels(addon!);
  const inF = 256;
  const out = 19;
  // 1-7 rows: the GEMV alone (up to 4 activation rows per weight conversion); 9, 11: GEMM tiles
  for (const rows of [1, 2, 3, 4, 6, 7, 9, 11]) {
    // activation row r holds code (k + 51 r) % 256 at column k (NaN codes zeroed): all codes appear in every row
    const q = new Uint8Array(rows * inF).map((_, i) => {
      const c = ((i % inF) + 51 * Math.floor(i / inF)) & 255;
      return (c & 0x7f) === 0x7f ? 0 : c;
    });
    const x: QuantizedActivations = { rows, cols: inF, q, scale: new Float32Array((rows * inF) / 128).map((_, i) => 2 ** ((i % 5) - 2)) };
    const w: Fp4Weight = { kind: 'fp4', out, inF, data: new Uint8Array((out * inF) / 2).map((_, i) => (i * 29 + (i >> 5)) & 255), scale: new Uint8Array((out * inF) / 32).map((_, i) => 118 + (i % 19)) };
    const want = new Float32Array(rows * out);
    const got = new Float32Array(rows * out);
    referenceKernels.fp4Gemm(x, w, want);
    nk.fp4Gemm(x, w, got);
    sameBits(got, want, `fp4 GEMM all codes, rows=${rows}`);
  }
});
