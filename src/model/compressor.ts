// KV Compressor (spec §3.4, §4.2, §4.4): gated softmax pooling of r tokens
// (overlapping windows of 2r for r = 4), then RMSNorm, RoPE at the block's
// first position, and FP8 (attention) or Hadamard + FP4 (indexer) simulation.
// Tokens are processed one by one through the pending-row state, which gives
// the same numbers as the reference's prefill pooling (goldens' prefill==decode).
import type { Kernels, Weight } from '../tensor/kernels.js';
import { sumF32 } from '../tensor/exact.js';
import { roundBf16 } from '../tensor/formats.js';
import { rmsNormRow } from '../tensor/norm.js';
import type { RopeTable } from '../tensor/rope.js';
import { HeadMode, headsWith } from '../tensor/ops2.js';
import { denseLinear } from './linear.js';
import type { CompressorState, EntryCache } from './state.js';
import type { CompressorUndo } from './undo.js';

const fr = Math.fround;

export interface CompressorWeights {
  ratio: number;
  /** Output width c (head_dim, or index_head_dim for the indexer's). */
  width: number;
  /** Indexer compressor: Hadamard + FP4 instead of FP8 on the nope dims. */
  rotate: boolean;
  wkv: Weight;
  wgate: Weight;
  ape: Float32Array; // [r, k*c]
  norm: Float32Array; // [c]
}

export interface CompressorSegment {
  state: CompressorState;
  cache: EntryCache;
  /** First row of this segment in the batch, its length, and its first position. */
  row0: number;
  len: number;
  pos0: number;
  /** Set when the segment ends in draft rows (undo.ts). */
  undo?: CompressorUndo;
}

export interface CompressorConfig {
  ropeDim: number;
  normEps: number;
  table: RopeTable;
}

/**
 * Runs the compressor on every row of x (BF16 [rows, dim]); appends completed entries to each segment's cache.
 * kvAll / scoreAll: wkv(x) and wgate(x) when the caller computed them (attention.ts xProducts).
 */
export function runCompressor(k: Kernels, w: CompressorWeights, cfg: CompressorConfig, x: Float32Array, rows: number, segs: CompressorSegment[],
  kvAll = denseLinear(k, x, rows, w.wkv), scoreAll = denseLinear(k, x, rows, w.wgate)): void {
  const r = w.ratio;
  const c = w.width;
  const overlap = r === 4;
  const K = overlap ? 2 * c : c;
  const nCand = overlap ? 2 * r : r;
  const terms = new Float64Array(nCand);
  const entry = new Float32Array(c);
  const flags = new Uint8Array(c);
  for (const seg of segs) {
    const st = seg.state;
    for (let i = 0; i < seg.len; i++) {
      const t = seg.pos0 + i;
      const src = (seg.row0 + i) * K;
      const slot = (overlap ? r : 0) + (t % r);
      const apeRow = (t % r) * K;
      seg.undo?.note(st, seg.cache, t, slot, overlap, K);
      st.kv.set(kvAll.subarray(src, src + K), slot * K);
      const score = st.score;
      const ape = w.ape;
      for (let j = 0; j < K; j++) score[slot * K + j] = fr(scoreAll[src + j]! + ape[apeRow + j]!);
      if ((t + 1) % r !== 0) continue;
      const undecided = k.pool ? k.pool(st.kv, st.score, r, c, overlap, entry, flags) : c;
      for (let ch = 0; ch < c && undecided > 0; ch++) {
        if (!k.pool || flags[ch]) entry[ch] = poolChannel(st.kv, st.score, r, c, overlap, ch, terms);
      }
      if (overlap) {
        st.kv.copyWithin(0, r * K, 2 * r * K);
        st.score.copyWithin(0, r * K, 2 * r * K);
      }
      finishEntry(k, w, cfg, entry, t + 1 - r);
      if (seg.cache.count !== Math.floor(t / r)) throw new Error(`compressor cache out of step at position ${t}`);
      seg.cache.push(entry);
    }
  }
}

/**
 * Channel ch of a completed entry (spec §3.4): softmax over the candidate rows' scores in float64, rounded
 * once; fp32 products with the values and their exact sum, to BF16. kv / score hold nCand rows of width K;
 * with overlap (r = 4) rows 0..r-1 (previous block) give channels 0..c-1, rows r..2r-1 channels c..2c-1.
 */
export function poolChannel(kv: Float32Array, score: Float32Array, r: number, c: number, overlap: boolean, ch: number, terms: Float64Array): number {
  const nCand = overlap ? 2 * r : r;
  const K = overlap ? 2 * c : c;
  const col = (q: number) => q * K + (overlap && q >= r ? c + ch : ch);
  let mx = -Infinity;
  for (let q = 0; q < nCand; q++) mx = Math.max(mx, score[col(q)]!);
  let s = 0;
  for (let q = 0; q < nCand; q++) s += terms[q] = Math.exp(score[col(q)]! - mx);
  for (let q = 0; q < nCand; q++) terms[q] = fr(kv[col(q)]! * fr(terms[q]! / s));
  return roundBf16(sumF32(terms, nCand));
}

/** RMSNorm, RoPE at the block's first position, then FP8 (nope dims) or Hadamard + FP4 (all dims). */
function finishEntry(k: Kernels, w: CompressorWeights, cfg: CompressorConfig, e: Float32Array, pos: number): void {
  if (!k.rmsNorm?.(e, 1, w.width, w.norm, cfg.normEps, e)) rmsNormRow(e, 0, w.width, w.norm, cfg.normEps, e, 0);
  headsWith(k, e, 1, 1, w.width, cfg.ropeDim, w.rotate ? HeadMode.ROPE_HADAMARD_FP4 : HeadMode.ROPE_FP8, cfg.table, Int32Array.of(pos));
}
