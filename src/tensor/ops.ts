// Optional decode-path operations of a Kernels implementation (native/ops.h):
// act_quant, RMSNorm rows, hyper-connection mixes/combines and sparse attention.
// Each must give the TypeScript reference's bits (quant.ts, norm.ts, model/hc.ts,
// model/attention.ts) or report that it did not decide (false / flagged heads),
// and the caller then runs the reference, which stays the definition.

export interface DecodeOps {
  /** act_quant(x, 128) of rows [rows, cols] into e4m3 codes q and scales (quant.ts actQuant). */
  actQuant?(x: Float32Array, rows: number, cols: number, q: Uint8Array, scale: Float32Array): boolean;
  /** RMSNorm of `rows` rows of width n into y (norm.ts rmsNorm). */
  rmsNorm?(x: Float32Array, rows: number, n: number, weight: Float32Array, eps: number, y: Float32Array): boolean;
  /** hc mixes: out[r*nOut + j] = fl32(RN32(x_r · fn_j) * rmsFactor(x_r)), x [rows, flat] (model/hc.ts mixes). */
  hcMixes?(x: Float32Array, rows: number, flat: number, fn: Float32Array, nOut: number, eps: number, out: Float64Array): boolean;
  /** y[r, d] = bf16(RN32(Σ_j fl32(w[r*hc + j] * x[r, j, d]))), x [rows, hc, dim] (model/hc.ts weightedStreams). */
  hcWeighted?(x: Float32Array, rows: number, hc: number, dim: number, w: Float64Array, y: Float32Array): boolean;
  /** model/hc.ts splitSinkhorn of `rows` tokens' mixes m [rows, (2+hc)*hc] into pre, post [rows, hc], comb [rows, hc*hc]. */
  hcSplit?(m: Float64Array, rows: number, hc: number, base: Float32Array, scale: Float32Array, iters: number, eps: number, pre: Float64Array,
    post: Float64Array, comb: Float64Array): boolean;
  /** model/hc.ts hcPost into y [rows, hc, dim]. */
  hcPost?(out: Float32Array, residual: Float32Array, rows: number, hc: number, dim: number, post: Float64Array, comb: Float64Array,
    y: Float32Array): boolean;
  /**
   * One decode row's hcPost of the sub-layer output `out` (null: none), then hcPre of the next sub-layer and the
   * RMSNorm of its y (model/hc.ts hcChain): xOut = hcPost(out, x, post, comb) when out is given, and hcPre reads
   * it (else x); mix = [mixes | pre | post | comb] of hcPre, ya = [y | rmsNorm(y, normW)]. Returns 0 when all is
   * done, 2 when only xOut is, 1 when nothing is (the caller then runs the steps one by one).
   */
  hcChain?(out: Float32Array | null, x: Float32Array, post: Float64Array | null, comb: Float64Array | null, xOut: Float32Array, fn: Float32Array,
    base: Float32Array, scale: Float32Array, normW: Float32Array, mix: Float64Array, ya: Float32Array, hc: number, dim: number, iters: number,
    hcEps: number, normEps: number): number;
  /**
   * sparse_attn of `rows` query rows, all heads (model/attention.ts sparseAttnHead): row r's slots are
   * [rowStart[r], rowStart[r+1]) of slotSrc/slotOff, slot i's key the BF16 bits
   * sources[slotSrc[i]][slotOff[i] .. + d) (slotSrc 255 = masked). q and out [rows, H, d]; (row, head)
   * pairs it leaves undecided get flags[r*H + h] = 1 (their out is garbage); returns their count.
   */
  sparseAttention?(q: Float32Array, rows: number, H: number, d: number, sources: readonly [Uint16Array, Uint16Array, Uint16Array],
    slotSrc: Uint8Array, slotOff: Int32Array, rowStart: Int32Array, scale: number, sink: Float32Array, out: Float32Array,
    flags: Uint8Array): number;
}

/** The addon's functions behind DecodeOps (native/ops_addon.cc). */
export interface OpsAddon {
  opsActQuant(x: Float32Array, rows: number, cols: number, q: Uint8Array, scale: Float32Array): boolean;
  opsRmsNorm(x: Float32Array, rows: number, n: number, weight: Float32Array, eps: number, y: Float32Array): boolean;
  opsRmsDots(x: Float32Array, rows: number, flat: number, fn: Float32Array, nOut: number, eps: number, out: Float64Array): boolean;
  opsStreams(x: Float32Array, rows: number, hc: number, dim: number, w: Float64Array, y: Float32Array): boolean;
  opsHcSplit?(m: Float64Array, rows: number, hc: number, base: Float32Array, scale: Float32Array, iters: number, eps: number,
    pre: Float64Array, post: Float64Array, comb: Float64Array): boolean;
  opsHcPost(out: Float32Array, residual: Float32Array, rows: number, hc: number, dim: number, post: Float64Array, comb: Float64Array,
    y: Float32Array): boolean;
  opsHcChain?(out: Float32Array, x: Float32Array, post: Float64Array, comb: Float64Array, xOut: Float32Array, fn: Float32Array, base: Float32Array,
    scale: Float32Array, normW: Float32Array, mix: Float64Array, ya: Float32Array, hc: number, dim: number, iters: number, hcEps: number,
    normEps: number): number;
  opsSparseAttnRows(q: Float32Array, rows: number, H: number, d: number, src0: Uint16Array, src1: Uint16Array, src2: Uint16Array,
    slotSrc: Uint8Array, slotOff: Int32Array, rowStart: Int32Array, scale: number, sink: Float32Array, out: Float32Array,
    flags: Uint8Array): number;
}

const NONE_F32 = new Float32Array(0);
const NONE_F64 = new Float64Array(0);

/** DecodeOps on top of the addon; empty when the loaded addon predates them. */
export function nativeDecodeOps(addon: object): DecodeOps {
  const a = addon as OpsAddon;
  if (typeof (addon as Partial<OpsAddon>).opsSparseAttnRows !== 'function') return {};
  return {
    actQuant: (x, rows, cols, q, scale) => rows === 0 || a.opsActQuant(x, rows, cols, q, scale),
    rmsNorm: (x, rows, n, weight, eps, y) => rows === 0 || a.opsRmsNorm(x, rows, n, weight, eps, y),
    hcMixes: (x, rows, flat, fn, nOut, eps, out) => rows === 0 || a.opsRmsDots(x, rows, flat, fn, nOut, eps, out),
    // the native versions cover hc <= 16 streams and head dims <= 1024; beyond, the references run
    hcWeighted: (x, rows, hc, dim, w, y) => rows === 0 || (hc <= 16 && a.opsStreams(x, rows, hc, dim, w, y)),
    ...(a.opsHcSplit && {
      hcSplit: (m: Float64Array, rows: number, hc: number, base: Float32Array, scale: Float32Array, iters: number, eps: number, pre: Float64Array,
        post: Float64Array, comb: Float64Array) => rows === 0 || (hc <= 16 && a.opsHcSplit!(m, rows, hc, base, scale, iters, eps, pre, post, comb)),
    }),
    hcPost: (out, residual, rows, hc, dim, post, comb, y) => rows === 0 || (hc <= 16 && a.opsHcPost(out, residual, rows, hc, dim, post, comb, y)),
    ...(a.opsHcChain && {
      hcChain: (out: Float32Array | null, x: Float32Array, post: Float64Array | null, comb: Float64Array | null, xOut: Float32Array, fn: Float32Array,
        base: Float32Array, scale: Float32Array, normW: Float32Array, mix: Float64Array, ya: Float32Array, hc: number, dim: number, iters: number,
        hcEps: number, normEps: number) =>
        hc <= 16 ? a.opsHcChain!(out ?? NONE_F32, x, post ?? NONE_F64, comb ?? NONE_F64, xOut, fn, base, scale, normW, mix, ya, hc, dim, iters, hcEps, normEps) : 1,
    }),
    sparseAttention: (q, rows, H, d, src, slotSrc, slotOff, rowStart, scale, sink, out, flags) => {
      if (rows === 0) return 0;
      if (d > 1024) return flags.fill(1, 0, rows * H), rows * H;
      return a.opsSparseAttnRows(q, rows, H, d, src[0], src[1], src[2], slotSrc, slotOff, rowStart, scale, sink, out, flags);
    },
  };
}
