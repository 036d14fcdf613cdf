// Kernels in fast numerics (`--numerics fast`, fast-products.ts): products with at least
// FAST_MIN_ROWS activation rows (prefill, big batches) run the fp32 fast products; smaller
// ones (decode) and every other operation stay exact. Decode GEMVs are bound by memory and
// by weight conversion, which fp32 lanes barely change, while prefill GEMMs are bound by
// FMA width, which fp32 lanes double.
//
// So in this mode a sequence's outputs depend on how its rows were batched (as in GPU
// engines), which exact numerics never do.
import { exactDenseRows } from './dense.js';
import type { FastProducts } from './fast-products.js';
import type { Bf16Weight, Fp8Weight, GemmJob, Kernels } from './kernels.js';

/**
 * Products with fewer activation rows than this stay exact: below 16 rows the fp32 kernels gain
 * nothing (0.8-1.0x the exact ones for FP4 experts: converting the weights dominates), so they would
 * only add drift.
 */
export const FAST_MIN_ROWS = 16;

export type Numerics = 'exact' | 'fast';

/** Parses a --numerics / DSV4_NUMERICS value. */
export function parseNumerics(v: string | undefined): Numerics {
  const s = (v ?? '').trim().toLowerCase();
  if (s === '' || s === 'exact') return 'exact';
  if (s === 'fast') return 'fast';
  throw new Error(`numerics must be "exact" or "fast", not "${v}"`);
}

/** `base` with its products of >= minRows rows replaced by `fast`. */
export function withFastProducts(base: Kernels, fast: FastProducts, minRows = FAST_MIN_ROWS): Kernels {
  const exactDense = (x: Float32Array, rows: number, w: Bf16Weight | Fp8Weight, r0: number, n: number, y: Float32Array): void => {
    if (w.kind === 'fp8' && base.fp8AsBf16Gemm) base.fp8AsBf16Gemm(x, rows, w, r0, n, y);
    else if (w.kind === 'bf16' && base.bf16Gemm && r0 === 0 && n === w.out) base.bf16Gemm(x, rows, w, y);
    else exactDenseRows(x, rows, w, r0, n, y);
  };
  const oneJob = (j: GemmJob, k: Pick<Kernels, 'fp8Gemm' | 'fp4Gemm'>): void =>
    j.w.kind === 'fp4' ? k.fp4Gemm(j.x, j.w, j.y) : k.fp8Gemm(j.x, j.w, j.y);
  return {
    ...base,
    name: `${base.name}, fast numerics (${fast.name})`,
    numerics: 'fast',
    fp8Gemm(x, w, y) {
      (x.rows >= minRows ? fast : base).fp8Gemm(x, w, y);
    },
    fp4Gemm(x, w, y) {
      (x.rows >= minRows ? fast : base).fp4Gemm(x, w, y);
    },
    bf16Gemm(x, rows, w, y) {
      if (rows >= minRows) fast.denseGemm(x, rows, w, 0, w.out, y);
      else exactDense(x, rows, w, 0, w.out, y);
    },
    fp8AsBf16Gemm(x, rows, w, r0, n, y) {
      if (rows >= minRows) fast.denseGemm(x, rows, w, r0, n, y);
      else exactDense(x, rows, w, r0, n, y);
    },
    gemmBatch(jobs) {
      const big = jobs.filter((j) => j.x.rows >= minRows);
      const small = jobs.filter((j) => j.x.rows < minRows);
      if (big.length > 0) {
        if (fast.gemmBatch) fast.gemmBatch(big);
        else for (const j of big) oneJob(j, fast);
      }
      if (small.length > 0) {
        if (base.gemmBatch) base.gemmBatch(small);
        else for (const j of small) oneJob(j, base);
      }
    },
    fp8AsBf16GemmGroups(xs, rows, w, n, ys) {
      if (rows >= minRows) {
        if (fast.denseGroups) fast.denseGroups(xs, rows, w, n, ys);
        else xs.forEach((x, g) => fast.denseGemm(x, rows, w, g * n, n, ys[g]!));
      } else if (base.fp8AsBf16GemmGroups) base.fp8AsBf16GemmGroups(xs, rows, w, n, ys);
      else xs.forEach((x, g) => exactDense(x, rows, w, g * n, n, ys[g]!));
    },
  };
}
