// `npm run bench`: measures this machine's limits with the native code, then
// kernel-level and model-level speed as ratios to those limits, in one run.
// Prints a table and writes bench-results.json. Sections skip with a one-line
// reason when a prerequisite is missing.
// Env: DSV4_BENCH_SECTIONS=machine,kernels,models,context,engine (default all),
// DSV4_BENCH_SKIP_2G=1 (no >= 2 GB checkpoint), DSV4_BENCH_CONTEXT_BUDGET (s, default 200).
import { writeFileSync } from 'node:fs';
import { getKernels, loadNative } from '../src/tensor/native.js';
import { benchKernels } from './kernels.js';
import type { Kernels } from '../src/tensor/kernels.js';
import { referenceFastProducts } from '../src/tensor/fast-products.js';
import { measureMachine, type MachineLimits } from './machine.js';
import { benchContext } from './context.js';
import { benchModels } from './model.js';
import { readProbe } from './paired.js';
import { targetRows } from './targets.js';
import { fmt, now, type BenchRow } from './util.js';

const rows: BenchRow[] = [];
const log = (s: string) => console.log(s);
const wanted = new Set((process.env.DSV4_BENCH_SECTIONS ?? 'machine,kernels,models,context,engine').split(',').map((s) => s.trim()));

function skip(section: string, reason: string): void {
  rows.push({ section, name: 'skipped', value: null, unit: '', note: reason });
  log(`${section}: skipped (${reason})`);
}

async function section(name: string, fn: () => Promise<void> | void): Promise<void> {
  if (!wanted.has(name)) return;
  const t0 = now();
  log(`${name}...`);
  try {
    await fn();
  } catch (e) {
    skip(name, `failed: ${(e as Error).message.split('\n')[0]}`);
  }
  log(`${name}: ${(now() - t0).toFixed(0)} s`);
}

/** Kernels in fast numerics when its products are native (the TypeScript reference would take hours). */
function nativeFast(): Kernels | undefined {
  const fast = getKernels('fast');
  return fast.name.includes(referenceFastProducts.name) ? undefined : fast;
}

async function main(): Promise<void> {
  const t0 = now();
  const { addon, reason } = loadNative();
  const kernels = getKernels('exact');
  log(`kernels: ${kernels.name}`);
  let lim: MachineLimits | null = null;
  await section('machine', () => {
    if (!addon) return skip('machine', `native addon unavailable: ${reason}`);
    lim = measureMachine(addon, rows);
  });
  await section('kernels', () => {
    if (!addon || !lim) return skip('kernels', addon ? 'needs the machine section' : `native addon unavailable: ${reason}`);
    benchKernels(kernels, lim, rows, nativeFast());
  });
  await section('models', async () => {
    if (!lim) log('models: no machine limits in this run, so no ratios');
    const fastKernels = nativeFast();
    if (!fastKernels) log('models: fast numerics skipped (no native fast products)');
    const limits = lim as MachineLimits | null; // set inside the machine section's callback (TS narrows it to null here)
    const probe = addon && limits ? readProbe(addon, limits.threads) : undefined;
    await benchModels(kernels, lim, rows, log, { skip2g: !!process.env.DSV4_BENCH_SKIP_2G, fastKernels, readProbe: probe });
  });
  await section('context', () => benchContext(kernels, rows, log, Number(process.env.DSV4_BENCH_CONTEXT_BUDGET ?? 200)));
  await section('engine', async () => {
    // the engine helper's section (bench/engine.ts), when present
    const path = './engine.js';
    // keep the whole bench within ~10 minutes on a 2-core machine
    process.env.DSV4_BENCH_TTFT_TOKENS ??= '1024';
    const mod = (await import(path).catch(() => null)) as { runEngineBench?: () => Promise<unknown> } | null;
    if (!mod?.runEngineBench) return skip('engine', 'bench/engine.ts not present');
    const r = await mod.runEngineBench();
    rows.push({ section: 'engine', name: 'result', value: null, unit: '', note: JSON.stringify(r) });
  });

  rows.push(...targetRows(rows));
  const w = [18, 44, 10, 8, 8];
  log('');
  log(['section', 'measure', 'value', 'unit', 'ratio'].map((h, i) => h.padEnd(w[i]!)).join(' ') + ' note');
  for (const r of rows) {
    const ratio = r.ratio === undefined ? '' : `${(r.ratio * 100).toFixed(0)}%`;
    log([r.section, r.name, fmt(r.value, 2), r.unit, ratio].map((c, i) => c.padEnd(w[i]!)).join(' ') + ` ${r.note ?? ''}`);
  }
  const out = { date: new Date().toISOString(), kernels: kernels.name, seconds: now() - t0, limits: lim, rows };
  writeFileSync('bench-results.json', JSON.stringify(out, null, 2) + '\n');
  log(`\nwrote bench-results.json (${(now() - t0).toFixed(0)} s)`);
}

main().catch((e: unknown) => {
  console.error(`bench failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
