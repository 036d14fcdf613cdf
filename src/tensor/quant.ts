// Activation fake-quantizers of spec §2.3 / kernel.py: act_quant (FP8 E4M3,
// power-of-two UE8M0 scales, blocks of 128 or 64) and fp4_act_quant (E2M1,
// blocks of 32). Inputs are BF16 values; all scale math is fp32.
import { E2M1_VALUES, E4M3_VALUES, roundBf16 } from './formats.js';
import type { QuantizedActivations } from './kernels.js';
import type { DecodeOps } from './ops.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** 2^ceil(log2(v)) from the fp32 bits of v (kernel.py fast_round_scale). */
export function pow2CeilScale(v: number): number {
  f32[0] = v;
  const b = u32[0]!;
  const e = ((b >>> 23) & 0xff) - 127 + ((b & 0x7fffff) !== 0 ? 1 : 0);
  return 2 ** e;
}

const FP8_INV = Math.fround(1 / 448);
const FP8_AMAX_MIN = Math.fround(1e-4);
const FP4_INV = Math.fround(1 / 6);
const FP4_AMAX_MIN = 6 * 2 ** -126;

/** E4M3FN code of an fp32 value already clamped to ±448 (RNE). */
export function e4m3Code(v: number): number {
  f32[0] = v;
  const b = u32[0]!;
  const sign = (b >>> 24) & 0x80;
  const E = ((b >>> 23) & 0xff) - 127;
  if (E < -6) {
    // subnormal range: multiples of 2^-9; code n continues into code 8 = 2^-6
    const y = Math.abs(v) * 512;
    let n = Math.floor(y);
    const fr = y - n;
    if (fr > 0.5 || (fr === 0.5 && (n & 1) === 1)) n++;
    return sign | n;
  }
  const m = b & 0x7fffff;
  let code = ((E + 7) << 3) + (m >>> 20);
  const rem = m & 0xfffff;
  if (rem > 0x80000 || (rem === 0x80000 && (code & 1) === 1)) code++;
  return sign | code;
}

/** E2M1 nibble of a value already clamped to ±6 (RNE, ties to the even code). */
export function e2m1Code(v: number): number {
  const s = v < 0 || Object.is(v, -0) ? 8 : 0;
  const a = Math.abs(v);
  let c: number;
  if (a <= 0.25) c = 0;
  else if (a < 0.75) c = 1;
  else if (a <= 1.25) c = 2;
  else if (a < 1.75) c = 3;
  else if (a <= 2.5) c = 4;
  else if (a < 3.5) c = 5;
  else if (a <= 5) c = 6;
  else c = 7;
  return s | c;
}

function blockAmax(x: ArrayLike<number>, o: number, n: number): number {
  let m = 0;
  for (let i = 0; i < n; i++) {
    const a = Math.abs(x[o + i]!);
    if (a > m) m = a;
  }
  return m;
}

/** act_quant scale of one block: 2^ceil(log2(fl32(max(amax,1e-4) * fl32(1/448)))). */
export function fp8BlockScale(x: ArrayLike<number>, o: number, n: number): number {
  return pow2CeilScale(Math.fround(Math.max(blockAmax(x, o, n), FP8_AMAX_MIN) * FP8_INV));
}

/** fp4_act_quant scale of one block. */
export function fp4BlockScale(x: ArrayLike<number>, o: number, n: number): number {
  return pow2CeilScale(Math.fround(Math.max(blockAmax(x, o, n), FP4_AMAX_MIN) * FP4_INV));
}

function clamp(v: number, lim: number): number {
  return v > lim ? lim : v < -lim ? -lim : v;
}

/** act_quant(x, block) non-in-place: E4M3 codes + per-block scales, x [rows, cols]. */
export function actQuant(x: Float32Array, rows: number, cols: number, block = 128, out?: QuantizedActivations): QuantizedActivations {
  if (cols % block !== 0) throw new RangeError(`act_quant: ${cols} columns not a multiple of ${block}`);
  const nb = cols / block;
  const q = out && out.q.length >= rows * cols ? out.q : new Uint8Array(rows * cols);
  const scale = out && out.scale.length >= rows * nb ? out.scale : new Float32Array(rows * nb);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < nb; b++) {
      const o = r * cols + b * block;
      const s = fp8BlockScale(x, o, block);
      scale[r * nb + b] = s;
      for (let i = 0; i < block; i++) q[o + i] = e4m3Code(clamp(Math.fround(x[o + i]! / s), 448));
    }
  }
  return { rows, cols, q, scale };
}

/** actQuant(x, rows, cols, 128) through the kernels' native version when it decides it (same bits). */
export function actQuantWith(k: DecodeOps, x: Float32Array, rows: number, cols: number): QuantizedActivations {
  if (k.actQuant && cols % 128 === 0) {
    const q = new Uint8Array(rows * cols);
    const scale = new Float32Array((rows * cols) / 128);
    if (k.actQuant(x, rows, cols, q, scale)) return { rows, cols, q, scale };
  }
  return actQuant(x, rows, cols, 128);
}

/** act_quant(x[o .. o+n), block, inplace=True): x := bf16(fp8(x/s) * s). */
export function actQuantInPlace(x: Float32Array, o: number, n: number, block: number): void {
  for (let b = 0; b < n; b += block) {
    const s = fp8BlockScale(x, o + b, block);
    for (let i = o + b; i < o + b + block; i++) {
      x[i] = roundBf16(E4M3_VALUES[e4m3Code(clamp(Math.fround(x[i]! / s), 448))]! * s);
    }
  }
}

/** fp4_act_quant(x[o .. o+n), block, inplace=True): x := bf16(e2m1(x/s) * s). */
export function fp4ActQuantInPlace(x: Float32Array, o: number, n: number, block = 32): void {
  for (let b = 0; b < n; b += block) {
    const s = fp4BlockScale(x, o + b, block);
    for (let i = o + b; i < o + b + block; i++) {
      x[i] = roundBf16(E2M1_VALUES[e2m1Code(clamp(Math.fround(x[i]! / s), 6))]! * s);
    }
  }
}
