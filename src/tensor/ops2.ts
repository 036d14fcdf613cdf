// Optional element-wise and per-head operations of a Kernels implementation (native/ops2.h):
// the experts' SwiGLU, BF16 rounding of whole arrays, and the per-head transforms of the
// attention path (RoPE, inverse RoPE, act_quant, Hadamard + fp4_act_quant, the query RMS
// rescale). Each gives its TypeScript reference's bits or reports what it left undecided;
// the helpers here run the references for that, so the references stay the definition.
import { roundBf16, roundBf16Array } from './formats.js';
import { hadamardBf16 } from './hadamard.js';
import { headRmsScaleBf16 } from './norm.js';
import { actQuantInPlace, fp4ActQuantInPlace } from './quant.js';
import { applyRope, type RopeTable } from './rope.js';

/** Per-head transforms; all but RMS_ROPE's first step act on the head's last rd dims through RoPE. */
export const HeadMode = {
  /** applyRope at the row's position. */
  ROPE: 0,
  /** applyRope(..., inverse = true): the output de-rotation of spec §3.3. */
  ROPE_INVERSE: 1,
  /** applyRope, then act_quant(block 64) of the d - rd nope dims (the KV's FP8 simulation, spec §3.3-3.4). */
  ROPE_FP8: 2,
  /** applyRope, then the Hadamard rotation and fp4_act_quant(block 32) of all d dims (indexer, spec §3.5). */
  ROPE_HADAMARD_FP4: 3,
  /** headRmsScaleBf16 (the per-head query rescale, spec §3.3), then applyRope. */
  RMS_ROPE: 4,
} as const;
export type HeadMode = (typeof HeadMode)[keyof typeof HeadMode];

export interface RowOps {
  /**
   * h[r*inter + i] = moe.ts swiglu of g, u [rows, inter] (rw: one routing weight per row, or null). Elements
   * it cannot decide are left in h as they were, their indices written to `undecided`; returns their count,
   * or -1 when `undecided` is too short for them (the caller then runs the reference on everything).
   */
  swiglu?(g: Float32Array, u: Float32Array, rows: number, inter: number, limit: number, rw: Float32Array | null, h: Float32Array,
    undecided: Int32Array): number;
  /** formats.ts roundBf16Array in place. */
  roundBf16?(a: Float32Array): void;
  /**
   * model/compressor.ts poolChannel for every channel ch < c of one entry into entry[ch]; channels it leaves
   * undecided get flags[ch] = 1 (entry[ch] garbage); returns their count.
   */
  pool?(kv: Float32Array, score: Float32Array, r: number, c: number, overlap: boolean, entry: Float32Array, flags: Uint8Array): number;
  /** addRows (below) of rows >= 1 rows. */
  addRows?(y: Float32Array, idx: Int32Array | null, src: Float32Array, rows: number, dim: number, round: boolean): void;
  /**
   * headReference on every head x[(r*H + h)*d ..] at position positions[r] (the table's rows must be
   * filled: RopeTable.ensure). Heads it leaves undecided are untouched and get flags[r*H + h] = 1;
   * returns their count.
   */
  heads?(x: Float32Array, rows: number, H: number, d: number, rd: number, mode: HeadMode, table: RopeTable, positions: Int32Array,
    eps: number, flags: Uint8Array): number;
  /**
   * topk.ts topkOrder of scores[0..n): the indices of the min(k, n) largest into out; returns their count,
   * or -1 (out untouched) when a score is not a BF16 value or is NaN.
   */
  topk?(scores: Float32Array, n: number, k: number, out: Int32Array): number;
}

/** One head's transform in TypeScript (the reference of RowOps.heads). */
export function headReference(x: Float32Array, o: number, d: number, rd: number, mode: HeadMode, table: RopeTable, pos: number, eps: number): void {
  if (mode === HeadMode.RMS_ROPE) headRmsScaleBf16(x, o, d, eps);
  applyRope(x, o + d - rd, table, pos, mode === HeadMode.ROPE_INVERSE);
  if (mode === HeadMode.ROPE_FP8) actQuantInPlace(x, o, d - rd, 64);
  else if (mode === HeadMode.ROPE_HADAMARD_FP4) {
    hadamardBf16(x, o, d);
    fp4ActQuantInPlace(x, o, d, 32);
  }
}

let flagBuf = new Uint8Array(64);

/** headReference on all heads of x [rows, H, d], through the kernels' heads when present (same bits). */
export function headsWith(k: RowOps, x: Float32Array, rows: number, H: number, d: number, rd: number, mode: HeadMode, table: RopeTable,
  positions: Int32Array, eps = 0): void {
  // The rotated width is the table's (applyRope); the native kernel takes rd: they must agree.
  if (rd !== table.dim) throw new RangeError(`heads: rope width ${rd} != the rope table's ${table.dim}`);
  const n = rows * H;
  if (n === 0) return;
  if (k.heads) {
    let maxPos = 0;
    for (let r = 0; r < rows; r++) maxPos = Math.max(maxPos, positions[r]!);
    table.ensure(maxPos);
    if (flagBuf.length < n) flagBuf = new Uint8Array(Math.max(n, 2 * flagBuf.length));
    if (k.heads(x, rows, H, d, rd, mode, table, positions, eps, flagBuf) === 0) return;
  }
  for (let i = 0; i < n; i++) {
    if (!k.heads || flagBuf[i]) headReference(x, i * d, d, rd, mode, table, positions[Math.floor(i / H)]!, eps);
  }
}

// below this many elements the addon call costs more than the TypeScript loop
const NATIVE_ROUND_MIN = 512;

/** roundBf16Array through the kernels when present (same bits). */
export function roundBf16With(k: RowOps, a: Float32Array): Float32Array {
  if (k.roundBf16 && a.length >= NATIVE_ROUND_MIN) k.roundBf16(a);
  else roundBf16Array(a);
  return a;
}

/**
 * y[idx[t]] = fl32(y[idx[t]] + src[t]) for rows t < rows of width dim (idx null: row t), then BF16 when
 * `round`: the fp32 sums of the routed experts' outputs in the MoE (spec §3.6).
 */
export function addRows(y: Float32Array, idx: Int32Array | null, src: Float32Array, rows: number, dim: number, round: boolean): void {
  for (let t = 0; t < rows; t++) {
    const o = (idx ? idx[t]! : t) * dim;
    for (let d = 0; d < dim; d++) {
      const v = Math.fround(y[o + d]! + src[t * dim + d]!);
      y[o + d] = round ? roundBf16(v) : v;
    }
  }
}

/** addRows through the kernels when present (same bits). */
export function addRowsWith(k: RowOps, y: Float32Array, idx: Int32Array | null, src: Float32Array, rows: number, dim: number, round: boolean): void {
  if (k.addRows && rows > 0) k.addRows(y, idx, src, rows, dim, round);
  else addRows(y, idx, src, rows, dim, round);
}

/** The addon's functions behind RowOps (native/ops2_addon.cc). */
interface RowOpsAddon {
  ops2Swiglu(g: Float32Array, u: Float32Array, rows: number, inter: number, limit: number, rw: Float32Array, h: Float32Array,
    undecided: Int32Array): number;
  ops2RoundBf16(a: Float32Array): void;
  ops2Pool(kv: Float32Array, score: Float32Array, r: number, c: number, overlap: boolean, entry: Float32Array, flags: Uint8Array): number;
  ops2AddRows(y: Float32Array, idx: Int32Array, src: Float32Array, rows: number, dim: number, round: boolean): void;
  ops2Heads(x: Float32Array, rows: number, H: number, d: number, rd: number, mode: number, cos: Float32Array, sin: Float32Array,
    positions: Int32Array, eps: number, scale: number, flags: Uint8Array): number;
  /** Absent in addons built before it. */
  ops2TopkBf16?(scores: Float32Array, n: number, k: number, out: Int32Array): number;
}

const NO_WEIGHTS = new Float32Array(0);
const NO_ROWS = new Int32Array(0);

/** RowOps on top of the addon; empty when the loaded addon predates them. */
export function nativeRowOps(addon: object): RowOps {
  const a = addon as RowOpsAddon;
  if (typeof (addon as Partial<RowOpsAddon>).ops2Heads !== 'function') return {};
  return {
    swiglu: (g, u, rows, inter, limit, rw, h, undecided) => a.ops2Swiglu(g, u, rows, inter, limit, rw ?? NO_WEIGHTS, h, undecided),
    roundBf16: (x) => a.ops2RoundBf16(x),
    pool: (kv, score, r, c, overlap, entry, flags) => a.ops2Pool(kv, score, r, c, overlap, entry, flags),
    addRows: (y, idx, src, rows, dim, round) => a.ops2AddRows(y, idx ?? NO_ROWS, src, rows, dim, round),
    heads: (x, rows, H, d, rd, mode, table, positions, eps, flags) =>
      a.ops2Heads(x, rows, H, d, rd, mode, table.cos, table.sin, positions, eps, Math.fround(d ** -0.5), flags),
    ...(a.ops2TopkBf16 ? { topk: (scores: Float32Array, n: number, k: number, out: Int32Array) => a.ops2TopkBf16!(scores, n, k, out) } : {}),
  };
}
