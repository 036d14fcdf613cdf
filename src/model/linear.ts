// linear() of model.py (spec §2.4) on row-major activations [rows, inF]:
// FP8/FP4 weights go through act_quant + the Kernels GEMM; BF16/F32 weights
// are exact dot products rounded once to fp32 (F.linear under canonical rounding).
import type { GemmJob, Kernels, QuantizedActivations, Weight } from '../tensor/kernels.js';
import { exactDenseRows } from '../tensor/dense.js';
import { actQuantWith } from '../tensor/quant.js';
import { roundBf16With } from '../tensor/ops2.js';

/**
 * fp32 y[rows, n] = x @ W[r0 .. r0+n)ᵀ with exact dot products (F.linear in fp32, or in
 * BF16 before the cast). Default: all rows of W.
 */
export const exactLinear = exactDenseRows;

/**
 * exactLinear over rows [r0, r0+n) of W, through the kernels' bf16Gemm for BF16 W and
 * fp8AsBf16Gemm for FP8 W used as BF16 values (wo_a; no BF16 copy is made).
 */
export function denseLinearRows(k: Kernels, x: Float32Array, rows: number, w: Weight, r0: number, n: number, y = new Float32Array(rows * n)): Float32Array {
  if (rows > 0 && n > 0 && w.kind === 'fp8' && k.fp8AsBf16Gemm) k.fp8AsBf16Gemm(x, rows, w, r0, n, y);
  else if (rows > 0 && n > 0 && w.kind === 'bf16' && k.bf16Gemm) {
    k.bf16Gemm(x, rows, { kind: 'bf16', out: n, inF: w.inF, data: w.data.subarray(r0 * w.inF, (r0 + n) * w.inF) }, y);
  } else exactLinear(x, rows, w, r0, n, y);
  return y;
}

/** exactLinear over all rows of W, through the kernels' optional bf16Gemm when W is BF16. */
export function denseLinear(k: Kernels, x: Float32Array, rows: number, w: Weight, y = new Float32Array(rows * w.out)): Float32Array {
  if (w.kind === 'bf16' && k.bf16Gemm && rows > 0) k.bf16Gemm(x, rows, w, y);
  else exactLinear(x, rows, w, 0, w.out, y);
  return y;
}

/** model.py linear(x, W) with x BF16 [rows, inF] -> BF16 values [rows, out]. */
export function linear(k: Kernels, x: Float32Array, rows: number, w: Weight): Float32Array {
  const y = new Float32Array(rows * w.out);
  if (rows === 0) return y;
  if (w.kind === 'fp8' || w.kind === 'fp4') {
    const qa = actQuantWith(k, x, rows, w.inF);
    if (w.kind === 'fp8') k.fp8Gemm(qa, w, y);
    else k.fp4Gemm(qa, w, y);
  } else denseLinear(k, x, rows, w, y);
  return roundBf16With(k, y);
}


export interface LinearJob {
  readonly x: Float32Array;
  readonly rows: number;
  readonly w: Weight;
  /** act_quant(x) when the caller already has it (rows x w.inF), used for FP8/FP4 weights. */
  readonly q?: QuantizedActivations;
}

/**
 * linear(k, x, rows, w) of every job (independent products, e.g. a layer's experts), the same bits:
 * the FP8/FP4 products go to the kernels' gemmBatch in one call when it exists, and jobs with the
 * same x array share one act_quant. With gemmBatch the outputs are consecutive views of one buffer,
 * in job order (see span).
 */
export function linears(k: Kernels, jobs: readonly LinearJob[]): Float32Array[] {
  if (!k.gemmBatch) return jobs.map((j) => linear(k, j.x, j.rows, j.w));
  const out: Float32Array[] = [];
  const batch: GemmJob[] = [];
  const quantized: [Float32Array, QuantizedActivations][] = []; // act_quant by x (a few distinct x per call)
  const ys = new Float32Array(jobs.reduce((n, j) => n + j.rows * j.w.out, 0)); // the outputs, one allocation
  let off = 0;
  for (const { x, rows, w, q } of jobs) {
    const y = ys.subarray(off, (off += rows * w.out));
    out.push(y);
    if (rows === 0) continue;
    if (w.kind === 'fp8' || w.kind === 'fp4') {
      const seen = q ? -1 : quantized.findIndex(([v]) => v === x);
      let qa = q ?? (seen >= 0 ? quantized[seen]![1] : undefined);
      if (!qa || qa.rows !== rows || qa.cols !== w.inF) {
        qa = actQuantWith(k, x, rows, w.inF);
        if (seen >= 0) quantized[seen]![1] = qa;
        else quantized.push([x, qa]);
      }
      batch.push({ x: qa, w, y });
    } else denseLinear(k, x, rows, w, y);
  }
  if (batch.length > 0) k.gemmBatch(batch);
  roundBf16With(k, ys);
  return out;
}

/**
 * The grouped projection of spec §3.3: ys[g] = exactLinear(xs[g], rows, W, g*n, n) for g < xs.length,
 * in one kernels call when W is FP8 and the kernels have fp8AsBf16GemmGroups; the ys lie back to back.
 */
export function groupedDenseRows(k: Kernels, xs: readonly Float32Array[], rows: number, w: Weight, n: number): Float32Array[] {
  const all = new Float32Array(xs.length * rows * n); // the outputs back to back (span)
  const ys = xs.map((_, g) => all.subarray(g * rows * n, (g + 1) * rows * n));
  if (rows > 0 && n > 0 && w.kind === 'fp8' && k.fp8AsBf16GemmGroups) k.fp8AsBf16GemmGroups(xs, rows, w, n, ys);
  else xs.forEach((x, g) => denseLinearRows(k, x, rows, w, g * n, n, ys[g]));
  return ys;
}

/**
 * One view over views[a .. b) when they lie back to back in one buffer (linears' outputs with gemmBatch),
 * else null: callers then handle the views one by one.
 */
export function span(views: readonly Float32Array[], a: number, b: number): Float32Array | null {
  if (b <= a) return null;
  const first = views[a]!;
  let end = first.byteOffset;
  for (let i = a; i < b; i++) {
    const v = views[i]!;
    if (v.buffer !== first.buffer || v.byteOffset !== end) return null;
    end += v.byteLength;
  }
  return new Float32Array(first.buffer, first.byteOffset, (end - first.byteOffset) / 4);
}
