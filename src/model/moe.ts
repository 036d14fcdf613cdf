// MoE of spec §3.6–3.7: gate (sqrt-softplus / sigmoid / softmax scores, bias
// for selection only, hash routing via tid2eid), routed experts (FP4) and the
// shared expert (FP8) with the SwiGLU clamp; routed outputs summed in fp32 in
// increasing expert id, then the shared expert, then BF16.
import type { Kernels, Weight } from '../tensor/kernels.js';
import { sumF32 } from '../tensor/exact.js';
import { roundBf16 } from '../tensor/formats.js';
import { denseLinear, linear } from './linear.js';

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
  const order = Array.from({ length: E }, (_, i) => i);
  for (let r = 0; r < rows; r++) {
    scoreOf(cfg.scoreFunc, logits, r * E, E, sc);
    for (let e = 0; e < E; e++) sel[e] = w.bias ? fr(sc[e]! + w.bias[e]!) : sc[e]!;
    if (w.tid2eid) {
      for (let j = 0; j < K; j++) experts[r * K + j] = w.tid2eid[ids[r]! * K + j]!;
    } else {
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
  const g = linear(k, x, rows, e.w1);
  const u = linear(k, x, rows, e.w3);
  const inter = e.w1.out;
  const h = new Float32Array(rows * inter);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < inter; i++) {
      let gv = g[r * inter + i]!;
      let uv = u[r * inter + i]!;
      if (limit > 0) {
        uv = Math.min(limit, Math.max(-limit, uv));
        gv = Math.min(limit, gv);
      }
      const silu = fr(gv / (1 + Math.exp(-gv)));
      let v = fr(silu * uv);
      if (rw) v = fr(rw[r]! * v);
      h[r * inter + i] = roundBf16(v);
    }
  }
  return linear(k, h, rows, e.w2);
}

export function moe(k: Kernels, w: MoeWeights, cfg: MoeConfig, store: ExpertStore, x: Float32Array, rows: number, dim: number,
  ids: Int32Array, onRoute?: (r: Routing) => void): Float32Array {
  const rt = route(k, w, cfg, x, rows, ids);
  onRoute?.(rt);
  store.prefetch?.(w.layer, [...new Set(rt.experts)].sort((a, b) => a - b));
  const y = new Float32Array(rows * dim);
  const K = cfg.topk;
  for (let e = 0; e < cfg.nExperts; e++) {
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
    if (tok.length === 0) continue;
    const xs = new Float32Array(tok.length * dim);
    tok.forEach((r, i) => xs.set(x.subarray(r * dim, r * dim + dim), i * dim));
    const out = expertForward(k, store.get(w.layer, e), xs, tok.length, cfg.swigluLimit, Float32Array.from(wts));
    tok.forEach((r, i) => {
      for (let d = 0; d < dim; d++) y[r * dim + d] = fr(y[r * dim + d]! + out[i * dim + d]!);
    });
  }
  const sh = expertForward(k, w.shared, x, rows, cfg.swigluLimit, null);
  for (let i = 0; i < y.length; i++) y[i] = roundBf16(fr(y[i]! + sh[i]!));
  return y;
}
