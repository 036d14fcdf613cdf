// sparse_attn of spec §3.3 for one sequence's rows: each row attends to its window
// slots (this call's KV rows and the ring) and the compressed entries it selected,
// in 64-slot blocks with an attention sink. The native op (Kernels.sparseAttention)
// takes all rows of a segment in one call; (row, head) pairs it leaves undecided,
// and every pair without it, run the TypeScript reference sparseAttnHead.
import type { Kernels } from '../tensor/kernels.js';
import { dotF32x32, exactSumToF32, settleSum, sumF32 } from '../tensor/exact.js';
import { roundBf16 } from '../tensor/formats.js';
import { decodeRows, type LayerState } from './state.js';

const fr = Math.fround;

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

/** One sequence's rows of a layer's attention call (model.py Attention.forward, the sparse_attn part). */
export interface SegmentAttention {
  q: Float32Array; // [rows, H, hd] of the whole call
  kv: Float32Array; // [rows, hd] this call's KV rows (BF16 values)
  kvBits: Uint16Array | null; // their BF16 bits (for the native op)
  out: Float32Array; // [rows, H, hd]
  H: number;
  hd: number;
  window: number;
  scale: number;
  sink: Float32Array;
  layer: LayerState;
  row0: number;
  len: number;
  pos0: number;
  /** Per row, the compressed entries it attends to (indexer selection or all visible ones), in slot order. */
  selected: number[][];
  /** The entries are an indexer's selection (decode only them) rather than all of the cache. */
  indexed: boolean;
}

/** sparse_attn for the rows of one segment, written into out; the native op first when present. */
export function segmentAttention(k: Kernels, a: SegmentAttention): void {
  const { H, hd, window: W, layer: L, row0, len, pos0: P, selected } = a;
  // window slots: prefill (start 0) lists min(S, W) slots, decode lists W (model.py get_window_topk_idxs)
  const lw = P === 0 ? Math.min(len, W) : W;
  const flags = new Uint8Array(len * H).fill(1);
  if (k.sparseAttention && a.kvBits) {
    // slots of all rows; keys read as BF16 bits from 0: this call's kv rows, 1: the ring, 2: the cache
    const rowStart = new Int32Array(len + 1);
    for (let i = 0; i < len; i++) rowStart[i + 1] = rowStart[i]! + lw + selected[i]!.length;
    const slotSrc = new Uint8Array(rowStart[len]!);
    const slotOff = new Int32Array(rowStart[len]!);
    for (let i = 0; i < len; i++) {
      const p = P + i;
      const start = Math.max(0, p - W + 1);
      const s0 = rowStart[i]!;
      for (let c = 0; c < lw; c++) {
        const t = start + c;
        if (t > p) slotSrc[s0 + c] = 255;
        else if (t >= P) {
          slotSrc[s0 + c] = 0;
          slotOff[s0 + c] = (row0 + t - P) * hd;
        } else {
          slotSrc[s0 + c] = 1;
          slotOff[s0 + c] = (t % W) * hd;
        }
      }
      const sel = selected[i]!;
      for (let j = 0; j < sel.length; j++) {
        slotSrc[s0 + lw + j] = 2;
        slotOff[s0 + lw + j] = sel[j]! * hd;
      }
    }
    const sources = [a.kvBits, L.ring, L.cache ? L.cache.data : new Uint16Array(0)] as const;
    const rows = [row0 * H * hd, (row0 + len) * H * hd] as const;
    const undecided = k.sparseAttention(a.q.subarray(...rows), len, H, hd, sources, slotSrc, slotOff, rowStart, a.scale, a.sink,
      a.out.subarray(...rows), flags);
    if (undecided === 0) return;
  }
  // the TypeScript reference for the (row, head) pairs left
  const acc = new Float64Array(hd);
  const sBuf = new Float64Array(BLOCK);
  const pb = new Float64Array(BLOCK);
  const terms = new Float64Array(BLOCK + 1);
  const sum = new Float64Array(hd);
  const abs = new Float64Array(hd);
  // f32 views of this sequence's stored BF16 keys, decoded on first use
  let ringF: Float32Array | null = null;
  const ring = () => (ringF ??= decodeRows(L.ring, hd, 0, W));
  let cacheF: Float32Array | null = null;
  const cache = () => (cacheF ??= L.cache!.values());
  for (let i = 0; i < len; i++) {
    if (!flags.subarray(i * H, i * H + H).some((f) => f !== 0)) continue;
    const p = P + i;
    const start = Math.max(0, p - W + 1);
    const keys: (Float32Array | null)[] = [];
    const offs: number[] = [];
    for (let c = 0; c < lw; c++) {
      const t = start + c;
      if (t > p) {
        keys.push(null);
        offs.push(0);
      } else if (t >= P) {
        keys.push(a.kv);
        offs.push((row0 + t - P) * hd);
      } else {
        keys.push(ring());
        offs.push((t % W) * hd);
      }
    }
    const sel = selected[i]!;
    if (sel.length > 0) {
      // HCA: all entries; CSA: only the selected ones are decoded
      const selKeys = a.indexed ? L.cache!.rows(sel) : cache();
      sel.forEach((j, c) => {
        keys.push(selKeys);
        offs.push((a.indexed ? c : j) * hd);
      });
    }
    const offArr = Int32Array.from(offs);
    for (let h = 0; h < H; h++) {
      if (!flags[i * H + h]) continue;
      const qo = ((row0 + i) * H + h) * hd;
      sparseAttnHead(a.q, qo, hd, keys, offArr, keys.length, a.scale, a.sink[h]!, a.out, qo, acc, sBuf, pb, terms, sum, abs);
    }
  }
}
