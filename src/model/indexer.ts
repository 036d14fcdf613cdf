// Lightning indexer of CSA layers (spec §3.5): FP4-simulated Hadamard-rotated
// queries scored against the indexer's compressed keys in BF16 tensor ops,
// then top-k with torch.topk's CUDA order (value desc, ties by lower index).
import type { Kernels, Weight } from '../tensor/kernels.js';
import { dotF32x32, sumF32 } from '../tensor/exact.js';
import { roundBf16 } from '../tensor/formats.js';
import { applyRope, type RopeTable } from '../tensor/rope.js';
import { hadamardBf16 } from '../tensor/hadamard.js';
import { fp4ActQuantInPlace } from '../tensor/quant.js';
import { linear } from './linear.js';
import type { CompressorWeights } from './compressor.js';

const fr = Math.fround;

export interface IndexerWeights {
  nHeads: number;
  headDim: number;
  topk: number;
  wqB: Weight;
  weightsProj: Weight;
  compressor: CompressorWeights;
}

/** Queries [rows, nHeads*headDim]: wq_b(qr), RoPE on each head's last ropeDim dims, Hadamard, FP4. */
export function indexerQueries(k: Kernels, w: IndexerWeights, qr: Float32Array, rows: number, positions: Int32Array, table: RopeTable, ropeDim: number): Float32Array {
  const q = linear(k, qr, rows, w.wqB);
  const d = w.headDim;
  for (let r = 0; r < rows; r++) {
    for (let h = 0; h < w.nHeads; h++) {
      const o = (r * w.nHeads + h) * d;
      applyRope(q, o + d - ropeDim, table, positions[r]!);
      hadamardBf16(q, o, d);
      fp4ActQuantInPlace(q, o, d, 32);
    }
  }
  return q;
}

/** weights_proj(x) * (headDim^-0.5 * nHeads^-0.5), BF16 [rows, nHeads]. */
export function indexerHeadWeights(k: Kernels, w: IndexerWeights, x: Float32Array, rows: number): Float32Array {
  const y = linear(k, x, rows, w.weightsProj);
  const s = fr(w.headDim ** -0.5 * w.nHeads ** -0.5);
  for (let i = 0; i < y.length; i++) y[i] = roundBf16(y[i]! * s);
  return y;
}

/**
 * Compressed entries chosen for one query row (keys: the indexer cache as f32 [count, headDim]): the top min(topk, visible)
 * entries among 0..visible-1 by BF16 score, in torch.topk order.
 */
export function indexerSelect(w: IndexerWeights, q: Float32Array, qRow: number, hw: Float32Array, keys: Float32Array | null, visible: number,
  k?: Kernels): number[] {
  if (visible <= 0 || !keys) return [];
  const H = w.nHeads;
  const d = w.headDim;
  const scores = new Float64Array(visible);
  if (k?.indexerScores) k.indexerScores(q, qRow * H * d, hw, qRow * H, H, d, keys, visible, scores);
  else {
    const terms = new Float64Array(H);
    for (let t = 0; t < visible; t++) {
      for (let h = 0; h < H; h++) {
        const s = roundBf16(dotF32x32(q, (qRow * H + h) * d, keys, t * d, d));
        terms[h] = roundBf16((s > 0 ? s : 0) * hw[qRow * H + h]!);
      }
      scores[t] = roundBf16(sumF32(terms, H));
    }
  }
  return topkOrder(scores, visible, w.topk);
}

/**
 * Indices of the min(topk, n) largest scores[0..n), by score descending, ties to the lower
 * index (the full comparator sort's order). Above topk entries: a numeric typed-array sort
 * finds the k-th score, only the entries at or above it are ordered. NaN: the full sort.
 */
export function topkOrder(scores: Float64Array, n: number, topk: number): number[] {
  const k = Math.min(topk, n);
  const cmp = (a: number, b: number) => scores[b]! - scores[a]! || a - b;
  let cand: number[];
  if (k < n && k > 0 && !scores.subarray(0, n).some((v) => v !== v)) {
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
