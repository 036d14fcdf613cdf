// The OpenAI dialect against a real server (real engine, tokenizer and default model) through the
// official `openai` npm client, plus raw SSE byte checks.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import type { ServingModel } from '../../src/server/index.js';
import { TEST_KEY, parseSse, post, startTestServer } from './harness.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// The Node client passes unknown params (thinking, prefix) straight into the body, like the official sample.
type Loose = Record<string, unknown>;

let server: ServingModel;
let client: OpenAI;
let beta: OpenAI;

const chat = (body: Loose) => client.chat.completions.create(body as never) as unknown as Promise<Loose & OpenAI.ChatCompletion>;

before(async () => {
  server = await startTestServer();
  client = new OpenAI({ baseURL: server.url, apiKey: TEST_KEY, maxRetries: 0 });
  beta = new OpenAI({ baseURL: `${server.url}/beta`, apiKey: TEST_KEY, maxRetries: 0 });
});
after(async () => server?.shutdown());

function checkUsage(u: Record<string, unknown>, thinking: boolean) {
  const n = (k: string) => u[k] as number;
  assert.equal(n('prompt_tokens'), n('prompt_cache_hit_tokens') + n('prompt_cache_miss_tokens'));
  assert.equal(n('total_tokens'), n('prompt_tokens') + n('completion_tokens'));
  assert.deepEqual(u.prompt_tokens_details, { cached_tokens: n('prompt_cache_hit_tokens') });
  if (thinking) assert.ok((u.completion_tokens_details as Loose).reasoning_tokens as number <= n('completion_tokens'));
  else assert.equal(u.completion_tokens_details, undefined);
}

describe('chat completions (openai client)', () => {
  it('answers a non-thinking request (deepseek-chat) with the DeepSeek response shape', async () => {
    const r = await chat({ model: 'deepseek-chat', messages: [{ role: 'user', content: 'Hello!' }], max_tokens: 4, temperature: 0 });
    assert.match(r.id, UUID);
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.model, 'deepseek-chat');
    assert.deepEqual(Object.keys(r), ['id', 'object', 'created', 'model', 'choices', 'usage', 'system_fingerprint']);
    const c = r.choices[0]!;
    assert.equal(c.message.role, 'assistant');
    assert.equal(typeof c.message.content, 'string');
    assert.ok(!('reasoning_content' in c.message), 'no reasoning_content in non-thinking mode');
    assert.ok(c.finish_reason === 'length' || c.finish_reason === 'stop');
    assert.ok(r.usage!.completion_tokens <= 4 && r.usage!.completion_tokens >= 1);
    checkUsage(r.usage as unknown as Loose, false);
  });

  it('thinks by default on deepseek-v4-flash: reasoning_content and reasoning_tokens', async () => {
    const r = await chat({ model: 'deepseek-v4-flash', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, seed: 1 });
    const msg = r.choices[0]!.message as unknown as Loose;
    assert.equal(typeof msg.reasoning_content, 'string');
    assert.equal(r.choices[0]!.finish_reason, 'length');
    checkUsage(r.usage as unknown as Loose, true);
  });

  it('streams the same greedy answer as the non-streamed one, with usage on the final chunk', async () => {
    const body = { model: 'deepseek-chat', messages: [{ role: 'user', content: 'Count to three' }], max_tokens: 3, temperature: 0 };
    const whole = await chat(body);
    const stream = (await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } } as never)) as unknown as AsyncIterable<Loose>;
    const chunks: Loose[] = [];
    for await (const c of stream) chunks.push(c);
    const deltas = chunks.map((c) => (c.choices as Loose[])[0]!.delta as Loose);
    assert.deepEqual(deltas[0], { role: 'assistant', content: '' });
    assert.equal(deltas.map((d) => d.content ?? '').join(''), whole.choices[0]!.message.content);
    const last = chunks[chunks.length - 1]!;
    assert.equal((last.choices as Loose[])[0]!.finish_reason, whole.choices[0]!.finish_reason);
    assert.equal((last.usage as Loose).completion_tokens, whole.usage!.completion_tokens);
    for (const c of chunks.slice(0, -1)) assert.equal(c.usage, null);
  });

  it('returns logprobs with top_logprobs for each answer token', async () => {
    const r = await chat({
      model: 'deepseek-chat',
      messages: [{ role: 'user', content: 'Say something' }],
      max_tokens: 4,
      temperature: 0,
      logprobs: true,
      top_logprobs: 3,
    });
    const lp = r.choices[0]!.logprobs as unknown as { content: Loose[]; reasoning_content: unknown };
    assert.equal(lp.content.length, r.usage!.completion_tokens);
    assert.equal(lp.reasoning_content, null);
    assert.equal(lp.content.map((t) => t.token).join(''), r.choices[0]!.message.content);
    for (const t of lp.content) {
      const top = t.top_logprobs as { logprob: number; token: string }[];
      assert.equal(top.length, 3);
      assert.ok((t.logprob as number) <= 0);
      assert.ok(Array.isArray(t.bytes));
      // Greedy decoding picks the most likely token.
      assert.equal(t.logprob, Math.max(...top.map((x) => x.logprob)));
    }
  });

  it('stops at a stop sequence and leaves it out', async () => {
    const body = { model: 'deepseek-chat', messages: [{ role: 'user', content: 'Tell a story' }], max_tokens: 4, temperature: 0, logprobs: true };
    const full = await chat(body);
    const toks = (full.choices[0]!.logprobs as unknown as { content: { token: string }[] }).content.map((t) => t.token);
    const text = toks.join('');
    // A stop string that first occurs at the start of the third token.
    const at = toks[0]!.length + toks[1]!.length;
    const stop = toks[2]!.trim() ? toks[2]! : toks[2]! + (toks[3] ?? '');
    assert.ok(stop.length > 0 && text.indexOf(stop) === at, 'test needs a stop string first found at token 3');
    const r = await chat({ ...body, stop: [stop] });
    assert.equal(r.choices[0]!.message.content, text.slice(0, at));
    assert.equal(r.choices[0]!.finish_reason, 'stop');
  });

  it('JSON mode: the answer is constrained to JSON', async () => {
    const r = await chat({
      model: 'deepseek-chat',
      messages: [
        { role: 'system', content: 'Reply in json: {"answer": string}' },
        { role: 'user', content: 'Capital of France?' },
      ],
      response_format: { type: 'json_object' },
      max_tokens: 6,
      temperature: 0,
    });
    const content = r.choices[0]!.message.content!;
    if (r.choices[0]!.finish_reason === 'stop') assert.equal(typeof JSON.parse(content), 'object');
    else assert.match(content, /^\s*\{/);
  });

  it('chat prefix completion on /beta continues the given assistant text', async () => {
    const messages = [
      { role: 'user', content: 'Please write quick sort code' },
      { role: 'assistant', content: '```python\n', prefix: true },
    ];
    const r = (await beta.chat.completions.create({ model: 'deepseek-chat', messages, max_tokens: 3, temperature: 0 } as never)) as unknown as OpenAI.ChatCompletion;
    assert.equal(typeof r.choices[0]!.message.content, 'string');
    const plain = await chat({ model: 'deepseek-chat', messages: messages.slice(0, 1), max_tokens: 1 });
    assert.ok(r.usage!.prompt_tokens > plain.usage!.prompt_tokens, 'the prefix is part of the prompt');
    await assert.rejects(chat({ model: 'deepseek-chat', messages, max_tokens: 3 }), (e: { status?: number }) => e.status === 400);
  });

  it('FIM completion on /beta/completions', async () => {
    const r = await beta.completions.create({ model: 'deepseek-v4-flash', prompt: 'def add(a, b):\n    ', suffix: '\n    return c', max_tokens: 3, temperature: 0 });
    assert.equal(r.object, 'text_completion');
    assert.equal(typeof r.choices[0]!.text, 'string');
    assert.ok(r.usage!.completion_tokens >= 1 && r.usage!.completion_tokens <= 3);
    await assert.rejects(
      beta.completions.create({ model: 'deepseek-v4-flash', prompt: 'x', max_tokens: 5000 }),
      (e: { status?: number; message: string }) => e.status === 400 && e.message.includes('[1, 4096]'),
    );
  });

  it('a seed makes sampled output reproducible; a non-integer seed is ignored like any unknown field; the server default seed', async () => {
    const body = (seed: unknown) => ({ model: 'deepseek-chat', messages: [{ role: 'user', content: 'Tell a story' }], max_tokens: 12, temperature: 1.5, seed });
    const texts = async (seed: unknown) => (await chat(body(seed))).choices[0]!.message.content;
    const [a, b, c, d] = await Promise.all([texts(7), texts(7), texts(8), texts(9)]);
    assert.equal(a, b);
    // Three seeds giving one text at temperature 1.5 over 12 tokens would mean the seed does not reach the sampler.
    assert.ok(new Set([a, c, d]).size > 1, JSON.stringify([a, c, d]));
    const f = await beta.completions.create({ model: 'deepseek-v4-flash', prompt: 'def f(', max_tokens: 8, temperature: 1.5, seed: 3 });
    const g = await beta.completions.create({ model: 'deepseek-v4-flash', prompt: 'def f(', max_tokens: 8, temperature: 1.5, seed: 3 });
    assert.equal(f.choices[0]!.text, g.choices[0]!.text);
    // Without a seed, the server's default seed (the test harness sets one, `dsv4 serve --seed N`) applies.
    const [u, v, seven] = await Promise.all([texts(undefined), texts(undefined), texts('seven')]);
    assert.equal(u, v);
    assert.equal(seven, u);
  });

  it('thinking-mode tool loop: reasoning_content passed back is required and rendered, prefix reused', async () => {
    const tools = [{ type: 'function', function: { name: 'get_current_time', description: 'Get current time', parameters: { type: 'object', properties: {} } } }];
    const first = [{ role: 'user', content: 'What time is it? Use the get_current_time tool.' }];
    const r1 = await chat({ model: 'deepseek-v4-flash', messages: first, tools, max_tokens: 1 });
    const reasoning = (r1.choices[0]!.message as unknown as Loose).reasoning_content as string;
    const call = { id: 'call_00_9nLfpIQ6VO1JCaEsJcU8WZnS', type: 'function', function: { name: 'get_current_time', arguments: '{}' } };
    const turn = (rc: unknown) => [
      ...first,
      { role: 'assistant', content: 'Let me check.', ...(rc === undefined ? {} : { reasoning_content: rc }), tool_calls: [call] },
      { role: 'tool', tool_call_id: call.id, content: '10:30 AM UTC' },
    ];
    const r2 = await chat({ model: 'deepseek-v4-flash', messages: turn(reasoning + ' The user wants the time.'), tools, max_tokens: 1 });
    const r2empty = await chat({ model: 'deepseek-v4-flash', messages: turn(''), tools, max_tokens: 1 });
    assert.ok(r2.usage!.prompt_tokens > r2empty.usage!.prompt_tokens, 'reasoning_content is rendered into the prompt');
    assert.ok((r2.usage as unknown as Loose).prompt_cache_hit_tokens as number > 0, 'the first turn prefix is reused');
    for (const missing of [undefined, null]) {
      await assert.rejects(
        chat({ model: 'deepseek-v4-flash', messages: turn(missing), tools, max_tokens: 1 }),
        (e: { status?: number; message: string }) =>
          e.status === 400 && e.message.includes('The `reasoning_content` in the thinking mode must be passed back to the API.'),
      );
    }
  });

  it('bills each key by the price table: /user/balance goes down by hit, miss and output costs', async () => {
    const cfg = server.deps.cfg;
    const saved = cfg.prices['deepseek-v4-flash']!;
    // USD per 1M tokens: 1, 2 and 3 dollars per token, so the two-decimal balance shows every token.
    cfg.prices['deepseek-v4-flash'] = { cacheHit: 1e6, cacheMiss: 2e6, output: 3e6 };
    try {
      const balance = async () => {
        const res = await fetch(`${server.url}/user/balance`, { headers: { authorization: `Bearer ${TEST_KEY}` } });
        return Number(((await res.json()) as { balance_infos: { total_balance: string }[] }).balance_infos[0]!.total_balance);
      };
      const before = await balance();
      const r = await chat({ model: 'deepseek-chat', messages: [{ role: 'user', content: 'Bill me' }], max_tokens: 2 });
      const u = r.usage as unknown as Record<string, number>;
      const cost = u.prompt_cache_hit_tokens! * 1 + u.prompt_cache_miss_tokens! * 2 + u.completion_tokens! * 3;
      assert.equal(Math.round((before - (await balance())) * 100), Math.round(cost * 100));
    } finally {
      cfg.prices['deepseek-v4-flash'] = saved;
    }
  });

  it('lists models and reports the balance', async () => {
    const models = await client.models.list();
    assert.deepEqual(models.data.map((m) => m.id), ['deepseek-v4-flash', 'deepseek-v4-pro']);
    const res = await fetch(`${server.url}/user/balance`, { headers: { authorization: `Bearer ${TEST_KEY}` } });
    const b = (await res.json()) as { is_available: boolean; balance_infos: Loose[] };
    assert.equal(b.is_available, true);
    assert.match(b.balance_infos[0]!.total_balance as string, /^\d+\.\d\d$/);
  });
});

describe('raw SSE bytes (chat)', () => {
  it('frames every chunk as `data: <json>\\n\\n`, usage:null until the final chunk, then [DONE]', async () => {
    const body = { model: 'deepseek-v4-flash', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, seed: 2, stream: true, stream_options: { include_usage: true } };
    const res = await post(`${server.url}/chat/completions`, body);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
    assert.ok(res.text.endsWith('data: [DONE]\n\n'));
    const blocks = res.text.split('\n\n').filter(Boolean);
    for (const b of blocks) assert.match(b, /^(data: \S.*|: keep-alive)$/s);
    const data = blocks.filter((b) => b.startsWith('data: {')).map((b) => JSON.parse(b.slice(6)) as Loose);
    assert.ok(data.length >= 2);
    for (const c of data) {
      assert.deepEqual(Object.keys(c), ['id', 'object', 'created', 'model', 'system_fingerprint', 'choices', 'usage']);
      assert.equal(c.id, data[0]!.id);
      assert.equal(c.object, 'chat.completion.chunk');
    }
    const deltas = data.map((c) => (c.choices as Loose[])[0] as Loose);
    assert.deepEqual(deltas[0]!.delta, { role: 'assistant', content: null, reasoning_content: '' });
    for (const d of deltas.slice(1, -1)) {
      assert.equal((d.delta as Loose).content, null);
      assert.equal(typeof (d.delta as Loose).reasoning_content, 'string');
      assert.equal(d.finish_reason, null);
    }
    const last = data[data.length - 1]!;
    assert.deepEqual(deltas[deltas.length - 1]!.delta, { content: '', reasoning_content: null });
    assert.equal(deltas[deltas.length - 1]!.finish_reason, 'length');
    checkUsage(last.usage as Loose, true);
    for (const c of data.slice(0, -1)) assert.equal(c.usage, null);
  });

  it('FIM streams text_completion chunks, usage on the last one, then [DONE]', async () => {
    const res = await post(`${server.url}/beta/completions`, { model: 'deepseek-v4-flash', prompt: 'def f(', suffix: ')', max_tokens: 2, seed: 3, stream: true });
    assert.equal(res.status, 200);
    assert.ok(res.text.endsWith('data: [DONE]\n\n'));
    const data = parseSse(res.text).events.filter((e) => e.data.startsWith('{')).map((e) => JSON.parse(e.data) as Loose);
    for (const c of data) assert.equal(c.object, 'text_completion');
    const last = data[data.length - 1]!;
    assert.equal(((last.choices as Loose[])[0] as Loose).finish_reason, 'length');
    assert.equal((last.usage as Loose).completion_tokens, 2);
  });

  it('without include_usage the usage key appears only on the final chunk', async () => {
    const res = await post(`${server.url}/v1/chat/completions`, { model: 'deepseek-chat', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2, stream: true });
    const { events } = parseSse(res.text);
    const data = events.filter((e) => e.data.startsWith('{')).map((e) => JSON.parse(e.data) as Loose);
    for (const c of data.slice(0, -1)) assert.ok(!('usage' in c));
    assert.ok('usage' in data[data.length - 1]!);
    assert.equal(events[events.length - 1]!.data, '[DONE]');
  });
});
