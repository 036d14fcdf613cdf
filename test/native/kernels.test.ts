// The native kernels must produce the reference's bits on every input:
// all e4m3 / e2m1 codes, extreme and special scales, rows=1 (GEMV) and
// rows>1 (GEMM), odd output sizes, K not a multiple of 256.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runTestFileInChild } from './child.js';
import { loadNative, makeNativeKernels, getKernels } from '../../src/tensor/native.js';
import { referenceKernels } from '../../src/tensor/reference-kernels.js';
import { dotF32 } from '../../src/tensor/exact.js';
import type { Fp4Weight, Fp8Weight, QuantizedActivations } from '../../src/tensor/kernels.js';
import { assertSameBits } from './bits.js';
import { xorshift } from './rng.js';

const { addon, reason } = loadNative();
const skip = addon ? false : `native addon unavailable: ${reason}`;

const rnd = xorshift(0x9e3779b9);
const randInt = (n: number) => Math.floor(rnd() * n);

/** Random e4m3 codes without NaN (act_quant never emits 0x7f/0xff). */
function codes(n: number, mode: 'all' | 'small' | 'large'): Uint8Array {
  const a = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let c: number;
    if (mode === 'small') c = randInt(24); // zeros, subnormals, tiny normals
    else if (mode === 'large') c = 0x60 + randInt(0x1f); // big magnitudes
    else c = randInt(0x7f);
    a[i] = c | (rnd() < 0.5 ? 0x80 : 0);
  }
  return a;
}

function acts(rows: number, cols: number, scales: number[]): QuantizedActivations {
  const q = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    // mix value regimes per row so block sums span the full exact range
    const mode = (['all', 'small', 'large'] as const)[r % 3]!;
    const c = codes(cols, mode);
    if (r % 4 === 3) for (let i = 0; i < cols; i += 2) c[i] = codes(1, 'small')[0]!;
    q.set(c, r * cols);
  }
  const scale = new Float32Array((rows * cols) / 128).map(() => scales[randInt(scales.length)]!);
  return { rows, cols, q, scale };
}

const xScales = [1, 2 ** -7, 2 ** -20, 2 ** 10, 2 ** -126, 2 ** -135, 2 ** 100, 0.75];
const wScaleBytes = [127, 120, 130, 0, 1, 254, 100, 140];

function fp8Weight(out: number, inF: number): Fp8Weight {
  const data = new Uint8Array(out * inF);
  for (let n = 0; n < out; n++) data.set(codes(inF, (['all', 'small', 'large'] as const)[n % 3]!), n * inF);
  const scale = new Uint8Array(Math.ceil(out / 128) * Math.ceil(inF / 128)).map(() => wScaleBytes[randInt(8)]!);
  return { kind: 'fp8', out, inF, data, scale };
}

function fp4Weight(out: number, inF: number): Fp4Weight {
  const data = new Uint8Array((out * inF) / 2).map(() => randInt(256));
  const scale = new Uint8Array((out * inF) / 32).map(() => wScaleBytes[randInt(8)]!);
  return { kind: 'fp4', out, inF, data, scale };
}

const shapes: [rows: number, out: number, inF: number][] = [
  [1, 1, 128],
  [1, 7, 384],
  [1, 131, 256],
  [1, 260, 640],
  [2, 5, 128],
  [3, 129, 384],
  [4, 33, 512],
  [7, 130, 640],
  [50, 9, 256],
  // more rows than one pass of the FP8 GEMM (256) or the FP4 one (64) holds
  [300, 13, 256],
  // large enough to be split over the thread pool (>= 256 KiB of work per share)
  [1, 1501, 1024],
  [40, 301, 1024],
];

for (const kind of ['fp8', 'fp4'] as const) {
  test(`${kind}Gemm: native == reference bit for bit (GEMV and GEMM shapes)`, { skip }, () => {
    const nk = makeNativeKernels(addon!);
    for (const [rows, out, inF] of shapes) {
      const x = acts(rows, inF, xScales);
      const want = new Float32Array(rows * out);
      const got = new Float32Array(rows * out).fill(NaN);
      if (kind === 'fp8') {
        const w = fp8Weight(out, inF);
        referenceKernels.fp8Gemm(x, w, want);
        nk.fp8Gemm(x, w, got);
      } else {
        const w = fp4Weight(out, inF);
        referenceKernels.fp4Gemm(x, w, want);
        nk.fp4Gemm(x, w, got);
      }
      assertSameBits(got, want, `${kind} rows=${rows} out=${out} inF=${inF}`);
    }
  });
}

// The FP4 GEMM (more than 7 activation rows; with AVX-512 VNNI more than 3, native/fp4_gemm_vnni.cc: 32 weight rows
// per converted group, 2 activation rows per tile, 64 per pass): K ending in a half chunk (4 blocks),
// weight and activation rows that fill no whole group or tile, several passes, every e2m1 nibble
// against every e4m3 code, and the special scales.
test('fp4Gemm: the GEMM path == reference bit for bit at its tile edges', { skip }, () => {
  const nk = makeNativeKernels(addon!);
  for (const [rows, out, inF] of [[4, 19, 256], [5, 33, 384], [8, 32, 128], [9, 37, 384], [33, 17, 640], [70, 130, 1152], [13, 1, 256]] as const) {
    const x = acts(rows, inF, xScales);
    const w = fp4Weight(out, inF);
    const want = new Float32Array(rows * out);
    const got = new Float32Array(rows * out).fill(NaN);
    referenceKernels.fp4Gemm(x, w, want);
    nk.fp4Gemm(x, w, got);
    assertSameBits(got, want, `fp4 GEMM rows=${rows} out=${out} inF=${inF}`);
  }
  // weight row n holds nibble (n + k) % 16 at column k, activation row m code (k + 37 m) % 256 (NaN codes
  // replaced by zero): every (nibble, code) pair meets in each block position
  const rows = 12, out = 20, inF = 512;
  const w: Fp4Weight = {
    kind: 'fp4', out, inF,
    data: new Uint8Array((out * inF) / 2).map((_, i) => {
      const n = Math.floor((2 * i) / inF), k = (2 * i) % inF;
      return ((n + k) & 15) | (((n + k + 1) & 15) << 4);
    }),
    scale: new Uint8Array((out * inF) / 32).map((_, i) => wScaleBytes[i % 8]!),
  };
  const q = new Uint8Array(rows * inF).map((_, i) => {
    const c = (i % inF + 37 * Math.floor(i / inF)) & 255;
    return (c & 0x7f) === 0x7f ? 0 : c;
  });
  const x: QuantizedActivations = { rows, cols: inF, q, scale: new Float32Array((rows * inF) / 128).map((_, i) => xScales[i % 8]!) };
  const want = new Float32Array(rows * out);
  const got = new Float32Array(rows * out).fill(NaN);
  referenceKernels.fp4Gemm(x, w, want);
  nk.fp4Gemm(x, w, got);
  assertSameBits(got, want, 'fp4 GEMM all nibbles x codes');
  // a NaN weight scale (255) and a NaN activation code: the reference's NaNs, the rest untouched
  w.scale[3 * (inF / 32) + 5] = 255;
  x.q[7 * inF + 300] = 0xff;
  referenceKernels.fp4Gemm(x, w, want);
  nk.fp4Gemm(x, w, got.fill(NaN));
  assertSameBits(got, want, 'fp4 GEMM NaN scale / code');
  assert.ok(Number.isNaN(got[3]!) && !Number.isNaN(got[2]!));
});

test('every e4m3 code pair and every e2m1 code appear and match', { skip }, () => {
  const nk = makeNativeKernels(addon!);
  // weight row n holds code (n + k) % 256 at column k, activations hold code k % 256:
  // all 256 x 256 pairs occur; NaN codes are replaced by zero here (tested below)
  const inF = 256;
  const out = 256;
  const fix = (c: number) => ((c & 0x7f) === 0x7f ? 0 : c);
  const w8: Fp8Weight = {
    kind: 'fp8', out, inF,
    data: new Uint8Array(out * inF).map((_, i) => fix(((i / inF) | 0) + (i % inF)) & 255),
    scale: new Uint8Array(2 * 2).fill(127),
  };
  for (let i = 0; i < w8.data.length; i++) w8.data[i] = fix((((i / inF) | 0) + (i % inF)) & 255);
  const x: QuantizedActivations = {
    rows: 1, cols: inF, q: new Uint8Array(inF).map((_, k) => fix(k)), scale: new Float32Array([1, 2 ** -3]),
  };
  const want = new Float32Array(out);
  const got = new Float32Array(out);
  referenceKernels.fp8Gemm(x, w8, want);
  nk.fp8Gemm(x, w8, got);
  assertSameBits(got, want, 'fp8 all code pairs');
  const w4: Fp4Weight = {
    kind: 'fp4', out, inF,
    data: new Uint8Array((out * inF) / 2).map((_, i) => (i * 37 + (i >> 7)) & 255),
    scale: new Uint8Array((out * inF) / 32).map((_, i) => 120 + (i % 15)),
  };
  referenceKernels.fp4Gemm(x, w4, want);
  nk.fp4Gemm(x, w4, got);
  assertSameBits(got, want, 'fp4 all nibbles');
});

test('NaN codes and NaN scales propagate like the reference', { skip }, () => {
  const nk = makeNativeKernels(addon!);
  const w = fp8Weight(5, 256);
  w.data[3 * 256 + 17] = 0x7f; // NaN weight code -> reference fallback
  const x = acts(2, 256, [1]);
  const want = new Float32Array(10);
  const got = new Float32Array(10);
  referenceKernels.fp8Gemm(x, w, want);
  nk.fp8Gemm(x, w, got);
  assertSameBits(got, want, 'fp8 NaN weight');
  assert.ok(Number.isNaN(got[3]!) && !Number.isNaN(got[2]!));
  const w2 = fp8Weight(5, 256);
  x.q[300] = 0xff; // NaN activation code in row 1
  w2.scale[1] = 255; // NaN weight scale for the second K block
  referenceKernels.fp8Gemm(x, w2, want);
  nk.fp8Gemm(x, w2, got);
  assertSameBits(got, want, 'fp8 NaN activation / scale');
  const w4 = fp4Weight(3, 256);
  w4.scale[2] = 255;
  const x4 = acts(1, 256, [1]);
  const want4 = new Float32Array(3);
  const got4 = new Float32Array(3);
  referenceKernels.fp4Gemm(x4, w4, want4);
  nk.fp4Gemm(x4, w4, got4);
  assertSameBits(got4, want4, 'fp4 NaN scale');
  assert.ok(Number.isNaN(got4[0]!));
});

test('shape errors are reported like the reference', { skip }, () => {
  const nk = makeNativeKernels(addon!);
  const w = fp8Weight(4, 256);
  assert.throws(() => nk.fp8Gemm(acts(1, 128, [1]), w, new Float32Array(4)), RangeError);
  assert.throws(() => nk.fp8Gemm(acts(1, 256, [1]), w, new Float32Array(3)), RangeError);
});

test('getKernels picks the native kernels when the addon is built', { skip }, () => {
  if (process.env.DSV4_KERNELS) return;
  // avx2-vnni: the FP4 GEMM of native/fp4_gemm_vnni.cc (AVX-512 VNNI + VL + BW present, DSV4_NO_AVX512 unset)
  const isa = process.env.DSV4_NO_AVX2 ? 'scalar' : process.env.DSV4_NO_AVX512 ? '(avx2|scalar)' : '(avx2-vnni|avx2|scalar)';
  const threads = process.env.DSV4_THREADS ?? '\\d+';
  assert.match(getKernels().name, new RegExp(`^native-${isa}-${threads}t$`));
});

test('the portable kernels and other thread counts give the same bits (child processes)', { skip }, () => {
  if (process.env.DSV4_TEST_CHILD) return;
  for (const env of [{ DSV4_NO_AVX2: '1', DSV4_THREADS: '3' }, { DSV4_THREADS: '1' }, { DSV4_THREADS: '5' }, { DSV4_NO_AVX512: '1' }]) runTestFileInChild(import.meta.url, env, 7);
});

test('bf16Gemm: native == exact dot products rounded once (incl. near-tie fallbacks)', { skip }, () => {
  const nk = makeNativeKernels(addon!);
  const bf = (v: number) => {
    const f = new Float32Array([v]);
    const u = new Uint32Array(f.buffer);
    return ((u[0]! + 0x7fff + ((u[0]! >>> 16) & 1)) >>> 16) & 0xffff;
  };
  for (const [rows, out, K] of [[1, 37, 200], [3, 9, 13], [2, 64, 1024], [70, 5, 1024]] as const) {
    const w = new Uint16Array(out * K).map(() => bf((rnd() * 2 - 1) * 2 ** (randInt(40) - 20)));
    const x = new Float32Array(rows * K).map(() => Math.fround((rnd() * 2 - 1) * 2 ** (randInt(30) - 15)));
    // row 0 of the weights: an exact tie in float64 that only the exact sum settles
    w.fill(bf(1), 0, K);
    x.fill(0, 0, K);
    x[0] = 1;
    x[1] = 2 ** -24;
    x[2] = 2 ** -80;
    const wt = { kind: 'bf16' as const, out, inF: K, data: w };
    const got = new Float32Array(rows * out).fill(NaN);
    nk.bf16Gemm!(x, rows, wt, got);
    const want = new Float32Array(rows * out);
    const row = new Float32Array(K);
    for (let n = 0; n < out; n++) {
      for (let k = 0; k < K; k++) row[k] = new Float32Array(new Uint32Array([w[n * K + k]! << 16]).buffer)[0]!;
      for (let m = 0; m < rows; m++) want[m * out + n] = dotF32(x, m * K, row, 0, K);
    }
    assertSameBits(got, want, `bf16 rows=${rows} out=${out} K=${K}`);
    assert.equal(got[0], Math.fround(1 + 2 ** -23));
  }
});

test('bf16Gemm: an exact float64 tie is certified and rounds to even', { skip }, () => {
  const nk = makeNativeKernels(addon!);
  const one = 0x3f80; // BF16 1.0
  const w = { kind: 'bf16' as const, out: 2, inF: 2, data: new Uint16Array([one, one, one, 0xbf80]) };
  const x = new Float32Array([1, 2 ** -24]);
  const y = new Float32Array(2);
  nk.bf16Gemm!(x, 1, w, y);
  assert.equal(y[0], 1); // 1 + 2^-24 is a tie: even neighbour
  assert.equal(y[1], Math.fround(1 - 2 ** -24));
});
