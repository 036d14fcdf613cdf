// The issue-7 targets, read back from this run's rows: decode >= 70% of the measured read bandwidth
// and prefill >= 40% of the measured fp32 peak on the >= 2 GB model, decode at 128K context <= 2x its
// time at 1K. Each is reported for exact numerics (the default) and, where measured, for the named
// fast mode, with "met" or "not met", so a run states its own verdict.
import { PAIRED_ROW } from './paired.js';
import type { BenchRow } from './util.js';

interface Target {
  name: string;
  section: string;
  row: string; // the measured row's name (its fast-numerics twin adds ", fast numerics")
  goal: number; // the ratio to reach (at least; for `atMost`, at most)
  atMost?: boolean;
  /** The figure compared with `goal`, from the measured row. */
  figure: (r: BenchRow) => number | undefined;
}

const TARGETS: Target[] = [
  { name: 'decode >= 70% of read BW', section: 'model bench-2g', row: 'decode (16 steps)', goal: 0.7, figure: (r) => r.ratio },
  // the same goal with each step over the read probes beside it (./paired.ts: neighbours' drift taken out)
  { name: 'decode >= 70% of adjacent read probes', section: 'model bench-2g', row: PAIRED_ROW, goal: 0.7, figure: (r) => r.ratio },
  { name: 'prefill >= 40% of fp32 peak', section: 'model bench-2g', row: 'prefill 256 tokens', goal: 0.4, figure: (r) => r.ratio },
  {
    name: 'decode at 128K <= 2x 1K', section: 'context (bench-2g)', row: 'decode at 128K context', goal: 2, atMost: true,
    figure: (r) => (r.ratio ? 1 / r.ratio : undefined), // the row's ratio is tok/s against 1K
  },
];

/** One row per target and numerics mode that this run measured. */
export function targetRows(rows: readonly BenchRow[]): BenchRow[] {
  const out: BenchRow[] = [];
  for (const t of TARGETS) {
    for (const mode of ['exact', 'fast numerics'] as const) {
      const name = mode === 'exact' ? t.row : `${t.row}, fast numerics`;
      const r = rows.find((x) => x.section === t.section && x.name === name);
      const v = r && t.figure(r);
      if (v === undefined || !Number.isFinite(v)) continue;
      const met = t.atMost ? v <= t.goal : v >= t.goal;
      out.push({
        section: 'targets', name: `${t.name}, ${mode}`,
        value: t.atMost ? v : v * 100, unit: t.atMost ? 'x' : '%',
        note: `${met ? 'met' : 'not met'} (from "${t.section} / ${name}")`,
      });
    }
  }
  return out;
}
