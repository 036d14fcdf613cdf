// MoE of spec §3.6–3.7: gate (sqrt-softplus / sigmoid / softmax scores, bias
// for selection only, hash routing via tid2eid), routed experts (FP4) and the
// shared expert (FP8) with the SwiGLU clamp; routed outputs summed in fp32 in
// increasing expert id, then the shared expert, then BF16.
import type { Kernels, QuantizedActivations, Weight } from '../tensor/kernels.js';
import { sumF32 } from '../tensor/exact.js';
import { roundBf16 } from '../tensor/formats.js';
import { denseLinear, linears, span } from './linear.js';
import { actQuantWith } from '../tensor/quant.js';
import { addRowsWith } from '../tensor/ops2.js';

const fr = Math.fround;

export interface ExpertWeights {
  w1: Weight;
  w2: Weight;
  w3: Weight;
}

/** Where routed experts come from; a RAM-budgeted store can replace the default. */
export interface ExpertStore {
  get(layer: number, expert: number): ExpertWeights;
  /** Optional hint: these experts of `layer` will be asked for next, in this order (lets a cache read ahead). */
  prefetch?(layer: number, experts: readonly number[]): void;
  /**
   * Most experts whose weights stay valid together (a RAM-budgeted cache reuses an evicted expert's memory
   * for the next one it loads); moe() batches no more than this many. Unset: unlimited.
   */
  readonly batchLimit?: number;
}

export interface MoeWeights {
  layer: number;
  gate: Weight; // [E, dim] BF16
  bias: Float32Array | null;
  tid2eid: Int32Array | null; // [vocab, topk]
  shared: ExpertWeights;
}

export interface MoeConfig {
  nExperts: number;
  topk: number;
  scoreFunc: 'softmax' | 'sigmoid' | 'sqrtsoftplus';
  routeScale: number;
  swigluLimit: number;
}

export interface Routing {
  experts: Int32Array; // [rows, topk]
  weights: Float32Array; // [rows, topk]
}

function scoreOf(f: MoeConfig['scoreFunc'], logits: Float32Array, o: number, n: number, out: Float64Array): void {
  if (f === 'softmax') {
    let mx = -Infinity;
    for (let e = 0; e < n; e++) mx = Math.max(mx, logits[o + e]!);
    let s = 0;
    for (let e = 0; e < n; e++) s += out[e] = Math.exp(logits[o + e]! - mx);
    for (let e = 0; e < n; e++) out[e] = fr(out[e]! / s);
  } else if (f === 'sigmoid') {
    for (let e = 0; e < n; e++) out[e] = fr(1 / (1 + Math.exp(-logits[o + e]!)));
  } else {
    for (let e = 0; e < n; e++) {
      const x = logits[o + e]!;
      out[e] = fr(Math.sqrt(fr(x > 20 ? x : Math.log1p(Math.exp(x)))));
    }
  }
}

let chosen = new Uint8Array(64);

/**
 * The K largest sel[0..E) by value descending, ties to the lower index (the order of the comparator
 * sort `sel[b] - sel[a] || a - b`, a total order without NaN) into out[o ..], by K scans instead of
 * sorting; false (nothing written) when a score is NaN or K > E, where that sort decides.
 */
function topExperts(sel: Float64Array, E: number, K: number, out: Int32Array, o: number): boolean {
  if (K > E) return false;
  for (let e = 0; e < E; e++) if (sel[e] !== sel[e]) return false;
  if (chosen.length < E) chosen = new Uint8Array(E);
  for (let j = 0; j < K; j++) {
    let best = -1;
    for (let e = 0; e < E; e++) if (!chosen[e] && (best < 0 || sel[e]! > sel[best]!)) best = e;
    chosen[best] = 1;
    out[o + j] = best;
  }
  for (let j = 0; j < K; j++) chosen[out[o + j]!] = 0;
  return true;
}

/** Gate.forward: per row the topk experts (topk order) and their routing weights. */
export function route(k: Kernels, w: MoeWeights, cfg: MoeConfig, x: Float32Array, rows: number, ids: Int32Array): Routing {
  const E = cfg.nExperts;
  const K = cfg.topk;
  const logits = denseLinear(k, x, rows, w.gate);
  const experts = new Int32Array(rows * K);
  const weights = new Float32Array(rows * K);
  const sc = new Float64Array(E);
  const sel = new Float64Array(E);
  const picked = new Float64Array(K);
  let order: number[] | undefined; // the comparator sort, when a selection score is NaN
  for (let r = 0; r < rows; r++) {
    scoreOf(cfg.scoreFunc, logits, r * E, E, sc);
    for (let e = 0; e < E; e++) sel[e] = w.bias ? fr(sc[e]! + w.bias[e]!) : sc[e]!;
    if (w.tid2eid) {
      for (let j = 0; j < K; j++) experts[r * K + j] = w.tid2eid[ids[r]! * K + j]!;
    } else if (!topExperts(sel, E, K, experts, r * K)) {
      order ??= Array.from({ length: E }, (_, i) => i);
      order.sort((a, b) => sel[b]! - sel[a]! || a - b);
      for (let j = 0; j < K; j++) experts[r * K + j] = order[j]!;
      order.sort((a, b) => a - b);
    }
    for (let j = 0; j < K; j++) picked[j] = sc[experts[r * K + j]!]!;
    if (cfg.scoreFunc !== 'softmax') {
      const s = sumF32(picked, K);
      for (let j = 0; j < K; j++) picked[j] = fr(picked[j]! / s);
    }
    const rs = fr(cfg.routeScale);
    for (let j = 0; j < K; j++) weights[r * K + j] = fr(picked[j]! * rs);
  }
  return { experts, weights };
}

/** Expert.forward on rows of x; `rw` (one fp32 routing weight per row) is applied before w2. */
export function expertForward(k: Kernels, e: ExpertWeights, x: Float32Array, rows: number, limit: number, rw: Float32Array | null): Float32Array {
  return expertsForward(k, [{ e, x, rows, rw }], limit)[0]!;
}

/** One expert's input: rows of x and their routing weights (null: none, the shared expert). */
export interface ExpertInput {
  e: ExpertWeights;
  x: Float32Array;
  rows: number;
  rw: Float32Array | null;
}

/**
 * expertForward of each input, the same bits: all w1/w3 products in one kernels call (linears), then
 * all w2 products in another (fewer, bigger native calls in decode). Inputs with one intermediate size
 * share one swiglu call and one act_quant of their h (outputs of linears lie back to back: span).
 */
export function expertsForward(k: Kernels, inputs: readonly ExpertInput[], limit: number): Float32Array[] {
  const n = inputs.length;
  // every w1 product, then every w3: the gates and the ups each in one span
  const gu = linears(k, [...inputs.map(({ e, x, rows }) => ({ x, rows, w: e.w1 })), ...inputs.map(({ e, x, rows }) => ({ x, rows, w: e.w3 }))]);
  // one buffer for all experts' h (fewer allocations in decode)
  const hAll = new Float32Array(inputs.reduce((m, { e, rows }) => m + rows * e.w1.out, 0));
  const h: Float32Array[] = [];
  const hq: (QuantizedActivations | undefined)[] = [];
  let off = 0;
  for (let i = 0; i < n; ) {
    // a run of inputs [i, j) with one intermediate size
    const inter = inputs[i]!.e.w1.out;
    let j = i;
    let rows = 0;
    while (j < n && inputs[j]!.e.w1.out === inter) rows += inputs[j++]!.rows;
    const hs = hAll.subarray(off, off + rows * inter);
    const g = span(gu, i, j);
    const u = span(gu, n + i, n + j);
    if (g && u) swigluWith(k, g, u, rows, inter, limit, runWeights(inputs, i, j, rows), hs);
    let r0 = 0;
    for (let t = i; t < j; t++) {
      const { rows: m, rw } = inputs[t]!;
      const ht = hs.subarray(r0 * inter, (r0 + m) * inter);
      if (!(g && u)) swigluWith(k, gu[t]!, gu[n + t]!, m, inter, limit, rw, ht);
      h.push(ht);
      r0 += m;
    }
    // the run's h quantized once for its w2 products (act_quant works row by row: the same codes)
    const quantized = inter % 128 === 0 && rows > 0 && inputs.slice(i, j).every(({ e }) => e.w2.kind === 'fp8' || e.w2.kind === 'fp4');
    const q = quantized ? actQuantWith(k, hs, rows, inter) : null;
    r0 = 0;
    for (let t = i; t < j; t++) {
      const m = inputs[t]!.rows;
      hq.push(q ? { rows: m, cols: inter, q: q.q.subarray(r0 * inter, (r0 + m) * inter), scale: q.scale.subarray(r0 * inter / 128, (r0 + m) * inter / 128) } : undefined);
      r0 += m;
    }
    off += rows * inter;
    i = j;
  }
  return linears(k, inputs.map(({ e, rows }, j) => ({ x: h[j]!, rows, w: e.w2, q: hq[j] })));
}

/** The batch rows' positions in x, expert after expert. */
function rowsOf(part: readonly { tok: readonly number[] }[], nRows: number): Int32Array {
  const idx = new Int32Array(nRows);
  let q = 0;
  for (const { tok } of part) for (const r of tok) idx[q++] = r;
  return idx;
}

/** The routing weights of inputs [i, j) as one array (1 for the shared expert's none: the same values), or null when none has any. */
function runWeights(inputs: readonly ExpertInput[], i: number, j: number, rows: number): Float32Array | null {
  if (inputs.slice(i, j).every(({ rw }) => rw === null)) return null;
  const rw = new Float32Array(rows).fill(1);
  let r0 = 0;
  for (let t = i; t < j; t++) {
    const { rows: m, rw: w } = inputs[t]!;
    if (w) rw.set(w.subarray(0, m), r0);
    r0 += m;
  }
  return rw;
}

// A batch of routed experts stops growing at this many activation rows: decode batches a whole layer,
// long prefills keep few experts' temporaries alive at a time. ExpertStore.batchLimit caps the expert count.
const BATCH_ROWS = 256;

let undecided = new Int32Array(256);

/** swiglu through the kernels' native version; the elements it leaves undecided by the reference (same bits). */
export function swigluWith(k: Kernels, g: Float32Array, u: Float32Array, rows: number, inter: number, limit: number, rw: Float32Array | null,
  h = new Float32Array(rows * inter)): Float32Array {
  const n = k.swiglu ? k.swiglu(g, u, rows, inter, limit, rw, h, undecided) : -1;
  if (n < 0) return swiglu(g, u, rows, inter, limit, rw, h);
  for (let j = 0; j < n; j++) {
    const i = undecided[j]!;
    h[i] = swigluValue(g[i]!, u[i]!, limit, rw ? rw[Math.floor(i / inter)]! : 1);
  }
  return h;
}

/** BF16 h = rw * silu(clamp(g)) * clamp(u) (spec §3.7 SwiGLU with limit) for g, u [rows, inter]. */
export function swiglu(g: Float32Array, u: Float32Array, rows: number, inter: number, limit: number, rw: Float32Array | null,
  h = new Float32Array(rows * inter)): Float32Array {
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < inter; i++) h[r * inter + i] = swigluValue(g[r * inter + i]!, u[r * inter + i]!, limit, rw ? rw[r]! : 1);
  }
  return h;
}

/** One element of swiglu; a routing weight of 1 (the shared expert's none) leaves fl32 values unchanged. */
function swigluValue(gv: number, uv: number, limit: number, rw: number): number {
  if (limit > 0) {
    uv = Math.min(limit, Math.max(-limit, uv));
    gv = Math.min(limit, gv);
  }
  const silu = fr(gv / (1 + Math.exp(-gv)));
  return roundBf16(fr(rw * fr(silu * uv)));
}

export function moe(k: Kernels, w: MoeWeights, cfg: MoeConfig, store: ExpertStore, x: Float32Array, rows: number, dim: number,
  ids: Int32Array, onRoute?: (r: Routing) => void): Float32Array {
  const rt = route(k, w, cfg, x, rows, ids);
  onRoute?.(rt);
  store.prefetch?.(w.layer, [...new Set(rt.experts)].sort((a, b) => a - b));
  const y = new Float32Array(rows * dim);
  const K = cfg.topk;
  const routed: { e: number; tok: number[]; wts: number[] }[] = [];
  const hits = new Uint8Array(cfg.nExperts); // experts some row picked (the others are skipped below)
  for (let i = 0; i < rows * K; i++) {
    const e = rt.experts[i]!;
    if (e >= 0 && e < cfg.nExperts) hits[e] = 1;
  }
  for (let e = 0; e < cfg.nExperts; e++) {
    if (!hits[e]) continue;
    const tok: number[] = [];
    const wts: number[] = [];
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < K; j++) {
        if (rt.experts[r * K + j] === e) {
          tok.push(r);
          wts.push(rt.weights[r * K + j]!);
        }
      }
    }
    if (tok.length > 0) routed.push({ e, tok, wts });
  }
  // batches of routed experts in increasing id (the sums keep that order), the shared expert with the last
  const maxExperts = store.batchLimit ?? Infinity;
  let sh: Float32Array | undefined;
  for (let i = 0; !sh; ) {
    let end = i;
    for (let n = 0; end < routed.length && (end === i || (n + routed[end]!.tok.length <= BATCH_ROWS && end - i < maxExperts)); end++) n += routed[end]!.tok.length;
    const part = routed.slice(i, end);
    // the batch's routing weights (and gathered rows) each in one buffer
    const nRows = part.reduce((n, { tok }) => n + tok.length, 0);
    let xsAll: Float32Array | undefined; // gathered rows, allocated when an expert needs them (not in decode)
    const rwAll = new Float32Array(nRows);
    let r0 = 0;
    const inputs: ExpertInput[] = part.map(({ e, tok, wts }) => {
      // an expert every row goes to (always in decode) reads x itself: its act_quant is shared (linears)
      const all = tok.length === rows && tok.every((r, j) => r === j);
      const xs = all ? x : (xsAll ??= new Float32Array(nRows * dim)).subarray(r0 * dim, (r0 + tok.length) * dim);
      if (!all) tok.forEach((r, j) => xs.set(x.subarray(r * dim, r * dim + dim), j * dim));
      const rw = rwAll.subarray(r0, (r0 += tok.length));
      rw.set(wts);
      return { e: store.get(w.layer, e), x: xs, rows: tok.length, rw };
    });
    if (end === routed.length) inputs.push({ e: w.shared, x, rows, rw: null });
    const outs = expertsForward(k, inputs, cfg.swigluLimit);
    // the routed outputs added in increasing expert id: one call over their span
    const src = span(outs, 0, part.length);
    if (src) addRowsWith(k, y, rowsOf(part, nRows), src, nRows, dim, false);
    else part.forEach(({ tok }, j) => addRowsWith(k, y, Int32Array.from(tok), outs[j]!, tok.length, dim, false));
    if (end === routed.length) sh = outs[part.length]!;
    i = end;
  }
  addRowsWith(k, y, null, sh, rows, dim, true);
  return y;
}
