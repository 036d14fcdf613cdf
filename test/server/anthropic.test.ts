// The Anthropic dialect (/anthropic/v1/messages) against a real server through the official
// `@anthropic-ai/sdk` client, plus the raw event sequence.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import type { ServingModel } from '../../src/server/index.js';
import { TEST_KEY, parseSse, post, startTestServer } from './harness.js';

type Loose = Record<string, unknown>;
let server: ServingModel;
let client: Anthropic;
const create = (body: Loose) => client.messages.create(body as never) as unknown as Promise<Anthropic.Message>;

before(async () => {
  server = await startTestServer();
  client = new Anthropic({ baseURL: `${server.url}/anthropic`, apiKey: TEST_KEY, maxRetries: 0 });
});
after(async () => server?.shutdown());

const tools = [
  {
    name: 'get_weather',
    description: 'Weather for a city',
    input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
];

describe('anthropic messages (@anthropic-ai/sdk)', () => {
  it('answers with a thinking block signed with the message id, mapped model and usage', async () => {
    const m = await create({ model: 'claude-opus-4-1', max_tokens: 3, messages: [{ role: 'user', content: 'Hi' }] });
    assert.equal(m.type, 'message');
    assert.equal(m.model, 'deepseek-v4-pro');
    assert.match(m.id, /^[0-9a-f-]{36}$/);
    const thinking = m.content[0] as Anthropic.ThinkingBlock;
    assert.equal(thinking.type, 'thinking');
    assert.equal(thinking.signature, m.id);
    assert.equal(m.stop_reason, 'max_tokens');
    const u = m.usage as unknown as Loose;
    assert.equal(u.output_tokens, 3);
    assert.equal(u.cache_creation_input_tokens, 0);
    assert.equal(u.service_tier, 'standard');
  });

  it('counts input tokens exactly as the generation prompt', async () => {
    const body = { model: 'claude-sonnet-4-6', system: 'Be brief.', messages: [{ role: 'user', content: 'Hello there' }] };
    const count = await client.messages.countTokens(body as never);
    const m = await create({ ...body, max_tokens: 1 });
    const u = m.usage as unknown as { input_tokens: number; cache_read_input_tokens: number };
    assert.equal(count.input_tokens, u.input_tokens + u.cache_read_input_tokens);
  });

  it('streams message_start, thinking block with ping and signature, message_delta, message_stop', async () => {
    const stream = client.messages.stream({ model: 'deepseek-v4-flash', max_tokens: 3, messages: [{ role: 'user', content: 'Hi' }] } as never);
    const final = await stream.finalMessage();
    assert.equal(final.content[0]!.type, 'thinking');
    assert.equal((final.content[0] as Anthropic.ThinkingBlock).signature, final.id);

    const res = await post(`${server.url}/anthropic/v1/messages`, { model: 'deepseek-v4-flash', max_tokens: 3, stream: true, messages: [{ role: 'user', content: 'Hi' }] }, { 'x-api-key': TEST_KEY, authorization: '' });
    assert.equal(res.status, 200);
    const { events } = parseSse(res.text);
    const names = events.map((e) => e.event);
    for (const e of events) assert.equal((JSON.parse(e.data) as Loose).type, e.event);
    assert.deepEqual(names.slice(0, 3), ['message_start', 'content_block_start', 'ping']);
    assert.deepEqual(names.slice(-2), ['message_delta', 'message_stop']);
    const data = events.map((e) => JSON.parse(e.data) as Loose);
    const sig = data.find((d) => (d.delta as Loose | undefined)?.type === 'signature_delta')!;
    assert.equal((sig.delta as Loose).signature, (data[0]!.message as Loose).id);
    const delta = data[data.length - 2]!;
    assert.deepEqual(delta.delta, { stop_reason: 'max_tokens', stop_sequence: null });
    assert.equal((delta.usage as Loose).output_tokens, 3);
  });

  it('without thinking: no thinking block, text first', async () => {
    const m = await create({ model: 'deepseek-v4-flash', max_tokens: 2, thinking: { type: 'disabled' }, messages: [{ role: 'user', content: 'Hi' }] });
    assert.equal(m.content[0]!.type, 'text');
  });

  it('reports which stop sequence ended the answer', async () => {
    const body = { model: 'deepseek-v4-flash', max_tokens: 4, temperature: 0, thinking: { type: 'disabled' }, messages: [{ role: 'user', content: 'Tell a story' }] };
    const full = ((await create(body)).content[0] as Anthropic.TextBlock).text;
    let k = 1;
    while (k < full.length - 1 && full.indexOf(full.slice(k, k + 2)) !== k) k++;
    assert.ok(k < full.length - 1 && full.slice(k, k + 2).trim(), `test needs a stop string inside ${JSON.stringify(full)}`);
    const stop = full.slice(k, k + 2);
    const m = await create({ ...body, stop_sequences: [stop, 'never-seen'] });
    assert.equal((m.content[0] as Anthropic.TextBlock).text, full.slice(0, k));
    assert.equal(m.stop_reason, 'stop_sequence');
    assert.equal(m.stop_sequence, stop);
  });

  it('tool_use / tool_result round trip requires the thinking block to be passed back', async () => {
    const first = { role: 'user', content: [{ type: 'text', text: 'Weather in Paris?' }] };
    const m1 = await create({ model: 'deepseek-v4-flash', max_tokens: 2, tools, messages: [first] });
    const thinking = m1.content.find((b) => b.type === 'thinking') as Anthropic.ThinkingBlock;
    const toolUse = { type: 'tool_use', id: 'call_00_6zEsUcVJkI8VXPCv0tnb4321', name: 'get_weather', input: { city: 'Paris' } };
    const result = { role: 'user', content: [{ type: 'tool_result', tool_use_id: toolUse.id, content: '18°C, cloudy' }] };
    const m2 = await create({
      model: 'deepseek-v4-flash',
      max_tokens: 2,
      tools,
      messages: [first, { role: 'assistant', content: [thinking, toolUse] }, result],
    });
    assert.equal(m2.type, 'message');
    assert.ok((m2.usage as unknown as Loose).cache_read_input_tokens as number > 0, 'first turn prefix reused');
    await assert.rejects(
      create({ model: 'deepseek-v4-flash', max_tokens: 2, tools, messages: [first, { role: 'assistant', content: [toolUse] }, result] }),
      (e: { status?: number; message: string }) =>
        e.status === 400 && e.message.includes('The `content[].thinking` in the thinking mode must be passed back to the API.'),
    );
  });

  it('rejects forced tool_choice in thinking mode, and (strict) a system role inside messages', async () => {
    await assert.rejects(
      create({ model: 'deepseek-v4-flash', max_tokens: 1, tools, tool_choice: { type: 'any' }, messages: [{ role: 'user', content: 'x' }] }),
      (e: { status?: number; message: string }) => e.status === 400 && e.message.includes('Thinking mode does not support this tool_choice'),
    );
    // A system role inside messages is DeepSeek's 400 only on a --strict-anthropic server (Claude Code sends it).
    server.deps.cfg.strictAnthropic = true;
    try {
      await assert.rejects(
        create({ model: 'deepseek-v4-flash', max_tokens: 1, messages: [{ role: 'system', content: 'x' }] }),
        (e: { status?: number; message: string }) => e.status === 400 && e.message.includes('unknown variant `system`, expected `user` or `assistant`'),
      );
    } finally {
      server.deps.cfg.strictAnthropic = false;
    }
  });
});
