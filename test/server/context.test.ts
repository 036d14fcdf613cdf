// The usable context follows the engine's real context: a request over it is DeepSeek's 400 context error
// (spec §3, §11.1), never an engine failure (500), even when a larger --context-length was configured.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ServingModel } from '../../src/server/index.js';
import { post, startTestServer } from './harness.js';

const ENGINE_CTX = 256;
let server: ServingModel;

before(async () => {
  server = await startTestServer({ contextLength: 100_000 }, { maxSeqLen: ENGINE_CTX });
});
after(async () => server?.shutdown());

const long = 'lorem ipsum dolor sit amet '.repeat(200);

describe('context length follows the engine', () => {
  it('clamps the configured context to the engine context', () => {
    assert.equal(server.deps.cfg.contextLength, ENGINE_CTX);
  });

  for (const maxTokens of [undefined, 10]) {
    it(`answers 400 with the context-overflow text for a prompt longer than the context (max_tokens ${maxTokens})`, async () => {
      const body = { model: 'deepseek-v4-flash', messages: [{ role: 'user', content: long }], ...(maxTokens ? { max_tokens: maxTokens } : {}) };
      const res = await post(`${server.url}/chat/completions`, body);
      assert.equal(res.status, 400, res.text);
      const err = (JSON.parse(res.text) as { error: { message: string; type: string } }).error;
      assert.equal(err.type, 'invalid_request_error');
      assert.match(err.message, new RegExp(`^This model's maximum context length is ${ENGINE_CTX} tokens\\. However, you requested \\d+ tokens \\(\\d+ in the messages, ${maxTokens ?? 1} in the completion\\)`));
    });
  }

  it('answers 400 on the Anthropic endpoint too', async () => {
    const res = await post(`${server.url}/anthropic/v1/messages`, { model: 'deepseek-v4-flash', max_tokens: 5, messages: [{ role: 'user', content: long }] });
    assert.equal(res.status, 400, res.text);
    assert.match(res.text, /maximum context length is 256 tokens/);
  });

  it('answers 400 on FIM (/beta/completions) too', async () => {
    const res = await post(`${server.url}/beta/completions`, { model: 'deepseek-v4-flash', prompt: long, max_tokens: 5 });
    assert.equal(res.status, 400, res.text);
    assert.match(res.text, /maximum context length is 256 tokens/);
  });

  it('counts prompt + max_tokens against the engine context (one over is a 400)', async () => {
    const probe = await post(`${server.url}/chat/completions`, { model: 'deepseek-v4-flash', thinking: { type: 'disabled' }, max_tokens: 1, messages: [{ role: 'user', content: 'Hi' }] });
    assert.equal(probe.status, 200, probe.text);
    const prompt = (JSON.parse(probe.text) as { usage: { prompt_tokens: number } }).usage.prompt_tokens;
    const room = ENGINE_CTX - prompt;
    const over = await post(`${server.url}/chat/completions`, { model: 'deepseek-v4-flash', thinking: { type: 'disabled' }, max_tokens: room + 1, messages: [{ role: 'user', content: 'Hi' }] });
    assert.equal(over.status, 400, over.text);
  });
});
