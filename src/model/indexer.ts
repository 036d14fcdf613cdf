// Lightning indexer of CSA layers (spec §3.5): FP4-simulated Hadamard-rotated
// queries scored against the indexer's compressed keys in BF16 tensor ops,
// then top-k with torch.topk's CUDA order (value desc, ties by lower index).
import type { Kernels, Weight } from '../tensor/kernels.js';
import { dotF32x32, sumF32 } from '../tensor/exact.js';
import { roundBf16 } from '../tensor/formats.js';
import type { RopeTable } from '../tensor/rope.js';
import { HeadMode, headsWith } from '../tensor/ops2.js';
import { linear } from './linear.js';
import type { CompressorWeights } from './compressor.js';
import type { Fp4Rows } from '../tensor/fp4-rows.js';

const fr = Math.fround;

export interface IndexerWeights {
  nHeads: number;
  headDim: number;
  topk: number;
  wqB: Weight;
  weightsProj: Weight;
  compressor: CompressorWeights;
}

/** Queries [rows, nHeads*headDim]: wq_b(qr) (or its given value), RoPE on each head's last ropeDim dims, Hadamard, FP4. */
export function indexerQueries(k: Kernels, w: IndexerWeights, qr: Float32Array, rows: number, positions: Int32Array, table: RopeTable, ropeDim: number,
  q = linear(k, qr, rows, w.wqB)): Float32Array {
  headsWith(k, q, rows, w.nHeads, w.headDim, ropeDim, HeadMode.ROPE_HADAMARD_FP4, table, positions);
  return q;
}

/** weights_proj(x) (or its given value, updated in place) * (headDim^-0.5 * nHeads^-0.5), BF16 [rows, nHeads]. */
export function indexerHeadWeights(k: Kernels, w: IndexerWeights, x: Float32Array, rows: number, y = linear(k, x, rows, w.weightsProj)): Float32Array {
  const s = fr(w.headDim ** -0.5 * w.nHeads ** -0.5);
  for (let i = 0; i < y.length; i++) y[i] = roundBf16(y[i]! * s);
  return y;
}

/** The indexer key cache as the selection reads it (model/state.ts IndexerKeyCache). */
export interface IndexerKeys extends Fp4Rows {
  readonly count: number;
  /** All entries as f32 values [count, headDim]. */
  values(): Float32Array;
  /** Entries idx[0..n) as f32 values [n, headDim]. */
  rows(idx: ArrayLike<number>, n?: number, out?: Float32Array): Float32Array;
}

/** One entry's score, the reference formula (keys: f32 rows, entry at row t). */
function entryScore(q: Float32Array, qo: number, hw: Float32Array, hwo: number, H: number, d: number, keys: Float32Array, t: number, terms: Float64Array): number {
  for (let h = 0; h < H; h++) {
    const s = roundBf16(dotF32x32(q, qo + h * d, keys, t * d, d));
    terms[h] = roundBf16((s > 0 ? s : 0) * hw[hwo + h]!);
  }
  return roundBf16(sumF32(terms, H));
}

let scoreBuf = new Float32Array(0); // BF16 scores (exact in f32)
let scoreBits = new Uint32Array(0); // the same memory as bits, for the top-k keys
let score64 = new Float64Array(0); // for the float kernel's interface
let flagBuf = new Uint8Array(0);

/**
 * BF16 scores of entries 0..visible-1 for one query row (into a reused buffer): the integer
 * kernel on the compact FP4 keys when available (its unsettled entries recomputed here by the
 * formula), else the float kernel or the formula on the f32 keys.
 */
export function indexerScores(w: IndexerWeights, q: Float32Array, qRow: number, hw: Float32Array, keys: IndexerKeys, visible: number,
  k?: Kernels): Float32Array | Float64Array {
  const H = w.nHeads;
  const d = w.headDim;
  const qo = qRow * H * d;
  const hwo = qRow * H;
  if (scoreBuf.length < visible) {
    scoreBuf = new Float32Array(Math.max(visible, 2 * scoreBuf.length));
    scoreBits = new Uint32Array(scoreBuf.buffer);
    flagBuf = new Uint8Array(scoreBuf.length);
  }
  const scores = scoreBuf;
  const terms = new Float64Array(H);
  const flagged = k?.indexerScoresFp4 ? k.indexerScoresFp4(q, qo, hw, hwo, H, d, keys, visible, scores, flagBuf) : -1;
  if (flagged >= 0) {
    if (flagged > 0) {
      const row = new Float32Array(d);
      for (let t = 0; t < visible; t++) if (flagBuf[t]) scores[t] = entryScore(q, qo, hw, hwo, H, d, keys.rows([t], 1, row), 0, terms);
    }
    return scores;
  }
  const f = keys.values();
  if (k?.indexerScores) {
    if (score64.length < visible) score64 = new Float64Array(Math.max(visible, 2 * score64.length));
    k.indexerScores(q, qo, hw, hwo, H, d, f, visible, score64);
    return score64;
  }
  for (let t = 0; t < visible; t++) scores[t] = entryScore(q, qo, hw, hwo, H, d, f, t, terms);
  return scores;
}

/**
 * Compressed entries chosen for one query row: the top min(topk, visible) entries among
 * 0..visible-1 by BF16 score, in torch.topk order.
 */
export function indexerSelect(w: IndexerWeights, q: Float32Array, qRow: number, hw: Float32Array, keys: IndexerKeys | null, visible: number,
  k?: Kernels): number[] {
  if (visible <= 0 || !keys) return [];
  return topkOrder(indexerScores(w, q, qRow, hw, keys, visible, k), visible, w.topk);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const hist = new Uint32Array(65536);
let keyBuf = new Uint16Array(0);

/** The bits of scores[i] as a float32 when it is one (else -1). */
function f32BitsOf(scores: Float32Array | Float64Array, i: number): number {
  if (scores === scoreBuf) return scoreBits[i]!;
  const v = scores[i]!;
  f32[0] = v;
  return f32[0] === v || v !== v ? u32[0]! : -1;
}

/**
 * Order-preserving 16-bit keys of BF16 scores (-0 as +0) into keyBuf, counted in hist;
 * false (hist left clear) when a score is not a BF16 value or is NaN.
 */
function bf16Keys(scores: Float32Array | Float64Array, n: number): boolean {
  if (keyBuf.length < n) keyBuf = new Uint16Array(Math.max(n, 2 * keyBuf.length));
  for (let i = 0; i < n; i++) {
    const u = f32BitsOf(scores, i);
    if (u < 0 || (u & 0xffff) !== 0 || (u & 0x7fffffff) > 0x7f800000) {
      for (let j = 0; j < i; j++) hist[keyBuf[j]!] = 0;
      return false;
    }
    const b = u === 0x80000000 ? 0 : u >>> 16;
    const key = b & 0x8000 ? ~b & 0xffff : b | 0x8000;
    keyBuf[i] = key;
    hist[key]!++;
  }
  return true;
}

let packBuf = new Uint32Array(0);

/**
 * topkOrder from bf16Keys' keys and counts (n <= 65536; hist is cleared): the k entries with the
 * largest keys (at the k-th key, the lowest indices), each packed as key << 16 | (65535 - index), so
 * one numeric sort gives key descending, index ascending, read from the end: the comparator's order.
 */
function keyOrder(n: number, k: number): number[] {
  let thr = 0;
  let ties = n; // k === n: every entry
  if (k < n) {
    thr = 65535;
    let above = 0;
    for (; above + hist[thr]! < k; thr--) above += hist[thr]!;
    ties = k - above; // entries at the threshold key that fit, lowest indices first
  }
  if (packBuf.length < k) packBuf = new Uint32Array(Math.max(k, 2 * packBuf.length));
  let m = 0;
  for (let i = 0; i < n; i++) {
    const key = keyBuf[i]!;
    hist[key] = 0;
    if (key > thr || (key === thr && ties-- > 0)) packBuf[m++] = ((key << 16) | (65535 - i)) >>> 0;
  }
  const packed = packBuf.subarray(0, m).sort();
  const out = new Array<number>(m);
  for (let j = 0; j < m; j++) out[j] = 65535 - (packed[m - 1 - j]! & 0xffff);
  return out;
}

/**
 * Indices of the min(topk, n) largest scores[0..n), by score descending, ties to the lower
 * index (the full comparator sort's order). Above topk entries, BF16 scores are selected in
 * linear time by a histogram over their bit patterns (other values: a numeric sort finds the
 * k-th score); only the chosen entries are ordered. NaN: the full sort.
 */
export function topkOrder(scores: Float32Array | Float64Array, n: number, topk: number): number[] {
  const k = Math.min(topk, n);
  if (k <= 0) return [];
  if (n <= 65536 && bf16Keys(scores, n)) return keyOrder(n, k);
  const cmp = (a: number, b: number) => scores[b]! - scores[a]! || a - b;
  let cand: number[];
  if (k < n && n > 65536 && bf16Keys(scores, n)) {
    let thr = 65535;
    let above = 0;
    for (; above + hist[thr]! < k; thr--) above += hist[thr]!;
    let ties = k - above; // entries at the threshold key that fit, lowest indices first
    cand = [];
    for (let i = 0; i < n; i++) {
      const key = keyBuf[i]!;
      hist[key] = 0;
      if (key > thr) cand.push(i);
      else if (key === thr && ties > 0) {
        cand.push(i);
        ties--;
      }
    }
  } else if (k < n && k > 0 && !scores.subarray(0, n).some((v) => v !== v)) {
    const sorted = scores.slice(0, n).sort();
    const thr = sorted[n - k]!;
    let above = 0;
    for (let i = 0; i < n; i++) if (scores[i]! > thr) above++;
    let ties = k - above; // entries equal to thr that fit, lowest indices first
    cand = [];
    for (let i = 0; i < n; i++) {
      const v = scores[i]!;
      if (v > thr) cand.push(i);
      else if (v === thr && ties > 0) {
        cand.push(i);
        ties--;
      }
    }
  } else cand = Array.from({ length: n }, (_, i) => i);
  cand.sort(cmp);
  return cand.slice(0, k);
}
