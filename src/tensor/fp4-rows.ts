// Compact form of FP4-simulated rows (fp4_act_quant values: e2m1 x a power-of-two scale per
// block of 32, spec §3.5 / §2.3), used for the lightning indexer's keys: per block, integer
// codes c in [-12, 12] and one power-of-two unit u with value = c * u exactly. Then
// q·k = Σ_blocks u_q u_k · (integer dot of codes), which kernels compute in int32.
// A row that is not exactly of this form (NaN/inf, values off the grid, units outside
// fp32's range) is marked inexact and handled by the float path.

export const FP4_BLOCK = 32;
/** Codes are stored offset by this (u8 in [0, 24]) so that vpmaddubsw can take them unsigned. */
export const FP4_CODE_OFFSET = 12;

/** Rows interleaved per group of this many in `codes` (see codeIndex). */
export const FP4_GROUP = 8;

/**
 * Index in `codes` of element i of row t: rows are interleaved in groups of 8 by 4-element
 * chunks, [t/8][i/4][t%8][i%4], so that one 32-byte load holds the same chunk of 8 rows
 * (a kernel then multiplies it by one broadcast query chunk, with no horizontal sums).
 */
export function codeIndex(t: number, i: number, width: number): number {
  return (t - (t % FP4_GROUP)) * width + (i >> 2) * 4 * FP4_GROUP + (t % FP4_GROUP) * 4 + (i & 3);
}

/** Rows in compact form, grown by the owner; see the file comment. */
export interface Fp4Rows {
  readonly width: number;
  /** Offset codes (code + 12), rows interleaved per group of 8 (codeIndex); whole groups allocated. */
  readonly codes: Uint8Array;
  /** Unit of each block [count, width/32] (a power of two; 0 for an all-zero block). */
  readonly units: Float32Array;
  /** 1 when row t is held exactly by its codes and units. */
  readonly exact: Uint8Array;
}

/** floor(log2(m)) for finite m > 0. */
function ilog2(m: number): number {
  let e = Math.floor(Math.log2(m));
  if (2 ** e > m) e--;
  else if (2 ** (e + 1) <= m) e++;
  return e;
}

/**
 * Encodes src[so .. so+width) (width a multiple of 32) into codes[co ..] and units[uo ..]:
 * the unit of a block is 2^(floor(log2 max|v|) - 3), so e2m1-times-scale values land on
 * integer codes with |code| <= 12. Returns false when the row is not exactly representable.
 */
export function encodeFp4Row(src: ArrayLike<number>, so: number, width: number, codes: Uint8Array, co: number, units: Float32Array, uo: number): boolean {
  for (let b = 0; b < width; b += FP4_BLOCK) {
    let m = 0;
    for (let i = 0; i < FP4_BLOCK; i++) {
      const a = Math.abs(src[so + b + i]!);
      if (!(a <= m)) m = a; // NaN lands here too and fails the finiteness test below
    }
    if (!Number.isFinite(m)) return false;
    const ub = uo + b / FP4_BLOCK;
    if (m === 0) {
      units[ub] = 0;
      codes.fill(FP4_CODE_OFFSET, co + b, co + b + FP4_BLOCK);
      continue;
    }
    const unit = 2 ** (ilog2(m) - 3);
    if (unit < 2 ** -149 || unit > 2 ** 127) return false;
    units[ub] = unit;
    const inv = 1 / unit; // exact: a power of two within float64's range
    for (let i = 0; i < FP4_BLOCK; i++) {
      const c = src[so + b + i]! * inv;
      if (c !== Math.trunc(c) || c > 12 || c < -12) return false;
      codes[co + b + i] = c + FP4_CODE_OFFSET;
    }
  }
  return true;
}
