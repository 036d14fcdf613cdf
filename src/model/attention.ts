// Attention of spec §3.3 for every compress ratio: low-rank q with per-head RMS
// rescale, one shared KV vector per token (FP8-simulated nope dims), window
// keys ∪ compressed keys (HCA: all complete entries; CSA: indexer top-k),
// sparse_attn with sink in 64-slot blocks, inverse RoPE, grouped low-rank output.
import type { Kernels, Weight } from '../tensor/kernels.js';
import { dotF32x32, exactSumToF32, meanF32, settleSum, sumF32 } from '../tensor/exact.js';
import { f32ToBf16, roundBf16 } from '../tensor/formats.js';
import { rmsNormWith, rsqrt32 } from '../tensor/norm.js';
import { applyRope, type RopeTable } from '../tensor/rope.js';
import { actQuantInPlace } from '../tensor/quant.js';
import { groupedDenseRows, linear, linears } from './linear.js';
import { runCompressor, type CompressorWeights } from './compressor.js';
import { indexerHeadWeights, indexerQueries, indexerSelect, type IndexerWeights } from './indexer.js';
import { decodeRows, storeBf16, type LayerState } from './state.js';

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

const BLOCK = 64;

/**
 * sparse_attn for one (query row, head), kernel.py order under canonical rounding:
 * slots in blocks of 64, online softmax with fp32 stats, P rounded to BF16 for P·V.
 */
export function sparseAttnHead(q: Float32Array, qo: number, d: number, keys: (Float32Array | null)[], offs: Int32Array, n: number,
  scale: number, sink: number, out: Float32Array, oo: number, acc: Float64Array, s: Float64Array, pb: Float64Array, terms: Float64Array,
  sum: Float64Array, abs: Float64Array): void {
  let m = -Infinity;
  let l = 0;
  acc.fill(0, 0, d);
  for (let b0 = 0; b0 < n; b0 += BLOCK) {
    const nb = Math.min(BLOCK, n - b0);
    let mNew = m;
    for (let j = 0; j < nb; j++) {
      const kv = keys[b0 + j];
      s[j] = kv ? fr(dotF32x32(q, qo, kv, offs[b0 + j]!, d) * scale) : -Infinity;
      if (s[j]! > mNew) mNew = s[j]!;
    }
    const c = fr(Math.exp(fr(m - mNew)));
    terms[0] = l * c;
    for (let j = 0; j < nb; j++) {
      const p = s[j] === -Infinity ? 0 : fr(Math.exp(fr(s[j]! - mNew)));
      terms[1 + j] = p;
      pb[j] = roundBf16(p);
    }
    l = sumF32(terms, nb + 1);
    // acc = fl32(acc*c + Σ bf16(p)·v), per dim: float64 sums with an error bound, exact fallback
    for (let e = 0; e < d; e++) {
      const a = acc[e]! * c;
      sum[e] = a;
      abs[e] = Math.abs(a);
    }
    for (let j = 0; j < nb; j++) {
      const kv = keys[b0 + j];
      const pj = pb[j]!;
      if (!kv || pj === 0) continue;
      const ko = offs[b0 + j]!;
      for (let e = 0; e < d; e++) {
        const t = pj * kv[ko + e]!;
        sum[e] += t;
        abs[e] += Math.abs(t);
      }
    }
    for (let e = 0; e < d; e++) {
      let r = settleSum(sum[e]!, abs[e]!, nb + 1);
      if (r !== r) {
        terms[0] = acc[e]! * c;
        for (let j = 0; j < nb; j++) {
          const kv = keys[b0 + j];
          terms[1 + j] = kv ? pb[j]! * kv[offs[b0 + j]! + e]! : 0;
        }
        r = exactSumToF32(terms, nb + 1);
      }
      acc[e] = r;
    }
    m = mNew;
  }
  l = fr(l + fr(Math.exp(fr(sink - m))));
  for (let e = 0; e < d; e++) out[oo + e] = roundBf16(acc[e]! / l);
}

export function attention(k: Kernels, w: AttentionWeights, cfg: AttentionConfig, x: Float32Array, rows: number,
  positions: Int32Array, segs: LayerSegment[], trace?: AttentionTrace): Float32Array {
  const { nHeads: H, headDim: hd, ropeDim: rd, window: W, ratio } = cfg;
  const nd = hd - rd;
  // wq_a and wkv read the same x: one batched kernels call
  const [qa, kva] = linears(k, [{ x, rows, w: w.wqA }, { x, rows, w: w.wkv }]) as [Float32Array, Float32Array];
  // queries
  const qr = rmsNormWith(k, qa, rows, w.wqA.out, w.qNorm, cfg.normEps);
  const q = linear(k, qr, rows, w.wqB);
  const sq = new Float64Array(hd);
  const eps = fr(cfg.normEps);
  for (let r = 0; r < rows; r++) {
    for (let h = 0; h < H; h++) {
      const o = (r * H + h) * hd;
      // q *= rsqrt(q.square().mean(-1) + eps), all BF16 tensor ops
      for (let i = 0; i < hd; i++) sq[i] = roundBf16(q[o + i]! * q[o + i]!);
      const v = roundBf16(roundBf16(meanF32(sq, 0, hd)) + eps);
      const rs = roundBf16(rsqrt32(v));
      for (let i = 0; i < hd; i++) q[o + i] = roundBf16(q[o + i]! * rs);
      applyRope(q, o + nd, cfg.table, positions[r]!);
    }
  }
  // this token's KV
  const kv = rmsNormWith(k, kva, rows, hd, w.kvNorm, cfg.normEps);
  for (let r = 0; r < rows; r++) {
    applyRope(kv, r * hd + nd, cfg.table, positions[r]!);
    actQuantInPlace(kv, r * hd, nd, 64);
  }
  // compressed entries (and the indexer's) for every row of every segment
  let iq: Float32Array | null = null;
  let iw: Float32Array | null = null;
  if (w.indexer) {
    iq = indexerQueries(k, w.indexer, qr, rows, positions, cfg.table, rd);
    runCompressor(k, w.indexer.compressor, { ropeDim: rd, normEps: cfg.normEps, table: cfg.table }, x, rows,
      segs.map((s) => ({ state: s.layer.idxComp!, cache: s.layer.idxCache!, row0: s.row0, len: s.len, pos0: s.pos0 })));
    iw = indexerHeadWeights(k, w.indexer, x, rows);
  }
  if (w.compressor) {
    runCompressor(k, w.compressor, { ropeDim: rd, normEps: cfg.normEps, table: cfg.table }, x, rows,
      segs.map((s) => ({ state: s.layer.comp!, cache: s.layer.cache!, row0: s.row0, len: s.len, pos0: s.pos0 })));
  }
  // attention per row
  const o = new Float32Array(rows * H * hd);
  const scale = fr(hd ** -0.5);
  const acc = new Float64Array(hd);
  const sBuf = new Float64Array(BLOCK);
  const pb = new Float64Array(BLOCK);
  const terms = new Float64Array(BLOCK + 1);
  const sum = new Float64Array(hd);
  const abs = new Float64Array(hd);
  // native path: all heads of a row in one call, keys read as BF16 bits from
  // 0: this call's kv rows, 1: the ring, 2: the compressed cache (bit-exact with sparseAttnHead)
  const kvBits = k.sparseAttention ? f32ToBf16(kv) : null;
  const flags = new Uint8Array(H);
  let slotSrc = new Uint8Array(0);
  let slotOff = new Int32Array(0);
  for (const seg of segs) {
    const L = seg.layer;
    const P = seg.pos0;
    // f32 views of this sequence's stored BF16 keys for the TypeScript path, decoded on first use
    let ringF: Float32Array | null = null;
    const ring = () => (ringF ??= decodeRows(L.ring, hd, 0, W));
    // HCA: all entries; CSA: only the selected ones are decoded (per row, below)
    let cacheF: Float32Array | null = null;
    const cache = () => (cacheF ??= L.cache!.values());
    const idxKeys = L.idxCache && L.idxCache.count > 0 ? L.idxCache : null;
    const sources = [kvBits!, L.ring, L.cache ? L.cache.data : new Uint16Array(0)] as const;
    // window slots: prefill (start 0) lists min(S, W) slots, decode lists W (model.py get_window_topk_idxs)
    const lw = P === 0 ? Math.min(seg.len, W) : W;
    for (let i = 0; i < seg.len; i++) {
      const p = P + i;
      const row = seg.row0 + i;
      const start = Math.max(0, p - W + 1);
      let sel: number[] = [];
      if (ratio) {
        const visible = Math.floor((p + 1) / ratio);
        if (w.indexer) {
          sel = indexerSelect(w.indexer, iq!, row, iw!, idxKeys, visible, k);
          trace?.indexer?.(i, seg, sel);
        } else sel = Array.from({ length: visible }, (_, j) => j);
      }
      const n = lw + sel.length;
      const qRow = (row * H) * hd;
      flags.fill(1);
      if (kvBits) {
        if (slotSrc.length < n) {
          slotSrc = new Uint8Array(n * 2);
          slotOff = new Int32Array(n * 2);
        }
        for (let c = 0; c < lw; c++) {
          const t = start + c;
          if (t > p) slotSrc[c] = 255;
          else if (t >= P) {
            slotSrc[c] = 0;
            slotOff[c] = (seg.row0 + t - P) * hd;
          } else {
            slotSrc[c] = 1;
            slotOff[c] = (t % W) * hd;
          }
        }
        for (let j = 0; j < sel.length; j++) {
          slotSrc[lw + j] = 2;
          slotOff[lw + j] = sel[j]! * hd;
        }
        const undecided = k.sparseAttention!(q.subarray(qRow, qRow + H * hd), H, hd, sources, slotSrc, slotOff, n, scale, w.sink,
          o.subarray(qRow, qRow + H * hd), flags);
        if (undecided === 0) continue;
      }
      // the TypeScript reference (and the heads the native path left undecided)
      const keys: (Float32Array | null)[] = [];
      const offs: number[] = [];
      for (let c = 0; c < lw; c++) {
        const t = start + c;
        if (t > p) {
          keys.push(null);
          offs.push(0);
        } else if (t >= P) {
          keys.push(kv);
          offs.push((seg.row0 + t - P) * hd);
        } else {
          keys.push(ring());
          offs.push((t % W) * hd);
        }
      }
      if (sel.length > 0) {
        const selKeys = w.indexer ? L.cache!.rows(sel) : cache();
        sel.forEach((j, i) => {
          keys.push(selKeys);
          offs.push((w.indexer ? i : j) * hd);
        });
      }
      const offArr = Int32Array.from(offs);
      for (let h = 0; h < H; h++) {
        if (!flags[h]) continue;
        const qo = qRow + h * hd;
        sparseAttnHead(q, qo, hd, keys, offArr, keys.length, scale, w.sink[h]!, o, qo, acc, sBuf, pb, terms, sum, abs);
      }
    }
    // the ring keeps the last W positions (slot = position mod W)
    for (let t = Math.max(P, P + seg.len - W); t < P + seg.len; t++) {
      storeBf16(kv, (seg.row0 + t - P) * hd, hd, L.ring, (t % W) * hd);
    }
  }
  // de-rotate the output's rope dims at the query position
  for (let r = 0; r < rows; r++) {
    for (let h = 0; h < H; h++) applyRope(o, (r * H + h) * hd + nd, cfg.table, positions[r]!, true);
  }
  // grouped low-rank output: z[g] = o_g @ wo_a[g]ᵀ (BF16 einsum), then wo_b
  const G = cfg.oGroups;
  const gw = (H * hd) / G;
  const z = new Float32Array(rows * G * cfg.oLora);
  const groups = Array.from({ length: G }, (_, g) => (rows === 1 ? o.subarray(g * gw, g * gw + gw) : regroup(o, rows, H * hd, g * gw, gw)));
  const parts = groupedDenseRows(k, groups, rows, w.woA, cfg.oLora);
  for (let g = 0; g < G; g++) {
    const part = parts[g]!;
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < cfg.oLora; j++) z[r * G * cfg.oLora + g * cfg.oLora + j] = roundBf16(part[r * cfg.oLora + j]!);
    }
  }
  return linear(k, z, rows, w.woB);
}

/** Columns [c0, c0+n) of x [rows, width] as a contiguous [rows, n]. */
function regroup(x: Float32Array, rows: number, width: number, c0: number, n: number): Float32Array {
  const y = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) y.set(x.subarray(r * width + c0, r * width + c0 + n), r * n);
  return y;
}
