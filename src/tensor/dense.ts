// Rows of dense (non-GEMM-quantized) weights as fp32 values: BF16 bits, F32, or
// FP8 used as BF16 values (wo_a, which convert.py dequantizes: bf16(fp8 * scale)).
// The exact TypeScript products (model/linear.ts exactLinear) and the native
// kernels' fallback for elements they flag both read weights through this.
import { dotF32x32 } from './exact.js';
import { E4M3_VALUES, roundBf16 } from './formats.js';
import type { Weight } from './kernels.js';

/** Weight row n [inF] as f32 values into `out` (F32 weights: a view); `bits` is `out` viewed as Uint32. */
export function weightRowValues(w: Weight, n: number, out: Float32Array, bits: Uint32Array): Float32Array {
  const K = w.inF;
  if (w.kind === 'f32') return w.data.subarray(n * K, n * K + K);
  if (w.kind === 'bf16') {
    const d16 = w.data;
    const o = n * K;
    for (let k = 0; k < K; k++) bits[k] = d16[o + k]! << 16;
    return out;
  }
  if (w.kind === 'fp8') {
    const nkb = Math.ceil(K / 128);
    for (let kb = 0; kb < nkb; kb++) {
      const s = 2 ** (w.scale[(n >> 7) * nkb + kb]! - 127);
      for (let k = kb * 128; k < Math.min(K, kb * 128 + 128); k++) out[k] = roundBf16(E4M3_VALUES[w.data[n * K + k]!]! * s);
    }
    return out;
  }
  throw new Error('FP4 weights are only used through fp4Gemm');
}

/**
 * fp32 y[rows, n] = x @ W[r0 .. r0+n)ᵀ with exact dot products rounded once (F.linear under
 * canonical rounding); the TypeScript reference of Kernels.bf16Gemm / fp8AsBf16Gemm.
 */
export function exactDenseRows(x: Float32Array, rows: number, w: Weight, r0 = 0, n = w.out - r0, y: Float32Array = new Float32Array(rows * n)): Float32Array {
  const K = w.inF;
  const scratch = new Float32Array(K);
  const bits = new Uint32Array(scratch.buffer);
  for (let j = 0; j < n; j++) {
    const wr = weightRowValues(w, r0 + j, scratch, bits);
    for (let m = 0; m < rows; m++) y[m * n + j] = dotF32x32(x, m * K, wr, 0, K);
  }
  return y;
}
