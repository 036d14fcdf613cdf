// RMSNorm of spec §2.5 under canonical rounding: fp32 math, weight fp32
// (BF16 values), result rounded to BF16.
import { roundBf16 } from './formats.js';
import { meanF32, meanSquareF32 } from './exact.js';
import type { DecodeOps } from './ops.js';

const fr = Math.fround;

/** 1/sqrt evaluated in float64, rounded once to fp32 (torch.rsqrt). */
export function rsqrt32(v: number): number {
  return fr(1 / Math.sqrt(v));
}

/** fl32(rsqrt(fl32(mean(fl32(x²)) + fl32(eps)))) over x[o .. o+n). */
export function rmsFactor(x: ArrayLike<number>, o: number, n: number, eps: number): number {
  return rsqrt32(fr(meanSquareF32(x, o, n) + fr(eps)));
}

/** y[yo..] = bf16(weight * fl32(x * rsqrt)) for one row of n values. `y` may be `x`. */
export function rmsNormRow(x: Float32Array, xo: number, n: number, weight: Float32Array, eps: number, y: Float32Array, yo: number): void {
  const r = rmsFactor(x, xo, n, eps);
  for (let i = 0; i < n; i++) y[yo + i] = roundBf16(fr(weight[i]! * fr(x[xo + i]! * r)));
}

/** RMSNorm over each of `rows` rows of width n. */
export function rmsNorm(x: Float32Array, rows: number, n: number, weight: Float32Array, eps: number, y = new Float32Array(rows * n)): Float32Array {
  for (let r = 0; r < rows; r++) rmsNormRow(x, r * n, n, weight, eps, y, r * n);
  return y;
}

/** rmsNorm through the kernels' native version when it decides it (same bits). */
export function rmsNormWith(k: DecodeOps, x: Float32Array, rows: number, n: number, weight: Float32Array, eps: number): Float32Array {
  const y = new Float32Array(rows * n);
  return k.rmsNorm?.(x, rows, n, weight, eps, y) ? y : rmsNorm(x, rows, n, weight, eps, y);
}

let sqBuf = new Float64Array(0);

/**
 * The per-head query rescale of spec §3.3 on x[o .. o+n), all BF16 tensor ops:
 * x *= rsqrt(x.square().mean(-1) + eps), each op's result rounded to BF16.
 */
export function headRmsScaleBf16(x: Float32Array, o: number, n: number, eps: number): void {
  if (sqBuf.length < n) sqBuf = new Float64Array(n);
  const sq = sqBuf;
  for (let i = 0; i < n; i++) sq[i] = roundBf16(x[o + i]! * x[o + i]!);
  const v = roundBf16(roundBf16(meanF32(sq, 0, n)) + fr(eps));
  const rs = roundBf16(rsqrt32(v));
  for (let i = 0; i < n; i++) x[o + i] = roundBf16(x[o + i]! * rs);
}
