// The few-row fast FP8 and BF16 products (native/fastgemv_*.cc, the addon's fastGemv) give the bits of
// referenceFastProducts (fast-products.ts): 1..15 activation rows (1-2 in the chain semantics,
// native/fastchain_*.cc; 3 and more through the row-lane kernel's converted-step buffer), outputs not a multiple of the 8-row groups or 32-row strips, row
// ranges across 128-row scale blocks, several K, subnormal and maximal codes, FP8 weights and FP8 used
// as BF16 values, BF16 weights (Inf/NaN/subnormal values included), and the blocks the row-lane form cannot take exactly (scales beyond 2^6, BF16
// rounding of tiny weights, activations whose prepared copy would overflow or lose bits, NaN
// activation codes), which take the portable path; then on the portable kernels and other thread
// counts (child processes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runTestFileInChild } from './child.js';
import { loadNative } from '../../src/tensor/native.js';
import { FEW_ROWS, nativeFastProducts } from '../../src/tensor/fast-native.js';
import { CHAIN_ROWS, CHAINS, chainSlots, chainTree, fmaF32, referenceFastProducts as ref } from '../../src/tensor/fast-products.js';
import type { Bf16Weight, Fp8Weight, QuantizedActivations } from '../../src/tensor/kernels.js';
import { xorshift } from './rng.js';

const { addon, reason } = loadNative();
const skip = addon ? (addon.fastGemv ? false : 'addon built without fastgemv') : `native addon unavailable: ${reason}`;

const rnd = xorshift(0x2545f491);
const randInt = (n: number) => Math.floor(rnd() * n);
const pick = <T>(a: readonly T[]): T => a[randInt(a.length)]!;

/** Same bits (any NaN matches any NaN). */
function expectSame(got: Float32Array, want: Float32Array, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  const i = want.findIndex((v, j) => !Object.is(got[j], v) && !(Number.isNaN(got[j]) && Number.isNaN(v)));
  if (i >= 0) assert.fail(`${what}[${i}]: ${got[i]} != ${want[i]}`);
}

/** e4m3 codes without NaN: zeros, subnormals, the largest finite (0x7e), random. */
function codes(n: number): Uint8Array {
  return new Uint8Array(n).map(() => {
    const r = rnd();
    return (r < 0.15 ? randInt(8) : r < 0.2 ? 0x7e : r < 0.3 ? 0x60 + randInt(0x1e) : randInt(0x7f)) | (rnd() < 0.5 ? 0x80 : 0);
  });
}

/** Scale bytes near 127, or with `extreme` also 0..3 (tiny; BF16 rounding), 133/134 (the kernel's limit), 200, 254, 255. */
const scaleByte = (extreme: boolean): number => (extreme && rnd() < 0.25 ? pick([0, 1, 2, 3, 4, 133, 134, 200, 254, 255]) : 112 + randInt(20));

function fp8Weight(out: number, inF: number, extreme = false): Fp8Weight {
  return { kind: 'fp8', out, inF, data: codes(out * inF), scale: new Uint8Array(Math.ceil(out / 128) * (inF / 128)).map(() => scaleByte(extreme)) };
}

function acts(rows: number, cols: number, extreme = false): QuantizedActivations {
  const scales = extreme ? [1, 2 ** -7, 3.7e-5, 2 ** 10, 2 ** -126, 7.1e30, 2 ** 20] : [2 ** -8, 2 ** -5, 3.7e-5];
  const x = { rows, cols, q: codes(rows * cols), scale: new Float32Array((rows * cols) / 128).map(() => pick(scales)) };
  if (extreme && rows > 2) x.q[randInt(x.q.length)] = 0x7f; // a NaN activation
  return x;
}

function f32Acts(rows: number, cols: number, extreme = false): Float32Array {
  return new Float32Array(rows * cols).map(() => {
    const r = rnd();
    if (r < 0.03) return 0;
    if (r < 0.05) return (rnd() - 0.5) * 1e-39;
    if (extreme && r < 0.055) return pick([Infinity, -Infinity, 3e38]);
    return (rnd() - 0.5) * 2 ** (randInt(40) - 20);
  });
}

const outOf = (n: number) => new Float32Array(n).fill(12345);

/** BF16 bits: normal values of mixed magnitude, zeros and subnormals, with `extreme` Inf/NaN/max. */
function bf16Weight(out: number, inF: number, extreme = false): Bf16Weight {
  return {
    kind: 'bf16', out, inF,
    data: new Uint16Array(out * inF).map(() => {
      const r = rnd();
      const sign = rnd() < 0.5 ? 0x8000 : 0;
      if (r < 0.05) return sign | randInt(0x80);
      if (extreme && r < 0.07) return sign | pick([0x7f80, 0x7fc0, 0x7f7f]);
      return sign | ((100 + randInt(56)) << 7) | randInt(0x80);
    }),
  };
}

/** fastGemv directly (an FP8 job: kind 0; BF16: kind 2; FP8 as BF16 values: kind 3). */
function gemv(x: QuantizedActivations | { x: Float32Array; rows: number }, w: Fp8Weight | Bf16Weight, r0: number, n: number, y: Float32Array): void {
  const act = 'q' in x ? [x.q, x.scale, x.rows, x.cols] : [x.x, new Float32Array(0), x.rows, w.inF];
  addon!.fastGemv!(act, [0, 'q' in x ? 0 : w.kind === 'bf16' ? 2 : 3, w.data, w.kind === 'bf16' ? new Uint8Array(0) : w.scale, r0, n, y]);
}

function checkFp8(rows: number, out: number, K: number, extreme = false): void {
  const x = acts(rows, K, extreme);
  const w = fp8Weight(out, K, extreme);
  const got = outOf(rows * out);
  const want = outOf(rows * out);
  gemv(x, w, 0, out, got);
  ref.fp8Gemm(x, w, want);
  expectSame(got, want, `fp8 ${rows}x${out}x${K}${extreme ? ' extreme' : ''}`);
}

function checkDense(rows: number, out: number, K: number, r0: number, n: number, extreme = false, bf16 = false): void {
  const x = f32Acts(rows, K, extreme);
  const w = bf16 ? bf16Weight(out, K, extreme) : fp8Weight(out, K, extreme);
  const got = outOf(rows * n);
  const want = outOf(rows * n);
  gemv({ x, rows }, w, r0, n, got);
  ref.denseGemm(x, rows, w, r0, n, want);
  expectSame(got, want, `${bf16 ? 'bf16' : 'fp8 as bf16'} ${rows}x[${r0}, ${r0 + n})x${K}${extreme ? ' extreme' : ''}`);
}

test('fastGemv fp8: rows 1..15, outputs around the 8-row groups and 32-row strips, several K', { skip }, () => {
  for (let rows = 1; rows <= FEW_ROWS; rows++) checkFp8(rows, pick([1, 7, 8, 9, 31, 33, 45, 64]), pick([128, 256, 384, 1024]));
  checkFp8(1, 300, 512); // three scale blocks, a 44-row remainder
  checkFp8(2, 129, 2048);
  checkFp8(5, 70, 4096); // rows 4 KiB multiples apart: 8 rows at a time, activation rows 4 + 1
  checkFp8(15, 45, 4096); // 4 + 4 + 4 + 2 + 1
  assert.throws(() => gemv(acts(16, 128), fp8Weight(8, 128), 0, 8, outOf(16 * 8)), /bad argument/);
});

test('fastGemv fp8 as BF16 values: row ranges across scale blocks', { skip }, () => {
  for (const rows of [1, 2, 3, 6, 15]) checkDense(rows, 400, pick([128, 512]), randInt(200), 1 + randInt(199));
  checkDense(4, 256, 256, 120, 17); // 8 rows of block 0, 9 of block 1
});

test('fastGemv bf16: rows 1..15, K a multiple of 32, row ranges, Inf/NaN/subnormal values', { skip }, () => {
  for (let rows = 1; rows <= FEW_ROWS; rows++) checkDense(rows, 80, pick([32, 64, 96, 2048]), randInt(20), 1 + randInt(60), false, true);
  for (const rows of [1, 2, 5]) checkDense(rows, 45, 160, 0, 45, true, true);
  checkDense(3, 40, 4096, 3, 37, false, true); // rows 8 KiB apart
  checkDense(6, 70, 2048, 3, 60, false, true); // rows 4 KiB apart, 8 at a time, activation rows 4 + 2
  assert.throws(() => gemv({ x: f32Acts(3, 48), rows: 3 }, bf16Weight(8, 48), 0, 8, outOf(24)), /bad argument/); // K % 32 != 0 from 3 rows
});

test('fastGemv: blocks it cannot take exactly take the portable path (extreme scales and values, NaN activations)', { skip }, () => {
  for (const rows of [1, 2, 3, 9]) {
    checkFp8(rows, 300, 384, true);
    checkDense(rows, 300, 384, 0, 300, true);
  }
  // every scale tiny: BF16 rounds some weight values (b < 3) and the FP8 values are fp32 subnormals
  const w = fp8Weight(40, 256);
  w.scale.forEach((_, i) => (w.scale[i] = i % 4));
  const x = f32Acts(3, 256).map((v) => v * 2 ** 100);
  const got = outOf(3 * 40);
  const want = outOf(3 * 40);
  gemv({ x, rows: 3 }, w, 0, 40, got);
  ref.denseGemm(x, 3, w, 0, 40, want);
  expectSame(got, want, 'fp8 as bf16, tiny scales');
});

/** Each FP8 job's output against the reference. */
function checkJobs(jobs: readonly { x: QuantizedActivations; w: Fp8Weight; y: Float32Array }[]): void {
  for (const j of jobs) {
    const want = outOf(j.x.rows * j.w.out);
    ref.fp8Gemm(j.x, j.w, want);
    expectSame(j.y, want, `batch job ${j.x.rows}x${j.w.out}`);
  }
}

/** Native fast products counting their fastGemv / fastBatch calls, and FP8 weights without and with a NaN code. */
function routing() {
  const calls = { gemv: 0, batch: 0 };
  const counting = nativeFastProducts({
    ...addon!,
    hasNanE4m3: (d: Uint8Array) => addon!.hasNanE4m3(d),
    fastGemv: (a: unknown[], j: unknown[]) => (calls.gemv++, addon!.fastGemv!(a, j)),
    fastBatch: (a: unknown[], j: unknown[]) => (calls.batch++, addon!.fastBatch!(a, j)),
  })!;
  const clean = fp8Weight(50, 256);
  const nan = fp8Weight(50, 256);
  nan.data[17] = 0xff;
  return { calls, counting, clean, nan };
}

test('fast products route FP8 and BF16 products of up to FEW_ROWS rows through fastGemv, NaN weight codes and BF16 K % 32 != 0 to fastBatch', { skip }, () => {
  const fast = nativeFastProducts(addon!)!;
  const { calls, counting, clean, nan } = routing();
  const x = acts(3, 256);
  for (const w of [clean, nan]) {
    const got = outOf(3 * 50);
    const want = outOf(3 * 50);
    counting.fp8Gemm(x, w, got);
    ref.fp8Gemm(x, w, want);
    expectSame(got, want, w === nan ? 'nan weight' : 'clean weight');
  }
  assert.deepEqual(calls, { gemv: 1, batch: 1 });
  // gemmBatch: the FP8 jobs in one fastGemv call, a 16-row one through fastBatch
  const x16 = acts(16, 256);
  const jobs = [
    { x, w: clean, y: outOf(3 * 50) },
    { x, w: fp8Weight(20, 256), y: outOf(3 * 20) },
    { x: x16, w: clean, y: outOf(16 * 50) },
  ];
  counting.gemmBatch!(jobs);
  assert.deepEqual(calls, { gemv: 2, batch: 2 });
  checkJobs(jobs);
  // BF16: K % 32 == 0 through fastGemv, other K through fastBatch
  for (const K of [64, 48]) {
    const w = bf16Weight(20, K);
    const xf = f32Acts(3, K);
    const got = outOf(60);
    const want = outOf(60);
    counting.denseGemm(xf, 3, w, 0, 20, got);
    ref.denseGemm(xf, 3, w, 0, 20, want);
    expectSame(got, want, `bf16 K ${K}`);
  }
  assert.deepEqual(calls, { gemv: 3, batch: 3 });
  assert.ok(fast.name.length > 0);
});

// The chain semantics (1-2 activation rows, fast-products.ts 3: 32 FMA chains per output, k = c mod 32,
// then a fixed tree), native/fastchain_*.cc against the reference.

test('chain semantics: fp8 at 1 and 2 rows, odd outputs, K up to 8192, subnormal/zero/maximal codes', { skip }, () => {
  for (const rows of [1, 2]) {
    for (const out of [1, 2, 3, 7, 33]) checkFp8(rows, out, pick([128, 256, 384, 640]));
    checkFp8(rows, 131, 8192); // wo_b's K: 2 row blocks of 64 k blocks
    checkFp8(rows, 5, 1024);
  }
  // all-zero weights and activations: every chain +0 (a -0 product added to +0 stays +0)
  const x = acts(2, 256);
  x.q.fill(0x80); // -0 activations
  const w = fp8Weight(9, 256);
  w.data.fill(0);
  const got = outOf(18);
  gemv(x, w, 0, 9, got);
  const want = outOf(18);
  ref.fp8Gemm(x, w, want);
  expectSame(got, want, 'zeros');
  assert.ok(want.every((v) => Object.is(v, 0)), 'zero products sum to +0');
});

test('chain semantics: fp8 as BF16 values and BF16 at 1 and 2 rows, any K (a partial last 32-k step), row ranges', { skip }, () => {
  for (const rows of [1, 2]) {
    checkDense(rows, 400, pick([128, 512]), randInt(200), 1 + randInt(199));
    checkDense(rows, 260, 8192, 3, 257); // wo_a-like K, row blocks crossed
    for (const K of [1, 7, 31, 32, 33, 47, 64, 100, 2048, 2049, 2080]) checkDense(rows, 11, K, randInt(4), 7, false, true);
    checkDense(rows, 45, 4099, 0, 45, true, true); // Inf/NaN/subnormal values, tail
  }
  // every product underflows to -0: each chain's sum is -0, and so is the output, only if the
  // partial last step adds no term beyond K (a +0 there would make its chain +0)
  for (const K of [33, 50, 63]) {
    const w: Bf16Weight = { kind: 'bf16', out: 2, inF: K, data: new Uint16Array(2 * K).fill(0x8080) }; // -2^-126
    const x = new Float32Array(2 * K).fill(2 ** -40);
    const got = outOf(4);
    gemv({ x, rows: 2 }, w, 0, 2, got);
    const want = outOf(4);
    ref.denseGemm(x, 2, w, 0, 2, want);
    expectSame(got, want, `-0 chains, K ${K}`);
    assert.ok(want.every((v) => Object.is(v, -0)), 'underflowing products sum to -0');
  }
});

test('chain semantics: scales and activations at the exact-prep edges take the portable path with the same bits', { skip }, () => {
  for (const rows of [1, 2]) {
    checkFp8(rows, 300, 384, true);
    checkDense(rows, 300, 384, 0, 300, true);
    for (const b of [2, 3, 4, 133, 134]) {
      const w = fp8Weight(130, 256);
      w.scale.fill(b);
      w.scale[1] = 120; // one block of the row block unaffected: the decision is per row block
      const x = acts(rows, 256);
      const got = outOf(rows * 130);
      const want = outOf(rows * 130);
      gemv(x, w, 0, 130, got);
      ref.fp8Gemm(x, w, want);
      expectSame(got, want, `fp8 scale byte ${b}`);
      const xf = f32Acts(rows, 256);
      const gd = outOf(rows * 130);
      const wd = outOf(rows * 130);
      gemv({ x: xf, rows }, w, 0, 130, gd);
      ref.denseGemm(xf, rows, w, 0, 130, wd);
      expectSame(gd, wd, `fp8 as bf16 scale byte ${b}`);
    }
    const x = acts(rows, 256);
    x.q[5] = 0x7f; // a NaN activation
    const w = fp8Weight(20, 256);
    const got = outOf(rows * 20);
    const want = outOf(rows * 20);
    gemv(x, w, 0, 20, got);
    ref.fp8Gemm(x, w, want);
    expectSame(got, want, 'NaN activation');
  }
});

test('chain semantics: the reference is 32 chains k = c mod 32 and the fixed tree (independent form)', () => {
  // each output from its own chain sums: P[slot[c]] over k = c, c + 32, ..., then chainTree
  const K = 200;
  const w = bf16Weight(3, K);
  const x = f32Acts(1, K);
  const y = new Float32Array(3);
  ref.denseGemm(x, 1, w, 0, 3, y);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let n = 0; n < 3; n++) {
    const P = new Array<number>(CHAINS).fill(0);
    const slot = chainSlots('bf16');
    for (let c = 0; c < CHAINS; c++)
      for (let k = c; k < K; k += CHAINS) {
        u[0] = w.data[n * K + k]! << 16;
        P[slot[c]!] = fmaF32(f[0]!, x[k]!, P[slot[c]!]!);
      }
    assert.ok(Object.is(y[n], chainTree(P)) || (Number.isNaN(y[n]) && Number.isNaN(chainTree(P))), `output ${n}`);
  }
  // the slots: a permutation of the 32 lanes, FP8 code 4i + a in accumulator a, lane i
  for (const layout of ['fp8', 'bf16'] as const) assert.deepEqual([...chainSlots(layout)].sort((a, b) => a - b), [...Array(32).keys()]);
  assert.equal(chainSlots('fp8')[4 * 5 + 2], 8 * 2 + 5);
  assert.equal(chainSlots('bf16')[16 + 2 * 3 + 1], 8 * 3 + 3);
  assert.equal(CHAIN_ROWS, 2);
});

test('fast products route 1-2 row FP8 and BF16 products (any BF16 K) through fastGemv, NaN weight codes to the reference', { skip }, () => {
  const { calls, counting, clean, nan } = routing();
  for (const rows of [1, 2]) {
    const x = acts(rows, 256);
    for (const w of [clean, nan]) {
      const got = outOf(rows * 50);
      const want = outOf(rows * 50);
      counting.fp8Gemm(x, w, got);
      ref.fp8Gemm(x, w, want);
      expectSame(got, want, `${rows} rows ${w === nan ? 'nan' : 'clean'} weight`);
    }
    const xf = f32Acts(rows, 48);
    const wb = bf16Weight(20, 48);
    const got = outOf(rows * 20);
    const want = outOf(rows * 20);
    counting.denseGemm(xf, rows, wb, 0, 20, got);
    ref.denseGemm(xf, rows, wb, 0, 20, want);
    expectSame(got, want, `bf16 K 48, ${rows} rows`);
  }
  assert.deepEqual(calls, { gemv: 4, batch: 0 });
  // gemmBatch: 1-2 row jobs in one fastGemv call (the NaN-code one by the reference), 16 rows through fastBatch
  const jobs = [
    { x: acts(1, 256), w: clean, y: outOf(50) },
    { x: acts(2, 256), w: fp8Weight(20, 256), y: outOf(40) },
    { x: acts(1, 256), w: nan, y: outOf(50) },
    { x: acts(16, 256), w: clean, y: outOf(16 * 50) },
  ];
  counting.gemmBatch!(jobs);
  assert.deepEqual(calls, { gemv: 5, batch: 1 });
  checkJobs(jobs);
});

test('a product split over the pool', { skip }, () => {
  checkFp8(1, 2048, 1024);
  checkFp8(4, 700, 512);
  checkDense(2, 1024, 512, 0, 1024);
  checkDense(1, 1500, 2048, 0, 1500, false, true);
  checkFp8(2, 1024, 2048);
});

test('the portable kernels and other thread counts give the same bits (child processes)', { skip }, () => {
  if (process.env.DSV4_TEST_CHILD) return;
  for (const env of [{ DSV4_NO_AVX2: '1', DSV4_THREADS: '3' }, { DSV4_THREADS: '1' }, { DSV4_THREADS: '3' }]) runTestFileInChild(import.meta.url, env, 10);
});
