// Plain TypeScript fp8_gemm / fp4_gemm (kernel.py semantics under canonical
// rounding, golden README "Kernel semantics"): each K block's dot product is
// exact (float64 holds FP8xFP8 and FP4xFP8 block sums exactly), rounded once
// to fp32, scaled and added to an fp32 accumulator in increasing K order.
import { E2M1_VALUES, E4M3_VALUES } from './formats.js';
import type { Fp4Weight, Fp8Weight, Kernels, QuantizedActivations } from './kernels.js';

const fr = Math.fround;

/** E8M0 byte -> 2^(b-127) (255 never occurs in valid checkpoints). */
const E8M0 = (() => {
  const t = new Float64Array(256);
  for (let b = 0; b < 256; b++) t[b] = b === 255 ? NaN : 2 ** (b - 127);
  return t;
})();

/** E4M3 values of the activation rows [rows, K]. */
function decodeActivations(x: QuantizedActivations): Float32Array {
  const v = new Float32Array(x.rows * x.cols);
  for (let i = 0; i < v.length; i++) v[i] = E4M3_VALUES[x.q[i]!]!;
  return v;
}

function fp8Gemm(x: QuantizedActivations, w: Fp8Weight, y: Float32Array): void {
  const K = w.inF;
  if (x.cols !== K) throw new RangeError(`fp8Gemm: activation width ${x.cols} != weight in ${K}`);
  const nkb = Math.ceil(K / 128);
  const xnb = x.cols / 128;
  const xv = decodeActivations(x);
  const wv = new Float32Array(K);
  for (let n = 0; n < w.out; n++) {
    for (let k = 0; k < K; k++) wv[k] = E4M3_VALUES[w.data[n * K + k]!]!;
    const sr = (n >> 7) * nkb;
    for (let m = 0; m < x.rows; m++) {
      const xr = m * K;
      let acc = 0;
      for (let kb = 0; kb < nkb; kb++) {
        const k0 = kb * 128;
        const k1 = Math.min(K, k0 + 128);
        let dot = 0; // exact: FP8 x FP8 products, at most 128 of them
        for (let k = k0; k < k1; k++) dot += xv[xr + k]! * wv[k]!;
        const sc = fr(x.scale[m * xnb + kb]! * E8M0[w.scale[sr + kb]!]!);
        acc = fr(acc + fr(fr(dot) * sc));
      }
      y[m * w.out + n] = acc;
    }
  }
}

function fp4Gemm(x: QuantizedActivations, w: Fp4Weight, y: Float32Array): void {
  const K = w.inF;
  if (x.cols !== K) throw new RangeError(`fp4Gemm: activation width ${x.cols} != weight in ${K}`);
  const half = K >> 1;
  const nsb = K / 32;
  const xnb = x.cols / 128;
  const xv = decodeActivations(x);
  const wv = new Float32Array(K);
  for (let n = 0; n < w.out; n++) {
    for (let j = 0; j < half; j++) {
      const byte = w.data[n * half + j]!;
      wv[2 * j] = E2M1_VALUES[byte & 15]!; // low nibble = even element
      wv[2 * j + 1] = E2M1_VALUES[byte >> 4]!;
    }
    for (let m = 0; m < x.rows; m++) {
      const xr = m * K;
      let acc = 0;
      for (let kb = 0; kb < nsb; kb++) {
        let dot = 0; // exact: FP8 x FP4 products, 32 of them
        for (let k = kb * 32; k < kb * 32 + 32; k++) dot += xv[xr + k]! * wv[k]!;
        const sa = x.scale[m * xnb + (kb >> 2)]!;
        const sb = E8M0[w.scale[n * nsb + kb]!]!;
        acc = fr(acc + fr(fr(fr(dot) * sa) * sb));
      }
      y[m * w.out + n] = acc;
    }
  }
}

/** The reference implementation of the Kernels interface. */
export const referenceKernels: Kernels = { name: 'reference', fp8Gemm, fp4Gemm };
