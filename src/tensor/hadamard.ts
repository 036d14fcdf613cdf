// Hadamard rotation of spec §2.7 (fast_hadamard_transform with scale n^-0.5):
// Sylvester order, each output an exact ±1 sum rounded to fp32, times
// fl32(n^-0.5), rounded to BF16.
import { roundBf16 } from './formats.js';
import { settleSum, sumF32 } from './exact.js';

const signCache = new Map<number, Int8Array>();
function signs(n: number): Int8Array {
  let h = signCache.get(n);
  if (!h) {
    h = new Int8Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) h[i * n + j] = popcount(i & j) & 1 ? -1 : 1;
    signCache.set(n, h);
  }
  return h;
}
function popcount(v: number): number {
  let c = 0;
  for (; v; v &= v - 1) c++;
  return c;
}

let fw = new Float64Array(128);

/**
 * In place on x[o .. o+n) (n a power of two); x holds BF16 values. A float64 fast
 * Walsh-Hadamard transform gives each output within (n+2)u of Σ|x| (any summation tree of
 * n terms does), which settleSum turns into the exactly rounded fp32 sum; outputs it cannot
 * decide are summed exactly from the sign table (the reference path).
 */
export function hadamardBf16(x: Float32Array, o: number, n: number): void {
  if ((n & (n - 1)) !== 0) throw new RangeError(`hadamard: ${n} is not a power of two`);
  const scale = Math.fround(n ** -0.5);
  if (fw.length < n) fw = new Float64Array(n);
  const b = fw;
  let t = 0;
  for (let i = 0; i < n; i++) {
    const v = x[o + i]!;
    b[i] = v;
    t += Math.abs(v);
  }
  // Sylvester order: out[j] = Σ_i (-1)^popcount(i&j) x_i
  for (let len = 1; len < n; len <<= 1) {
    for (let i = 0; i < n; i += len << 1) {
      for (let k = i; k < i + len; k++) {
        const u = b[k]!;
        const v = b[k + len]!;
        b[k] = u + v;
        b[k + len] = u - v;
      }
    }
  }
  let slow: Int32Array | null = null;
  let nSlow = 0;
  for (let j = 0; j < n; j++) {
    const r = settleSum(b[j]!, t, n);
    if (r === r) b[j] = r;
    else (slow ??= new Int32Array(n))[nSlow++] = j;
  }
  if (nSlow > 0) {
    const h = signs(n);
    const terms = new Float64Array(n);
    for (let q = 0; q < nSlow; q++) {
      const j = slow![q]!;
      for (let i = 0; i < n; i++) terms[i] = h[i * n + j]! * x[o + i]!;
      b[j] = sumF32(terms, n);
    }
  }
  for (let j = 0; j < n; j++) x[o + j] = roundBf16(Math.fround(b[j]! * scale));
}

/** The O(n²) reference: every output an exact signed sum (tests compare the fast path to it). */
export function hadamardBf16Reference(x: Float32Array, o: number, n: number): void {
  const h = signs(n);
  const scale = Math.fround(n ** -0.5);
  const terms = new Float64Array(n);
  const out = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    for (let i = 0; i < n; i++) terms[i] = h[i * n + j]! * x[o + i]!;
    out[j] = roundBf16(Math.fround(sumF32(terms, n) * scale));
  }
  for (let j = 0; j < n; j++) x[o + j] = out[j]!;
}
