// Engine memoryBudget through the server: routed experts stream through the LRU expert cache, whose
// statistics appear in GET /metrics.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ServingModel } from '../../src/server/index.js';
import { post, startTestServer } from './harness.js';

let server: ServingModel;
before(async () => {
  server = await startTestServer({}, { memoryBudget: 2 ** 20 });
});
after(async () => server?.shutdown());

function metric(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

describe('memory budget', () => {
  it('generates with a small expert budget and reports expert-cache stats in /metrics', async () => {
    const res = await post(`${server.url}/chat/completions`, { model: 'deepseek-v4-flash', thinking: { type: 'disabled' }, max_tokens: 3, messages: [{ role: 'user', content: 'Hi' }] });
    assert.equal(res.status, 200, res.text);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const misses = metric(text, 'dsv4_engine_expertCacheMisses');
    const hits = metric(text, 'dsv4_engine_expertCacheHits');
    assert.ok(misses !== undefined && hits !== undefined, text);
    assert.ok(misses + hits > 0, text);
  });
});
