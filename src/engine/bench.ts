// Engine benchmarks (issue 5): aggregate decode throughput at several concurrency levels and
// time to first token for a long prompt with and without a prefix-cache hit. Runs the real engine
// (worker thread, scheduler, cache) on a checkpoint directory.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Engine, SamplingParams } from './api.js';
import { createEngine } from './index.js';

export interface EngineBenchOptions {
  modelDir: string;
  /** Concurrency levels for the decode measurement. Default [1, 4, 16]. */
  concurrency?: number[];
  /** Tokens decoded per sequence. Default 16. */
  decodeTokens?: number;
  /** Prompt length for the time-to-first-token measurement. Default 4096. */
  ttftPromptTokens?: number;
  /** Tokens of that prompt not covered by the cache in the "hit" case. Default 64. */
  ttftNewTokens?: number;
  prefillChunk?: number;
  /**
   * Time allowed for the two long prefills of the TTFT measurement (seconds). When a 256-token probe
   * says they would take longer, the prompt is halved until they fit (reported as reducedFrom).
   */
  ttftBudgetSeconds?: number;
  log?: (line: string) => void;
}

export interface EngineBenchResult {
  decode: Array<{ concurrency: number; tokens: number; seconds: number; tokensPerSecond: number }>;
  ttft: { promptTokens: number; reducedFrom?: number; missSeconds: number; hitSeconds: number; cachedTokens: number; speedup: number };
}

const greedy: SamplingParams = { temperature: 0, topP: 1, topK: 0, frequencyPenalty: 0, presencePenalty: 0, maxTokens: 1, stop: [], stopAtEos: false };

/** Deterministic pseudo-random prompt (BOS first) inside the model's vocabulary. */
function promptOf(n: number, seed: number, vocab: number): Int32Array {
  const out = new Int32Array(n);
  let x = (seed * 2654435761) >>> 0;
  for (let i = 1; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = 3 + (x % Math.max(1, Math.min(vocab, 100000) - 3));
  }
  return out;
}

/** Runs one request; returns seconds to the first token and the tokens' arrival times. */
async function timed(engine: Engine, prompt: Int32Array, maxTokens: number, cache = true) {
  const t0 = performance.now();
  const times: number[] = [];
  let cachedTokens = 0;
  const h = engine.submit(prompt, { ...greedy, maxTokens }, { usePrefixCache: cache });
  for await (const ev of h.events) {
    if (ev.type === 'token') times.push(performance.now());
    if (ev.type === 'done') {
      if (ev.finishReason === 'error') throw new Error(ev.error);
      cachedTokens = ev.usage.cachedTokens;
    }
  }
  return { t0, times, cachedTokens };
}

export async function benchEngine(o: EngineBenchOptions): Promise<EngineBenchResult> {
  const log = o.log ?? (() => {});
  const levels = o.concurrency ?? [1, 4, 16];
  const n = o.decodeTokens ?? 16;
  const cacheDir = mkdtempSync(join(tmpdir(), 'dsv4-bench-'));
  const P = o.ttftPromptTokens ?? 4096;
  const engine = await createEngine({
    modelDir: o.modelDir,
    maxSeqLen: P + 64,
    maxBatch: Math.max(...levels),
    prefillChunk: o.prefillChunk ?? 512,
    cacheDir,
  });
  try {
    const vocab = engine.stats()['vocabSize'] ?? 1024;
    const decode: EngineBenchResult['decode'] = [];
    for (const c of levels) {
      const runs = await Promise.all(Array.from({ length: c }, (_, i) => timed(engine, promptOf(8, 1000 * c + i, vocab), n + 1, false)));
      // decode window: from the last sequence's first token to the last token overall
      const start = Math.max(...runs.map((r) => r.times[0]!));
      const end = Math.max(...runs.map((r) => r.times.at(-1)!));
      const tokens = runs.reduce((s, r) => s + r.times.filter((t) => t > start).length, 0);
      const seconds = (end - start) / 1000;
      decode.push({ concurrency: c, tokens, seconds, tokensPerSecond: tokens / seconds });
      log(`decode  ${String(c).padStart(2)} seq: ${(tokens / seconds).toFixed(2)} tok/s (${tokens} tokens in ${seconds.toFixed(2)} s)`);
    }
    const budget = o.ttftBudgetSeconds ?? Infinity;
    let p = P;
    if (Number.isFinite(budget) && P > 256) {
      const probe = await timed(engine, promptOf(256, 3, vocab), 1, false);
      const perToken = (probe.times[0]! - probe.t0) / 1000 / 256;
      while (p > 256 && 2 * p * perToken * 1.3 > budget) p /= 2;
      if (p < P) log(`ttft    ${P} tokens would take ~${Math.round(2 * P * perToken)} s > budget ${budget} s: measuring ${p} tokens`);
    }
    const fresh = Math.min(o.ttftNewTokens ?? 64, p - 1);
    const long = promptOf(p, 7, vocab);
    const miss = await timed(engine, long, 1, false);
    const missSeconds = (miss.times[0]! - miss.t0) / 1000;
    log(`ttft    ${p} tokens, no cache: ${missSeconds.toFixed(3)} s`);
    // the previous turn: everything but the last `fresh` tokens, then the full prompt hits it
    await timed(engine, long.subarray(0, p - fresh), 1, true);
    const hit = await timed(engine, long, 1, true);
    const hitSeconds = (hit.times[0]! - hit.t0) / 1000;
    log(`ttft    ${p} tokens, cache hit on ${hit.cachedTokens}: ${hitSeconds.toFixed(3)} s (${(missSeconds / hitSeconds).toFixed(1)}x)`);
    const reduced = p < P ? { reducedFrom: P } : {};
    return { decode, ttft: { promptTokens: p, ...reduced, missSeconds, hitSeconds, cachedTokens: hit.cachedTokens, speedup: missSeconds / hitSeconds } };
  } finally {
    await engine.close();
    rmSync(cacheDir, { recursive: true, force: true });
  }
}
