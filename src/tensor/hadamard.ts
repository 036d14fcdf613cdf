// Hadamard rotation of spec §2.7 (fast_hadamard_transform with scale n^-0.5):
// Sylvester order, each output an exact ±1 sum rounded to fp32, times
// fl32(n^-0.5), rounded to BF16.
import { roundBf16 } from './formats.js';
import { sumF32 } from './exact.js';

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

/** In place on x[o .. o+n) (n a power of two); x holds BF16 values. */
export function hadamardBf16(x: Float32Array, o: number, n: number): void {
  if ((n & (n - 1)) !== 0) throw new RangeError(`hadamard: ${n} is not a power of two`);
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
