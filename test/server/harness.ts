// Starts a REAL server for the tests: the embedded default model (generated once into the OS temp dir;
// real V4 vocabulary, random weights), the real engine in its worker, the real tokenizer.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDefaultModel } from '../../src/cli/default-model.js';
import type { EngineOptions } from '../../src/engine/index.js';
import type { ServerConfig } from '../../src/server/config.js';
import { serveModel, type ServingModel } from '../../src/server/index.js';

export const TEST_KEY = 'sk-test-0123456789abcd';

export async function testModelDir(): Promise<string> {
  return ensureDefaultModel({ dir: join(tmpdir(), 'dsv4-test-default-model'), progress: false });
}

export async function startTestServer(
  config: Partial<ServerConfig> = {},
  engine: Omit<EngineOptions, 'modelDir'> = {},
): Promise<ServingModel> {
  return serveModel({
    modelDir: await testModelDir(),
    // defaultSeed: the random model's sampled output is the same every run (a test never fails by chance)
    config: { port: 0, apiKeys: [TEST_KEY], cacheHitGranularity: 1, keepAliveMs: 50, defaultSeed: 20261124, ...config },
    engine: { maxSeqLen: 4096, ...engine },
    web: false,
  });
}

export interface SseEvent {
  event?: string;
  data: string;
}

/** Raw POST; returns status, headers and the exact body text. */
export async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TEST_KEY}`, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** Splits an SSE body into events, keeping comments out; asserts nothing. */
export function parseSse(text: string): { events: SseEvent[]; comments: string[] } {
  const events: SseEvent[] = [];
  const comments: string[] = [];
  for (const block of text.split('\n\n')) {
    if (!block) continue;
    const ev: SseEvent = { data: '' };
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) comments.push(line);
      else if (line.startsWith('event: ')) ev.event = line.slice(7);
      else if (line.startsWith('data: ')) ev.data = line.slice(6);
    }
    if (ev.data || ev.event) events.push(ev);
  }
  return { events, comments };
}
