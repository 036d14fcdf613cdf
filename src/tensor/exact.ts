// Exactly rounded fp32 results of sums, dot products and means (golden README
// "Numerics": every reduction is evaluated exactly and rounded once).
//
// Fast path: sum in float64 with a rigorous error bound; if every value inside
// the bound rounds to the same fp32, that is the answer. Otherwise (ties,
// heavy cancellation, results near zero) fall back to exact BigInt arithmetic.
// All terms handed in must themselves be exact (e.g. products of a BF16 and an
// fp32 value, which float64 holds exactly).

const U = 2 ** -53;

const f64 = new Float64Array(1);
const w32 = new Uint32Array(f64.buffer);

/** value = mant * 2^exp exactly. */
function parts(x: number): [bigint, number] {
  f64[0] = x;
  const lo = w32[0]!;
  const hi = w32[1]!;
  const e = (hi >>> 20) & 0x7ff;
  let m = (hi & 0xfffff) * 4294967296 + lo;
  let exp: number;
  if (e === 0) exp = -1074;
  else {
    m += 4503599627370496; // 2^52
    exp = e - 1075;
  }
  const bm = BigInt(m);
  return [hi >>> 31 ? -bm : bm, exp];
}

function bitLength(v: bigint): number {
  return v === 0n ? 0 : v.toString(2).length;
}

/** RN32((mant * 2^exp) / div) for an exact rational, ties to even. */
export function roundRationalToF32(mant: bigint, exp: number, div = 1): number {
  if (mant === 0n) return 0;
  const neg = mant < 0n;
  const a = neg ? -mant : mant;
  const d = BigInt(div);
  const s = Math.max(28 + bitLength(d) - bitLength(a), exp + 152);
  let num = a;
  let den = d;
  if (s >= 0) num = a << BigInt(s);
  else den = d << BigInt(-s);
  const q = num / den;
  const sticky = num % den !== 0n;
  const e0 = exp - s; // value = (q + frac) * 2^e0
  const bl = bitLength(q);
  const msbExp = bl - 1 + e0;
  const drop = msbExp >= -126 ? bl - 24 : -149 - e0;
  let kept = q >> BigInt(drop);
  const rem = q & ((1n << BigInt(drop)) - 1n);
  const half = 1n << BigInt(drop - 1);
  if (rem > half || (rem === half && (sticky || (kept & 1n) === 1n))) kept += 1n;
  const v = Number(kept) * 2 ** (e0 + drop);
  return Math.fround(neg ? -v : v);
}

/** RN32(Σ terms[i] / div) exactly (BigInt). */
export function exactSumToF32(terms: ArrayLike<number>, n = terms.length, div = 1): number {
  // Second stage: TwoSum pass. If no addition rounded, the float64 sum is exact and a single
  // (float64 division, then) fp32 rounding is correct (53 >= 2*24+2). Else try the
  // compensated value with its error bound; BigInt only when that is still ambiguous.
  let s = 0;
  let e = 0;
  let ea = 0;
  let finite = true;
  for (let i = 0; i < n; i++) {
    const b = terms[i]!;
    const t = s + b;
    const bb = t - s;
    const err = (s - (t - bb)) + (b - bb);
    s = t;
    e += err;
    ea += Math.abs(err);
    if (!Number.isFinite(t)) finite = false;
  }
  if (!finite) return Math.fround(sumPlain(terms, n) / div);
  if (ea === 0) return Math.fround(div === 1 ? s : s / div);
  const r = s + e;
  const q = r / div;
  const bound = (Math.abs(r) * 2 * U + ea * (n + 2) * U * 1.01) / div + Math.abs(q) * 2 * U;
  const rr = settle(q, bound);
  if (rr === rr) return rr;
  return exactBigSumToF32(terms, n, div);
}

/** RN32(Σ terms[i] / div) exactly (BigInt). */
export function exactBigSumToF32(terms: ArrayLike<number>, n = terms.length, div = 1): number {
  let minExp = Infinity;
  const ps: [bigint, number][] = [];
  for (let i = 0; i < n; i++) {
    const t = terms[i]!;
    if (t === 0) continue;
    const p = parts(t);
    ps.push(p);
    if (p[1] < minExp) minExp = p[1];
  }
  if (ps.length === 0) return 0;
  let acc = 0n;
  for (const [m, e] of ps) acc += m << BigInt(e - minExp);
  return roundRationalToF32(acc, minExp, div);
}

function sumPlain(terms: ArrayLike<number>, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += terms[i]!;
  return s;
}

/** fp32 rounding of s when the exact value lies within ±err of s, else NaN. */
function settle(s: number, err: number): number {
  const r = Math.fround(s);
  if (r === 0 || !Number.isFinite(s)) return NaN;
  const e = err + Math.abs(s) * 4 * U; // also covers the rounding of s ± e itself
  if (Math.fround(s - e) === r && Math.fround(s + e) === r) return r;
  return NaN;
}

/**
 * RN32 of a float64 sum `s` of n exact terms whose absolute values sum to `absSum`,
 * when the naive float64 error bound decides it; NaN when the caller must fall back
 * to an exact path (exactSumToF32).
 */
export function settleSum(s: number, absSum: number, n: number): number {
  if (absSum === 0) return s;
  return settle(s, absSum * (n + 2) * U * 1.01);
}

let scratch = new Float64Array(1024);
function scratchOf(n: number): Float64Array {
  if (scratch.length < n) scratch = new Float64Array(n);
  return scratch;
}

/** RN32(Σ terms) for exact float64 terms. */
export function sumF32(terms: ArrayLike<number>, n = terms.length): number {
  let s = 0;
  let t = 0;
  for (let i = 0; i < n; i++) {
    const v = terms[i]!;
    s += v;
    t += Math.abs(v);
  }
  if (t === 0) return s;
  const r = settle(s, t * (n + 2) * U * 1.01);
  return r === r ? r : exactSumToF32(terms, n);
}

/** RN32(a + b) for exact float64 a, b (e.g. an fma: a = x*y exact). */
export function sum2F32(a: number, b: number): number {
  const s = a + b;
  const bb = s - a;
  const e = (a - (s - bb)) + (b - bb); // TwoSum: s + e = a + b exactly
  if (e === 0) return Math.fround(s);
  const r = settle(s, Math.abs(e));
  if (r === r) return r;
  const tmp = scratchOf(2);
  tmp[0] = a;
  tmp[1] = b;
  return exactSumToF32(tmp, 2);
}

/** RN32(a*b + c) with a single rounding (fp32 a, b). */
export function fma32(a: number, b: number, c: number): number {
  return sum2F32(a * b, c);
}

/**
 * RN32(Σ_i a[ao+i]·b[bo+i]) for operands whose pairwise products float64 holds exactly
 * (BF16 x BF16, BF16 x fp32). The model calls it with Float32Arrays only, which keeps it fast.
 */
export function dotF32(a: ArrayLike<number>, ao: number, b: ArrayLike<number>, bo: number, n: number): number {
  let s0 = 0;
  let s1 = 0;
  let t0 = 0;
  let t1 = 0;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const p0 = a[ao + i]! * b[bo + i]!;
    const p1 = a[ao + i + 1]! * b[bo + i + 1]!;
    s0 += p0;
    s1 += p1;
    t0 += Math.abs(p0);
    t1 += Math.abs(p1);
  }
  if (i < n) {
    const p = a[ao + i]! * b[bo + i]!;
    s0 += p;
    t0 += Math.abs(p);
  }
  const t = t0 + t1;
  if (t === 0) return s0 + s1;
  const r = settle(s0 + s1, t * (n + 2) * U * 1.01);
  if (r === r) return r;
  // typically an exact sum sitting on an fp32 midpoint: the TwoSum stage settles it
  const tmp = scratchOf(n);
  for (let j = 0; j < n; j++) tmp[j] = a[ao + j]! * b[bo + j]!;
  return exactSumToF32(tmp, n);
}

/** The same function, named for the Float32Array call sites. */
export const dotF32x32: (a: Float32Array, ao: number, b: Float32Array, bo: number, n: number) => number = dotF32;

/** RN32(Σ_i fl32(x_i²) / n): torch `x.float().square().mean(-1)` under canonical rounding. */
export function meanSquareF32(x: ArrayLike<number>, xo: number, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) {
    const v = x[xo + i]!;
    s += Math.fround(v * v);
  }
  if (s === 0) return 0;
  const m = s / n;
  const r = settle(m, (s * (n + 2) * U * 1.01) / n + Math.abs(m) * 2 * U);
  if (r === r) return r;
  const tmp = scratchOf(n);
  for (let i = 0; i < n; i++) {
    const v = x[xo + i]!;
    tmp[i] = Math.fround(v * v);
  }
  return exactSumToF32(tmp, n, n);
}

/** RN32(Σ values / n) for exact float64 values. */
export function meanF32(x: ArrayLike<number>, xo: number, n: number): number {
  let s = 0;
  let t = 0;
  for (let i = 0; i < n; i++) {
    const v = x[xo + i]!;
    s += v;
    t += Math.abs(v);
  }
  if (t === 0) return s / n;
  const m = s / n;
  const r = settle(m, (t * (n + 2) * U * 1.01) / n + Math.abs(m) * 2 * U);
  if (r === r) return r;
  const tmp = scratchOf(n);
  for (let i = 0; i < n; i++) tmp[i] = x[xo + i]!;
  return exactSumToF32(tmp, n, n);
}
