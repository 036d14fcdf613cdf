// Decode steps paired with read-bandwidth probes taken right before and after each one. This VM's
// neighbours take bandwidth away for seconds at a time, so a step compared with a probe from a minute
// earlier (the machine section's, taken quiet) reads low or high by 15-20 points; each step's GB/s over
// the probes beside it, median over the steps, is the ratio with that drift taken out. Reported beside
// the mean-based ratio, never instead of it.
import type { NativeAddon } from '../src/tensor/native.js';

/** The bench-2g row (and its fast-numerics twin) of these pairs; a target reads it (./targets.ts). */
export const PAIRED_ROW = 'decode steps over adjacent read probes';

/** Bytes each probe reads: well beyond the 32 MiB last-level cache, ~10 ms at 25 GB/s. */
export const PROBE_BYTES = 256 * 2 ** 20;

/** A read probe on `threads` threads over one buffer made once (the probe buffer stays mapped). */
export function readProbe(addon: NativeAddon, threads: number, bytes = PROBE_BYTES): () => number {
  const buf = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i += 4096) buf[i] = i >>> 12; // pages mapped before the first timing
  return () => addon.readBandwidth(buf, threads, 1);
}

export interface PairedDecode {
  /** Median over steps of (bytes / step seconds) / mean(probe before, probe after). */
  ratio: number;
  /** Median of the steps' GB/s. */
  gbs: number;
  /** Smallest and largest probe, GB/s. */
  probeRange: [number, number];
  pairs: number;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/**
 * steps[i]: seconds of decode step i; probes[i] and probes[i + 1]: GB/s measured right before and
 * right after it (so probes.length = steps.length + 1); bytes: the weight bytes one step reads.
 */
export function pairSteps(steps: readonly number[], probes: readonly number[], bytes: number): PairedDecode {
  if (steps.length === 0 || probes.length !== steps.length + 1) throw new Error(`pairSteps: ${steps.length} steps need ${steps.length + 1} probes, got ${probes.length}`);
  const gbs = steps.map((s) => bytes / s / 1e9);
  const ratios = gbs.map((g, i) => g / ((probes[i]! + probes[i + 1]!) / 2));
  return { ratio: median(ratios), gbs: median(gbs), probeRange: [Math.min(...probes), Math.max(...probes)], pairs: steps.length };
}
