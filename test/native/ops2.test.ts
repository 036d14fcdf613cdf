// Native element-wise / per-head operations (native/ops2_*.cc, src/tensor/ops2.ts) equal their
// TypeScript references bit for bit: SwiGLU, BF16 rounding of arrays, and the per-head transforms
// (RoPE, inverse RoPE, RoPE + act_quant, RoPE + Hadamard + fp4_act_quant, RMS rescale + RoPE), on
// random data and edge cases (zeros, -0, subnormals, ties, fp32 midpoints, non-finite values,
// odd sizes, calls big enough for the pool). What they leave undecided is reported, never wrong.
// Re-run with the portable kernels and other thread counts in child processes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runTestFileInChild } from './child.js';
import { xorshift } from './rng.js';
import { loadNative, makeNativeKernels } from '../../src/tensor/native.js';
import { roundBf16, roundBf16Array } from '../../src/tensor/formats.js';
import { addRows, HeadMode, headReference, headsWith, type RowOps } from '../../src/tensor/ops2.js';
import { RopeTable, ropeTable } from '../../src/tensor/rope.js';
import { swiglu, swigluWith } from '../../src/model/moe.js';
import { poolChannel } from '../../src/model/compressor.js';

const { addon, reason } = loadNative();
const nk = addon ? makeNativeKernels(addon) : null;
const skip = nk?.heads ? false : `native row ops unavailable: ${addon ? 'addon predates them' : reason}`;

const rnd = xorshift(711);
/** BF16 values of mixed magnitude 2^[lo, hi). */
const bf = (lo: number, hi: number) => roundBf16((rnd() * 2 - 1) * 2 ** Math.floor(lo + rnd() * (hi - lo)));

function sameBits(got: Float32Array, want: Float32Array, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < got.length; i++) {
    if (Number.isNaN(want[i]) && Number.isNaN(got[i])) continue;
    assert.ok(Object.is(got[i], want[i]), `${what}[${i}]: native ${got[i]} != reference ${want[i]}`);
  }
}

test('swiglu: native == moe.ts swiglu (clamp or not, routing weights or not, pool-sized calls)', { skip }, () => {
  for (const [rows, inter] of [[1, 1024], [3, 37], [300, 1024], [301, 999]] as const) {
    const n = rows * inter;
    const g = new Float32Array(n).map(() => bf(-6, 6));
    const u = new Float32Array(n).map(() => bf(-6, 6));
    // edge cases: zeros, -0, the clamp bounds, huge negative gates (exp overflows), subnormals
    const edges = [0, -0, 10, -10, 10.0625, -800, -100, 800, 2 ** -130, -(2 ** -140), 1e-30, 3e38];
    edges.forEach((v, i) => {
      g[i % n] = v;
      u[(i * 7) % n] = v;
    });
    const rw = new Float32Array(rows).map(() => Math.fround(rnd()));
    for (const limit of [10, 0]) {
      for (const w of [rw, null]) {
        const want = swiglu(g, u, rows, inter, limit, w);
        const got = new Float32Array(n);
        assert.equal(nk!.swiglu!(g, u, rows, inter, limit, w, got, new Int32Array(4)), 0, `rows ${rows} limit ${limit}`);
        sameBits(got, want, `swiglu ${rows}x${inter} limit ${limit} rw ${!!w}`);
      }
    }
  }
  // non-finite inputs: reported by index (h there untouched), completed by swigluWith; -1 past capacity
  const g = new Float32Array(96).map(() => bf(-4, 4));
  const u = new Float32Array(96).map(() => bf(-4, 4));
  g[17] = NaN;
  u[40] = Infinity;
  g[95] = -Infinity;
  const h = new Float32Array(96).fill(7);
  const idx = new Int32Array(3);
  assert.equal(nk!.swiglu!(g, u, 3, 32, 10, null, h, idx), 3);
  assert.deepEqual([...idx].sort((a, b) => a - b), [17, 40, 95]);
  assert.equal(h[40], 7);
  assert.equal(nk!.swiglu!(g, u, 3, 32, 10, null, h, new Int32Array(2)), -1);
  const rw = Float32Array.of(0.5, 0.25, 0.125);
  for (const w of [rw, null]) sameBits(swigluWith(nk!, g, u, 3, 32, 10, w), swiglu(g, u, 3, 32, 10, w), 'swigluWith non-finite');
});

test('roundBf16: native == formats.ts roundBf16Array on all kinds of bits', { skip }, () => {
  for (const n of [7, 4096, 300_001]) {
    const bits = new Uint32Array(n).map(() => (rnd() * 2 ** 32) >>> 0);
    // ties (odd and even), NaN payloads, infinities, subnormals, the largest finite values
    const edges = [0x3f808000, 0x3f818000, 0x7fc00001, 0xff800000, 0x7f800000, 0x00008000, 0x80018000, 0x7f7fffff, 0xff7f8000];
    edges.forEach((b, i) => (bits[(i * 3) % n] = b));
    const want = new Float32Array(bits.buffer.slice(0));
    roundBf16Array(want);
    const got = new Float32Array(bits.buffer.slice(0));
    nk!.roundBf16!(got);
    assert.deepEqual(new Uint32Array(got.buffer), new Uint32Array(want.buffer), `n ${n}`);
  }
});

test('addRows: native == ops2.ts addRows (repeated and identity rows, rounding, non-finite)', { skip }, () => {
  for (const [rows, dim] of [[5, 2048], [1, 7], [300, 64]] as const) {
    const y0 = new Float32Array(rows * dim).map(() => Math.fround(bf(-20, 10) * (1 + rnd())));
    const src = new Float32Array(rows * dim).map(() => Math.fround(bf(-20, 10) * (1 + rnd())));
    src[0] = NaN;
    src[1] = Infinity;
    y0[2] = -Infinity;
    src[2] = Infinity;
    src[3] = 3e38;
    y0[3] = 3e38;
    const idx = new Int32Array(rows).map((_, t) => (t * 7 + 3) % rows); // permuted, and repeated when rows is small
    if (rows > 2) idx[1] = idx[0]!;
    for (const ix of [idx, null]) {
      for (const round of [false, true]) {
        const want = y0.slice();
        addRows(want, ix, src, rows, dim, round);
        const got = y0.slice();
        nk!.addRows!(got, ix, src, rows, dim, round);
        sameBits(got, want, `addRows ${rows}x${dim} idx ${!!ix} round ${round}`);
      }
    }
  }
});

test('pool: native == compressor.ts poolChannel (overlapping and plain windows, -inf scores, flagged channels)', { skip }, () => {
  for (const [r, c, overlap] of [[4, 512, true], [4, 128, true], [128, 512, false], [3, 7, false]] as const) {
    const n = (overlap ? 2 * r : r) * (overlap ? 2 * c : c);
    const kv = new Float32Array(n).map(() => bf(-12, 4));
    const score = new Float32Array(n).map(() => Math.fround(bf(-6, 4) + bf(-10, 2)));
    if (overlap) score.fill(-Infinity, 0, r * 2 * c); // the first block: no previous rows yet
    score[5] = 0;
    score[6] = -0;
    kv[9] = -0;
    const entry = new Float32Array(c);
    const flags = new Uint8Array(c);
    const undecided = nk!.pool!(kv, score, r, c, overlap, entry, flags);
    const terms = new Float64Array(2 * r);
    let flagged = 0;
    for (let ch = 0; ch < c; ch++) {
      if (flags[ch]) flagged++;
      else assert.ok(Object.is(entry[ch], poolChannel(kv, score, r, c, overlap, ch, terms)), `r ${r} c ${c} channel ${ch}`);
    }
    assert.equal(undecided, flagged);
    assert.ok(flagged <= c / 64, `r ${r}: ${flagged} of ${c} channels undecided`);
  }
  // NaN scores, infinite values: flagged, never wrong
  const kv = new Float32Array(4 * 8).fill(1);
  const score = new Float32Array(4 * 8).fill(0.5);
  score[1] = NaN;
  kv[10] = Infinity;
  const flags = new Uint8Array(8);
  assert.equal(nk!.pool!(kv, score, 4, 8, false, new Float32Array(8), flags), 2);
  assert.deepEqual([...flags], [0, 1, 1, 0, 0, 0, 0, 0]);
});

const table = ropeTable({ dim: 64, base: 10000, originalSeqLen: 65536, factor: 16, betaFast: 32, betaSlow: 1 }, 1 << 16);

/** Every head through the TypeScript reference only. */
function reference(x: Float32Array, rows: number, H: number, d: number, rd: number, mode: HeadMode, t: RopeTable, pos: Int32Array, eps: number): Float32Array {
  const y = x.slice();
  for (let i = 0; i < rows * H; i++) headReference(y, i * d, d, rd, mode, t, pos[Math.floor(i / H)]!, eps);
  return y;
}

const MODES = Object.entries(HeadMode) as [string, HeadMode][];

test('heads: every mode, native == the references (random heads, zeros, subnormals, wide spans)', { skip }, () => {
  for (const [name, mode] of MODES) {
    for (const [rows, H, d, rd] of [[3, 16, 512, 64], [2, 64, 128, 64], [1, 1, 512, 64], [5, 3, 192, 64], [40, 16, 512, 64]] as const) {
      if (mode === HeadMode.ROPE_HADAMARD_FP4 && (d & (d - 1)) !== 0) continue;
      const x = new Float32Array(rows * H * d).map(() => bf(-30, 8));
      x.fill(0, 0, d); // a zero head
      x[d] = -0;
      for (let i = 2 * d; i < 2 * d + 40 && i < x.length; i++) x[i] = roundBf16((i % 5 - 2) * 2 ** -133); // BF16 subnormals
      if (x.length >= 4 * d) for (let i = 3 * d; i < 4 * d; i++) x[i] = bf(-60, 60); // wide exponent span
      if (x.length >= 5 * d) for (let i = 4 * d; i < 4 * d + 8; i++) x[i] = roundBf16(3e38 * (i % 2 ? 1 : -1)); // squares overflow
      const pos = new Int32Array(rows).map(() => Math.floor(rnd() * 60000));
      const want = reference(x, rows, H, d, rd, mode, table, pos, 1e-6);
      const got = x.slice();
      headsWith(nk!, got, rows, H, d, rd, mode, table, pos, 1e-6);
      sameBits(got, want, `${name} ${rows}x${H}x${d}`);
    }
  }
});

test('heads: ROPE_HADAMARD_FP4 on small integers (exact sums, E2M1 thresholds and zero blocks hit), native == reference', { skip }, () => {
  // d = 256: the scale 1/16 is a power of two, so sums of small integers land on the E2M1 thresholds
  for (const [rows, H, d] of [[8, 64, 256], [16, 64, 128], [4, 8, 1024], [2, 4, 64]] as const) {
    const x = new Float32Array(rows * H * d).map(() => (Math.floor(rnd() * 7) - 3) * 2 ** Math.floor(rnd() * 6 - 3));
    for (let h = 0; h < rows * H; h += 5) x.fill(0, h * d, h * d + 32); // whole zero blocks
    const pos = new Int32Array(rows).map((_, r) => (r % 2 ? 0 : Math.floor(rnd() * 60000)));
    const want = reference(x, rows, H, d, 64, HeadMode.ROPE_HADAMARD_FP4, table, pos, 0);
    const got = x.slice();
    headsWith(nk!, got, rows, H, d, 64, HeadMode.ROPE_HADAMARD_FP4, table, pos);
    sameBits(got, want, `${rows}x${H}x${d}`);
  }
});

test('heads: non-finite heads are flagged and left untouched; headsWith completes them', { skip }, () => {
  const d = 128;
  const x = new Float32Array(4 * d).map(() => bf(-8, 4));
  x[d + 5] = NaN;
  x[3 * d + 100] = -Infinity;
  const pos = Int32Array.of(7, 9);
  for (const [, mode] of MODES) {
    const got = x.slice();
    const flags = new Uint8Array(4);
    table.ensure(9);
    assert.equal(nk!.heads!(got, 2, 2, d, 64, mode, table, pos, 1e-6, flags), 2);
    assert.deepEqual([...flags], [0, 1, 0, 1]);
    sameBits(got.subarray(d, 2 * d), x.subarray(d, 2 * d), 'flagged head untouched');
    const all = x.slice();
    headsWith(nk!, all, 2, 2, d, 64, mode, table, pos, 1e-6);
    sameBits(all, reference(x, 2, 2, d, 64, mode, table, pos, 1e-6), 'headsWith');
  }
});

test('heads: RoPE sums on an fp32 midpoint round by the TwoSum error (not ties-to-even)', { skip }, () => {
  // a*sin = 1 + 2^-8 + 2^-24 exactly (an fp32 midpoint whose fp32 neighbours straddle a BF16 tie),
  // b*cos = ±2^-60 decides the side: the reference gives 1 + 2^-7 for +, 1 for -
  const t = new RopeTable(2, new Float32Array(1), 4);
  t.ensure(0);
  t.cos[0] = 1;
  t.sin[0] = 0.75;
  const a = 5614251 * 2 ** -22;
  for (const b of [2 ** -60, -(2 ** -60)]) {
    const x = Float32Array.of(a, b);
    const want = reference(x, 1, 1, 2, 2, HeadMode.ROPE, t, Int32Array.of(0), 0);
    assert.equal(want[1], b > 0 ? 1 + 2 ** -7 : 1);
    const got = x.slice();
    headsWith(nk!, got, 1, 1, 2, 2, HeadMode.ROPE, t, Int32Array.of(0));
    sameBits(got, want, `midpoint b ${b}`);
  }
});

test('heads: without native heads, headsWith is the reference', () => {
  const x = new Float32Array(2 * 128).map(() => bf(-8, 4));
  const pos = Int32Array.of(3);
  const got = x.slice();
  headsWith({} as RowOps, got, 1, 2, 128, 64, HeadMode.ROPE_HADAMARD_FP4, table, pos);
  sameBits(got, reference(x, 1, 2, 128, 64, HeadMode.ROPE_HADAMARD_FP4, table, pos, 0), 'ts');
});

test('heads: a rope width other than the table\'s is refused (native and TypeScript would rotate different widths)', () => {
  const x = new Float32Array(128);
  assert.throws(() => headsWith({} as RowOps, x, 1, 1, 128, 32, HeadMode.ROPE, table, Int32Array.of(0)), /rope width 32 != the rope table's 64/);
});

test('ops2: the same bits with the portable kernels and with 1 or 3 threads', { skip: skip || !!process.env.DSV4_TEST_CHILD }, () => {
  for (const env of [{ DSV4_NO_AVX2: '1' }, { DSV4_THREADS: '1' }, { DSV4_THREADS: '3' }]) runTestFileInChild(import.meta.url, env, 8);
});
