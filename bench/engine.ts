// Engine section of `npm run bench` (also runnable alone: node dist/bench/engine.js [modelDir]).
// Env: DSV4_BENCH_MODEL (checkpoint dir), DSV4_BENCH_TTFT_TOKENS (default 4096), DSV4_BENCH_DECODE_TOKENS (16),
// DSV4_BENCH_CONCURRENCY (default 1,4,16), DSV4_BENCH_ENGINE_BUDGET (seconds for the TTFT prefills, default 300;
// the prompt is halved until it fits; 0 = no limit).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { benchEngine, type EngineBenchResult } from '../src/engine/bench.js';

const tiny = fileURLToPath(new URL('../../test/fixtures/golden/tiny-a/checkpoint', import.meta.url));

export async function runEngineBench(modelDir?: string): Promise<EngineBenchResult | null> {
  const dir = modelDir ?? process.env['DSV4_BENCH_MODEL'] ?? tiny;
  if (!existsSync(dir)) {
    console.log(`engine: skipped (no checkpoint at ${dir}; set DSV4_BENCH_MODEL)`);
    return null;
  }
  console.log(`engine: ${dir}`);
  return benchEngine({
    modelDir: dir,
    ttftPromptTokens: Number(process.env['DSV4_BENCH_TTFT_TOKENS'] ?? 4096),
    decodeTokens: Number(process.env['DSV4_BENCH_DECODE_TOKENS'] ?? 16),
    ttftBudgetSeconds: Number(process.env['DSV4_BENCH_ENGINE_BUDGET'] ?? 300) || Infinity,
    concurrency: (process.env['DSV4_BENCH_CONCURRENCY'] ?? '1,4,16').split(',').map(Number),
    log: (l) => console.log(`  ${l}`),
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  runEngineBench(process.argv[2]).catch((err: unknown) => {
    console.error(`engine bench failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
