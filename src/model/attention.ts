// Attention of spec §3.3 for every compress ratio: low-rank q with per-head RMS
// rescale, one shared KV vector per token (FP8-simulated nope dims), window
// keys ∪ compressed keys (HCA: all complete entries; CSA: indexer top-k),
// sparse_attn with sink in 64-slot blocks, inverse RoPE, grouped low-rank output.
import type { Bf16Weight, Kernels, Weight } from '../tensor/kernels.js';
import { f32ToBf16 } from '../tensor/formats.js';
import { rmsNormWith } from '../tensor/norm.js';
import type { RopeTable } from '../tensor/rope.js';
import { HeadMode, headsWith, roundBf16With } from '../tensor/ops2.js';
import { denseLinear, groupedDenseRows, linear, linears, span } from './linear.js';
import { runCompressor, type CompressorWeights } from './compressor.js';
import { indexerHeadWeights, indexerQueries, indexerSelect, type IndexerWeights } from './indexer.js';
import { storeBf16, type LayerState } from './state.js';
import { segmentAttention } from './sparse-attention.js';

const fr = Math.fround;

export interface AttentionWeights {
  wqA: Weight;
  qNorm: Float32Array;
  wqB: Weight;
  wkv: Weight;
  kvNorm: Float32Array;
  woA: Weight; // [G*oLora, H*hd/G] FP8, used as BF16 values (convert.py dequantizes it)
  woB: Weight;
  sink: Float32Array;
  compressor: CompressorWeights | null;
  indexer: IndexerWeights | null;
  /** The BF16 products of x as one weight, rows in xWeights order (fuseXProducts). */
  xFused?: Bf16Weight;
}

export interface AttentionConfig {
  nHeads: number;
  headDim: number;
  ropeDim: number;
  window: number;
  ratio: number;
  oGroups: number;
  oLora: number;
  normEps: number;
  table: RopeTable;
}

/** One sequence's rows in the batch. */
export interface LayerSegment {
  layer: LayerState;
  row0: number;
  len: number;
  pos0: number;
}

/** Optional per-call diagnostics (indexer selections in the reference's index convention). */
export interface AttentionTrace {
  indexer?: (rowInSegment: number, seg: LayerSegment, selected: number[]) => void;
}

export { sparseAttnHead } from './sparse-attention.js';

/** The layer's BF16 weights applied to x: compressor wkv, wgate, then the indexer's compressor wkv, wgate and weights_proj. */
function xWeights(w: AttentionWeights): Weight[] {
  const c = w.compressor, ix = w.indexer;
  return [...(c ? [c.wkv, c.wgate] : []), ...(ix ? [ix.compressor.wkv, ix.compressor.wgate, ix.weightsProj] : [])];
}

/**
 * Copies the layer's BF16 products of x into one weight (xFused) whose row ranges the originals become
 * views of: a decode row then runs them in one kernels call (~0.14 ms less per CSA layer on bench-2g).
 * `alloc` gives its memory (the model's weight arena; its view starts on a multiple of 8 bytes).
 */
export function fuseXProducts(w: AttentionWeights, alloc: (bytes: number) => Uint8Array = (bytes) => new Uint8Array(bytes)): void {
  const ws = xWeights(w);
  const K = ws[0]?.inF ?? 0;
  if (ws.length < 2 || ws.some((v) => v.kind !== 'bf16' || v.inF !== K)) return;
  const n = ws.reduce((r, v) => r + v.out, 0) * K;
  const bytes = alloc(2 * n);
  const data = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
  let o = 0;
  const view = (v: Weight): Bf16Weight => {
    const d = data.subarray(o * K, (o + v.out) * K);
    d.set((v as Bf16Weight).data);
    o += v.out;
    return { kind: 'bf16', out: v.out, inF: K, data: d };
  };
  if (w.compressor) {
    w.compressor.wkv = view(w.compressor.wkv);
    w.compressor.wgate = view(w.compressor.wgate);
  }
  if (w.indexer) {
    const c = w.indexer.compressor;
    c.wkv = view(c.wkv);
    c.wgate = view(c.wgate);
    w.indexer.weightsProj = view(w.indexer.weightsProj);
  }
  w.xFused = { kind: 'bf16', out: o, inF: K, data };
}

/** A decode row's products of x through xFused, one output per xWeights entry; null when they run one by one. */
function xProducts(k: Kernels, w: AttentionWeights, x: Float32Array, rows: number): Float32Array[] | null {
  if (rows !== 1 || !w.xFused) return null;
  const y = denseLinear(k, x, 1, w.xFused);
  let o = 0;
  return xWeights(w).map((v) => y.subarray(o, (o += v.out)));
}

export function attention(k: Kernels, w: AttentionWeights, cfg: AttentionConfig, x: Float32Array, rows: number,
  positions: Int32Array, segs: LayerSegment[], trace?: AttentionTrace): Float32Array {
  const { nHeads: H, headDim: hd, ropeDim: rd, window: W, ratio } = cfg;
  const nd = hd - rd;
  // wq_a and wkv read the same x: one batched kernels call
  const [qa, kva] = linears(k, [{ x, rows, w: w.wqA }, { x, rows, w: w.wkv }]) as [Float32Array, Float32Array];
  // queries
  const qr = rmsNormWith(k, qa, rows, w.wqA.out, w.qNorm, cfg.normEps);
  // the indexer's wq_b reads the same qr: one batched kernels call
  const [q, iqRaw] = w.indexer ? linears(k, [{ x: qr, rows, w: w.wqB }, { x: qr, rows, w: w.indexer.wqB }]) : [linear(k, qr, rows, w.wqB)];
  // per head: q *= rsqrt(q.square().mean(-1) + eps) in BF16 tensor ops, then RoPE
  headsWith(k, q, rows, H, hd, rd, HeadMode.RMS_ROPE, cfg.table, positions, cfg.normEps);
  // this token's KV: RMSNorm, RoPE, FP8 simulation of the nope dims
  const kv = rmsNormWith(k, kva, rows, hd, w.kvNorm, cfg.normEps);
  headsWith(k, kv, rows, 1, hd, rd, HeadMode.ROPE_FP8, cfg.table, positions);
  // compressed entries (and the indexer's) for every row of every segment
  let iq: Float32Array | null = null;
  let iw: Float32Array | null = null;
  const xp = xProducts(k, w, x, rows);
  const ix = w.compressor ? 2 : 0; // the indexer's first product in xp
  if (w.indexer) {
    iq = indexerQueries(k, w.indexer, qr, rows, positions, cfg.table, rd, iqRaw);
    runCompressor(k, w.indexer.compressor, { ropeDim: rd, normEps: cfg.normEps, table: cfg.table }, x, rows,
      segs.map((s) => ({ state: s.layer.idxComp!, cache: s.layer.idxCache!, row0: s.row0, len: s.len, pos0: s.pos0, undo: s.layer.undo?.idx })), xp?.[ix], xp?.[ix + 1]);
    iw = indexerHeadWeights(k, w.indexer, x, rows, xp ? roundBf16With(k, xp[ix + 2]!) : undefined);
  }
  if (w.compressor) {
    runCompressor(k, w.compressor, { ropeDim: rd, normEps: cfg.normEps, table: cfg.table }, x, rows,
      segs.map((s) => ({ state: s.layer.comp!, cache: s.layer.cache!, row0: s.row0, len: s.len, pos0: s.pos0, undo: s.layer.undo?.comp })), xp?.[0], xp?.[1]);
  }
  // attention per row (sparse-attention.ts): window slots plus the compressed entries each row selects
  const o = new Float32Array(rows * H * hd);
  const kvBits = k.sparseAttention ? f32ToBf16(kv) : null;
  for (const seg of segs) {
    const L = seg.layer;
    const P = seg.pos0;
    const idxKeys = L.idxCache && L.idxCache.count > 0 ? L.idxCache : null;
    const selected: number[][] = [];
    for (let i = 0; i < seg.len; i++) {
      let sel: number[] = [];
      if (ratio) {
        const visible = Math.floor((P + i + 1) / ratio);
        if (w.indexer) {
          sel = indexerSelect(w.indexer, iq!, seg.row0 + i, iw!, idxKeys, visible, k);
          trace?.indexer?.(i, seg, sel);
        } else sel = Array.from({ length: visible }, (_, j) => j);
      }
      selected.push(sel);
    }
    segmentAttention(k, { q, kv, kvBits, out: o, H, hd, window: W, scale: fr(hd ** -0.5), sink: w.sink, layer: L, row0: seg.row0,
      len: seg.len, pos0: P, selected, indexed: w.indexer !== null });
    // the ring keeps the last W positions (slot = position mod W)
    for (let t = Math.max(P, P + seg.len - W); t < P + seg.len; t++) {
      if (kvBits) copyBits(kvBits, (seg.row0 + t - P) * hd, hd, L.ring, (t % W) * hd);
      else storeBf16(kv, (seg.row0 + t - P) * hd, hd, L.ring, (t % W) * hd);
    }
  }
  // de-rotate the output's rope dims at the query position
  headsWith(k, o, rows, H, hd, rd, HeadMode.ROPE_INVERSE, cfg.table, positions);
  // grouped low-rank output (BF16 einsum), then wo_b
  const G = cfg.oGroups;
  const gw = (H * hd) / G;
  const groups = Array.from({ length: G }, (_, g) => (rows === 1 ? o.subarray(g * gw, g * gw + gw) : regroup(o, rows, H * hd, g * gw, gw)));
  // z[g] = o_g @ wo_a[g]ᵀ: the parts [G][rows, oLora] lie back to back, rounded in one call; for one row that is z
  const parts = groupedDenseRows(k, groups, rows, w.woA, cfg.oLora);
  const all = span(parts, 0, G);
  if (all) roundBf16With(k, all);
  else parts.forEach((p) => roundBf16With(k, p));
  let z = rows === 1 && all ? all : null;
  if (!z) {
    z = new Float32Array(rows * G * cfg.oLora);
    for (let g = 0; g < G; g++) {
      for (let r = 0; r < rows; r++) z.set(parts[g]!.subarray(r * cfg.oLora, (r + 1) * cfg.oLora), r * G * cfg.oLora + g * cfg.oLora);
    }
  }
  return linear(k, z, rows, w.woB);
}

/** dst[d0 .. d0+n) = src[so .. so+n): BF16 bits already made (f32ToBf16 is storeBf16's rounding). */
function copyBits(src: Uint16Array, so: number, n: number, dst: Uint16Array, d0: number): void {
  for (let i = 0; i < n; i++) dst[d0 + i] = src[so + i]!;
}

/** Columns [c0, c0+n) of x [rows, width] as a contiguous [rows, n]. */
function regroup(x: Float32Array, rows: number, width: number, c0: number, n: number): Float32Array {
  const y = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) y.set(x.subarray(r * width + c0, r * width + c0 + n), r * n);
  return y;
}
