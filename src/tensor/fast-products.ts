// Fast numerics: the explicitly named `--numerics fast` mode (issue 7 "Exactness at
// speed": a faster inexact product offered beside the exact default, its drift
// reported). The exact FP8/FP4 products run in float64 lanes or integers; these run
// in fp32 lanes, at twice the FMA width, like a GPU's fp32-accumulating GEMM.
//
// Semantics (every implementation gives these bits; this file is the reference):
//   1. both operands are dequantized exactly to fp32: an e4m3 activation is code x its
//      1x128 scale; an FP8 weight code x its 128x128 block scale; an FP4 weight e2m1 x
//      its 1x32 scale; a BF16 weight its value; an FP8-as-BF16 weight (wo_a) bf16(code x
//      scale), as dense.ts reads it; BF16/fp32 activations as given;
//   2. y[m, n] = fma(w[n, K-1], x[m, K-1], ... fma(w[n, 1], x[m, 1], fma(w[n, 0], x[m, 0], 0)))
//      in fp32: one accumulator per output, increasing k, each step one rounding;
//   3. except for products of at most CHAIN_ROWS (2) activation rows with FP8, FP8-as-BF16 or BF16
//      weights (decode of one or two sequences): there each output is the sum of CHAINS (32) partial
//      chains. Chain c takes the terms with k = c (mod 32), each added by one fp32 FMA, k increasing,
//      from +0 (a chain without terms stays +0). Chain c sits in accumulator a(c) (0..3) at lane i(c)
//      (0..7), and the chains are added in this fixed tree, each + one fp32 rounding:
//        v[i] = (P[0][i] + P[1][i]) + (P[2][i] + P[3][i]),
//        y = ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7])).
//      The slots are where an AVX2 kernel whose lanes run along k finds the terms (chainSlots):
//      e4m3 codes (FP8, FP8-as-BF16), 32 per 32-byte load: a = c mod 4, i = c div 4 (dword i holds
//      codes 4i..4i+3); BF16 words, 32 per 64-byte step as two loads of 16: a = 2 (c div 16) +
//      c mod 2, i = (c div 2) mod 8 (a dword's low word is the even k). Only the order of the sums
//      changes; the terms are those of 1 and 2 (native/fastchain_*.cc).
//   4. except for FP4 products of at most Q8_ROWS (15) activation rows (decode's routed experts): there
//      the activations become int8 per 32-element block (the FP4 weight-scale block) and the block dots
//      are exact integers (native/fp4q8_*.cc: full-width vpmaddubsw). For activation row m, block b:
//      X[k] = e4m3 value * 2^9 (an integer, |X| <= 229376), M = max |X| over the block,
//      q[k] = sign(X) floor((254 |X| + M) / (2 M)) in [-127, 127] (round half up in magnitude; 0 when
//      M = 0), A = fl32(((M * sa) * 2^-10) / 127) (float64 operations, then one rounding to fp32; sa the
//      row's 1x128 scale); s = sum over the block of k q[k], k = 2 * e2m1 in [-12, 12] (exact, |s| < 2^17);
//      v = fl32(fl32(s * A) * ws) (ws the weight's ue8m0 scale: byte 0 = 2^-127, 255 = NaN);
//      y = fp32 sum of the v in increasing k (acc = fl32(acc + v) from +0), as the exact kernel orders
//      them. A row holding a NaN code (0x7f/0xff) gives NaN outputs (as the exact product does). So q
//      approximates the reference's e4m3 term itself: the drift is the int8 rounding, at most 1/254 of
//      the block's largest activation per element (fp4q8Gemm).
// So results differ from canonical rounding by the fp32 accumulation error only
// (the goldens' drift is reported by `dsv4 verify --numerics fast`).
import { E2M1_VALUES, E4M3_VALUES } from './formats.js';
import { weightRowValues } from './dense.js';
import type { Bf16Weight, Fp4Weight, Fp8Weight, GemmJob, QuantizedActivations } from './kernels.js';

/** The products that fast numerics replaces (the rest of Kernels stays exact). */
export interface FastProducts {
  readonly name: string;
  /** y[x.rows, w.out] (fp32; the caller rounds as for fp8Gemm). */
  fp8Gemm(x: QuantizedActivations, w: Fp8Weight, y: Float32Array): void;
  fp4Gemm(x: QuantizedActivations, w: Fp4Weight, y: Float32Array): void;
  /** y[rows, n] = x[rows, w.inF] . W[r0 .. r0+n)ᵀ for BF16 W or FP8 W used as BF16 values. */
  denseGemm(x: Float32Array, rows: number, w: Bf16Weight | Fp8Weight, r0: number, n: number, y: Float32Array): void;
  /** Optional: the jobs' products in one call (same bits as one by one). */
  gemmBatch?(jobs: readonly GemmJob[]): void;
  /** Optional: denseGemm of each group g: ys[g] = xs[g] . W[g*n .. (g+1)*n)ᵀ in one call. */
  denseGroups?(xs: readonly Float32Array[], rows: number, w: Fp8Weight, n: number, ys: readonly Float32Array[]): void;
}

const fr = Math.fround;

/**
 * RN32(a*b + c) for fp32 a, b, c, one rounding. a*b is exact in float64 (<= 48 bits); the float64 sum
 * s = a*b + c may be rounded, and fround(s) then differs from the single rounding only when s is exactly
 * halfway between two fp32 values: the sum's exact error e (TwoSum) picks the side.
 */
export function fmaF32(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const r = fr(s);
  if (!Number.isFinite(s)) return r;
  const bb = s - p;
  const e = p - (s - bb) + (c - bb);
  if (e === 0) return r;
  const d = s - r;
  if (d === 0) return r; // s is an fp32 value and the exact sum is within half a float64 ulp of it
  const other = r + 2 * d;
  if (fr(other) !== other) return r; // s is not a midpoint: fround(s) is the nearest to the exact sum
  return (e > 0) === (d > 0) ? other : r;
}

/** Activation rows [rows, cols] as fp32 values code x 1x128 scale. */
export function dequantActivations(x: QuantizedActivations): Float32Array {
  const v = new Float32Array(x.rows * x.cols);
  const nb = x.cols / 128;
  for (let m = 0; m < x.rows; m++) {
    for (let k = 0; k < x.cols; k++) v[m * x.cols + k] = fr(E4M3_VALUES[x.q[m * x.cols + k]!]! * x.scale[m * nb + (k >> 7)]!);
  }
  return v;
}

const e8m0 = (b: number): number => (b === 255 ? NaN : 2 ** (b - 127));

/** FP8 weight row n as fp32 values code x block scale. */
export function fp8WeightRow(w: Fp8Weight, n: number, out: Float32Array): Float32Array {
  const K = w.inF;
  const nkb = Math.ceil(K / 128);
  for (let k = 0; k < K; k++) out[k] = fr(E4M3_VALUES[w.data[n * K + k]!]! * e8m0(w.scale[(n >> 7) * nkb + (k >> 7)]!));
  return out;
}

/** FP4 weight row n as fp32 values e2m1 x 1x32 scale. */
export function fp4WeightRow(w: Fp4Weight, n: number, out: Float32Array): Float32Array {
  const K = w.inF;
  for (let j = 0; j < K >> 1; j++) {
    const byte = w.data[n * (K >> 1) + j]!;
    const s = e8m0(w.scale[n * (K >> 5) + (j >> 4)]!);
    out[2 * j] = fr(E2M1_VALUES[byte & 15]! * s); // low nibble = even element
    out[2 * j + 1] = fr(E2M1_VALUES[byte >> 4]! * s);
  }
  return out;
}

/** Products of at most this many activation rows with FP8 or BF16-valued weights use the chain semantics (3 above). */
export const CHAIN_ROWS = 2;
/** Partial chains per output in the chain semantics. */
export const CHAINS = 32;

/** How a weight's elements sit in the chain kernel's vectors: e4m3 codes or BF16 words. */
export type ChainLayout = 'fp8' | 'bf16';

/** slot[c] = 8 a(c) + i(c): chain c's accumulator and lane (3 above). */
export function chainSlots(layout: ChainLayout): Int32Array {
  return Int32Array.from({ length: CHAINS }, (_, c) => (layout === 'fp8' ? 8 * (c & 3) + (c >> 2) : 8 * (2 * (c >> 4) + (c & 1)) + ((c >> 1) & 7)));
}

/** The fixed tree of 3 above over the partial sums P[8 a + i]. */
export function chainTree(P: ArrayLike<number>): number {
  const v = (i: number): number => fr(fr(P[i]! + P[8 + i]!) + fr(P[16 + i]! + P[24 + i]!));
  return fr(fr(fr(v(0) + v(4)) + fr(v(2) + v(6))) + fr(fr(v(1) + v(5)) + fr(v(3) + v(7))));
}

/** y[rows, n] in the chain semantics (rows <= CHAIN_ROWS): 32 partial chains per output, then chainTree. */
function chainGemm(xv: Float32Array, rows: number, K: number, row: (r: number) => Float32Array, r0: number, n: number, y: Float32Array, layout: ChainLayout): void {
  const slot = chainSlots(layout);
  const P = new Float64Array(CHAINS);
  for (let j = 0; j < n; j++) {
    const wv = row(r0 + j);
    for (let m = 0; m < rows; m++) {
      P.fill(0);
      for (let k = 0; k < K; k++) {
        const s = slot[k & (CHAINS - 1)]!;
        P[s] = fmaF32(wv[k]!, xv[m * K + k]!, P[s]!);
      }
      y[m * n + j] = chainTree(P);
    }
  }
}

/** y[rows, n] from dequantized activations xv[rows, K] and weight rows r0 .. r0+n. */
function sequentialGemm(xv: Float32Array, rows: number, K: number, row: (r: number) => Float32Array, r0: number, n: number, y: Float32Array): void {
  for (let j = 0; j < n; j++) {
    const wv = row(r0 + j);
    for (let m = 0; m < rows; m++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc = fmaF32(wv[k]!, xv[m * K + k]!, acc);
      y[m * n + j] = acc;
    }
  }
}

function checkQuantized(op: string, x: QuantizedActivations, w: { out: number; inF: number }, y: Float32Array): void {
  if (x.cols !== w.inF) throw new RangeError(`${op}: activation width ${x.cols} != weight in ${w.inF}`);
  if (x.cols % 128 !== 0) throw new RangeError(`${op}: width ${x.cols} is not a multiple of 128`);
  if (y.length < x.rows * w.out) throw new RangeError(`${op}: output holds ${y.length} < ${x.rows * w.out} values`);
}

/** FP4 products of at most this many activation rows use the int8 semantics (4 above). */
export const Q8_ROWS = 15;

/** e4m3 code -> value * 2^9 (an integer; NaN for 0x7f/0xff). */
const E4M3_INT = Float64Array.from(E4M3_VALUES, (v) => v * 512);

/**
 * An activation row in the int8 form of 4 above: q (one int8 per element) and per 32-element block the
 * factor A; null when the row holds a NaN code.
 */
export function q8Row(x: QuantizedActivations, m: number): { q: Int8Array; A: Float32Array } | null {
  const K = x.cols;
  const q = new Int8Array(K);
  const A = new Float32Array(K / 32);
  for (let b = 0; b < K / 32; b++) {
    let M = 0;
    for (let k = b * 32; k < b * 32 + 32; k++) {
      const X = E4M3_INT[x.q[m * K + k]!]!;
      if (Number.isNaN(X)) return null;
      M = Math.max(M, Math.abs(X));
    }
    for (let k = b * 32; k < b * 32 + 32 && M > 0; k++) {
      const X = E4M3_INT[x.q[m * K + k]!]!;
      // (254 |X| + M) / (2 M) is within 2^-19 of no integer it is not: the float64 quotient floors right
      q[k] = Math.sign(X) * Math.floor((254 * Math.abs(X) + M) / (2 * M));
    }
    A[b] = fr(((M * x.scale[m * (K / 128) + (b >> 2)]!) * 2 ** -10) / 127);
  }
  return { q, A };
}

/** 4 above: y[x.rows, w.out] for FP4 weights. */
export function fp4q8Gemm(x: QuantizedActivations, w: Fp4Weight, y: Float32Array): void {
  const K = w.inF;
  const nsb = K / 32;
  for (let m = 0; m < x.rows; m++) {
    const r = q8Row(x, m);
    for (let n = 0; n < w.out; n++) {
      if (!r) {
        y[m * w.out + n] = NaN;
        continue;
      }
      let acc = 0;
      for (let b = 0; b < nsb; b++) {
        let s = 0;
        for (let j = b * 16; j < b * 16 + 16; j++) {
          const byte = w.data[n * (K >> 1) + j]!;
          s += 2 * E2M1_VALUES[byte & 15]! * r.q[2 * j]! + 2 * E2M1_VALUES[byte >> 4]! * r.q[2 * j + 1]!; // low nibble = even element
        }
        acc = fr(acc + fr(fr(s * r.A[b]!) * e8m0(w.scale[n * nsb + b]!)));
      }
      y[m * w.out + n] = acc;
    }
  }
}

/** The plain TypeScript fast products (the semantics above, one multiply-add at a time). */
export const referenceFastProducts: FastProducts = {
  name: 'fast-reference',
  fp8Gemm(x, w, y) {
    checkQuantized('fast fp8Gemm', x, w, y);
    const buf = new Float32Array(w.inF);
    const row = (r: number): Float32Array => fp8WeightRow(w, r, buf);
    if (x.rows <= CHAIN_ROWS) chainGemm(dequantActivations(x), x.rows, w.inF, row, 0, w.out, y, 'fp8');
    else sequentialGemm(dequantActivations(x), x.rows, w.inF, row, 0, w.out, y);
  },
  fp4Gemm(x, w, y) {
    checkQuantized('fast fp4Gemm', x, w, y);
    if (x.rows <= Q8_ROWS) return fp4q8Gemm(x, w, y);
    const buf = new Float32Array(w.inF);
    sequentialGemm(dequantActivations(x), x.rows, w.inF, (r) => fp4WeightRow(w, r, buf), 0, w.out, y);
  },
  denseGemm(x, rows, w, r0, n, y) {
    const K = w.inF;
    if (x.length < rows * K || y.length < rows * n) throw new RangeError('fast denseGemm: activations or output too short');
    if (r0 < 0 || r0 + n > w.out) throw new RangeError(`fast denseGemm: rows [${r0}, ${r0 + n}) outside [0, ${w.out})`);
    const buf = new Float32Array(K);
    const bits = new Uint32Array(buf.buffer);
    const row = (r: number): Float32Array => weightRowValues(w, r, buf, bits);
    if (rows <= CHAIN_ROWS) chainGemm(x, rows, K, row, r0, n, y, w.kind === 'bf16' ? 'bf16' : 'fp8');
    else sequentialGemm(x, rows, K, row, r0, n, y);
  },
};
