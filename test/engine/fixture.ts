// The real tiny checkpoint the engine tests run: the vendored tiny-a goldens checkpoint when present,
// else one written once by the checkpoint layer's `tiny` preset (what `dsv4 init --preset tiny` writes).
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initCheckpoint } from '../../src/checkpoint/init.js';
import type { EngineEvent } from '../../src/engine/api.js';
import type { PrefixCache } from '../../src/engine/prefix-cache.js';
import { Scheduler, type EngineVocab, type SchedulerOptions } from '../../src/engine/scheduler.js';
import type { ModelRunner } from '../../src/model/api.js';
import type { Tokenizer } from '../../src/tokenizer/bpe.js';

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

/** All events of one request (the stream ends after `done`). */
export async function collect(events: AsyncIterable<EngineEvent>): Promise<EngineEvent[]> {
  const out: EngineEvent[] = [];
  for await (const ev of events) out.push(ev);
  return out;
}

/** The engine's view of the tokenizer (as the worker builds it: added tokens are control tokens). */
export function engineVocab(tokenizer: Tokenizer): EngineVocab {
  const added = new Set(tokenizer.addedTokens().map((t) => t.id));
  return { eosId: tokenizer.eosId, tokenBytes: (id) => tokenizer.tokenToBytes(id), isSpecial: (id) => added.has(id) || tokenizer.isSpecial(id) };
}

/** A scheduler run in-thread, recording every request's events. */
export function inThread(model: ModelRunner, vocab: EngineVocab, cache: PrefixCache | null, opts: SchedulerOptions) {
  const events = new Map<string, EngineEvent[]>();
  const s = new Scheduler(model, vocab, cache, opts, (id, ev) => {
    if (!events.has(id)) events.set(id, []);
    events.get(id)!.push(ev);
  });
  const run = (max = 10000) => {
    for (let i = 0; i < max && s.hasWork; i++) s.step();
  };
  const tokens = (id: string) => events.get(id)!.flatMap((e) => (e.type === 'token' ? [e.tokenId] : []));
  const text = (id: string) => events.get(id)!.map((e) => (e.type === 'token' ? e.text : '')).join('');
  const done = (id: string) => events.get(id)!.find((e) => e.type === 'done') as Extract<EngineEvent, { type: 'done' }> | undefined;
  return { s, events, run, tokens, text, done };
}
