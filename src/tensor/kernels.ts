// The kernel interface (one interface, several implementations): the plain
// TypeScript reference in ./reference-kernels.ts and, when available, the native addon.
// Every implementation must produce the same bits (canonical rounding,
// ../../README.md "Numerics").
//
// Conventions:
// - BF16 activations are carried as Float32Array holding BF16-representable
//   values (so JS arithmetic on them is exact where the spec says it is).
// - Weights stay in their stored formats (spec §2.1–2.2), never expanded to f32.

import type { DecodeOps } from './ops.js';
import type { RowOps } from './ops2.js';

import type { Fp4Rows } from './fp4-rows.js';

/** FP8 E4M3 weight [out, inF] with UE8M0 128x128 block scales [ceil(out/128), ceil(inF/128)]. */
export interface Fp8Weight {
  readonly kind: 'fp8';
  readonly out: number;
  readonly inF: number;
  readonly data: Uint8Array; // e4m3 codes, row-major [out, inF]
  readonly scale: Uint8Array; // e8m0 exponent bytes, row-major
}

/** FP4 E2M1 weight [out, inF] packed two per byte (low nibble = even column), UE8M0 scales per 1x32. */
export interface Fp4Weight {
  readonly kind: 'fp4';
  readonly out: number;
  readonly inF: number;
  readonly data: Uint8Array; // [out, inF/2]
  readonly scale: Uint8Array; // [out, inF/32]
}

/** BF16 weight [out, inF] as raw bits. */
export interface Bf16Weight {
  readonly kind: 'bf16';
  readonly out: number;
  readonly inF: number;
  readonly data: Uint16Array;
}

/** F32 weight [out, inF]. */
export interface F32Weight {
  readonly kind: 'f32';
  readonly out: number;
  readonly inF: number;
  readonly data: Float32Array;
}

export type Weight = Fp8Weight | Fp4Weight | Bf16Weight | F32Weight;

/**
 * Activations quantized by act_quant(x, 128) (spec §2.3): `q` are e4m3 codes
 * [rows, cols], `scale` the power-of-two scale of each 1x128 block [rows, cols/128].
 */
export interface QuantizedActivations {
  readonly rows: number;
  readonly cols: number;
  readonly q: Uint8Array;
  readonly scale: Float32Array;
}

/** One product of a batch: y[x.rows, w.out] = fp8_gemm / fp4_gemm(x, w) (fp32, caller rounds). */
export interface GemmJob {
  readonly x: QuantizedActivations;
  readonly w: Fp8Weight | Fp4Weight;
  readonly y: Float32Array;
}

export interface Kernels extends DecodeOps, RowOps {
  readonly name: string;
  /** 'fast': the named inexact mode (fast-kernels.ts); absent or 'exact': canonical rounding. */
  readonly numerics?: 'exact' | 'fast';
  /** y[rows, w.out] = fp8_gemm(x, w) with fp32 accumulation; returns fp32 (caller rounds to BF16). */
  fp8Gemm(x: QuantizedActivations, w: Fp8Weight, y: Float32Array): void;
  /** y[rows, w.out] = fp4_gemm(x, w); returns fp32 (caller rounds to BF16). */
  fp4Gemm(x: QuantizedActivations, w: Fp4Weight, y: Float32Array): void;
  /**
   * Optional: y[rows, w.out] = RN32(exact x . wᵀ) for fp32/BF16 x [rows, w.inF] (F.linear
   * under canonical rounding, as exactLinear in model/linear.ts). Callers fall back when absent.
   */
  bf16Gemm?(x: Float32Array, rows: number, w: Bf16Weight, y: Float32Array): void;
  /**
   * Optional: y[rows, n] = RN32(exact x . W[r0 .. r0+n)ᵀ) where W's values are e4m3 code x block
   * scale (FP8 used as BF16 values: wo_a, as exactLinear). Callers fall back when absent.
   */
  fp8AsBf16Gemm?(x: Float32Array, rows: number, w: Fp8Weight, r0: number, n: number, y: Float32Array): void;
  /**
   * Optional: every job's fp8Gemm / fp4Gemm in one call (independent products, e.g. a layer's routed
   * experts), the same bits as calling them one by one. Callers fall back to one by one when absent.
   */
  gemmBatch?(jobs: readonly GemmJob[]): void;
  /**
   * Optional: fp8AsBf16Gemm for groups g < xs.length in one call: ys[g][rows, n] = xs[g] . W[g*n .. (g+1)*n)ᵀ
   * (the grouped wo_a projection, spec §3.3). Callers fall back to one call per group when absent.
   */
  fp8AsBf16GemmGroups?(xs: readonly Float32Array[], rows: number, w: Fp8Weight, n: number, ys: readonly Float32Array[]): void;
  /**
   * Optional: lightning-indexer scores of one query row (spec §3.5, model/indexer.ts):
   * scores[t] = bf16(RN32(Σ_h bf16(RN32(relu(bf16(RN32(q_h·k_t))) · hw_h)))) for t < visible,
   * q = q[qOff .. qOff + nHeads*headDim), hw = hw[hwOff .. hwOff + nHeads), k_t = keys[t*headDim ..].
   */
  indexerScores?(q: Float32Array, qOff: number, hw: Float32Array, hwOff: number, nHeads: number, headDim: number, keys: Float32Array, visible: number, scores: Float64Array): void;
  /**
   * Optional: the same scores against keys in compact FP4 form (./fp4-rows.ts), in integers, into
   * f32 (BF16 values). Entries it cannot settle get flagged[t] = 1 (the caller recomputes them); returns their
   * count, or -1 when the query is not fake-FP4 (nothing computed).
   */
  indexerScoresFp4?(q: Float32Array, qOff: number, hw: Float32Array, hwOff: number, nHeads: number, headDim: number, keys: Fp4Rows, visible: number, scores: Float32Array, flagged: Uint8Array): number;
}
