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

function fp8Gemm(x: QuantizedActivations, w: Fp8Weight, y: Float32Array): void {
  const K = w.inF;
  if (x.cols !== K) throw new RangeError(`fp8Gemm: activation width ${x.cols} != weight in ${K}`);
  const nkb = Math.ceil(K / 128);
  const xnb = x.cols / 128;
  const xv = new Float64Array(K);
  for (let m = 0; m < x.rows; m++) {
    for (let k = 0; k < K; k++) xv[k] = E4M3_VALUES[x.q[m * K + k]!]!;
    for (let n = 0; n < w.out; n++) {
      let acc = 0;
      const wr = n * K;
      const sr = (n >> 7) * nkb;
      for (let kb = 0; kb < nkb; kb++) {
        const k0 = kb * 128;
        const k1 = Math.min(K, k0 + 128);
        let dot = 0;
        for (let k = k0; k < k1; k++) dot += xv[k]! * E4M3_VALUES[w.data[wr + k]!]!;
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
  const xv = new Float64Array(K);
  for (let m = 0; m < x.rows; m++) {
    for (let k = 0; k < K; k++) xv[k] = E4M3_VALUES[x.q[m * K + k]!]!;
    for (let n = 0; n < w.out; n++) {
      let acc = 0;
      const wr = n * half;
      for (let kb = 0; kb < nsb; kb++) {
        let dot = 0;
        const k0 = kb * 32;
        for (let j = 0; j < 16; j++) {
          const byte = w.data[wr + (k0 >> 1) + j]!;
          dot += xv[k0 + 2 * j]! * E2M1_VALUES[byte & 15]! + xv[k0 + 2 * j + 1]! * E2M1_VALUES[byte >> 4]!;
        }
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
