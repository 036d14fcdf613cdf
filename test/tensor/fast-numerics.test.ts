// Fast numerics (tensor/fast-products.ts, fast-kernels.ts): fmaF32 is a single rounding, the
// fast products stay within the fp32 accumulation error bound of the exact ones, small products
// stay exact, and the goldens' drift is on the fp32 noise floor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fma32 } from '../../src/tensor/exact.js';
import { fmaF32, referenceFastProducts, fp8WeightRow, fp4WeightRow, dequantActivations, fp4q8Gemm, q8Row, Q8_ROWS } from '../../src/tensor/fast-products.js';
import { FAST_GEMV_MIN_ROWS, parseNumerics, withFastProducts } from '../../src/tensor/fast-kernels.js';
import { referenceKernels } from '../../src/tensor/reference-kernels.js';
import { exactDenseRows } from '../../src/tensor/dense.js';
import { verifyGolden, summarize, relativeDrift, FAST_DRIFT_LIMIT } from '../../src/model/golden.js';
import type { Bf16Weight, Fp4Weight, Fp8Weight, QuantizedActivations } from '../../src/tensor/kernels.js';

let seed = 7;
const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
const bytes = (n: number, f: () => number): Uint8Array => Uint8Array.from({ length: n }, f);
const e4m3Code = (): number => {
  const c = Math.floor(rnd() * 256);
  return (c & 0x7f) === 0x7f ? c & 0xfe : c; // no NaN codes
};

function activations(rows: number, K: number): QuantizedActivations {
  return { rows, cols: K, q: bytes(rows * K, e4m3Code), scale: Float32Array.from({ length: (rows * K) / 128 }, () => 2 ** -Math.floor(rnd() * 8)) };
}
function fp8Weight(out: number, K: number): Fp8Weight {
  return { kind: 'fp8', out, inF: K, data: bytes(out * K, e4m3Code), scale: bytes(Math.ceil(out / 128) * (K / 128), () => 117 + Math.floor(rnd() * 8)) };
}
function fp4Weight(out: number, K: number): Fp4Weight {
  return { kind: 'fp4', out, inF: K, data: bytes((out * K) / 2, () => Math.floor(rnd() * 256)), scale: bytes((out * K) / 32, () => 120 + Math.floor(rnd() * 8)) };
}
function bf16Weight(out: number, K: number): Bf16Weight {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  return { kind: 'bf16', out, inF: K, data: Uint16Array.from({ length: out * K }, () => ((f[0] = (rnd() - 0.5) * 0.2), u[0]! >>> 16)) };
}

test('fmaF32 is one rounding: random operands, constructed midpoints, signs, overflow', () => {
  const f = Math.fround;
  for (let i = 0; i < 20000; i++) {
    const a = f((rnd() - 0.5) * 2 ** Math.floor(rnd() * 40 - 20));
    const b = f((rnd() - 0.5) * 2 ** Math.floor(rnd() * 40 - 20));
    const c = f((rnd() - 0.5) * 2 ** Math.floor(rnd() * 60 - 30));
    assert.equal(fmaF32(a, b, c), fma32(a, b, c), `fma(${a}, ${b}, ${c})`);
  }
  // a*b + c = (1 + 2^-23 + 2^-24) - 2^-70: float64 rounds it onto the fp32 midpoint, where ties-to-even
  // would give 1 + 2^-22; the single rounding gives 1 + 2^-23
  const a = 1 + 2 ** -23;
  const b = 2 ** -24 - 2 ** -47;
  assert.notEqual(f(a * b + a), a);
  assert.equal(fmaF32(a, b, a), a);
  assert.equal(fmaF32(-a, b, -a), -a);
  assert.equal(fma32(a, b, a), a);
  assert.equal(fmaF32(1, 2 ** -24, 1), 1); // an exact tie: to even
  assert.equal(fmaF32(1, 2 ** -24 + 2 ** -60, 1), f(1 + 2 ** -23)); // just above the tie
  assert.equal(fmaF32(2 ** 127, 4, 0), Infinity);
  assert.ok(Number.isNaN(fmaF32(NaN, 1, 0)));
});

/** |fast - exact| <= K * 2^-24 * Σ|w·x| + one ulp: the fp32 sequential-sum error bound. */
function assertWithinBound(fast: Float32Array, exact: Float32Array, mag: Float64Array, K: number, what: string): void {
  let differs = 0;
  for (let i = 0; i < exact.length; i++) {
    const bound = (K + 1) * 2 ** -24 * mag[i]! + 2 ** -149;
    assert.ok(Math.abs(fast[i]! - exact[i]!) <= bound, `${what}[${i}]: fast ${fast[i]} exact ${exact[i]} bound ${bound}`);
    if (fast[i] !== exact[i]) differs++;
  }
  assert.ok(differs > 0, `${what}: the fast product never differed from the exact one (not exercised?)`);
}

function magnitudes(xv: Float32Array, rows: number, K: number, row: (n: number) => Float32Array, out: number): Float64Array {
  const mag = new Float64Array(rows * out);
  for (let n = 0; n < out; n++) {
    const w = row(n);
    for (let m = 0; m < rows; m++) for (let k = 0; k < K; k++) mag[m * out + n] += Math.abs(w[k]! * xv[m * K + k]!);
  }
  return mag;
}

test('fast FP8 / FP4 / BF16 products stay within the fp32 error bound of the exact ones', () => {
  const K = 512;
  const out = 40;
  const buf = new Float32Array(K);

  for (const w of [fp8Weight(out, K), fp4Weight(out, K)]) {
    const rows = w.kind === 'fp4' ? Q8_ROWS + 1 : 5; // FP4 below that: the int8 semantics (next test)
    const x = activations(rows, K);
    const xv = dequantActivations(x);
    const exact = new Float32Array(rows * out);
    const fast = new Float32Array(rows * out);
    const row = (n: number) => (w.kind === 'fp8' ? fp8WeightRow(w, n, buf) : fp4WeightRow(w, n, buf)).slice();
    if (w.kind === 'fp8') {
      referenceKernels.fp8Gemm(x, w, exact);
      referenceFastProducts.fp8Gemm(x, w, fast);
    } else {
      referenceKernels.fp4Gemm(x, w, exact);
      referenceFastProducts.fp4Gemm(x, w, fast);
    }
    assertWithinBound(fast, exact, magnitudes(xv, rows, K, row, out), K, w.kind);
  }

  const rows = 5;
  const wb = bf16Weight(out, K);
  const xf = Float32Array.from({ length: rows * K }, () => rnd() - 0.5);
  const eb = exactDenseRows(xf, rows, wb);
  const fb = new Float32Array(rows * out);
  referenceFastProducts.denseGemm(xf, rows, wb, 0, out, fb);
  const wrow = (n: number) => Float32Array.from(wb.data.subarray(n * K, n * K + K), (h) => new Float32Array(new Uint32Array([h << 16]).buffer)[0]!);
  assertWithinBound(fb, eb, magnitudes(xf, rows, K, wrow, out), K, 'bf16');
});

test('fast FP4 products of up to Q8_ROWS rows (int8 semantics): q rounds half up, the drift stays within the int8 rounding bound', () => {
  // one block: X = 2 (code 0x02, 2 * 2^-9) is the max; X = 1 gives 127 / 2 = 63.5, rounded up to 64;
  // X = -1 gives -64, X = 0 gives 0
  const x: QuantizedActivations = { rows: 1, cols: 128, q: new Uint8Array(128), scale: new Float32Array([0.75]) };
  x.q.set([0x02, 0x01, 0x81, 0x00]);
  const r = q8Row(x, 0)!;
  assert.deepEqual([...r.q.subarray(0, 4)], [127, 64, -64, 0]);
  assert.equal(r.A[0], Math.fround((2 * 0.75 * 2 ** -10) / 127));
  assert.equal(r.A[1], 0); // an all-zero block
  // weights: element 0 = 6 (nibble 7, k = 12), element 1 = -0.5 (nibble 9, k = -1), scale 2^1
  const w: Fp4Weight = { kind: 'fp4', out: 1, inF: 128, data: new Uint8Array(64), scale: new Uint8Array(4).fill(128) };
  w.data[0] = 0x97;
  const y = new Float32Array(1);
  fp4q8Gemm(x, w, y);
  assert.equal(y[0], Math.fround(Math.fround((12 * 127 - 64) * r.A[0]!) * 2));
  // a NaN code makes the row's outputs NaN, as in the exact product
  x.q[5] = 0x7f;
  fp4q8Gemm(x, w, y);
  assert.ok(Number.isNaN(y[0]) && q8Row(x, 0) === null);

  // random products: |q8 - exact| <= per block |ws sa 2^-10| sum|k| M / 254 (+ fp32 rounding)
  const K = 512;
  const out = 30;
  const rows = 3;
  const xr = activations(rows, K);
  const wr = fp4Weight(out, K);
  const got = new Float32Array(rows * out);
  const exact = new Float32Array(rows * out);
  referenceFastProducts.fp4Gemm(xr, wr, got);
  referenceKernels.fp4Gemm(xr, wr, exact);
  const xv = dequantActivations(xr);
  const buf = new Float32Array(K);
  let differs = 0;
  for (let n = 0; n < out; n++) {
    const wv = fp4WeightRow(wr, n, buf);
    for (let m = 0; m < rows; m++) {
      let bound = 0;
      let mag = 0;
      for (let b = 0; b < K / 32; b++) {
        let M = 0;
        let wsum = 0;
        for (let k = b * 32; k < b * 32 + 32; k++) {
          M = Math.max(M, Math.abs(xv[m * K + k]!));
          wsum += Math.abs(wv[k]!);
          mag += Math.abs(wv[k]! * xv[m * K + k]!);
        }
        bound += (wsum * M) / 254;
      }
      bound += (K / 32 + 2) * 2 ** -23 * (mag + bound) + 2 ** -149;
      const i = m * out + n;
      assert.ok(Math.abs(got[i]! - exact[i]!) <= bound, `[${m}, ${n}]: q8 ${got[i]} exact ${exact[i]} bound ${bound}`);
      if (got[i] !== exact[i]) differs++;
    }
  }
  assert.ok(differs > 0, 'the int8 semantics never differed from the exact product');
});

test('withFastProducts: FP8, FP4 and BF16 products from FAST_GEMV_MIN_ROWS rows take the fast products', () => {
  const k = withFastProducts(referenceKernels, referenceFastProducts);
  assert.equal(k.numerics, 'fast');
  const K = 256;
  const w8 = fp8Weight(24, K);
  const w4 = fp4Weight(24, K);
  for (const rows of [1, 2, 3, 9, Q8_ROWS, Q8_ROWS + 1]) {
    const x = activations(rows, K);
    for (const w of [w8, w4]) {
      const min = FAST_GEMV_MIN_ROWS;
      const got = new Float32Array(rows * 24);
      const want = new Float32Array(rows * 24);
      const kinds = rows < min ? referenceKernels : referenceFastProducts;
      if (w.kind === 'fp8') {
        k.fp8Gemm(x, w, got);
        kinds.fp8Gemm(x, w, want);
      } else {
        k.fp4Gemm(x, w, got);
        kinds.fp4Gemm(x, w, want);
      }
      assert.deepEqual(got, want, `${w.kind} rows ${rows}`);
      // the batched form routes each job the same way
      const viaBatch = new Float32Array(rows * 24);
      k.gemmBatch!([{ x, w, y: viaBatch }]);
      assert.deepEqual(viaBatch, want, `${w.kind} gemmBatch rows ${rows}`);
    }
    const wb = bf16Weight(24, K);
    const xf = Float32Array.from({ length: rows * K }, () => rnd() - 0.5);
    const got = new Float32Array(rows * 24);
    const want = new Float32Array(rows * 24);
    k.bf16Gemm!(xf, rows, wb, got);
    if (rows < FAST_GEMV_MIN_ROWS) want.set(exactDenseRows(xf, rows, wb));
    else referenceFastProducts.denseGemm(xf, rows, wb, 0, 24, want);
    assert.deepEqual(got, want, `bf16 rows ${rows}`);
  }
  assert.equal(parseNumerics(undefined), 'exact');
  assert.equal(parseNumerics('FAST'), 'fast');
  assert.throws(() => parseNumerics('quick'), /exact" or "fast/);
});

test('goldens in fast numerics: the drift is reported and sits on the fp32 noise floor', async () => {
  const dir = new URL('../../../test/fixtures/golden/tiny-b', import.meta.url).pathname;
  const kernels = withFastProducts(referenceKernels, referenceFastProducts);
  const r = await verifyGolden(dir, { kernels });
  assert.equal(r.numerics, 'fast');
  const drift = relativeDrift(r.rows);
  assert.ok(drift > 0, 'fast numerics changed nothing: the fast products were not used');
  assert.ok(drift < FAST_DRIFT_LIMIT, summarize(r));
  assert.ok(r.ok);
  assert.match(summarize(r), /drift RMS/);
});
