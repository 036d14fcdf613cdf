// Response ids are bare UUIDs (§4.3, §8.3); tool-call ids are call_<NN>_<24 alnum> (§4.5).
import { randomBytes, randomUUID } from 'node:crypto';

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

export const newResponseId = (): string => randomUUID();

export function randomToolCallId(index: number): string {
  const bytes = randomBytes(24);
  let tail = '';
  for (const b of bytes) tail += ALNUM[b % ALNUM.length];
  return `call_${String(index).padStart(2, '0')}_${tail}`;
}
