// Shared helpers of `npm run bench`: timing, result rows, random test data.
import type { Fp4Weight, Fp8Weight, QuantizedActivations } from '../src/tensor/kernels.js';

/** One line of the results table (and of bench-results.json). */
export interface BenchRow {
  section: string;
  name: string;
  value: number | null;
  unit: string;
  /** Achieved over the machine limit measured in the same run (0..1), when meaningful. */
  ratio?: number;
  note?: string;
}

export function now(): number {
  return performance.now() / 1e3;
}

/** Best seconds per call of fn over `reps` calls after one warm-up call, or until `budget` seconds pass
 *  (other processes only ever slow a run down, as for the machine limits). */
export function timeIt(fn: () => void, reps: number, budget = 20): number {
  fn();
  const times: number[] = [];
  const end = now() + budget;
  for (let i = 0; i < reps && (i < 2 || now() < end); i++) {
    const t0 = now();
    fn();
    times.push(now() - t0);
  }
  return Math.min(...times);
}

let seed = 0x2545f491;
function rnd(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 2 ** 32;
}

/** Random bytes; for e4m3 the NaN codes 0x7f/0xff are avoided (act_quant never emits them). */
export function randomCodes(n: number, e4m3: boolean): Uint8Array {
  const a = new Uint8Array(n);
  const u = new Uint32Array(a.buffer, 0, n >> 2);
  for (let i = 0; i < u.length; i++) u[i] = (rnd() * 2 ** 32) >>> 0;
  for (let i = u.length * 4; i < n; i++) a[i] = (rnd() * 256) | 0;
  if (e4m3) for (let i = 0; i < n; i++) if ((a[i]! & 0x7f) === 0x7f) a[i] = a[i]! & 0xf0;
  return a;
}

export function randomActs(rows: number, cols: number): QuantizedActivations {
  return { rows, cols, q: randomCodes(rows * cols, true), scale: new Float32Array((rows * cols) / 128).fill(2 ** -4) };
}

export function randomFp8(out: number, inF: number): Fp8Weight {
  const scale = new Uint8Array(Math.ceil(out / 128) * (inF / 128)).fill(120);
  return { kind: 'fp8', out, inF, data: randomCodes(out * inF, true), scale };
}

export function randomFp4(out: number, inF: number): Fp4Weight {
  return { kind: 'fp4', out, inF, data: randomCodes((out * inF) / 2, false), scale: new Uint8Array((out * inF) / 32).fill(120) };
}

export function fmt(v: number | null, digits = 1): string {
  if (v === null || !Number.isFinite(v)) return '-';
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(digits);
}
