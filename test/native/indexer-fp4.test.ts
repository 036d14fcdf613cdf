// The indexer's integer scoring on compact FP4 keys (tensor/fp4-rows.ts, native
// indexer_*.cc) equals the reference formula bit for bit, entries it cannot settle
// included (recomputed by model/indexer.ts), and the cache keeps the compact form in
// step through push, clone and serialize.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadNative, makeNativeKernels } from '../../src/tensor/native.js';
import { indexerScores, type IndexerWeights } from '../../src/model/indexer.js';
import { topkOrder } from '../../src/tensor/topk.js';
import { IndexerKeyCache } from '../../src/model/state.js';
import { codeIndex, encodeFp4Row, FP4_CODE_OFFSET } from '../../src/tensor/fp4-rows.js';
import { fp4ActQuantInPlace } from '../../src/tensor/quant.js';
import { roundBf16 } from '../../src/tensor/formats.js';

const { addon, reason } = loadNative();
const skip = addon ? false : `native addon unavailable: ${reason}`;

let seed = 987654;
const rnd = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
const normal = () => Math.sqrt(-2 * Math.log(rnd() + 1e-12)) * Math.cos(2 * Math.PI * rnd());

/** A fake-FP4 row: Gaussian values, block magnitudes spread by 2^spread[b], then fp4_act_quant. */
function fp4Row(d: number, spread: (b: number) => number): Float32Array {
  const v = new Float32Array(d).map((_, i) => roundBf16(normal() * 2 ** spread(i >> 5)));
  fp4ActQuantInPlace(v, 0, d, 32);
  return v;
}

test('encodeFp4Row: exact codes and units for fake-FP4 rows, rejects others', () => {
  const d = 128;
  const codes = new Uint8Array(d);
  const units = new Float32Array(d / 32);
  for (let r = 0; r < 200; r++) {
    const v = fp4Row(d, () => Math.floor(rnd() * 60 - 30));
    if (r % 7 === 0) v.fill(0, 32, 64); // zero block
    if (r % 11 === 0) v.fill(-0, 64, 96);
    assert.ok(encodeFp4Row(v, 0, d, codes, 0, units, 0), `row ${r}`);
    for (let i = 0; i < d; i++) {
      const c = codes[i]! - FP4_CODE_OFFSET;
      assert.ok(Math.abs(c) <= 12);
      assert.equal(c * units[i >> 5]!, v[i]! === 0 ? 0 : v[i]!);
    }
  }
  const max = new Float32Array(32).fill(6 * 2 ** -3);
  max[1] = -6 * 2 ** -3;
  assert.ok(encodeFp4Row(max, 0, 32, codes, 0, units, 0));
  assert.equal(codes[0], 24);
  assert.equal(codes[1], 0);
  const off = new Float32Array(32).fill(1);
  off[3] = 1.25 / 64; // off the grid of the block's unit
  assert.equal(encodeFp4Row(off, 0, 32, codes, 0, units, 0), false);
  const nan = new Float32Array(32).fill(1);
  nan[5] = NaN;
  assert.equal(encodeFp4Row(nan, 0, 32, codes, 0, units, 0), false);
  assert.equal(encodeFp4Row(new Float32Array(32).fill(Infinity), 0, 32, codes, 0, units, 0), false);
  const tiny = new Float32Array(32).fill(0);
  tiny[0] = 2 ** -149; // unit 2^-152: below fp32
  assert.equal(encodeFp4Row(tiny, 0, 32, codes, 0, units, 0), false);
});

interface Case {
  name: string;
  H: number;
  d: number;
  visible: number;
  spread: (b: number) => number;
  edit?: (keys: Float32Array[], q: Float32Array, hw: Float32Array) => void;
  /** Expect no entry left to the formula (realistic ranges). */
  noFallback?: boolean;
}

function runCase(c: Case): void {
  const nk = makeNativeKernels(addon!);
  const { H, d, visible } = c;
  const keys = Array.from({ length: visible }, () => fp4Row(d, c.spread));
  const q = new Float32Array(2 * H * d);
  for (let r = 0; r < 2 * H; r++) q.set(fp4Row(d, c.spread), r * d);
  const hw = new Float32Array(2 * H).map(() => roundBf16(normal() * 0.1));
  c.edit?.(keys, q, hw);
  const cache = new IndexerKeyCache(d);
  for (const k of keys) cache.push(k);
  const w = { nHeads: H, headDim: d, topk: 8 } as IndexerWeights;
  let flaggedSeen = 0;
  const counting = { ...nk, indexerScoresFp4: (...a: Parameters<NonNullable<typeof nk.indexerScoresFp4>>) => {
    const n = nk.indexerScoresFp4!(...a);
    assert.ok(n >= 0, `${c.name}: the query is fake-FP4, the integer kernel must run`);
    flaggedSeen += n;
    return n;
  } };
  for (const row of [0, 1]) {
    const want = Array.from(indexerScores(w, q, row, hw, cache, visible).subarray(0, visible)); // formula on f32 keys
    const got = Array.from(indexerScores(w, q, row, hw, cache, visible, counting).subarray(0, visible));
    for (let t = 0; t < visible; t++) assert.ok(Object.is(got[t], want[t]), `${c.name} row ${row} entry ${t}: ${got[t]} != ${want[t]}`);
    const viaFloat = Array.from(indexerScores(w, q, row, hw, cache, visible, { ...nk, indexerScoresFp4: undefined }).subarray(0, visible));
    assert.deepEqual(viaFloat, want, `${c.name}: the float kernel agrees`);
    assert.deepEqual(topkOrder(indexerScores(w, q, row, hw, cache, visible, counting), visible, 8), topkOrder(Float64Array.from(want), visible, 8),
      `${c.name}: same selection`);
  }
  if (c.noFallback) assert.equal(flaggedSeen, 0, `${c.name}: no entry should need the formula`);
}

const realistic = () => Math.floor(rnd() * 4) - 2;

test('indexerScoresFp4: integer kernel == formula bit for bit', { skip }, () => {
  const cases: Case[] = [
    { name: 'released shape 64x128', H: 64, d: 128, visible: 300, spread: realistic, noFallback: true },
    { name: 'odd heads (scalar path)', H: 3, d: 96, visible: 50, spread: realistic, noFallback: true },
    // the AVX2 kernel takes 4 heads per pass over the keys: 1 and 2 left over
    { name: '5 heads', H: 5, d: 128, visible: 60, spread: realistic, noFallback: true },
    { name: '6 heads', H: 6, d: 128, visible: 60, spread: realistic, noFallback: true },
    { name: 'd=64 (scalar path)', H: 4, d: 64, visible: 40, spread: realistic, noFallback: true },
    { name: 'wide block scales', H: 8, d: 256, visible: 200, spread: () => Math.floor(rnd() * 80 - 40) },
    { name: 'huge and tiny scales', H: 4, d: 128, visible: 120, spread: () => (rnd() < 0.5 ? 100 : -125) },
    {
      name: 'zero blocks, max codes, ties, zero weights', H: 8, d: 128, visible: 100, spread: realistic,
      edit: (keys, q, hw) => {
        keys[3]!.fill(0);
        keys[4]!.fill(0, 0, 32);
        keys[5]!.set(keys[6]!); // identical keys: tied scores
        keys[7]!.fill(6);
        keys[8]!.fill(-6);
        q.fill(0, 0, 32); // a zero query block
        q.fill(6, 128, 256); // a head of max codes
        hw[1] = 0;
        hw[2] = -0;
      },
    },
    {
      name: 'inexact keys go to the formula', H: 4, d: 128, visible: 30, spread: realistic,
      edit: (keys) => {
        keys[2]![7] = 0.3;
        keys[9]![100] = NaN;
        keys[11]![0] = Infinity;
      },
    },
  ];
  for (const c of cases) runCase(c);
});

test('indexerScoresFp4: a query off the FP4 grid or a non-finite head weight returns -1', { skip }, () => {
  const nk = makeNativeKernels(addon!);
  const d = 128;
  const H = 4;
  const cache = new IndexerKeyCache(d);
  for (let i = 0; i < 5; i++) cache.push(fp4Row(d, realistic));
  const q = new Float32Array(H * d);
  for (let h = 0; h < H; h++) q.set(fp4Row(d, realistic), h * d);
  const hw = new Float32Array(H).fill(0.5);
  const s = new Float32Array(5);
  const f = new Uint8Array(5);
  assert.ok(nk.indexerScoresFp4!(q, 0, hw, 0, H, d, cache, 5, s, f) >= 0);
  q[3] = 0.3;
  assert.equal(nk.indexerScoresFp4!(q, 0, hw, 0, H, d, cache, 5, s, f), -1);
  q[3] = 0;
  hw[2] = NaN;
  assert.equal(nk.indexerScoresFp4!(q, 0, hw, 0, H, d, cache, 5, s, f), -1);
});

test('IndexerKeyCache: compact form follows push, growth, clone and reload', () => {
  const d = 128;
  const a = new IndexerKeyCache(d, 2);
  const rows = Array.from({ length: 40 }, () => fp4Row(d, realistic));
  rows[5]![1] = 0.3; // inexact
  for (const r of rows) a.push(r);
  const check = (c: IndexerKeyCache, what: string) => {
    assert.equal(c.count, rows.length, what);
    const v = c.values();
    for (let t = 0; t < rows.length; t++) {
      assert.equal(c.exact[t], t === 5 ? 0 : 1, `${what} entry ${t}`);
      for (let i = 0; i < d; i++) {
        assert.equal(v[t * d + i], roundBf16(rows[t]![i]!), `${what} value ${t},${i}`);
        if (t !== 5) assert.equal((c.codes[codeIndex(t, i, d)]! - FP4_CODE_OFFSET) * c.units[t * 4 + (i >> 5)]!, v[t * d + i]! || 0, `${what} code ${t},${i}`);
      }
    }
  };
  check(a, 'pushed');
  const b = new IndexerKeyCache(d);
  b.copyFrom(a);
  check(b, 'copied');
  const c = new IndexerKeyCache(d);
  c.data = a.data.slice(0, a.count * d);
  c.count = a.count;
  c.loaded();
  check(c, 'reloaded');
});
