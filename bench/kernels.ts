// Kernel-level results: FP8/FP4 GEMV (decode) in GB/s of weight bytes over the
// measured read bandwidth, GEMM (prefill) in GFLOP/s over the measured fp32
// peak, and the speedup of the native kernels over the TypeScript reference; the GEMMs also in
// fast numerics (fp32 lanes, `--numerics fast`) when those products are native.
import { dotF32 } from '../src/tensor/exact.js';
import type { Bf16Weight, Fp4Weight, Fp8Weight, Kernels, QuantizedActivations } from '../src/tensor/kernels.js';
import { indexerScoreTs, loadNative } from '../src/tensor/native.js';
import { referenceKernels } from '../src/tensor/reference-kernels.js';
import type { MachineLimits } from './machine.js';
import { randomActs, randomFp4, randomFp8, timeIt, type BenchRow } from './util.js';

type W = Fp8Weight | Fp4Weight;

function call(k: Kernels, x: QuantizedActivations, w: W, y: Float32Array): void {
  if (w.kind === 'fp8') k.fp8Gemm(x, w, y);
  else k.fp4Gemm(x, w, y);
}

function weightBytes(w: W): number {
  return w.data.length + w.scale.length;
}

/** Seconds per multiply-add of the reference on a slice of the same shape (it is far too slow for the full one). */
function referenceSecondsPerMac(kind: 'fp8' | 'fp4', rows: number, inF: number): number {
  const out = 64;
  const w = kind === 'fp8' ? randomFp8(out, inF) : randomFp4(out, inF);
  const x = randomActs(rows, inF);
  const y = new Float32Array(rows * out);
  return timeIt(() => call(referenceKernels, x, w, y), 3, 10) / (rows * out * inF);
}

export function benchKernels(native: Kernels, lim: MachineLimits, rows: BenchRow[], fast?: Kernels): void {
  const bw = lim.readGBs[lim.threads]!;
  const peak = lim.peakGflops[lim.threads]!;
  // GEMV: 64 MiB of weights (twice the L3 of typical desktop/server parts)
  const cases: { kind: 'fp8' | 'fp4'; rows: number; out: number; inF: number }[] = [
    { kind: 'fp8', rows: 1, out: 16384, inF: 4096 },
    { kind: 'fp4', rows: 1, out: 16384, inF: 8192 },
    { kind: 'fp8', rows: 64, out: 2048, inF: 4096 },
    { kind: 'fp4', rows: 64, out: 2048, inF: 4096 },
  ];
  for (const c of cases) {
    const w = c.kind === 'fp8' ? randomFp8(c.out, c.inF) : randomFp4(c.out, c.inF);
    const x = randomActs(c.rows, c.inF);
    const y = new Float32Array(c.rows * c.out);
    const s = timeIt(() => call(native, x, w, y), c.rows === 1 ? 30 : 5);
    const refMac = referenceSecondsPerMac(c.kind, c.rows === 1 ? 1 : 4, c.inF);
    const speedup = (refMac * c.rows * c.out * c.inF) / s;
    const shape = `${c.rows}x${c.inF} . ${c.out}x${c.inF}`;
    if (c.rows === 1) {
      const gbs = weightBytes(w) / s / 1e9;
      rows.push({ section: 'kernels', name: `${c.kind} GEMV ${shape}`, value: gbs, unit: 'GB/s', ratio: gbs / bw, note: `of ${bw.toFixed(1)} GB/s read` });
    } else {
      const gf = (2 * c.rows * c.out * c.inF) / s / 1e9;
      rows.push({ section: 'kernels', name: `${c.kind} GEMM ${shape}`, value: gf, unit: 'GFLOP/s', ratio: gf / peak, note: `of ${peak.toFixed(0)} GFLOP/s fp32 peak` });
      if (fast) {
        const sf = timeIt(() => call(fast, x, w, y), 5);
        const gff = (2 * c.rows * c.out * c.inF) / sf / 1e9;
        rows.push({ section: 'kernels', name: `${c.kind} GEMM ${shape}, fast numerics`, value: gff, unit: 'GFLOP/s', ratio: gff / peak, note: `${(s / sf).toFixed(2)}x the exact GEMM (fp32 lanes, not bit-exact)` });
      }
    }
    rows.push({ section: 'kernels', name: `${c.kind} ${c.rows === 1 ? 'GEMV' : 'GEMM'} speedup over TypeScript`, value: speedup, unit: 'x' });
  }
  benchBf16(native, bw, rows);
  benchIndexer(native, rows);
}

/** Lightning-indexer scoring of one query row against 8192 compressed entries (32K context at ratio 4). */
function benchIndexer(native: Kernels, rows: BenchRow[]): void {
  if (!native.indexerScores) return;
  const H = 64;
  const d = 128;
  const V = 8192;
  const q = new Float32Array(H * d).map((_, i) => (((i * 7) % 13) - 6) * 0.5);
  const keys = new Float32Array(V * d).map((_, i) => Math.fround(Math.sin(i * 0.37)));
  const hw = new Float32Array(H).map((_, i) => Math.fround(Math.cos(i) / 4));
  const out = new Float64Array(V);
  const s = timeIt(() => native.indexerScores!(q, 0, hw, 0, H, d, keys, V, out), 10);
  const ts = timeIt(() => {
    for (let t = 0; t < 64; t++) indexerScoreTs(q, 0, hw, 0, H, d, keys, t);
  }, 3, 10);
  rows.push({ section: 'kernels', name: `indexer scores ${H}x${d} . ${V} entries`, value: (2 * H * d * V) / s / 1e9, unit: 'GFLOP/s' });
  rows.push({ section: 'kernels', name: 'indexer speedup over TypeScript', value: ((ts / 64) * V) / s, unit: 'x' });
}

/** Fallbacks of one call of the exact dense products: level 2 (tight bound, in C) and level 3 (TypeScript). */
function fallbacks(fn: () => void): string {
  const { addon } = loadNative();
  if (!addon) return '';
  const a = addon.denseStats();
  fn();
  const b = addon.denseStats();
  return `per call ${b.tight - a.tight} of ${b.elements - a.elements} re-summed in C, ${b.flagged - a.flagged} in TypeScript`;
}

/** BF16 GEMV (the output head, F.linear): native against exact TypeScript dot products. */
function benchBf16(native: Kernels, bw: number, rows: BenchRow[]): void {
  if (!native.bf16Gemm) return;
  const out = 8192;
  const inF = 4096;
  const w: Bf16Weight = { kind: 'bf16', out, inF, data: new Uint16Array(out * inF).map((_, i) => 0x3c00 + ((i * 2654435761) >>> 24)) };
  const x = new Float32Array(inF).map((_, i) => Math.fround(Math.sin(i) / 8));
  const y = new Float32Array(out);
  const s = timeIt(() => native.bf16Gemm!(x, 1, w, y), 30);
  const gbs = (w.data.byteLength) / s / 1e9;
  rows.push({ section: 'kernels', name: `bf16 GEMV 1x${inF} . ${out}x${inF}`, value: gbs, unit: 'GB/s', ratio: gbs / bw, note: `of ${bw.toFixed(1)} GB/s read; ${fallbacks(() => native.bf16Gemm!(x, 1, w, y))}` });
  if (native.fp8AsBf16Gemm) {
    // wo_a: FP8 codes used as BF16 values, read directly (GB/s of FP8 bytes)
    const w8 = randomFp8(2 * out, inF);
    const y8 = new Float32Array(2 * out);
    const s8 = timeIt(() => native.fp8AsBf16Gemm!(x, 1, w8, 0, 2 * out, y8), 30);
    const g8 = w8.data.byteLength / s8 / 1e9;
    rows.push({ section: 'kernels', name: `fp8-as-bf16 GEMV (wo_a) 1x${inF} . ${2 * out}x${inF}`, value: g8, unit: 'GB/s', ratio: g8 / bw, note: `of ${bw.toFixed(1)} GB/s read; ${fallbacks(() => native.fp8AsBf16Gemm!(x, 1, w8, 0, 2 * out, y8))}` });
  }
  const row = new Float32Array(inF);
  const bits = new Uint32Array(row.buffer);
  const ts = timeIt(() => {
    for (let n = 0; n < 64; n++) {
      for (let k = 0; k < inF; k++) bits[k] = w.data[n * inF + k]! << 16;
      y[n] = dotF32(x, 0, row, 0, inF);
    }
  }, 3, 10);
  rows.push({ section: 'kernels', name: 'bf16 GEMV speedup over TypeScript', value: (ts / 64) * out / s, unit: 'x' });
}
