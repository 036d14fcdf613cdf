// The native fast-numerics products (native/fast_*.cc via src/tensor/fast-native.ts) give the bits of
// referenceFastProducts (fast-products.ts): all four weight kinds, 1..13 and more activation rows
// (tile remainders), outputs not a multiple of the 6-row panels, K within one and over several
// 256-wide k blocks (partial sums carried), subnormal and maximal codes, zero / tiny / huge / NaN
// scales (overflow to Inf, NaN codes), the batched forms; then again on the portable kernels and
// with other thread counts (child processes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runTestFileInChild } from './child.js';
import { loadNative } from '../../src/tensor/native.js';
import { nativeFastProducts } from '../../src/tensor/fast-native.js';
import { referenceFastProducts as ref } from '../../src/tensor/fast-products.js';
import type { Bf16Weight, Fp4Weight, Fp8Weight, GemmJob, QuantizedActivations } from '../../src/tensor/kernels.js';
import { xorshift } from './rng.js';

const { addon, reason } = loadNative();
const fast = addon ? nativeFastProducts(addon) : null;
const skip = addon ? (fast ? false : 'addon built without fast_addon.cc') : `native addon unavailable: ${reason}`;

const rnd = xorshift(0x5bd1e995);
const randInt = (n: number) => Math.floor(rnd() * n);
const pick = <T>(a: readonly T[]): T => a[randInt(a.length)]!;

/** Outputs compared (all, and those not NaN): a test whose cases all came out NaN would test little. */
const seen = { all: 0, numbers: 0 };

function expectSame(got: Float32Array, want: Float32Array, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i]) && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) assert.fail(`${what}[${i}]: ${got[i]} != ${want[i]}`);
    if (!Number.isNaN(want[i])) seen.numbers++;
  }
  seen.all += want.length;
}

/** e4m3 codes: zeros, subnormals, the largest finite (0x7e), random; `nans` NaN codes (0x7f/0xff). */
function codes(n: number, nans = 0): Uint8Array {
  const c = new Uint8Array(n).map(() => {
    const r = rnd();
    return (r < 0.15 ? randInt(8) : r < 0.2 ? 0x7e : r < 0.3 ? 0x60 + randInt(0x1e) : randInt(0x7f)) | (rnd() < 0.5 ? 0x80 : 0);
  });
  for (let i = 0; i < nans; i++) c[randInt(n)] = rnd() < 0.5 ? 0x7f : 0xff;
  return c;
}

function acts(rows: number, cols: number, nan = 0): QuantizedActivations {
  const scales = [1, 2 ** -7, 2 ** -20, 0, 3.7e-5, 2 ** 10, 2 ** -126, 1.1754942e-38, 7.1e30];
  return { rows, cols, q: codes(rows * cols, nan), scale: new Float32Array((rows * cols) / 128).map(() => pick(scales)) };
}

/** ue8m0 bytes: mostly near 127; with `extreme`, 0/1 (subnormal products), 250/254 (overflow) and 255 (NaN). */
const scaleByte = (extreme: boolean): number => (extreme && rnd() < 0.2 ? pick([0, 1, 2, 250, 254, 255]) : 118 + randInt(16));

function fp8Weight(out: number, inF: number, extreme = false): Fp8Weight {
  const scale = new Uint8Array(Math.ceil(out / 128) * Math.ceil(inF / 128)).map(() => scaleByte(extreme));
  return { kind: 'fp8', out, inF, data: codes(out * inF, extreme ? 2 : 0), scale };
}

function fp4Weight(out: number, inF: number, extreme = false): Fp4Weight {
  const scale = new Uint8Array((out * inF) / 32).map(() => scaleByte(extreme));
  return { kind: 'fp4', out, inF, data: new Uint8Array((out * inF) / 2).map(() => randInt(256)), scale };
}

/** BF16 bits: normal values of mixed magnitude, subnormals, zeros, and with `extreme` Inf/NaN. */
function bf16Weight(out: number, inF: number, extreme = false): Bf16Weight {
  const data = new Uint16Array(out * inF).map(() => {
    const r = rnd();
    const sign = rnd() < 0.5 ? 0x8000 : 0;
    if (r < 0.05) return sign | randInt(0x80); // zero / subnormal
    if (extreme && r < 0.06) return sign | pick([0x7f80, 0x7fc0, 0x7f7f]);
    return sign | ((100 + randInt(56)) << 7) | randInt(0x80);
  });
  return { kind: 'bf16', out, inF, data };
}

/** fp32 activations: mixed magnitudes, some subnormal, zero, with `extreme` Inf/NaN. */
function f32Acts(rows: number, cols: number, extreme = false): Float32Array {
  return new Float32Array(rows * cols).map(() => {
    const r = rnd();
    if (r < 0.03) return 0;
    if (r < 0.05) return (rnd() - 0.5) * 1e-39;
    if (extreme && r < 0.055) return pick([Infinity, -Infinity, NaN]);
    return (rnd() - 0.5) * 2 ** (randInt(40) - 20);
  });
}

const outOf = (n: number) => new Float32Array(n).fill(12345);

function checkQuant(kind: 'fp8' | 'fp4', rows: number, out: number, K: number, extreme = false): void {
  const x = acts(rows, K, extreme && rows >= 5 ? 1 : 0); // a NaN activation makes its whole row NaN
  const what = `${kind} ${rows}x${out}x${K}${extreme ? ' extreme' : ''}`;
  const got = outOf(rows * out);
  const want = outOf(rows * out);
  if (kind === 'fp8') {
    const w = fp8Weight(out, K, extreme);
    fast!.fp8Gemm(x, w, got);
    ref.fp8Gemm(x, w, want);
  } else {
    const w = fp4Weight(out, K, extreme);
    fast!.fp4Gemm(x, w, got);
    ref.fp4Gemm(x, w, want);
  }
  expectSame(got, want, what);
}

test('fp8 and fp4 products: rows 1..13, odd outputs, K over one and several k blocks', { skip }, () => {
  for (let rows = 1; rows <= 13; rows++) {
    checkQuant('fp8', rows, 1 + randInt(20), pick([128, 256, 384]));
    checkQuant('fp4', rows, 1 + randInt(20), pick([128, 256, 384]));
  }
  checkQuant('fp8', 37, 29, 1152);
  checkQuant('fp4', 40, 26, 1152);
  checkQuant('fp8', 17, 130, 256); // two scale-block rows
  checkQuant('fp4', 21, 50, 384); // one 24-row tile (4-row weight panels)
  checkQuant('fp8', 70, 30, 640); // 24-row tiles and a 22-row one
});

test('fp8 and fp4 products: extreme scales, subnormal and max codes, NaN codes', { skip }, () => {
  seen.all = seen.numbers = 0;
  for (const rows of [1, 5, 9, 16, 19]) {
    checkQuant('fp8', rows, 13, 512, true);
    checkQuant('fp4', rows, 13, 512, true);
  }
  checkQuant('fp8', 7, 133, 384, true);
  assert.ok(seen.numbers > seen.all / 4, `only ${seen.numbers} of ${seen.all} outputs are not NaN`);
});

function checkDense(w: Bf16Weight | Fp8Weight, rows: number, r0: number, n: number, extreme: boolean): void {
  const x = f32Acts(rows, w.inF, extreme);
  const got = outOf(rows * n);
  const want = outOf(rows * n);
  fast!.denseGemm(x, rows, w, r0, n, got);
  ref.denseGemm(x, rows, w, r0, n, want);
  expectSame(got, want, `dense ${w.kind} ${rows}x[${r0}, ${r0 + n})x${w.inF}${extreme ? ' extreme' : ''}`);
}

test('dense products: BF16 (any K) and FP8 as BF16 values, row ranges', { skip }, () => {
  for (let rows = 1; rows <= 13; rows += 3) {
    checkDense(bf16Weight(23, pick([7, 100, 256, 300])), rows, randInt(5), 13 + randInt(5), false);
    checkDense(fp8Weight(150, pick([128, 384])), rows, 3 + randInt(5), 1 + randInt(140), false);
  }
  checkDense(bf16Weight(40, 777), 21, 2, 37, false);
  checkDense(bf16Weight(20, 300, true), 9, 0, 20, true);
  checkDense(fp8Weight(140, 512, true), 11, 1, 139, true); // 255: 2^128 (dense.ts), not NaN
  // all scales tiny: the BF16 rounding of subnormal weight values decides the sums
  const tiny = fp8Weight(30, 256);
  tiny.scale.forEach((_, i) => (tiny.scale[i] = i % 4));
  const x = f32Acts(5, 256).map((v) => v * 2 ** 100);
  const got = outOf(5 * 30);
  const want = outOf(5 * 30);
  fast!.denseGemm(x, 5, tiny, 0, 30, got);
  ref.denseGemm(x, 5, tiny, 0, 30, want);
  expectSame(got, want, 'dense fp8 as BF16, subnormal weights');
});

test('gemmBatch: mixed fp8/fp4 jobs over shared activations; denseGroups', { skip }, () => {
  const xa = acts(11, 256);
  const xb = acts(29, 384);
  const specs: [QuantizedActivations, Fp8Weight | Fp4Weight][] = [
    [xa, fp4Weight(21, 256)],
    [xa, fp8Weight(7, 256)],
    [xb, fp4Weight(40, 384)],
    [xb, fp8Weight(50, 384)],
    [xa, fp4Weight(3, 256)],
  ];
  const jobs: GemmJob[] = specs.map(([x, w]) => ({ x, w, y: outOf(x.rows * w.out) }));
  fast!.gemmBatch!(jobs);
  jobs.forEach(({ x, w, y }, i) => {
    const want = outOf(x.rows * w.out);
    if (w.kind === 'fp4') ref.fp4Gemm(x, w, want);
    else ref.fp8Gemm(x, w, want);
    expectSame(y, want, `batch job ${i}`);
  });

  const w = fp8Weight(8 * 9, 256);
  const xs = Array.from({ length: 8 }, () => f32Acts(6, 256));
  const ys = xs.map(() => outOf(6 * 9));
  fast!.denseGroups!(xs, 6, w, 9, ys);
  xs.forEach((x, g) => {
    const want = outOf(6 * 9);
    ref.denseGemm(x, 6, w, g * 9, 9, want);
    expectSame(ys[g]!, want, `group ${g}`);
  });
});

test('a bigger product split over the pool (panels and tiles)', { skip }, () => {
  checkQuant('fp8', 70, 100, 640);
  checkQuant('fp8', 100, 48, 1024); // activations over 384 KiB: k blocks outermost
  checkQuant('fp4', 48, 90, 512);
  checkDense(bf16Weight(20, 1000), 100, 0, 20, false); // narrow: split by activation tiles
});

test('the portable kernels and other thread counts give the same bits (child processes)', { skip }, () => {
  if (process.env.DSV4_TEST_CHILD) return;
  for (const env of [{ DSV4_NO_AVX2: '1', DSV4_THREADS: '3' }, { DSV4_THREADS: '1' }, { DSV4_THREADS: '3' }]) runTestFileInChild(import.meta.url, env, 5);
});
