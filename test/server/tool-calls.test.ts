// Tool-call output formats. The real engine with random weights never writes a DSML tool-call block, so
// these tests drive the real server, tokenizer and stream parser with a scripted engine that "generates"
// given completion texts token by token (real token ids and text from the real tokenizer).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import type { SamplingParams } from '../../src/engine/api.js';
import { startServer, tokenizerCodec, type RunningServer } from '../../src/server/index.js';
import { loadTokenizer, type Tokenizer } from '../../src/tokenizer/index.js';
import { parseSse, post } from './harness.js';
import { scriptedEngine, type Submitted } from './scripted-engine.js';

type Loose = Record<string, unknown>;
const D = '｜DSML｜';
const call = (name: string, params: string) => `<${D}invoke name="${name}">\n${params}\n</${D}invoke>`;
const param = (k: string, v: string, str: boolean) => `<${D}parameter name="${k}" string="${str}">${v}</${D}parameter>`;
const block = (...calls: string[]) => `\n\n<${D}tool_calls>\n${calls.join('\n')}\n</${D}tool_calls>`;

let tokenizer: Tokenizer;
let server: RunningServer;
let script = '';
const submitted: Submitted[] = [];
const lastPrompt = (): string => submitted[submitted.length - 1]!.prompt;
const lastSampling = (): SamplingParams => submitted[submitted.length - 1]!.sampling;

before(async () => {
  tokenizer = await loadTokenizer();
  server = await startServer({ engine: scriptedEngine(tokenizer, () => script, submitted), codec: tokenizerCodec(tokenizer), config: { port: 0 } });
});
after(async () => server?.close());

const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
const ask = [{ role: 'user', content: 'Weather in Paris and Rome?' }];
const CALL_ID = /^call_(\d\d)_[A-Za-z0-9]{24}$/;

describe('tool calls in the OpenAI dialect', () => {
  it('non-streamed: content, reasoning, parallel tool calls with call_NN ids, finish tool_calls', async () => {
    script = 'Need weather.</think>Let me check.' + block(call('get_weather', param('city', 'Paris', true)), call('get_weather', [param('city', 'Rome', true), param('days', '3', false)].join('\n')));
    const client = new OpenAI({ baseURL: server.url, apiKey: 'k', maxRetries: 0 });
    const r = await client.chat.completions.create({ model: 'deepseek-v4-flash', messages: ask, tools } as never) as unknown as OpenAI.ChatCompletion;
    const msg = r.choices[0]!.message as unknown as Loose;
    assert.equal(msg.content, 'Let me check.');
    assert.equal(msg.reasoning_content, 'Need weather.');
    assert.equal(r.choices[0]!.finish_reason, 'tool_calls');
    const calls = msg.tool_calls as { index: number; id: string; type: string; function: { name: string; arguments: string } }[];
    assert.equal(calls.length, 2);
    calls.forEach((c, i) => {
      assert.equal(c.index, i);
      assert.equal(CALL_ID.exec(c.id)![1], String(i).padStart(2, '0'));
      assert.equal(c.type, 'function');
      assert.equal(c.function.name, 'get_weather');
    });
    assert.equal(calls[0]!.function.arguments, '{"city": "Paris"}');
    assert.equal(calls[1]!.function.arguments, '{"city": "Rome", "days": 3}');
    // The tools were rendered into the prompt.
    assert.ok(lastPrompt().includes('## Tools'));
  });

  it('streamed: first tool delta has id/type/name/arguments "", then argument fragments only', async () => {
    script = 'Hmm.</think>' + block(call('get_weather', param('city', 'Paris', true)));
    const res = await post(`${server.url}/chat/completions`, { model: 'deepseek-v4-flash', messages: ask, tools, stream: true });
    const data = parseSse(res.text).events.filter((e) => e.data.startsWith('{')).map((e) => JSON.parse(e.data) as Loose);
    const deltas = data.map((c) => ((c.choices as Loose[])[0] as Loose).delta as Loose);
    const toolDeltas = deltas.filter((d) => d.tool_calls);
    for (const d of toolDeltas) assert.deepEqual(Object.keys(d), ['tool_calls']);
    const first = (toolDeltas[0]!.tool_calls as Loose[])[0]!;
    assert.match(first.id as string, CALL_ID);
    assert.deepEqual({ ...first, id: 'x' }, { index: 0, id: 'x', type: 'function', function: { name: 'get_weather', arguments: '' } });
    const rest = toolDeltas.slice(1).map((d) => (d.tool_calls as Loose[])[0]!);
    for (const f of rest) assert.deepEqual(Object.keys(f), ['index', 'function']);
    assert.equal(rest.map((f) => (f.function as Loose).arguments).join(''), '{"city": "Paris"}');
    const last = (data[data.length - 1]!.choices as Loose[])[0] as Loose;
    assert.equal(last.finish_reason, 'tool_calls');
  });

  it('a malformed DSML block degrades to content with finish_reason stop', async () => {
    script = 'ok</think>Answer' + `\n\n<${D}tool_calls>\ngarbage`;
    const r = JSON.parse((await post(`${server.url}/chat/completions`, { model: 'deepseek-v4-flash', messages: ask, tools })).text) as Loose;
    const c = (r.choices as Loose[])[0] as Loose;
    assert.equal(c.finish_reason, 'stop');
    assert.equal((c.message as Loose).tool_calls, undefined);
    // The degraded block appears once (the parser emits it as content; the malformed event only reports it).
    assert.equal((c.message as Loose).content, `Answer\n\n<${D}tool_calls>\ngarbage`);
  });

  it('a named tool_choice (non-thinking) forces the call; sampling parameters apply', async () => {
    script = `${param('city', 'Rome', true)}\n</${D}invoke>\n</${D}tool_calls>`;
    const r = JSON.parse((await post(`${server.url}/chat/completions`, {
      model: 'deepseek-chat', messages: ask, tools, temperature: 0.3, tool_choice: { type: 'function', function: { name: 'get_weather' } },
    })).text) as Loose;
    const c = (r.choices as Loose[])[0] as Loose;
    assert.equal(c.finish_reason, 'tool_calls');
    const calls = (c.message as Loose).tool_calls as { function: { name: string; arguments: string } }[];
    assert.deepEqual(calls.map((x) => x.function), [{ name: 'get_weather', arguments: '{"city": "Rome"}' }]);
    assert.ok(lastPrompt().endsWith(`</think>\n\n<${D}tool_calls>\n<${D}invoke name="get_weather">\n`));
    assert.equal(lastSampling().temperature, 0.3);
  });

  it('thinking mode ignores sampling parameters (§5.3) and max effort renders its preamble', async () => {
    script = 'x</think>y';
    await post(`${server.url}/chat/completions`, { model: 'deepseek-v4-pro', messages: ask, temperature: 0.1, top_p: 0.2, reasoning_effort: 'xhigh' });
    const s = lastSampling();
    assert.equal(s.temperature, 1);
    assert.equal(s.topP, 1);
    assert.ok(lastPrompt().includes('Reasoning Effort: Absolute maximum'));
  });
});

describe('effort (§5.2)', () => {
  const maxPreamble = 'Reasoning Effort: Absolute maximum';
  it('detected agent traffic defaults to max effort; an explicit effort wins', async () => {
    script = 'x</think>y';
    await post(`${server.url}/chat/completions`, { model: 'deepseek-v4-flash', messages: ask }, { 'user-agent': 'claude-cli/2.1.0 (external, cli)' });
    assert.ok(lastPrompt().includes(maxPreamble));
    await post(`${server.url}/chat/completions`, { model: 'deepseek-v4-flash', messages: ask, reasoning_effort: 'high' }, { 'x-opencode-session': 's1' });
    assert.ok(!lastPrompt().includes(maxPreamble));
    await post(`${server.url}/anthropic/v1/messages`, { model: 'claude-opus-4-1', max_tokens: 5, messages: ask }, { 'anthropic-beta': 'claude-code-20250219' });
    assert.ok(lastPrompt().includes(maxPreamble));
    await post(`${server.url}/chat/completions`, { model: 'deepseek-v4-flash', messages: ask });
    assert.ok(!lastPrompt().includes(maxPreamble));
  });

  it('reasoning_effort "none" turns thinking off', async () => {
    script = 'plain answer';
    const r = JSON.parse((await post(`${server.url}/chat/completions`, { model: 'deepseek-v4-flash', messages: ask, reasoning_effort: 'none' })).text) as Loose;
    const msg = ((r.choices as Loose[])[0] as Loose).message as Loose;
    assert.equal(msg.content, 'plain answer');
    assert.ok(!('reasoning_content' in msg));
    assert.ok(lastPrompt().endsWith('<｜Assistant｜></think>'));
  });
});

describe('tool use in the Anthropic dialect', () => {
  it('non-streamed: thinking, text, tool_use with parsed input, stop_reason tool_use', async () => {
    script = 'Use tool.</think>Checking.' + block(call('get_weather', param('city', 'Paris', true)));
    const client = new Anthropic({ baseURL: `${server.url}/anthropic`, apiKey: 'k', maxRetries: 0 });
    const m = await client.messages.create({
      model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: 'Weather?' }],
      tools: [{ name: 'get_weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }],
    } as never) as unknown as Anthropic.Message;
    assert.deepEqual(m.content.map((b) => b.type), ['thinking', 'text', 'tool_use']);
    const tu = m.content[2] as Anthropic.ToolUseBlock;
    assert.match(tu.id, CALL_ID);
    assert.deepEqual(tu.input, { city: 'Paris' });
    assert.equal(m.stop_reason, 'tool_use');
  });

  it('streamed: tool_use block start with empty input, input_json_delta fragments, message_delta tool_use', async () => {
    script = 'Use tool.</think>' + block(call('get_weather', param('city', 'Paris', true)));
    const res = await post(`${server.url}/anthropic/v1/messages`, {
      model: 'deepseek-v4-flash', max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'Weather?' }],
      tools: [{ name: 'get_weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }],
    });
    const data = parseSse(res.text).events.map((e) => JSON.parse(e.data) as Loose);
    const start = data.find((d) => d.type === 'content_block_start' && (d.content_block as Loose).type === 'tool_use')!;
    assert.deepEqual({ ...(start.content_block as Loose), id: 'x' }, { type: 'tool_use', id: 'x', name: 'get_weather', input: {} });
    const json = data
      .filter((d) => d.type === 'content_block_delta' && d.index === start.index)
      .map((d) => (d.delta as Loose).partial_json)
      .join('');
    assert.equal(json, '{"city": "Paris"}');
    const md = data.find((d) => d.type === 'message_delta')!;
    assert.equal((md.delta as Loose).stop_reason, 'tool_use');
    assert.deepEqual(data.map((d) => d.type).slice(-2), ['message_delta', 'message_stop']);
  });
});
