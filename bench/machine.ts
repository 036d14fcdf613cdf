// Machine limits measured with the same native code in the same run:
// streaming read bandwidth (1 thread and all threads) and the fp32 FMA peak.
import type { NativeAddon } from '../src/tensor/native.js';
import type { BenchRow } from './util.js';

export interface MachineLimits {
  threads: number;
  /** GB/s by thread count. */
  readGBs: Record<number, number>;
  /** fp32 GFLOP/s by thread count. */
  peakGflops: Record<number, number>;
}

const READ_BYTES = 512 * 2 ** 20; // far beyond the last-level cache

export function measureMachine(addon: NativeAddon, rows: BenchRow[]): MachineLimits {
  const threads = addon.info().threads;
  const counts = [...new Set([1, 2, threads])].filter((t) => t <= Math.max(threads, 2));
  const lim: MachineLimits = { threads, readGBs: {}, peakGflops: {} };
  for (const t of counts) {
    // best of 3: other processes only ever lower the figure
    lim.readGBs[t] = Math.max(...[0, 1, 2].map(() => addon.readBandwidth(READ_BYTES, t, 2)));
    lim.peakGflops[t] = Math.max(...[0, 1, 2].map(() => addon.fmaPeak(t, 20_000_000)));
    rows.push({ section: 'machine', name: `read bandwidth, ${t} thread${t > 1 ? 's' : ''}`, value: lim.readGBs[t]!, unit: 'GB/s' });
    rows.push({ section: 'machine', name: `fp32 FMA peak, ${t} thread${t > 1 ? 's' : ''}`, value: lim.peakGflops[t]!, unit: 'GFLOP/s' });
  }
  return lim;
}
