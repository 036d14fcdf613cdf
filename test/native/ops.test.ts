// Native decode-path operations (native/ops_*.cc) equal their TypeScript
// references bit for bit: act_quant, RMSNorm, hc_pre / hc_post, sparse attention
// (random data plus edge cases); what they leave undecided is reported, never wrong.
// The portable C++ path is checked by re-running this file with DSV4_NO_AVX2=1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runTestFileInChild } from './child.js';
import { loadNative, makeNativeKernels } from '../../src/tensor/native.js';
import { actQuant } from '../../src/tensor/quant.js';
import { rmsFactor, rmsNorm } from '../../src/tensor/norm.js';
import { dotF32 } from '../../src/tensor/exact.js';
import { roundBf16, f32ToBf16 } from '../../src/tensor/formats.js';
import { hcHead, hcPost, hcPre, splitSinkhorn, type HcParams } from '../../src/model/hc.js';
import { sparseAttnHead } from '../../src/model/attention.js';
import { assertSameValues } from './bits.js';

const { addon, reason } = loadNative();
const nk = addon ? makeNativeKernels(addon) : null;
const skip = nk?.sparseAttention ? false : `native ops unavailable: ${addon ? 'addon predates them' : reason}`;

let seed = 2024;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
/** BF16 values of mixed magnitude 2^[lo, hi). */
const bf = (lo: number, hi: number) => roundBf16((rnd() * 2 - 1) * 2 ** Math.floor(lo + rnd() * (hi - lo)));


test('actQuant: native == quant.ts actQuant (codes and scales), non-finite left to the reference', { skip }, () => {
  const rows = 7;
  const cols = 512;
  const x = new Float32Array(rows * cols).map(() => bf(-12, 6));
  // edge cases: zeros and -0, e4m3 subnormal range, code ties, saturation, tiny blocks, huge values
  x.fill(0, 0, 128);
  x[3] = -0;
  for (let i = 128; i < 256; i++) x[i] = roundBf16((i - 192) * 2 ** -16);
  for (let i = 256; i < 384; i++) x[i] = ((i & 15) - 8) * 1.0625 * 2 ** ((i >> 4) & 7);
  x[400] = 3e38;
  x[401] = -1e-38;
  for (let i = 2 * cols; i < 2 * cols + 128; i++) x[i] = roundBf16(1e-30 * (i % 7));
  const want = actQuant(x, rows, cols, 128);
  const q = new Uint8Array(rows * cols);
  const scale = new Float32Array((rows * cols) / 128);
  assert.equal(nk!.actQuant!(x, rows, cols, q, scale), true);
  assert.deepEqual(q, want.q);
  assertSameValues(scale, want.scale, 'scale');
  for (const bad of [NaN, Infinity]) {
    const y = x.slice();
    y[700] = bad;
    assert.equal(nk!.actQuant!(y, rows, cols, q, scale), false);
  }
});

test('rmsNorm: native == norm.ts rmsNorm', { skip }, () => {
  for (const n of [2048, 512, 24, 7]) {
    const rows = 3;
    const x = new Float32Array(rows * n).map(() => bf(-20, 10));
    x.fill(0, 0, n); // an all-zero row: the eps term alone
    const w = new Float32Array(n).map(() => bf(-2, 2));
    const y = new Float32Array(rows * n);
    assert.equal(nk!.rmsNorm!(x, rows, n, w, 1e-6, y), true);
    assertSameValues(y, rmsNorm(x, rows, n, w, 1e-6), `rmsNorm n=${n}`);
  }
});

function hcParams(hc: number, dim: number): HcParams {
  const nMix = (2 + hc) * hc;
  return {
    fn: new Float32Array(nMix * hc * dim).map(() => Math.fround((rnd() * 2 - 1) * 0.05)),
    base: new Float32Array(nMix).map(() => Math.fround(rnd() - 0.5)),
    scale: new Float32Array(3).map(() => Math.fround(0.5 + rnd())),
  };
}

test('hcPre / hcPost: native == model/hc.ts (mixes, Sinkhorn inputs, stream sums)', { skip }, () => {
  // [4, 700, 9]: the tiled mixes product over column chunks (1024 + a partial one) and a 1-row remainder tile
  // [4, 1400, 1]: one row's 24 mixes split between threads
  for (const [hc, dim, rows] of [[4, 256, 3], [4, 40, 1], [2, 64, 2], [4, 700, 9], [3, 44, 5], [4, 1400, 1]] as const) {
    const p = hcParams(hc, dim);
    const X = new Float32Array(rows * hc * dim).map(() => bf(-8, 4));
    // exact cancellations between streams and a tie-prone column
    for (let d = 0; d < dim; d += 5) X[hc * dim + d] = -X[d]!;
    const ref = hcPre(X, rows, hc, dim, p, 20, 1e-6, 1e-6);
    // the native ops decide these inputs (so the comparison below is not reference vs reference)
    const nMix = (2 + hc) * hc;
    assert.equal(nk!.hcMixes!(X, rows, hc * dim, p.fn, nMix, 1e-6, new Float64Array(rows * nMix)), true);
    assert.equal(nk!.hcWeighted!(X, rows, hc, dim, ref.post, new Float32Array(rows * dim)), true);
    const mx = new Float64Array(rows * nMix);
    nk!.hcMixes!(X, rows, hc * dim, p.fn, nMix, 1e-6, mx);
    for (const iters of [20, 3, 1]) {
      const [pre, post, comb] = [new Float64Array(rows * hc), new Float64Array(rows * hc), new Float64Array(rows * hc * hc)];
      assert.equal(nk!.hcSplit!(mx, rows, hc, p.base, p.scale, iters, 1e-6, pre, post, comb), true);
      for (let r = 0; r < rows; r++) {
        const want = [new Float64Array(hc), new Float64Array(hc), new Float64Array(hc * hc)] as const;
        splitSinkhorn(mx.subarray(r * nMix, (r + 1) * nMix), p, hc, iters, 1e-6, ...want);
        assertSameValues(pre.subarray(r * hc, r * hc + hc), want[0], `Sinkhorn pre (iters ${iters})`);
        assertSameValues(post.subarray(r * hc, r * hc + hc), want[1], `Sinkhorn post (iters ${iters})`);
        assertSameValues(comb.subarray(r * hc * hc, (r + 1) * hc * hc), want[2], `Sinkhorn comb (iters ${iters})`);
      }
    }
    const nat = hcPre(X, rows, hc, dim, p, 20, 1e-6, 1e-6, nk!);
    assertSameValues(nat.y, ref.y, 'hcPre y');
    assertSameValues(nat.post, ref.post, 'hcPre post');
    assertSameValues(nat.comb, ref.comb, 'hcPre comb');
    const headP = { fn: p.fn.subarray(0, hc * hc * dim), base: p.base.subarray(0, hc), scale: p.scale };
    assertSameValues(hcHead(X, rows, hc, dim, headP, 1e-6, 1e-6, nk!), hcHead(X, rows, hc, dim, headP, 1e-6, 1e-6), 'hcHead');
    const out = new Float32Array(rows * dim).map(() => bf(-6, 6));
    const y = new Float32Array(rows * hc * dim);
    assert.equal(nk!.hcPost!(out, X, rows, hc, dim, ref.post, ref.comb, y), true);
    assertSameValues(y, hcPost(out, X, rows, hc, dim, ref), 'hcPost');
    // equal mixing weights: exact cancellations between streams, all-zero columns, midpoint ties
    const flatComb = { ...ref, comb: new Float64Array(rows * hc * hc).fill(0.25) };
    for (let r = 0; r < rows; r++) {
      for (let d = 0; d < dim; d += 3) X[(r * hc + 1) * dim + d] = -X[r * hc * dim + d]!;
      for (let j = 0; j < hc; j++) X[(r * hc + j) * dim + 1] = 0;
      for (let j = 0; j < hc; j++) X[(r * hc + j) * dim + 2] = j === 0 ? 1 : 2 ** -25;
      // products 2^40 apart: beyond the exact-span test, settled by the error bound
      for (let d = 4; d < dim; d += 7) X[r * hc * dim + d] = 2 ** 19 * (1 + (d % 5) / 8);
      for (let d = 4; d < dim; d += 7) X[(r * hc + 1) * dim + d] = -(2 ** -21) * (1 + (d % 3) / 4);
    }
    assert.equal(nk!.hcPost!(out, X, rows, hc, dim, flatComb.post, flatComb.comb, y), true);
    assertSameValues(y, hcPost(out, X, rows, hc, dim, flatComb), 'hcPost, equal weights');
  }
});

test('hcMixes, one row (4 outputs per pass, Cauchy-Schwarz bound): == fl32(dotF32 * rmsFactor), ties and cancellations', { skip }, () => {
  // 15 outputs (a partial group of 4) over 400 columns; 60 outputs over 8192 columns (split over the pool)
  for (const [nOut, flat] of [[15, 400], [60, 8192]] as const) {
    const x = new Float32Array(flat).map(() => bf(-10, 6));
    const fn = new Float32Array(nOut * flat).map(() => Math.fround((rnd() * 2 - 1) * 0.05));
    // output 1: large terms cancel exactly, the rest sums to 1 + 2^-24 (an fp32 tie): the bound cannot settle it
    fn.fill(0, flat, 2 * flat);
    [x[0], x[1], x[2], x[3]] = [2 ** 20, 2 ** 20, 1, 2 ** -24];
    [fn[flat], fn[flat + 1], fn[flat + 2], fn[flat + 3]] = [1, -1, 1, 1];
    // output 2: all zero (signed zeros: left to the reference); output 3: tiny against huge
    fn.fill(0, 2 * flat, 3 * flat);
    fn.fill(2 ** -60, 3 * flat, 4 * flat);
    fn[3 * flat + 7] = 2 ** 40;
    const rs = rmsFactor(x, 0, flat, 1e-6);
    const want = new Float64Array(nOut).map((_, j) => Math.fround(dotF32(x, 0, fn, j * flat, flat) * rs));
    const got = new Float64Array(nOut);
    if (nk!.hcMixes!(x, 1, flat, fn, nOut, 1e-6, got)) assertSameValues(got, want, `mixes ${nOut}x${flat}`);
    fn[2 * flat] = 1; // no zero output: decided natively
    want[2] = Math.fround(dotF32(x, 0, fn, 2 * flat, flat) * rs);
    assert.equal(nk!.hcMixes!(x, 1, flat, fn, nOut, 1e-6, got), true);
    assertSameValues(got, want, `mixes ${nOut}x${flat}, no zero output`);
  }
});

test('hcWeighted / hcPost: weights that are not fp32 values take the portable sums (same bits as model/hc.ts)', { skip }, () => {
  const [hc, dim, rows] = [4, 48, 2];
  const X = new Float32Array(rows * hc * dim).map(() => bf(-8, 4));
  const w = new Float64Array(rows * hc).map(() => 0.25 + rnd() * 1e-9);
  const y = new Float32Array(rows * dim);
  assert.equal(nk!.hcWeighted!(X, rows, hc, dim, w, y), true);
  for (let r = 0; r < rows; r++) {
    for (let d = 0; d < dim; d++) {
      let s = 0;
      for (let j = 0; j < hc; j++) s += Math.fround(w[r * hc + j]! * X[(r * hc + j) * dim + d]!);
      // the four products here sum exactly in float64 (BF16 inputs of nearby magnitude, 29 spare bits)
      assert.ok(Object.is(y[r * dim + d], roundBf16(Math.fround(s))), `row ${r} dim ${d}`);
    }
  }
  const out = new Float32Array(rows * dim).map(() => bf(-6, 6));
  const comb = new Float64Array(rows * hc * hc).map(() => rnd() + 1e-12);
  const post = new Float64Array(rows * hc).map(() => Math.fround(rnd()));
  const yp = new Float32Array(rows * hc * dim);
  assert.equal(nk!.hcPost!(out, X, rows, hc, dim, post, comb, yp), true);
  assertSameValues(yp, hcPost(out, X, rows, hc, dim, { y: new Float32Array(0), post, comb }), 'hcPost, weights not fp32');
});

interface AttnCase {
  H: number;
  d: number;
  n: number;
  masked: (i: number) => boolean;
  sink: number;
  qMag: readonly [number, number];
  kMag: readonly [number, number];
}

/** Runs one row through the native op and sparseAttnHead; returns how many heads were left undecided. */
function attnCase(c: AttnCase): number {
  const { H, d, n } = c;
  const q = new Float32Array(H * d).map(() => bf(...c.qMag));
  // three sources of BF16 keys; slots pick rows of them, some repeated (exact score ties)
  const srcF = [0, 1, 2].map(() => new Float32Array(40 * d).map(() => bf(...c.kMag)));
  srcF[2]!.fill(0, 5 * d, 6 * d);
  const src = srcF.map((f) => f32ToBf16(f)) as unknown as [Uint16Array, Uint16Array, Uint16Array];
  const slotSrc = new Uint8Array(n);
  const slotOff = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    slotSrc[i] = c.masked(i) ? 255 : i % 3;
    slotOff[i] = (Math.floor(rnd() * 40) % (i % 5 === 0 ? 3 : 40)) * d;
  }
  const sink = new Float32Array(H).map(() => Math.fround(c.sink + rnd()));
  const scale = Math.fround(d ** -0.5);
  const out = new Float32Array(H * d);
  const flags = new Uint8Array(H);
  const undecided = nk!.sparseAttention!(q, 1, H, d, src, slotSrc, slotOff, Int32Array.of(0, n), scale, sink, out, flags);
  assert.equal(undecided, flags.reduce((a, b) => a + b, 0));
  const keys = Array.from(slotSrc, (s) => (s === 255 ? null : srcF[s]!));
  const want = new Float32Array(H * d);
  const scratch = () => new Float64Array(Math.max(d, 65));
  for (let h = 0; h < H; h++) {
    sparseAttnHead(q, h * d, d, keys, slotOff, n, scale, sink[h]!, want, h * d, scratch(), scratch(), scratch(), scratch(), scratch(), scratch());
    if (!flags[h]) assertSameValues(out.subarray(h * d, h * d + d), want.subarray(h * d, h * d + d), `head ${h} (H=${H} d=${d} n=${n})`);
  }
  return undecided;
}

test('sparseAttention: native == sparseAttnHead bit for bit, undecided heads are reported', { skip }, () => {
  const typical = { qMag: [-4, 2], kMag: [-6, 1], sink: 0 } as const;
  // decode-like: a window with masked future slots, then selected entries; several 64-slot blocks
  assert.equal(attnCase({ H: 4, d: 512, n: 200, masked: (i) => i >= 20 && i < 128, ...typical }), 0);
  // 16 heads over ~300 keys: the heads are split between threads
  assert.equal(attnCase({ H: 16, d: 512, n: 300, masked: (i) => i >= 100 && i < 128, ...typical }), 0);
  // odd sizes: the portable inner loops (d not a multiple of 16), a partial last block
  assert.equal(attnCase({ H: 3, d: 24, n: 70, masked: (i) => i % 7 === 3, ...typical }), 0);
  // nothing masked, large and small magnitudes
  assert.equal(attnCase({ H: 2, d: 64, n: 130, masked: () => false, qMag: [-30, 8], kMag: [-40, 6], sink: 0 }), 0);
  // uniform BF16 values of few bits: sums often land exactly on fp32 midpoints (the span certificate)
  assert.equal(attnCase({ H: 3, d: 512, n: 150, masked: (i) => i % 9 === 0, qMag: [-1, 0], kMag: [-1, 0], sink: 0 }), 0);
  // a dominating sink (tiny weights for every key) and a negligible one
  assert.equal(attnCase({ H: 2, d: 128, n: 65, masked: (i) => i > 40, ...typical, sink: 60 }), 0);
  assert.equal(attnCase({ H: 2, d: 128, n: 65, masked: (i) => i > 40, ...typical, sink: -80 }), 0);
  // a whole masked block after the first one (the online softmax carries over)
  assert.equal(attnCase({ H: 2, d: 32, n: 192, masked: (i) => i >= 64 && i < 128, ...typical }), 0);
  // the first block entirely masked: the reference's NaN path is left to it
  assert.equal(attnCase({ H: 2, d: 32, n: 100, masked: (i) => i < 64, ...typical }), 2);
});

test('sparseAttention: many rows in one call (prefill windows, selected entries, an all-masked row) == sparseAttnHead', { skip }, () => {
  for (const [R, H, d, W] of [[37, 5, 512, 24], [70, 3, 40, 64], [9, 16, 512, 128]] as const) {
    const kv = new Float32Array(R * d).map(() => bf(-6, 1));
    const cacheF = new Float32Array(12 * d).map(() => bf(-6, 1));
    const src = [f32ToBf16(kv), new Uint16Array(0), f32ToBf16(cacheF)] as const;
    // row i: window slots t in [i-W+1, i] (future ones masked), then every third cache entry up to i/3
    const slots: [number, number][][] = [];
    for (let i = 0; i < R; i++) {
      const row: [number, number][] = [];
      for (let c = 0; c < Math.min(R, W); c++) {
        const t = Math.max(0, i - W + 1) + c;
        row.push(t > i ? [255, 0] : [0, t * d]);
      }
      for (let j = 0; j < Math.min(12, Math.floor(i / 3)); j += 3) row.push([2, j * d]);
      slots.push(row);
    }
    // row 1: every slot of its first block masked (the reference's NaN path: left to it)
    slots[1] = slots[1]!.map(() => [255, 0] as [number, number]);
    const rowStart = new Int32Array(R + 1);
    for (let i = 0; i < R; i++) rowStart[i + 1] = rowStart[i]! + slots[i]!.length;
    const slotSrc = Uint8Array.from(slots.flat(), (x) => x[0]);
    const slotOff = Int32Array.from(slots.flat(), (x) => x[1]);
    const q = new Float32Array(R * H * d).map(() => bf(-4, 2));
    const sink = new Float32Array(H).map(() => Math.fround(rnd()));
    const scale = Math.fround(d ** -0.5);
    const out = new Float32Array(R * H * d);
    const flags = new Uint8Array(R * H);
    const undecided = nk!.sparseAttention!(q, R, H, d, src, slotSrc, slotOff, rowStart, scale, sink, out, flags);
    assert.equal(undecided, H, `R=${R} H=${H} d=${d}: only the all-masked row is left to the reference`);
    const want = new Float32Array(d);
    const scratch = () => new Float64Array(Math.max(d, 65));
    for (let i = 0; i < R; i++) {
      const keys = slots[i]!.map(([sIdx]) => (sIdx === 255 ? null : sIdx === 0 ? kv : cacheF));
      const offs = Int32Array.from(slots[i]!, (x) => x[1]);
      for (let h = 0; h < H; h++) {
        assert.equal(flags[i * H + h], i === 1 ? 1 : 0);
        if (i === 1) continue;
        const o = (i * H + h) * d;
        sparseAttnHead(q, o, d, keys, offs, keys.length, scale, sink[h]!, want, 0, scratch(), scratch(), scratch(), scratch(), scratch(), scratch());
        assertSameValues(out.subarray(o, o + d), want, `row ${i} head ${h} (R=${R} H=${H} d=${d})`);
      }
    }
  }
});

test('sparseAttention: a non-finite query or key is left to the reference', { skip }, () => {
  const H = 2;
  const d = 16;
  const q = new Float32Array(H * d).fill(0.5);
  q[3] = Infinity;
  const keys = f32ToBf16(new Float32Array(4 * d).fill(0.25));
  const flags = new Uint8Array(H);
  const out = new Float32Array(H * d);
  const n = nk!.sparseAttention!(q, 1, H, d, [keys, keys, keys], new Uint8Array(4), Int32Array.from([0, d, 2 * d, 3 * d]),
    Int32Array.of(0, 4), 0.25, new Float32Array(H), out, flags);
  assert.equal(n, 1);
  assert.deepEqual([...flags], [1, 0]);
  assert.throws(() => nk!.sparseAttention!(q, 1, H, d, [keys, keys, keys], new Uint8Array(1), Int32Array.from([4 * d]), Int32Array.of(0, 1),
    0.25, new Float32Array(H), out, flags), RangeError);
  // row starts that decrease or overrun the slot arrays
  assert.throws(() => nk!.sparseAttention!(q, 1, H, d, [keys, keys, keys], new Uint8Array(4), new Int32Array(4), Int32Array.of(0, 5),
    0.25, new Float32Array(H), out, flags), RangeError);
  assert.throws(() => nk!.sparseAttention!(q, 2, H, d, [keys, keys, keys], new Uint8Array(4), new Int32Array(4), Int32Array.of(0, 3, 2),
    0.25, new Float32Array(H), new Float32Array(2 * H * d), new Uint8Array(2 * H)), RangeError);
  // head dims beyond the native limit: every head is left to the reference
  const big = new Float32Array(H * 1040);
  assert.equal(nk!.sparseAttention!(big, 1, H, 1040, [keys, keys, keys], new Uint8Array(0), new Int32Array(0), Int32Array.of(0, 0), 0.25,
    new Float32Array(H), big, flags), H);
});

test('the portable C++ path (DSV4_NO_AVX2=1) and one thread pass the same checks', { skip: skip || (process.env.DSV4_TEST_CHILD ? 'in the child' : false) }, () => {
  for (const env of [{ DSV4_NO_AVX2: '1' }, { DSV4_THREADS: '1' }]) runTestFileInChild(import.meta.url, env, 5);
});
