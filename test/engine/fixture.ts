// The real tiny checkpoint used by the engine tests (vendored by the model tests).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const vendored = fileURLToPath(new URL('../../../test/fixtures/golden/tiny-a/checkpoint', import.meta.url));

/** Path of the tiny-a checkpoint, or null when it is not in this checkout. */
export function tinyCheckpoint(): string | null {
  if (existsSync(vendored)) return vendored;
  const shared = '/work/shared/golden/tiny-a/checkpoint';
  return existsSync(shared) ? shared : null;
}

export const greedy = { temperature: 0, topP: 1, topK: 0, frequencyPenalty: 0, presencePenalty: 0, maxTokens: 4, stop: [] as string[], stopAtEos: false };
