// Model-level results: prefill and decode tokens/s of the embedded default and
// of a synthetic checkpoint larger than the caches (`dsv4 init` preset
// bench-2g), decode weight traffic over the measured bandwidth, and decode
// tokens/s against context length on a small config. Prefill and decode (one sequence, and
// BATCH_SEQS sequences per step) also run in fast numerics (`--numerics fast`: fp32 products for >= 16
// rows, FP8/BF16 ones from 3), reported beside the exact default. Checkpoints are written once into
// .dsv4/bench/ (gitignored) and reused.
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { freemem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initCheckpoint } from '../src/checkpoint/init.js';
import { tensorInventory } from '../src/checkpoint/inventory.js';
import { readCheckpointConfig } from '../src/checkpoint/open.js';
import type { ModelArgs } from '../src/checkpoint/types.js';
import { loadModel, type Dsv4Model } from '../src/model/index.js';
import type { Kernels } from '../src/tensor/kernels.js';
import type { MachineLimits } from './machine.js';
import { PAIRED_ROW, PROBE_BYTES, pairSteps, type PairedDecode } from './paired.js';
import { now, type BenchRow } from './util.js';
import { speculationCost, type SpeculationCost } from './speculation.js';

const BENCH_DIR = fileURLToPath(new URL('../../.dsv4/bench/', import.meta.url));

/** A checkpoint of `preset` under .dsv4/bench/, written on first use. */
export async function benchCheckpoint(preset: string, log: (s: string) => void): Promise<string> {
  const dir = join(BENCH_DIR, preset);
  const done = join(dir, '.bench-complete');
  if (existsSync(done)) return dir;
  mkdirSync(dir, { recursive: true });
  log(`writing the ${preset} checkpoint to ${dir} (once)...`);
  const t0 = now();
  await initCheckpoint({ preset, out: dir, seed: 1, force: true });
  writeFileSync(done, '');
  log(`  written in ${(now() - t0).toFixed(0)} s`);
  return dir;
}

/** Weight bytes a decode step reads and its multiply-add FLOPs (routed experts: top-k of them; MTP unused);
 *  headFlops: the output head's share, which a prefill spends once (logits of the last token only). */
export function decodeTraffic(a: ModelArgs): { bytes: number; flops: number; headFlops: number } {
  let bytes = 0;
  let flops = 0;
  let headFlops = 0;
  const share = a.nActivatedExperts / a.nRoutedExperts;
  for (const t of tensorInventory(a)) {
    const b = t.shape.reduce((x, y) => x * y, 1) * (t.dtype === 'F32' || t.dtype === 'I32' ? 4 : t.dtype === 'BF16' ? 2 : 1);
    if (t.role === 'mtp') continue;
    if (t.role === 'embed') {
      bytes += b / a.vocabSize;
      continue;
    }
    const f = t.shape.length === 2 ? 2 * t.params : 0;
    const k = t.role === 'routed-expert' ? share : 1;
    bytes += b * k;
    flops += f * k;
    if (t.role === 'head') headFlops += f;
  }
  return { bytes, flops, headFlops };
}

export function tokens(n: number, vocab: number, salt: number): Int32Array {
  return new Int32Array(n).map((_, i) => (i * 7919 + salt * 104729 + 13) % vocab);
}

interface ModelRun {
  /** The median of PREFILL_RUNS prefills of the same tokens, each on a fresh sequence. */
  prefillTokS: number;
  /** The slowest and the fastest of them, tok/s. */
  prefillRange: [number, number];
  decodeTokS: number;
  decodeSteps: number;
  /** Tokens/s of the median decode step (this VM's neighbours make single steps swing). */
  decodeMedianTokS: number;
  /** Decode steps over the read probes beside them (./paired.ts), when a probe was given. */
  paired?: PairedDecode;
  /** Seconds spent reading all routed experts before timing (0 when skipped). */
  warmSeconds: number;
  /** Tokens/s of decode steps over BATCH_SEQS sequences at once (0 when not run). */
  batchTokS: number;
  /** Verify-step and MTP-draft times (models with an MTP block). */
  speculation: SpeculationCost | null;
}

/** Sequences per step in the batched decode rows: products of that many rows (fast FP8 from 3). */
const BATCH_SEQS = 4;
/** Prefills per model and numerics; the row reports their median. */
const PREFILL_RUNS = 3;

/** The prefill row's note on its runs. */
function prefillRuns(r: ModelRun): string {
  return `median of ${PREFILL_RUNS} runs (${r.prefillRange[0].toFixed(1)}-${r.prefillRange[1].toFixed(1)} tok/s)`;
}

/** Reads every routed expert once (when they fit comfortably in free memory), so decode
 *  steps are not timed reading experts lazily from disk (~25 ms/token on bench-2g). */
function warmExperts(m: Dsv4Model, dir: string): number {
  const bytes = checkpointBytes(dir);
  if (bytes > 0.5 * freemem()) return 0;
  const t0 = now();
  for (let l = 0; l < m.args.nLayers; l++) for (let e = 0; e < m.args.nRoutedExperts; e++) m.experts.get(l, e);
  return now() - t0;
}

function checkpointBytes(dir: string): number {
  return readdirSync(dir).filter((f) => f.endsWith('.safetensors')).reduce((s, f) => s + statSync(join(dir, f)).size, 0);
}

async function runModel(dir: string, kernels: Kernels, prefill: number, decode: number, budget: number, probe?: { read: () => number; bytes: number },
  draftKernels: Kernels | null = null): Promise<ModelRun> {
  const m = await loadModel(dir, { kernels });
  const warmSeconds = warmExperts(m, dir);
  const warm = m.newState();
  m.forward([{ state: warm, tokens: tokens(4, m.vocabSize, 1) }]); // warm-up: dense weights, JIT
  m.forward([{ state: warm, tokens: tokens(1, m.vocabSize, 2) }]); // and the 1-row kernels' first-use caches (4 rows can take other kernels)
  // prefill from position 0 of a fresh sequence (the reference's prefill), PREFILL_RUNS times: one 4-second
  // bench-2g prefill is one sample of a shared VM (a neighbour took 10-35% of single runs); then decode on it
  const runs = Array.from({ length: PREFILL_RUNS }, () => {
    const state = m.newState();
    const t0 = now();
    m.forward([{ state, tokens: tokens(prefill, m.vocabSize, 2) }]);
    return { state, seconds: now() - t0 };
  });
  const st = runs[runs.length - 1]!.state;
  const tps = runs.map((r) => r.seconds).sort((a, b) => a - b);
  const tp = tps[tps.length >> 1]!;
  let n = 0;
  const t1 = now();
  const steps: number[] = [];
  const probes = probe ? [probe.read()] : [];
  while (n < decode && (n < 2 || now() - t1 < budget)) {
    const ts = now();
    m.forward([{ state: st, tokens: tokens(1, m.vocabSize, 3 + n) }]);
    steps.push(now() - ts);
    if (probe) probes.push(probe.read());
    n++;
  }
  const decodeTokS = n / steps.reduce((a, b) => a + b, 0); // the steps alone (probes run between them)
  const paired = probe ? pairSteps(steps, probes, probe.bytes) : undefined;
  const decodeMedianTokS = 1 / [...steps].sort((a, b) => a - b)[steps.length >> 1]!;
  // batched decode: BATCH_SEQS short sequences, each step one token of every one
  let batchTokS = 0;
  if (decode > 0) {
    const states = Array.from({ length: BATCH_SEQS }, () => m.newState());
    m.forward(states.map((state, i) => ({ state, tokens: tokens(8, m.vocabSize, 100 + i) })));
    m.forward(states.map((state, i) => ({ state, tokens: tokens(1, m.vocabSize, 150 + i) }))); // first-use caches of BATCH_SEQS-row kernels
    const steps = Math.max(2, decode);
    const t2 = now();
    for (let i = 0; i < steps; i++) m.forward(states.map((state, j) => ({ state, tokens: tokens(1, m.vocabSize, 200 + i * BATCH_SEQS + j) })));
    batchTokS = (steps * BATCH_SEQS) / (now() - t2);
  }
  const speculation = decode > 0 ? speculationCost(m, Math.max(4, decode >> 1), (k, salt) => tokens(k, m.vocabSize, salt), draftKernels) : null;
  return { prefillTokS: prefill / tp, prefillRange: [prefill / tps[tps.length - 1]!, prefill / tps[0]!], decodeTokS, decodeSteps: n, decodeMedianTokS, paired, warmSeconds, batchTokS, speculation };
}

/** The median step's rate beside the mean (which the value and ratio report). */
function median(r: ModelRun): string {
  return `; median step ${(1000 / r.decodeMedianTokS).toFixed(1)} ms = ${r.decodeMedianTokS.toFixed(2)} tok/s`;
}

export async function benchModels(
  kernels: Kernels,
  lim: MachineLimits | null,
  rows: BenchRow[],
  log: (s: string) => void,
  opts: { skip2g: boolean; fastKernels?: Kernels; readProbe?: () => number },
): Promise<void> {
  const bw = lim ? lim.readGBs[lim.threads]! : NaN;
  const peak = lim ? lim.peakGflops[lim.threads]! : NaN;
  const models: { preset: 'default' | 'bench-2g'; prefill: number; decode: number }[] = [
    // prefill long enough that the experts see GEMM-sized row counts; ~16 decode steps for stable figures
    { preset: 'default', prefill: 256, decode: 16 },
    { preset: 'bench-2g', prefill: 256, decode: 16 },
  ];
  for (const c of models) {
    const section = `model ${c.preset}`;
    if (c.preset === 'bench-2g' && opts.skip2g) {
      rows.push({ section, name: 'skipped', value: null, unit: '', note: 'DSV4_BENCH_SKIP_2G set' });
      continue;
    }
    const dir = await benchCheckpoint(c.preset, log);
    const traffic = decodeTraffic(readCheckpointConfig(dir).args);
    // bench-2g decode steps also paired with read probes (./paired.ts); the default model fits in the caches
    const probe = c.preset === 'bench-2g' && opts.readProbe ? { read: opts.readProbe, bytes: traffic.bytes } : undefined;
    const r = await runModel(dir, kernels, c.prefill, c.decode, 60, probe, opts.fastKernels ?? null); // drafts: fast kernels, as the engine
    const gbs = (traffic.bytes * r.decodeTokS) / 1e9;
    // weight math of the prefill: every layer per token, the head once (last token's logits)
    const prefillFlops = (traffic.flops - traffic.headFlops) * c.prefill + traffic.headFlops;
    const gf = prefillFlops / (c.prefill / r.prefillTokS) / 1e9;
    rows.push({
      section, name: `prefill ${c.prefill} tokens`, value: r.prefillTokS, unit: 'tok/s', ratio: lim ? gf / peak : undefined,
      note: `${gf.toFixed(2)} GFLOP/s of weight math over fp32 peak; ${prefillRuns(r)}`,
    });
    const f = opts.fastKernels ? await runModel(dir, opts.fastKernels, c.prefill, c.decode, 60, probe) : undefined;
    if (f) {
      const gff = prefillFlops / (c.prefill / f.prefillTokS) / 1e9;
      rows.push({
        section, name: `prefill ${c.prefill} tokens, fast numerics`, value: f.prefillTokS, unit: 'tok/s', ratio: lim ? gff / peak : undefined,
        note: `${gff.toFixed(2)} GFLOP/s over fp32 peak; ${(f.prefillTokS / r.prefillTokS).toFixed(2)}x exact (not bit-exact: drift in \`dsv4 verify --numerics fast\`); ${prefillRuns(f)}`,
      });
    }
    const warm = r.warmSeconds > 0 ? `; experts read beforehand (${r.warmSeconds.toFixed(1)} s)` : '; experts read lazily (too large to preload)';
    rows.push({ section, name: `decode (${r.decodeSteps} steps)`, value: r.decodeTokS, unit: 'tok/s', ratio: lim ? gbs / bw : undefined, note: `${(traffic.bytes / 1e6).toFixed(0)} MB weights/token = ${gbs.toFixed(2)} GB/s over read bandwidth${median(r)}${warm}` });
    if (f) {
      const gbsF = (traffic.bytes * f.decodeTokS) / 1e9;
      rows.push({
        section, name: `decode (${f.decodeSteps} steps), fast numerics`, value: f.decodeTokS, unit: 'tok/s', ratio: lim ? gbsF / bw : undefined,
        note: `${gbsF.toFixed(2)} GB/s over read bandwidth; ${(f.decodeTokS / r.decodeTokS).toFixed(2)}x exact (one sequence: FP8/BF16 1-row products as 32 fp32 chains, FP4 experts with int8 activations; not bit-exact)`,
      });
    }
    for (const [run, mode] of [[r, ''], [f, ', fast numerics']] as const) {
      if (!run?.paired) continue;
      const p = run.paired;
      rows.push({
        section, name: `${PAIRED_ROW}${mode}`, value: p.gbs, unit: 'GB/s', ratio: p.ratio,
        note: `median of ${p.pairs} steps' GB/s over the mean of the ${PROBE_BYTES >> 20} MiB read probes just before and after each (probes ${p.probeRange[0].toFixed(1)}-${p.probeRange[1].toFixed(1)} GB/s)`,
      });
    }
    rows.push({ section, name: `decode, ${BATCH_SEQS} sequences per step`, value: r.batchTokS, unit: 'tok/s', note: `tokens of all sequences per second` });
    for (const [run, mode] of [[r, ''], [f, ', fast numerics']] as const) {
      const sc = run?.speculation;
      if (!sc) continue;
      const plain = 1 / run.decodeMedianTokS;
      const cost = (sc.verify + sc.draft) / plain;
      rows.push({
        section, name: `speculative step cost${mode}`, value: cost, unit: 'x',
        note: `(verify ${(sc.verify * 1e3).toFixed(1)} ms + MTP draft ${(sc.draft * 1e3).toFixed(1)} ms) over the median plain step; break-even acceptance ${(cost - 1).toFixed(2)}; at 0.85 accepted: ${(1.85 / cost).toFixed(2)}x tokens/s`,
      });
    }
    if (f) {
      rows.push({
        section, name: `decode, ${BATCH_SEQS} sequences per step, fast numerics`, value: f.batchTokS, unit: 'tok/s',
        note: `${(f.batchTokS / r.batchTokS).toFixed(2)}x exact (${BATCH_SEQS}-row FP8/BF16 products in fp32 lanes; not bit-exact)`,
      });
    }
  }
}
