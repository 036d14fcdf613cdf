// Every documented error case (spec §11 and the validation rules of §3-§8) returns the documented status
// and DeepSeek's envelope {"error":{"message","type","param":null,"code"}}, on a real server.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ServingModel } from '../../src/server/index.js';
import { TEST_KEY, post, startTestServer } from './harness.js';

let server: ServingModel;
before(async () => {
  server = await startTestServer();
});
after(async () => server?.shutdown());

const user = [{ role: 'user', content: 'hi' }];
const ok = { model: 'deepseek-v4-flash', messages: user, max_tokens: 1 };

async function expectError(
  path: string,
  body: unknown,
  status: number,
  message: string | RegExp,
  opts: { headers?: Record<string, string>; type?: string } = {},
) {
  const res = await post(server.url + path, body, opts.headers);
  assert.equal(res.status, status, res.text);
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  const parsed = JSON.parse(res.text) as { error: Record<string, unknown> };
  assert.deepEqual(Object.keys(parsed.error), ['message', 'type', 'param', 'code']);
  assert.equal(parsed.error.param, null);
  assert.equal(typeof parsed.error.code, 'string');
  if (opts.type) assert.equal(parsed.error.type, opts.type);
  if (typeof message === 'string') assert.equal(parsed.error.message, message);
  else assert.match(parsed.error.message as string, message);
}

const DESER = 'Failed to deserialize the JSON body into the target type: ';

describe('400: malformed and schema-violating bodies', () => {
  it('malformed JSON and non-object bodies', async () => {
    await expectError('/chat/completions', '{"model": "deepseek-v4-flash",', 400, /^Failed to parse the request body as JSON: .* at line 1 column \d+$/);
    await expectError('/chat/completions', '', 400, /^Failed to parse the request body as JSON: EOF while parsing a value/);
    await expectError('/chat/completions', '[1,2]', 400, /^Failed to deserialize the JSON body into the target type: invalid type: sequence, expected struct/);
  });

  it('missing and mistyped fields', async () => {
    await expectError('/chat/completions', { messages: user }, 400, /^Failed to deserialize .*missing field `model`/);
    await expectError('/chat/completions', { model: 'deepseek-v4-flash' }, 400, /missing field `messages`/);
    await expectError('/chat/completions', { ...ok, temperature: 'hot' }, 400, new RegExp(`^${DESER}temperature: invalid type: string "hot", expected f32`));
    await expectError('/chat/completions', { ...ok, messages: [{ role: 'user' }] }, 400, /messages\[0\]: missing field `content`/);
    await expectError('/chat/completions', { ...ok, stream: 'yes' }, 400, /stream: invalid type: string "yes", expected a boolean/);
  });

  it('strict enums', async () => {
    await expectError('/chat/completions', { ...ok, messages: [{ role: 'developer', content: 'x' }] }, 400,
      /^Failed to deserialize the JSON body into the target type: messages\[0\]\.role: unknown variant `developer`, expected one of `system`, `user`, `assistant`, `tool`, `latest_reminder` at line 1 column \d+$/);
    await expectError('/chat/completions', { ...ok, reasoning_effort: 'bogus' }, 400,
      /reasoning_effort: unknown variant `bogus`, expected one of `none`, `minimal`, `low`, `medium`, `high`, `xhigh`, `max` at line 1 column \d+$/);
    await expectError('/chat/completions', { ...ok, thinking: { type: 'sometimes' } }, 400, /thinking\.type: unknown variant `sometimes`, expected one of `enabled`, `disabled`, `adaptive`/);
    await expectError('/chat/completions', { ...ok, tool_choice: 'any' }, 400, /tool_choice: unknown variant `any`, expected one of none, auto, required or a tool/);
    await expectError('/chat/completions', { ...ok, response_format: { type: 'json_schema' } }, 400, 'This response_format type is unavailable now');
  });

  it('unknown model', async () => {
    await expectError('/chat/completions', { ...ok, model: 'gpt-4o' }, 400,
      'The supported API model names are deepseek-v4-flash, deepseek-v4-pro, deepseek-chat and deepseek-reasoner, but you passed gpt-4o.');
    await expectError('/beta/completions', { model: 'nope', prompt: 'x' }, 400, /but you passed nope\.$/);
  });

  it('out-of-range values', async () => {
    for (const max of [0, 393217]) {
      await expectError('/chat/completions', { ...ok, max_tokens: max }, 400, 'Invalid max_tokens value, the valid range of max_tokens is [1, 393216]');
    }
    await expectError('/chat/completions', { ...ok, temperature: 2.5 }, 400, /temperature/);
    await expectError('/chat/completions', { ...ok, top_p: 1.5 }, 400, /top_p/);
    await expectError('/chat/completions', { ...ok, frequency_penalty: -3 }, 400, /frequency_penalty/);
    await expectError('/chat/completions', { ...ok, logprobs: true, top_logprobs: 21 }, 400, /top_logprobs/);
    await expectError('/chat/completions', { ...ok, stop: Array.from({ length: 17 }, (_, i) => `s${i}`) }, 400, /stop/);
    await expectError('/beta/completions', { model: 'deepseek-v4-flash', prompt: 'x', max_tokens: 4097 }, 400, 'Invalid max_tokens value, the valid range of max_tokens is [1, 4096]');
    const tools = Array.from({ length: 129 }, (_, i) => ({ type: 'function', function: { name: `f${i}` } }));
    await expectError('/chat/completions', { ...ok, tools }, 400, /128/);
  });

  it('context overflow', async () => {
    // The test server's context is 4096 tokens.
    await expectError('/chat/completions', { ...ok, max_tokens: 4095 }, 400,
      /^This model's maximum context length is 4096 tokens\. However, you requested \d+ tokens \(\d+ in the messages, 4095 in the completion\)\. Please reduce the length of the messages or completion\.$/);
    const long = 'word '.repeat(5000);
    await expectError('/chat/completions', { model: 'deepseek-v4-flash', messages: [{ role: 'user', content: long }] }, 400, /maximum context length is 4096 tokens/);
  });

  it('thinking-mode rules (§5.4-5.6)', async () => {
    await expectError('/chat/completions', { ...ok, thinking: { type: 'disabled' }, reasoning_effort: 'high' }, 400,
      'thinking options type cannot be disabled when reasoning_effort is set');
    const tools = [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: {} } } }];
    for (const tool_choice of ['required', { type: 'function', function: { name: 'f' } }]) {
      await expectError('/chat/completions', { ...ok, tools, tool_choice }, 400, 'Thinking mode does not support this tool_choice');
    }
    const call = { id: 'call_00_x', type: 'function', function: { name: 'f', arguments: '{}' } };
    await expectError('/chat/completions', {
      ...ok,
      tools,
      messages: [...user, { role: 'assistant', content: null, tool_calls: [call] }, { role: 'tool', tool_call_id: 'call_00_x', content: '1' }],
    }, 400, 'The `reasoning_content` in the thinking mode must be passed back to the API.');
    await expectError('/anthropic/v1/messages', {
      model: 'deepseek-v4-flash', max_tokens: 1,
      messages: [...user, { role: 'assistant', content: [{ type: 'tool_use', id: 'call_00_x', name: 'f', input: {} }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'call_00_x', content: '1' }] }],
    }, 400, 'The `content[].thinking` in the thinking mode must be passed back to the API.');
    await expectError('/anthropic/v1/messages', { model: 'deepseek-v4-flash', max_tokens: 1, thinking: { type: 'disabled' }, output_config: { effort: 'max' }, messages: user }, 400,
      'thinking options type cannot be disabled when reasoning_effort is set');
  });

  it('tools, strict mode and prefix completion', async () => {
    await expectError('/chat/completions', { ...ok, tools: [{ type: 'function', function: { name: 'a.b' } }] }, 400, /tools\[0\]\.function\.name/);
    const strict = (parameters: unknown) => [{ type: 'function', function: { name: 'f', strict: true, parameters } }];
    const good = { type: 'object', properties: { a: { type: 'string' } }, required: ['a'], additionalProperties: false };
    await expectError('/chat/completions', { ...ok, tools: strict(good) }, 400, /beta/);
    await expectError('/beta/chat/completions', { ...ok, tools: strict({ ...good, additionalProperties: true }) }, 400, /additionalProperties must be false/);
    await expectError('/beta/chat/completions', { ...ok, tools: strict({ ...good, required: [] }) }, 400, /must be listed in required/);
    await expectError('/beta/chat/completions', { ...ok, tools: strict({ ...good, properties: { a: { type: 'string', minLength: 1 } } }) }, 400, /minLength/);
    const prefixFirst = [{ role: 'assistant', content: 'x', prefix: true }, ...user];
    await expectError('/beta/chat/completions', { ...ok, messages: prefixFirst }, 400, /last message/);
    await expectError('/chat/completions', { ...ok, messages: [...user, { role: 'assistant', content: 'x', prefix: true }] }, 400, /beta/);
    await expectError('/chat/completions', { ...ok, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, 400, /image_url/);
  });

  it('anthropic schema errors use the same envelope', async () => {
    await expectError('/anthropic/v1/messages', { model: 'claude-sonnet-4', messages: user }, 400, /missing field `max_tokens`/);
    await expectError('/anthropic/v1/messages', { model: 'claude-sonnet-4', max_tokens: 1, messages: [{ role: 'user', content: [{ type: 'image', source: {} }] }] }, 400, /image/);
    await expectError('/anthropic/v1/messages', { model: 'claude-sonnet-4', max_tokens: 1, output_config: { effort: 'minimal' }, messages: user }, 400, /unknown variant `minimal`/);
  });
});

describe('401, 402, 404, 413, 429, 503', () => {
  it('401 for a missing or wrong key, with the key tail in the message', async () => {
    await expectError('/chat/completions', ok, 401, 'Authentication Fails, Your api key: **** is invalid', { headers: { authorization: '' }, type: 'authentication_error' });
    await expectError('/chat/completions', ok, 401, 'Authentication Fails, Your api key: ****alid is invalid', { headers: { authorization: 'Bearer sk-invalid' }, type: 'authentication_error' });
    await expectError('/anthropic/v1/messages', { model: 'x', max_tokens: 1, messages: user }, 401, /\*\*\*\*nope is invalid/, { headers: { authorization: '', 'x-api-key': 'sk-nope' } });
    const res = await fetch(`${server.url}/models`);
    assert.equal(res.status, 401);
  });

  it('404 for routes DeepSeek did not have in the window', async () => {
    for (const p of ['/responses', '/anthropic/v1/models', '/embeddings', '/files']) {
      const res = await fetch(server.url + p, { headers: { authorization: `Bearer ${TEST_KEY}` } });
      assert.equal(res.status, 404);
      assert.ok(((await res.json()) as { error: unknown }).error);
    }
  });

  it('413 for an oversized body', async () => {
    const cfg = server.deps.cfg;
    const saved = cfg.maxBodyBytes;
    cfg.maxBodyBytes = 1000;
    try {
      await expectError('/chat/completions', { ...ok, messages: [{ role: 'user', content: 'x'.repeat(2000) }] }, 413, /too large/);
    } finally {
      cfg.maxBodyBytes = saved;
    }
  });

  it('402 once the balance is spent (when enforced)', async () => {
    const cfg = server.deps.cfg;
    cfg.enforceBalance = true;
    cfg.initialBalance = 0;
    try {
      await expectError('/chat/completions', ok, 402, 'Insufficient Balance', { type: 'unknown_error' });
    } finally {
      cfg.enforceBalance = false;
      cfg.initialBalance = 100;
    }
  });

  it('503 when too many generations wait', async () => {
    const cfg = server.deps.cfg;
    cfg.maxQueued = 0;
    try {
      await expectError('/chat/completions', ok, 503, /overloaded/i);
    } finally {
      cfg.maxQueued = 256;
    }
  });

  it('429 above the per-key concurrency limit; the first request still completes', async () => {
    const cfg = server.deps.cfg;
    cfg.maxConcurrencyPerKey = 1;
    try {
      const ctrl = new AbortController();
      const first = await fetch(`${server.url}/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TEST_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ ...ok, max_tokens: 3, stream: true }),
        signal: ctrl.signal,
      });
      assert.equal(first.status, 200);
      await expectError('/chat/completions', ok, 429, /concurrency/, { type: 'rate_limit_error' });
      const text = await first.text();
      assert.ok(text.endsWith('data: [DONE]\n\n'));
    } finally {
      cfg.maxConcurrencyPerKey = 2500;
    }
  });

  it('the server is still healthy after all of that', async () => {
    const res = await fetch(`${server.url}/health`);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { status: string }).status, 'ok');
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /^dsv4_requests_total\{route="\/chat\/completions",status="400"\} \d+$/m);
    assert.match(metrics, /^dsv4_requests_total\{route="\/chat\/completions",status="429"\} 1$/m);
    assert.match(metrics, /^dsv4_engine_active \d+$/m);
  });
});
