// Element formats of spec §2.1: BF16, FP8 E4M3FN, UE8M0, FP4 E2M1.
// BF16 values travel as JS numbers / Float32Array entries holding exactly
// representable BF16 values (kernels.ts conventions).

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Bits of the BF16 nearest (RNE) to fround(x). Canonical rounding (golden
 *  README "Numerics") always rounds to fp32 first, then to BF16. */
export function bf16Bits(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x7fffff) !== 0) return 0x7fc0; // NaN
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The value of BF16 bits. */
export function bf16Value(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0]!;
}

/** fround(x) rounded to BF16 (RNE), as a number. */
export function roundBf16(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  if ((u & 0x7f800000) === 0x7f800000) return f32[0]!; // inf / NaN
  u32[0] = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16;
  return f32[0]!;
}

/** Rounds every entry of `a` to BF16 in place. */
export function roundBf16Array(a: Float32Array): Float32Array {
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length);
  for (let i = 0; i < u.length; i++) {
    const b = u[i]!;
    if ((b & 0x7f800000) === 0x7f800000) continue;
    u[i] = ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) << 16;
  }
  return a;
}

/** BF16 bits -> Float32Array. */
export function bf16ToF32(bits: Uint16Array, out = new Float32Array(bits.length)): Float32Array {
  const u = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i]! << 16;
  return out;
}

/** Float32Array (BF16-representable or not) -> BF16 bits (RNE). */
export function f32ToBf16(a: Float32Array, out = new Uint16Array(a.length)): Uint16Array {
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length);
  for (let i = 0; i < u.length; i++) {
    const b = u[i]!; // bf16Bits on the bits
    out[i] = (b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0 ? 0x7fc0 : ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

// ---- FP8 E4M3FN: s eeee mmm, bias 7, no inf, 0x7f/0xff NaN, max 448 ----

function e4m3Decode(code: number): number {
  const s = code & 0x80 ? -1 : 1;
  const e = (code >> 3) & 0xf;
  const m = code & 7;
  if (e === 15 && m === 7) return NaN;
  if (e === 0) return s * (m / 8) * 2 ** -6;
  return s * (1 + m / 8) * 2 ** (e - 7);
}

/** Value of each of the 256 E4M3FN codes. */
export const E4M3_VALUES: Float32Array = (() => {
  const t = new Float32Array(256);
  for (let c = 0; c < 256; c++) t[c] = e4m3Decode(c);
  return t;
})();

export const E4M3_MAX = 448;

/** Rounds to the nearest E4M3FN value, ties to even, saturating to ±448
 *  (callers clamp first, as kernel.py does). Returns the code. NaN -> 0x7f. */
export function e4m3Encode(x: number): number {
  if (Number.isNaN(x)) return 0x7f;
  const sign = x < 0 || Object.is(x, -0) ? 0x80 : 0;
  let a = Math.abs(x);
  if (a >= E4M3_MAX) return sign | 0x7e;
  // exponent of a, floored at the subnormal exponent -6
  let e = a === 0 ? -6 : Math.max(-6, Math.floor(Math.log2(a)));
  if (2 ** e > a) e--; // guard log2 rounding
  else if (2 ** (e + 1) <= a) e++;
  if (e < -6) e = -6;
  const ulp = 2 ** (e - 3);
  const r = a / ulp; // exact: scaling by a power of two
  let n = Math.floor(r);
  const frac = r - n;
  if (frac > 0.5 || (frac === 0.5 && (n & 1) === 1)) n++;
  a = n * ulp;
  if (a === 0) return sign;
  if (a < 2 ** -6) return sign | n; // subnormal: m = n (n <= 8 handled below)
  let ee = Math.floor(Math.log2(a));
  if (2 ** ee > a) ee--;
  else if (2 ** (ee + 1) <= a) ee++;
  const m = Math.round(a / 2 ** ee * 8) - 8;
  return sign | ((ee + 7) << 3) | m;
}

// ---- UE8M0: unsigned exponent byte, 2^(b-127), 255 = NaN ----

export function e8m0Value(b: number): number {
  return b === 255 ? NaN : 2 ** (b - 127);
}

/** Exponent byte of a power of two (or NaN -> 255). */
export function e8m0Encode(x: number): number {
  if (!(x > 0) || !Number.isFinite(x)) return 255;
  const e = Math.log2(x);
  if (!Number.isInteger(e) || e < -127 || e > 127) throw new RangeError(`not a UE8M0 value: ${x}`);
  return e + 127;
}

// ---- FP4 E2M1: nibble s ee m; packed low nibble = even element (§2.1) ----

export const E2M1_VALUES: Float32Array = new Float32Array([
  0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6,
]);

/** Nearest E2M1 value, ties to the even code, saturating to ±6. Returns the nibble. */
export function e2m1Encode(x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 8 : 0;
  const a = Math.abs(x);
  let best = 0;
  for (let c = 1; c < 8; c++) {
    const d = Math.abs(E2M1_VALUES[c]! - a);
    const db = Math.abs(E2M1_VALUES[best]! - a);
    if (d < db || (d === db && (c & 1) === 0)) best = c;
  }
  if (Number.isNaN(x)) best = 7;
  return sign | best;
}

/** Packs E2M1 nibbles (one per element) two per byte, low nibble = even element. */
export function packE2M1(nibbles: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(Math.ceil(nibbles.length / 2));
  for (let i = 0; i < nibbles.length; i++) out[i >> 1]! |= (nibbles[i]! & 15) << ((i & 1) * 4);
  return out;
}

/** Element i of packed E2M1 data. */
export function unpackE2M1(data: Uint8Array, i: number): number {
  return E2M1_VALUES[(data[i >> 1]! >> ((i & 1) * 4)) & 15]!;
}
