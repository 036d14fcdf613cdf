// Top-k in torch.topk's order (value descending, ties to the lower index, ±0 equal), as the
// indexer selects compressed entries (spec §3.5). topkOrder is the reference; topkWith takes the
// kernels' native selection for Float32Array scores when present (the same indices).
import type { RowOps } from './ops2.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const hist = new Uint32Array(65536);
let keyBuf = new Uint16Array(0);

/** The bits of scores[i] as a float32 when it is one (else -1); bits: scores' own bits when it is a Float32Array. */
function f32BitsOf(scores: Float32Array | Float64Array, bits: Uint32Array | null, i: number): number {
  if (bits) return bits[i]!;
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
  const bits = scores instanceof Float32Array ? new Uint32Array(scores.buffer, scores.byteOffset, n) : null;
  for (let i = 0; i < n; i++) {
    const u = f32BitsOf(scores, bits, i);
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

let outBuf = new Int32Array(0);

/** topkOrder through the kernels' topk when present and the scores are BF16 values in a Float32Array. */
export function topkWith(k: RowOps, scores: Float32Array | Float64Array, n: number, topk: number): number[] {
  if (k.topk && scores instanceof Float32Array && n > 0 && topk > 0) {
    const m = Math.min(n, topk);
    if (outBuf.length < m) outBuf = new Int32Array(Math.max(m, 2 * outBuf.length));
    if (k.topk(scores, n, topk, outBuf) === m) return Array.from(outBuf.subarray(0, m));
  }
  return topkOrder(scores, n, topk);
}
