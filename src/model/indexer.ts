// Lightning indexer of CSA layers (spec §3.5): FP4-simulated Hadamard-rotated
// queries scored against the indexer's compressed keys in BF16 tensor ops,
// then top-k with torch.topk's CUDA order (value desc, ties by lower index; tensor/topk.ts).
import type { Kernels, Weight } from '../tensor/kernels.js';
import { dotF32x32, sumF32 } from '../tensor/exact.js';
import { roundBf16 } from '../tensor/formats.js';
import type { RopeTable } from '../tensor/rope.js';
import { HeadMode, headsWith } from '../tensor/ops2.js';
import { linear } from './linear.js';
import type { CompressorWeights } from './compressor.js';
import type { Fp4Rows } from '../tensor/fp4-rows.js';
import { topkWith } from '../tensor/topk.js';

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
  return topkWith(k ?? {}, indexerScores(w, q, qRow, hw, keys, visible, k), visible, w.topk);
}
