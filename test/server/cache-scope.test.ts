// user_id (OpenAI) and metadata.user_id (Anthropic) isolate the prefix cache (spec §9.4): the same prompt
// hits the cache again only under the same user_id.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ServingModel } from '../../src/server/index.js';
import { post, startTestServer } from './harness.js';

let server: ServingModel;
before(async () => {
  server = await startTestServer();
});
after(async () => server?.shutdown());

const messages = [{ role: 'user', content: 'Tell me about the cache isolation of tenants. '.repeat(8) }];

async function openaiHit(userId?: string): Promise<number> {
  const res = await post(`${server.url}/chat/completions`, { model: 'deepseek-v4-flash', thinking: { type: 'disabled' }, max_tokens: 1, messages, ...(userId ? { user_id: userId } : {}) });
  assert.equal(res.status, 200, res.text);
  return (JSON.parse(res.text) as { usage: { prompt_cache_hit_tokens: number } }).usage.prompt_cache_hit_tokens;
}

async function anthropicHit(userId: string): Promise<number> {
  const res = await post(`${server.url}/anthropic/v1/messages`, { model: 'deepseek-v4-flash', thinking: { type: 'disabled' }, max_tokens: 1, messages, metadata: { user_id: userId } });
  assert.equal(res.status, 200, res.text);
  return (JSON.parse(res.text) as { usage: { cache_read_input_tokens: number } }).usage.cache_read_input_tokens;
}

describe('user_id cache isolation', () => {
  it('user_id scopes prefix-cache hits on /chat/completions', async () => {
    assert.equal(await openaiHit('tenant_a'), 0);
    assert.ok((await openaiHit('tenant_a')) > 0, 'same user_id hits');
    assert.equal(await openaiHit('tenant_b'), 0, 'another user_id misses');
    assert.equal(await openaiHit(), 0, 'no user_id is its own shared scope');
  });

  it('metadata.user_id scopes prefix-cache hits on /anthropic/v1/messages', async () => {
    assert.equal(await anthropicHit('tenant_c'), 0);
    assert.ok((await anthropicHit('tenant_c')) > 0, 'same user_id hits');
    assert.equal(await anthropicHit('tenant_d'), 0);
  });
});
