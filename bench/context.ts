// Bench section (c): decode tokens/s against context length (1K, 8K, 32K, 128K) on a
// config with the released attention geometry (window 128, CSA ratio 4 with a 64x128
// indexer and top-512, HCA ratio 128, head dim 512): the bench-2g checkpoint by default
// (DSV4_BENCH_CONTEXT_PRESET picks another preset). A real prefill to 128K takes hours on
// a CPU, so each context is reached by the synthetic fill of model/synthetic-context.ts
// (every cache holds entries in the stored formats); the states are decoded round-robin,
// one step each per round, so machine load drifts hit all contexts alike.
// DSV4_BENCH_CONTEXT_CHECK=N also prefills N real tokens and compares decode time after
// the real prefill with decode time after a synthetic fill to N.
import { loadModel } from '../src/model/index.js';
import { fillSyntheticContext } from '../src/model/synthetic-context.js';
import type { Dsv4Model } from '../src/model/model.js';
import type { ModelState } from '../src/model/state.js';
import type { Kernels } from '../src/tensor/kernels.js';
import { benchCheckpoint, tokens } from './model.js';
import { now, type BenchRow } from './util.js';

const CONTEXTS = [1024, 8192, 32768, 131072];

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/**
 * Median wall and CPU (all threads of the process) seconds per decode step of each state,
 * decoding them round-robin for `rounds` rounds within `budget` s; each round starts at the
 * next state, so no state always follows the same one.
 */
function decodeRoundRobin(m: Dsv4Model, states: ModelState[], rounds: number, budget: number): { wall: number[]; cpu: number[] } {
  const wall: number[][] = states.map(() => []);
  const cpu: number[][] = states.map(() => []);
  for (const st of states) m.forward([{ state: st, tokens: tokens(1, m.vocabSize, 5) }]); // warm-up step
  const end = now() + budget;
  for (let r = 0; r < rounds && (r < 2 || now() < end); r++) {
    for (let j = 0; j < states.length; j++) {
      const i = (r + j) % states.length;
      const t0 = now();
      const c0 = process.cpuUsage();
      m.forward([{ state: states[i]!, tokens: tokens(1, m.vocabSize, 11 + r) }]);
      const c = process.cpuUsage(c0);
      wall[i]!.push(now() - t0);
      cpu[i]!.push((c.user + c.system) / 1e6);
    }
  }
  return { wall: wall.map(median), cpu: cpu.map(median) };
}

export async function benchContext(kernels: Kernels, rows: BenchRow[], log: (s: string) => void, budget: number): Promise<void> {
  const preset = process.env.DSV4_BENCH_CONTEXT_PRESET ?? 'bench-2g';
  const section = `context (${preset})`;
  const start = now();
  const dir = await benchCheckpoint(preset, log);
  const m = (await loadModel(dir, { kernels, maxSeqLen: CONTEXTS[CONTEXTS.length - 1]! + 256 })) as Dsv4Model;
  const ropeDim = m.args.ropeHeadDim;
  const states: ModelState[] = [];
  const t0 = now();
  for (const ctx of CONTEXTS) states.push(fillSyntheticContext(m.newState(), ctx, ropeDim, ctx));
  log(`  synthetic fills: ${(now() - t0).toFixed(1)} s`);
  const left = Math.max(10, budget - (now() - start));
  const { wall, cpu } = decodeRoundRobin(m, states, 8, left * 0.6);
  const fill = 'synthetic fill (model/synthetic-context.ts), median of round-robin steps';
  CONTEXTS.forEach((ctx, i) => {
    const r = wall[i]! / wall[0]!;
    const rc = cpu[i]! / cpu[0]!;
    rows.push({ section, name: `decode at ${ctx / 1024}K context`, value: 1 / wall[i]!, unit: 'tok/s', ratio: 1 / r,
      note: `time vs 1K: ${r.toFixed(2)}x (target <= 2x), CPU time vs 1K: ${rc.toFixed(2)}x; ${(wall[i]! * 1e3).toFixed(0)} ms/token; ${fill}` });
    log(`  context ${ctx}: ${(wall[i]! * 1e3).toFixed(0)} ms/token (${r.toFixed(2)}x 1K; CPU ${rc.toFixed(2)}x)`);
  });
  const check = Number(process.env.DSV4_BENCH_CONTEXT_CHECK ?? 0);
  if (check > 0) {
    const real = m.newState();
    const t1 = now();
    for (let p = 0; p < check; p += 256) m.forward([{ state: real, tokens: tokens(Math.min(256, check - p), m.vocabSize, p) }]);
    const pre = now() - t1;
    const { wall: [tReal, tSyn], cpu: [cReal, cSyn] } = decodeRoundRobin(m, [real, fillSyntheticContext(m.newState(), check, ropeDim, 3)], 8, 60);
    rows.push({ section, name: `check at ${check} context`, value: tSyn! / tReal!, unit: 'x', note:
      `decode after synthetic fill / after real prefill (${(tSyn! * 1e3).toFixed(0)} vs ${(tReal! * 1e3).toFixed(0)} ms/token; CPU time ${(cSyn! / cReal!).toFixed(2)}x; real prefill ${pre.toFixed(0)} s)` });
  } else rows.push({ section, name: 'check vs real prefill', value: null, unit: '', note: 'set DSV4_BENCH_CONTEXT_CHECK=N to compare with a real N-token prefill' });
}
