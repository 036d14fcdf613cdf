// linear() of model.py (spec §2.4) on row-major activations [rows, inF]:
// FP8/FP4 weights go through act_quant + the Kernels GEMM; BF16/F32 weights
// are exact dot products rounded once to fp32 (F.linear under canonical rounding).
import type { Bf16Weight, Kernels, Weight } from '../tensor/kernels.js';
import { actQuantWith } from '../tensor/quant.js';
import { dotF32x32 } from '../tensor/exact.js';
import { E4M3_VALUES, roundBf16, roundBf16Array } from '../tensor/formats.js';

/** One weight row [inF] as f32 values (BF16/F32 weights); `bits` is `out` viewed as Uint32. */
function rowValues(w: Weight, n: number, out: Float32Array, bits: Uint32Array): Float32Array {
  const K = w.inF;
  if (w.kind === 'f32') return w.data.subarray(n * K, n * K + K);
  if (w.kind === 'bf16') {
    const d16 = w.data;
    const o = n * K;
    for (let k = 0; k < K; k++) bits[k] = d16[o + k]! << 16;
    return out;
  }
  if (w.kind === 'fp8') {
    // FP8 used as BF16 (wo_a, which convert.py dequantizes: bf16(fp8 * scale))
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
 * fp32 y[rows, n] = x @ W[r0 .. r0+n)ᵀ with exact dot products (F.linear in fp32, or in
 * BF16 before the cast). Default: all rows of W.
 */
export function exactLinear(x: Float32Array, rows: number, w: Weight, r0 = 0, n = w.out - r0, y = new Float32Array(rows * n)): Float32Array {
  const K = w.inF;
  const scratch = new Float32Array(K);
  const bits = new Uint32Array(scratch.buffer);
  for (let j = 0; j < n; j++) {
    const wr = rowValues(w, r0 + j, scratch, bits);
    for (let m = 0; m < rows; m++) y[m * n + j] = dotF32x32(x, m * K, wr, 0, K);
  }
  return y;
}

// FP8 weights used as BF16 values (wo_a), dequantized once per weight: bf16(fp8 * scale)
// as rowValues computes it, so the products and their exact sums are unchanged.
const asBf16Cache = new WeakMap<Uint8Array, Bf16Weight>();

/** W as a BF16 weight (same values as rowValues); FP8 converted once and cached, F32/FP4 -> null. */
export function bf16Of(w: Weight): Bf16Weight | null {
  if (w.kind === 'bf16') return w;
  if (w.kind !== 'fp8') return null;
  let b = asBf16Cache.get(w.data);
  if (!b) {
    const K = w.inF;
    const data = new Uint16Array(w.out * K);
    const row = new Float32Array(K);
    const bits = new Uint32Array(row.buffer);
    for (let n = 0; n < w.out; n++) {
      rowValues(w, n, row, bits);
      for (let k = 0; k < K; k++) data[n * K + k] = bits[k]! >>> 16;
    }
    b = { kind: 'bf16', out: w.out, inF: K, data };
    asBf16Cache.set(w.data, b);
  }
  return b;
}

/**
 * exactLinear over rows [r0, r0+n) of W, through the kernels' bf16Gemm when W holds BF16
 * values (BF16, or FP8 used as BF16).
 */
export function denseLinearRows(k: Kernels, x: Float32Array, rows: number, w: Weight, r0: number, n: number, y = new Float32Array(rows * n)): Float32Array {
  const b = k.bf16Gemm && rows > 0 && n > 0 ? bf16Of(w) : null;
  if (b) k.bf16Gemm!(x, rows, { kind: 'bf16', out: n, inF: b.inF, data: b.data.subarray(r0 * b.inF, (r0 + n) * b.inF) }, y);
  else exactLinear(x, rows, w, r0, n, y);
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
  return roundBf16Array(y);
}

