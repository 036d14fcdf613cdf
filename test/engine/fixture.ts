// The real tiny checkpoint the engine tests run: the vendored tiny-a goldens checkpoint when present,
// else one written once by the checkpoint layer's `tiny` preset (what `dsv4 init --preset tiny` writes).
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initCheckpoint } from '../../src/checkpoint/init.js';

export interface TinyModel {
  dir: string;
  /** sliding_window W (first-chunk and snapshot rules depend on it). */
  window: number;
  vocab: number;
}

const vendored = fileURLToPath(new URL('../../../test/fixtures/golden/tiny-a/checkpoint', import.meta.url));

function describe(dir: string): TinyModel {
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { sliding_window: number; vocab_size: number };
  return { dir, window: cfg.sliding_window, vocab: cfg.vocab_size };
}

export async function tinyModel(): Promise<TinyModel> {
  if (existsSync(join(vendored, 'config.json'))) return describe(vendored);
  const out = join(tmpdir(), 'dsv4-engine-tests-tiny');
  if (!existsSync(join(out, 'config.json'))) await initCheckpoint({ preset: 'tiny', out, seed: 1, force: true });
  return describe(out);
}

/** Prompt-like token ids below the vocabulary size, BOS (0) first. */
export function tokensOf(n: number, seed: number, vocab: number): number[] {
  return Array.from({ length: n }, (_, i) => 3 + ((i * 37 + seed * 101) % (vocab - 3)));
}

export const greedy = { temperature: 0, topP: 1, topK: 0, frequencyPenalty: 0, presencePenalty: 0, maxTokens: 4, stop: [] as string[], stopAtEos: false };
