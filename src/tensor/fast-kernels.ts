// Kernels in fast numerics (`--numerics fast`, fast-products.ts): the FP8, FP4 and BF16 products (FP8
// weights, FP8 used as BF16 values, BF16 weights, FP4 experts) run the fast products, every other
// operation stays exact. Prefill GEMMs are bound by FMA width, which fp32 lanes double. With 3-15 rows
// the row-lane fp32 kernel (native/fastgemv_*.cc) converts each FP8/BF16 weight vector once for all rows
// while the exact kernels' cost grows with the rows; with 1-2 rows (single-sequence decode) the chain
// semantics (fast-products.ts 3) lets the kernel's lanes run along k (native/fastchain_*.cc), so a
// weight vector costs only its conversion (BF16: a shift or an and). FP4 products of 1-15 rows (decode's
// experts) take the int8 semantics (fast-products.ts 4: native/fp4q8_*.cc), about half the multiplies of
// the exact integer kernel; from 16 rows the fp32 GEMM.
//
// So in this mode a sequence's outputs depend on how its rows were batched (as in GPU
// engines), which exact numerics never do.
import { exactDenseRows } from './dense.js';
import type { FastProducts } from './fast-products.js';
import type { Bf16Weight, Fp8Weight, GemmJob, Kernels } from './kernels.js';

/**
 * Products take the fast products from this many rows: all of them. FP8/BF16: 1-2 rows run the
 * chain-semantics kernel (lanes along k); the row-lane kernel, whose semantics is one chain per
 * output, had lost to the exact GEMVs there (FP8 0.55-0.93x, BF16 0.43-0.56x at 1 row, 1 thread,
 * bench-2g shapes) and runs from 3 rows (FP8 1.2-1.9x the exact kernels at 3-8 rows, 1.35-1.5x at 15;
 * BF16 16384x2048 0.96-1.08x at 3, 1.5-2.0x at 4-8). FP4: the int8 kernel at 1-15 rows (an fp32 form
 * had converted no faster than the exact kernel there: 0.8-1.0x).
 */
export const FAST_GEMV_MIN_ROWS = 1;

export type Numerics = 'exact' | 'fast';

/** Parses a --numerics / DSV4_NUMERICS value. */
export function parseNumerics(v: string | undefined): Numerics {
  const s = (v ?? '').trim().toLowerCase();
  if (s === '' || s === 'exact') return 'exact';
  if (s === 'fast') return 'fast';
  throw new Error(`numerics must be "exact" or "fast", not "${v}"`);
}

/** `base` with its products of >= minRows rows replaced by `fast`. */
export function withFastProducts(base: Kernels, fast: FastProducts, minRows = FAST_GEMV_MIN_ROWS): Kernels {
  const isFast = (rows: number): boolean => rows >= minRows;
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
      (isFast(x.rows) ? fast : base).fp8Gemm(x, w, y);
    },
    fp4Gemm(x, w, y) {
      (isFast(x.rows) ? fast : base).fp4Gemm(x, w, y);
    },
    bf16Gemm(x, rows, w, y) {
      if (isFast(rows)) fast.denseGemm(x, rows, w, 0, w.out, y);
      else exactDense(x, rows, w, 0, w.out, y);
    },
    fp8AsBf16Gemm(x, rows, w, r0, n, y) {
      if (isFast(rows)) fast.denseGemm(x, rows, w, r0, n, y);
      else exactDense(x, rows, w, r0, n, y);
    },
    gemmBatch(jobs) {
      const big = jobs.filter((j) => isFast(j.x.rows));
      const small = jobs.filter((j) => !isFast(j.x.rows));
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
      if (isFast(rows)) {
        if (fast.denseGroups) fast.denseGroups(xs, rows, w, n, ys);
        else xs.forEach((x, g) => fast.denseGemm(x, rows, w, g * n, n, ys[g]!));
      } else if (base.fp8AsBf16GemmGroups) base.fp8AsBf16GemmGroups(xs, rows, w, n, ys);
      else xs.forEach((x, g) => exactDense(x, rows, w, g * n, n, ys[g]!));
    },
  };
}
