// Prefix-cache isolation between API keys (spec §9.4, src/server/tenant.ts), through real HTTP and the official
// `openai` client: with authentication on, a cached prefix is only ever hit by the key (and user_id) that made
// it; the key itself never reaches the cache's disk files nor /metrics. Without keys the cache stays shared.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import type { ServingModel } from '../../src/server/index.js';
import { cacheScope, tenantId } from '../../src/server/tenant.js';
import { post, startTestServer } from './harness.js';

const KEY_A = 'sk-tenant-a-0123456789abcdef';
const KEY_B = 'sk-tenant-b-0123456789abcdef';

// Long enough that a hit is unmistakable (several hundred tokens), distinct per test so hits come only from
// requests inside that test.
const prompt = (topic: string) => `Summarize the tenant isolation rules for ${topic}. `.repeat(30);

/** usage.prompt_cache_hit_tokens of one non-thinking, 1-token completion (the server reports exact hits). */
async function hitTokens(client: OpenAI, content: string, userId?: string): Promise<number> {
  const res = await client.chat.completions.create({
    model: 'deepseek-v4-flash',
    messages: [{ role: 'user', content }],
    max_tokens: 1,
    thinking: { type: 'disabled' },
    ...(userId !== undefined ? { user_id: userId } : {}),
  } as never);
  const usage = (res as OpenAI.ChatCompletion).usage as OpenAI.CompletionUsage & { prompt_cache_hit_tokens: number; prompt_cache_miss_tokens: number };
  assert.equal(usage.prompt_cache_hit_tokens + usage.prompt_cache_miss_tokens, usage.prompt_tokens);
  assert.ok(usage.prompt_tokens > 200, `prompt of ${usage.prompt_tokens} tokens`);
  return usage.prompt_cache_hit_tokens;
}

describe('cacheScope / tenantId', () => {
  it('scopes by tenant, then user_id; no tenant keeps the user_id-only scope', () => {
    const a = tenantId(KEY_A);
    assert.match(a, /^[0-9a-f]{32}$/);
    assert.notEqual(a, tenantId(KEY_B));
    assert.equal(a, tenantId(KEY_A), 'stable across calls (disk snapshots survive restarts)');
    assert.equal(cacheScope(undefined, undefined), undefined);
    assert.equal(cacheScope(undefined, 'u1'), 'u1');
    assert.equal(cacheScope(a, undefined), `key:${a}`);
    assert.equal(cacheScope(a, 'u1'), `key:${a}/user:u1`);
    assert.notEqual(cacheScope(a, 'u1'), cacheScope(tenantId(KEY_B), 'u1'));
    assert.ok(!cacheScope(a, 'u1')!.includes(KEY_A));
  });
});

describe('prefix cache scoped by API key (openai client)', () => {
  let server: ServingModel;
  let cacheDir: string;
  let a: OpenAI;
  let b: OpenAI;
  before(async () => {
    cacheDir = mkdtempSync(join(tmpdir(), 'dsv4-tenant-cache-'));
    server = await startTestServer({ apiKeys: [KEY_A, KEY_B] }, { cacheDir });
    a = new OpenAI({ baseURL: server.url, apiKey: KEY_A, maxRetries: 0 });
    b = new OpenAI({ baseURL: server.url, apiKey: KEY_B, maxRetries: 0 });
  });
  after(async () => {
    await server?.shutdown();
    rmSync(cacheDir, { recursive: true, force: true });
  });

  it('the same long prompt hits within a key, never across keys', async () => {
    const p = prompt('keys');
    assert.equal(await hitTokens(a, p), 0, 'first request of key A');
    assert.ok((await hitTokens(a, p)) > 200, 'key A hits its own prefix');
    assert.equal(await hitTokens(b, p), 0, 'key B must not hit key A\'s prefix');
    assert.ok((await hitTokens(b, p)) > 200, 'key B hits its own prefix');
  });

  it('user_id narrows the scope inside a key; the same user_id under another key is another tenant', async () => {
    const p = prompt('users');
    assert.equal(await hitTokens(a, p, 'u1'), 0);
    assert.ok((await hitTokens(a, p, 'u1')) > 200, 'same key, same user_id hits');
    assert.equal(await hitTokens(a, p, 'u2'), 0, 'same key, another user_id misses');
    assert.equal(await hitTokens(a, p), 0, 'same key, no user_id misses');
    assert.equal(await hitTokens(b, p, 'u1'), 0, 'same user_id under key B misses');
  });

  it('scopes /anthropic/v1/messages (x-api-key) the same way', async () => {
    const body = { model: 'deepseek-v4-flash', max_tokens: 1, thinking: { type: 'disabled' }, messages: [{ role: 'user', content: prompt('anthropic') }] };
    const hit = async (key: string) => {
      const res = await post(`${server.url}/anthropic/v1/messages`, body, { authorization: '', 'x-api-key': key });
      assert.equal(res.status, 200, res.text);
      return (JSON.parse(res.text) as { usage: { cache_read_input_tokens: number } }).usage.cache_read_input_tokens;
    };
    assert.equal(await hit(KEY_A), 0);
    assert.ok((await hit(KEY_A)) > 200);
    assert.equal(await hit(KEY_B), 0);
  });

  it('keeps the keys out of the disk snapshots and /metrics', async () => {
    const files = readdirSync(cacheDir).filter((f) => f.endsWith('.snap'));
    assert.ok(files.length > 0, 'snapshots were persisted');
    const scopes = new Set<string>();
    for (const f of files) {
      const bytes = readFileSync(join(cacheDir, f));
      for (const key of [KEY_A, KEY_B]) assert.equal(bytes.indexOf(key), -1, `${f} holds an API key`);
      const header = JSON.parse(bytes.toString('utf8', 12, 12 + bytes.readUInt32LE(8))) as { scope?: string };
      if (header.scope !== undefined) scopes.add(header.scope);
    }
    assert.ok(scopes.has(`key:${tenantId(KEY_A)}`) && scopes.has(`key:${tenantId(KEY_B)}/user:u1`), [...scopes].join(', '));
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    for (const key of [KEY_A, KEY_B]) assert.ok(!metrics.includes(key) && !metrics.includes(tenantId(key)));
  });
});

describe('prefix cache without authentication (no keys configured)', () => {
  let server: ServingModel;
  before(async () => {
    server = await startTestServer({ apiKeys: [] });
  });
  after(async () => server?.shutdown());

  it('stays shared across bearer tokens, scoped by user_id only (unchanged behaviour)', async () => {
    const p = prompt('open servers');
    const one = new OpenAI({ baseURL: server.url, apiKey: 'any-token-1', maxRetries: 0 });
    const two = new OpenAI({ baseURL: server.url, apiKey: 'any-token-2', maxRetries: 0 });
    assert.equal(await hitTokens(one, p), 0);
    assert.ok((await hitTokens(two, p)) > 200, 'another token hits: there are no tenants without keys');
    assert.equal(await hitTokens(two, p, 'u1'), 0, 'user_id still isolates');
    assert.ok((await hitTokens(one, p, 'u1')) > 200);
  });
});
