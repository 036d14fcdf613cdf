// The native fast-numerics products (native/fast_*.cc): the semantics of fast-products.ts (operands
// dequantized exactly to fp32, one sequential fp32 FMA chain per output) in a BLIS-style fp32 GEMM,
// bit for bit. FP8 and BF16 products of at most FEW_ROWS activation rows (decode batches) take the
// weight rows as SIMD lanes instead (native/fastgemv_*.cc, same bits): FP8 weights without NaN codes,
// BF16 ones with K % 32 == 0. Products of at most CHAIN_ROWS rows with FP8 or BF16-valued weights have
// their own semantics (32 chains per output, fast-products.ts 3), which only fastGemv gives
// (native/fastchain_*.cc: lanes along k; BF16 any K). Shapes the native kernels do not take (FP8/FP4 K
// not a multiple of 128; FP8 weights with NaN codes in the chain semantics) go to the TypeScript
// reference, which gives the same bits slowly. FP4 products of at most Q8_ROWS rows have the int8
// semantics (fast-products.ts 4), which only fastDecode gives (native/fp4q8_*.cc), in the same call
// and pool dispatch as the FP8 jobs of a decode batch.
import { CHAIN_ROWS, Q8_ROWS, referenceFastProducts, type FastProducts } from './fast-products.js';
import type { Bf16Weight, Fp4Weight, Fp8Weight, GemmJob, QuantizedActivations } from './kernels.js';
import { fp8Usable, type NativeAddon } from './native.js';

/** Job kinds of the addon's fastBatch. */
const enum Kind {
  Fp8 = 0,
  Fp4 = 1,
  Bf16 = 2,
  Fp8AsBf16 = 3,
}

const NO_SCALES = new Float32Array(0);
const NO_BYTES = new Uint8Array(0);

function checkQuantized(op: string, x: QuantizedActivations, w: { out: number; inF: number }, y: Float32Array): void {
  if (x.cols !== w.inF) throw new RangeError(`${op}: activation width ${x.cols} != weight in ${w.inF}`);
  if (y.length < x.rows * w.out) throw new RangeError(`${op}: output holds ${y.length} < ${x.rows * w.out} values`);
}

function checkDense(x: Float32Array, rows: number, w: Bf16Weight | Fp8Weight, r0: number, n: number, y: Float32Array): void {
  if (x.length < rows * w.inF || y.length < rows * n) throw new RangeError('fast denseGemm: activations or output too short');
  if (r0 < 0 || r0 + n > w.out) throw new RangeError(`fast denseGemm: rows [${r0}, ${r0 + n}) outside [0, ${w.out})`);
}

/** Whether the native kernel takes this weight (FP8 blocks and FP4 scales need K % 128 == 0). */
const nativeK = (w: { kind: string; inF: number }): boolean => w.kind === 'bf16' || w.inF % 128 === 0;

/** Activation rows the few-row kernels (fastGemv) take at most. */
export const FEW_ROWS = 15;

/** The native fast products, or null when the addon lacks them. */
export function nativeFastProducts(addon: NativeAddon): FastProducts | null {
  const many = addon.fastBatch?.bind(addon);
  if (!many) return null;
  const few = (addon.fastDecode ?? addon.fastGemv)?.bind(addon);
  const fewFp4 = addon.fastDecode !== undefined;
  /** Whether fastGemv / fastDecode takes this product (else fastBatch, same bits, or the reference). */
  const byRows = (rows: number, w: Fp8Weight | Fp4Weight | Bf16Weight): boolean =>
    few !== undefined &&
    rows <= FEW_ROWS &&
    (w.kind === 'bf16' ? w.inF % 32 === 0 || rows <= CHAIN_ROWS : w.kind === 'fp4' ? fewFp4 && nativeK(w) : nativeK(w) && fp8Usable(addon, w));
  /** Whether the product needs the TypeScript reference: the chain or int8 semantics, which fastBatch does not give. */
  const byReference = (rows: number, w: Fp8Weight | Fp4Weight | Bf16Weight): boolean =>
    rows <= (w.kind === 'fp4' ? Q8_ROWS : CHAIN_ROWS) && !byRows(rows, w);
  const batch = (acts: unknown[], flat: unknown[], rows: number, w: Fp8Weight | Fp4Weight | Bf16Weight): void =>
    (byRows(rows, w) ? few! : many)(acts, flat);
  const quantized = (x: QuantizedActivations, w: Fp8Weight | Fp4Weight, y: Float32Array): void => {
    if (byReference(x.rows, w)) return w.kind === 'fp4' ? referenceFastProducts.fp4Gemm(x, w, y) : referenceFastProducts.fp8Gemm(x, w, y);
    batch([x.q, x.scale, x.rows, x.cols], [0, w.kind === 'fp4' ? Kind.Fp4 : Kind.Fp8, w.data, w.scale, 0, w.out, y], x.rows, w);
  };
  /** The jobs in one call of `call`: one dequantization per activation matrix. */
  const batchJobs = (jobs: readonly GemmJob[], call: (acts: unknown[], flat: unknown[]) => void): void => {
    const acts: unknown[] = [];
    const flat: unknown[] = [];
    const index = new Map<QuantizedActivations, number>();
    for (const { x, w, y } of jobs) {
      checkQuantized(w.kind === 'fp4' ? 'fast fp4Gemm' : 'fast fp8Gemm', x, w, y);
      if (x.rows === 0 || w.out === 0) continue;
      if (!nativeK(w) || byReference(x.rows, w)) {
        if (w.kind === 'fp4') referenceFastProducts.fp4Gemm(x, w, y);
        else referenceFastProducts.fp8Gemm(x, w, y);
        continue;
      }
      let a = index.get(x);
      if (a === undefined) {
        index.set(x, (a = acts.length / 4));
        acts.push(x.q, x.scale, x.rows, x.cols);
      }
      flat.push(a, w.kind === 'fp4' ? Kind.Fp4 : Kind.Fp8, w.data, w.scale, 0, w.out, y);
    }
    if (flat.length > 0) call(acts, flat);
  };
  const dense = (w: Bf16Weight | Fp8Weight): [Kind, Uint8Array] => (w.kind === 'fp8' ? [Kind.Fp8AsBf16, w.scale] : [Kind.Bf16, NO_BYTES]);
  return {
    name: 'fast-native',
    fp8Gemm(x, w, y) {
      checkQuantized('fast fp8Gemm', x, w, y);
      if (x.rows === 0 || w.out === 0) return;
      if (nativeK(w)) quantized(x, w, y);
      else referenceFastProducts.fp8Gemm(x, w, y);
    },
    fp4Gemm(x, w, y) {
      checkQuantized('fast fp4Gemm', x, w, y);
      if (x.rows === 0 || w.out === 0) return;
      if (nativeK(w)) quantized(x, w, y);
      else referenceFastProducts.fp4Gemm(x, w, y);
    },
    denseGemm(x, rows, w, r0, n, y) {
      checkDense(x, rows, w, r0, n, y);
      if (rows === 0 || n === 0) return;
      if (!nativeK(w) || byReference(rows, w)) return referenceFastProducts.denseGemm(x, rows, w, r0, n, y);
      const [kind, ws] = dense(w);
      batch([x, NO_SCALES, rows, w.inF], [0, kind, w.data, ws, r0, n, y], rows, w);
    },
    gemmBatch(jobs: readonly GemmJob[]) {
      const fewJobs = jobs.filter((j) => byRows(j.x.rows, j.w));
      if (fewJobs.length > 0) {
        batchJobs(fewJobs, few!);
        if (fewJobs.length < jobs.length) batchJobs(jobs.filter((j) => !byRows(j.x.rows, j.w)), many);
      } else batchJobs(jobs, many);
    },
    denseGroups(xs, rows, w, n, ys) {
      if (ys.length !== xs.length) throw new RangeError(`fast denseGroups: ${xs.length} inputs but ${ys.length} outputs`);
      xs.forEach((x, g) => checkDense(x, rows, w, g * n, n, ys[g]!));
      if (rows === 0 || n === 0 || xs.length === 0) return;
      if (!nativeK(w) || byReference(rows, w)) return xs.forEach((x, g) => referenceFastProducts.denseGemm(x, rows, w, g * n, n, ys[g]!));
      const acts: unknown[] = [];
      const flat: unknown[] = [];
      xs.forEach((x, g) => {
        acts.push(x, NO_SCALES, rows, w.inF);
        flat.push(g, Kind.Fp8AsBf16, w.data, w.scale, g * n, n, ys[g]);
      });
      batch(acts, flat, rows, w);
    },
  };
}
