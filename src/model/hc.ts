// Manifold-constrained hyper-connections (spec §3.2): hc_pre with the split
// Sinkhorn (kernel.py hc_split_sinkhorn), hc_post, and the head's hc_head.
// Streams are BF16 values [rows, hc, dim]; mixing math is fp32 with products
// rounded to fp32 before the exact sum over the streams (golden README).
import { dotF32, fma32, sumF32 } from '../tensor/exact.js';
import { rmsFactor, rmsNormWith } from '../tensor/norm.js';
import { roundBf16 } from '../tensor/formats.js';
import type { DecodeOps } from '../tensor/ops.js';

const fr = Math.fround;

export interface HcParams {
  fn: Float32Array; // [(2+hc)*hc or hc, hc*dim]
  base: Float32Array;
  scale: Float32Array;
}

/** torch.sigmoid: one op, evaluated in float64 and rounded once. */
export function sigmoid32(x: number): number {
  return fr(1 / (1 + Math.exp(-x)));
}


/** mixes[r, nOut] = fl32(F.linear(x_flat, fn) * rsqrt(mean(x²) + eps)). */
function mixes(x: Float32Array, row: number, flat: number, fn: Float32Array, nOut: number, eps: number, out: Float64Array): void {
  const o = row * flat;
  const rs = rmsFactor(x, o, flat, eps);
  for (let j = 0; j < nOut; j++) out[j] = fr(dotF32(x, o, fn, j * flat, flat) * rs);
}

/** Σ_j fl32(w[j] * x[row, j, :]) -> BF16, written to y[yo ..]. */
function weightedStreams(x: Float32Array, row: number, hc: number, dim: number, w: ArrayLike<number>, y: Float32Array, yo: number): void {
  const t = new Float64Array(hc);
  const o = row * hc * dim;
  for (let d = 0; d < dim; d++) {
    for (let j = 0; j < hc; j++) t[j] = fr(w[j]! * x[o + j * dim + d]!);
    y[yo + d] = roundBf16(sumF32(t, hc));
  }
}

/** kernel.py hc_split_sinkhorn for one token: pre [hc], post [hc], comb [hc*hc] (row j = source). */
export function splitSinkhorn(m: Float64Array, p: HcParams, hc: number, iters: number, eps: number,
  pre: Float64Array, post: Float64Array, comb: Float64Array): void {
  const e = fr(eps);
  const [s0, s1, s2] = [p.scale[0]!, p.scale[1]!, p.scale[2]!];
  for (let j = 0; j < hc; j++) {
    pre[j] = fr(sigmoid32(fma32(m[j]!, s0, p.base[j]!)) + e);
    post[j] = fr(2 * sigmoid32(fma32(m[hc + j]!, s1, p.base[hc + j]!)));
  }
  for (let i = 0; i < hc * hc; i++) comb[i] = fma32(m[2 * hc + i]!, s2, p.base[2 * hc + i]!);
  const ex = new Float64Array(hc);
  const col = new Float64Array(hc);
  for (let j = 0; j < hc; j++) {
    // row softmax as the kernel's elementary ops (exp, exact row sum, divide), then + eps;
    // unlike the sigmoid, this one is not a single rounding (checked against the goldens)
    let mx = -Infinity;
    for (let k = 0; k < hc; k++) mx = Math.max(mx, comb[j * hc + k]!);
    for (let k = 0; k < hc; k++) ex[k] = fr(Math.exp(fr(comb[j * hc + k]! - mx)));
    const s = sumF32(ex, hc);
    for (let k = 0; k < hc; k++) comb[j * hc + k] = fr(fr(ex[k]! / s) + e);
  }
  const colNorm = () => {
    for (let k = 0; k < hc; k++) {
      for (let j = 0; j < hc; j++) col[j] = comb[j * hc + k]!;
      const d = fr(sumF32(col, hc) + e);
      for (let j = 0; j < hc; j++) comb[j * hc + k] = fr(comb[j * hc + k]! / d);
    }
  };
  const rowNorm = () => {
    for (let j = 0; j < hc; j++) {
      const d = fr(sumF32(comb.subarray(j * hc, j * hc + hc), hc) + e);
      for (let k = 0; k < hc; k++) comb[j * hc + k] = fr(comb[j * hc + k]! / d);
    }
  };
  colNorm();
  for (let it = 1; it < iters; it++) {
    rowNorm();
    colNorm();
  }
}

export interface HcPreResult {
  y: Float32Array; // [rows, dim] BF16
  post: Float64Array; // [rows, hc]
  comb: Float64Array; // [rows, hc*hc]
}

/** hc_pre; `k`'s native mixes and stream combine are used where present (same bits). */
export function hcPre(x: Float32Array, rows: number, hc: number, dim: number, p: HcParams, iters: number, normEps: number, hcEps: number,
  k: DecodeOps = {}): HcPreResult {
  const flat = hc * dim;
  const nMix = (2 + hc) * hc;
  const y = new Float32Array(rows * dim);
  const post = new Float64Array(rows * hc);
  const comb = new Float64Array(rows * hc * hc);
  const m = new Float64Array(rows * nMix);
  const pre = new Float64Array(rows * hc);
  const nativeMixes = k.hcMixes?.(x, rows, flat, p.fn, nMix, normEps, m) ?? false;
  if (!nativeMixes) for (let r = 0; r < rows; r++) mixes(x, r, flat, p.fn, nMix, normEps, m.subarray(r * nMix, (r + 1) * nMix));
  if (!k.hcSplit?.(m, rows, hc, p.base, p.scale, iters, hcEps, pre, post, comb)) {
    for (let r = 0; r < rows; r++) {
      splitSinkhorn(m.subarray(r * nMix, (r + 1) * nMix), p, hc, iters, hcEps, pre.subarray(r * hc, r * hc + hc),
        post.subarray(r * hc, r * hc + hc), comb.subarray(r * hc * hc, (r + 1) * hc * hc));
    }
  }
  if (!k.hcWeighted?.(x, rows, hc, dim, pre, y)) {
    for (let r = 0; r < rows; r++) weightedStreams(x, r, hc, dim, pre.subarray(r * hc, r * hc + hc), y, r * dim);
  }
  return { y, post, comb };
}

/** X'[k] = bf16(fl32(post[k]*out) + Σ_j fl32(comb[j,k]*X[j])), the stream sum exact, rounded once. */
export function hcPost(out: Float32Array, residual: Float32Array, rows: number, hc: number, dim: number, h: HcPreResult, k: DecodeOps = {}): Float32Array {
  const y = new Float32Array(rows * hc * dim);
  if (k.hcPost?.(out, residual, rows, hc, dim, h.post, h.comb, y)) return y;
  const t = new Float64Array(hc);
  for (let r = 0; r < rows; r++) {
    const ro = r * hc * dim;
    for (let k = 0; k < hc; k++) {
      const pk = h.post[r * hc + k]!;
      for (let d = 0; d < dim; d++) {
        for (let j = 0; j < hc; j++) t[j] = fr(h.comb[r * hc * hc + j * hc + k]! * residual[ro + j * dim + d]!);
        y[ro + k * dim + d] = roundBf16(fr(fr(pk * out[r * dim + d]!) + sumF32(t, hc)));
      }
    }
  }
  return y;
}

/** A sub-layer boundary: the streams, the next sub-layer's hc_pre and its RMSNorm output. */
export interface HcChainResult {
  X: Float32Array;
  h: HcPreResult;
  a: Float32Array;
}

/**
 * hcPost(out, X, h) when `out` is given (the previous sub-layer's output), then hcPre of the next sub-layer and
 * rmsNorm(y, normW): one native call for a decode row where the kernels have hcChain (same bits), else the steps.
 */
export function hcChain(k: DecodeOps, out: Float32Array | null, X: Float32Array, h: HcPreResult | null, rows: number, hc: number, dim: number,
  p: HcParams, normW: Float32Array, iters: number, normEps: number, hcEps: number): HcChainResult {
  if (out && !h) throw new Error('hcChain: hc_post needs the hc_pre result of its sub-layer');
  if (rows === 1 && k.hcChain) {
    const nMix = (2 + hc) * hc;
    const xOut = out ? new Float32Array(hc * dim) : X;
    const mix = new Float64Array(nMix + 2 * hc + hc * hc);
    const ya = new Float32Array(2 * dim);
    const done = k.hcChain(out, X, h?.post ?? null, h?.comb ?? null, xOut, p.fn, p.base, p.scale, normW, mix, ya, hc, dim, iters, hcEps, normEps);
    if (done === 0) {
      const next = { y: ya.subarray(0, dim), post: mix.subarray(nMix + hc, nMix + 2 * hc), comb: mix.subarray(nMix + 2 * hc) };
      return { X: xOut, h: next, a: ya.subarray(dim) };
    }
    if (done === 2) {
      X = xOut; // hc_post done
      out = null;
    }
  }
  if (out) X = hcPost(out, X, rows, hc, dim, h!, k);
  const next = hcPre(X, rows, hc, dim, p, iters, normEps, hcEps, k);
  return { X, h: next, a: rmsNormWith(k, next.y, rows, dim, normW, normEps) };
}

/** ParallelHead.hc_head: collapse the streams with sigmoid weights -> BF16 [rows, dim]. */
export function hcHead(x: Float32Array, rows: number, hc: number, dim: number, p: HcParams, normEps: number, hcEps: number,
  k: DecodeOps = {}): Float32Array {
  const flat = hc * dim;
  const y = new Float32Array(rows * dim);
  const m = new Float64Array(rows * hc);
  const pre = new Float64Array(rows * hc);
  const nativeMixes = k.hcMixes?.(x, rows, flat, p.fn, hc, normEps, m) ?? false;
  for (let r = 0; r < rows; r++) {
    const mr = m.subarray(r * hc, r * hc + hc);
    if (!nativeMixes) mixes(x, r, flat, p.fn, hc, normEps, mr);
    for (let j = 0; j < hc; j++) pre[r * hc + j] = fr(sigmoid32(fr(fr(mr[j]! * p.scale[0]!) + p.base[j]!)) + fr(hcEps));
  }
  if (!k.hcWeighted?.(x, rows, hc, dim, pre, y)) {
    for (let r = 0; r < rows; r++) weightedStreams(x, r, hc, dim, pre.subarray(r * hc, r * hc + hc), y, r * dim);
  }
  return y;
}

