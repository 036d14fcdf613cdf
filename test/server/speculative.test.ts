// Speculative decoding end to end: two real servers on the default model, drafting on and off, answer
// the official `openai` client's requests (streamed and not, sampled with a seed and greedy, with
// logprobs) with the same content and logprobs; /metrics counts the drafts.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import OpenAI from 'openai';
import type { ServingModel } from '../../src/server/index.js';
import { TEST_KEY, startTestServer } from './harness.js';

let on: ServingModel;
let off: ServingModel;

before(async () => {
  // acceptance floor 0: the random model's drafts are rejected, and drafting must go on to be tested
  on = await startTestServer({}, { speculative: true, minDraftAcceptance: 0, prefixCacheBytes: 0 });
  off = await startTestServer({}, { speculative: false, prefixCacheBytes: 0 });
});
after(async () => Promise.all([on?.shutdown(), off?.shutdown()]));

const client = (s: ServingModel) => new OpenAI({ baseURL: s.url, apiKey: TEST_KEY, maxRetries: 0 });

async function answer(s: ServingModel, body: Record<string, unknown>, stream: boolean): Promise<unknown> {
  if (!stream) {
    const r = await client(s).chat.completions.create(body as never) as unknown as OpenAI.ChatCompletion;
    return { content: r.choices[0]!.message.content, logprobs: r.choices[0]!.logprobs, finish: r.choices[0]!.finish_reason, usage: r.usage?.completion_tokens };
  }
  let content = '';
  let finish: string | null = null;
  const events = await client(s).chat.completions.create({ ...body, stream: true } as never) as unknown as AsyncIterable<OpenAI.ChatCompletionChunk>;
  for await (const c of events) {
    content += c.choices[0]?.delta.content ?? '';
    finish = c.choices[0]?.finish_reason ?? finish;
  }
  return { content, finish };
}

it('drafting on and off give the same answers', async () => {
  const bodies = [
    { model: 'deepseek-v4-flash', messages: [{ role: 'user', content: 'Count to five.' }], max_tokens: 24, thinking: { type: 'disabled' }, temperature: 0, logprobs: true, top_logprobs: 2 },
    { model: 'deepseek-v4-flash', messages: [{ role: 'user', content: 'Name a colour.' }], max_tokens: 30, thinking: { type: 'disabled' }, temperature: 0.9, seed: 7 },
    { model: 'deepseek-v4-flash', messages: [{ role: 'user', content: 'Why is the sky blue?' }], max_tokens: 20, thinking: { type: 'enabled' }, seed: 3 },
  ];
  for (const body of bodies) {
    for (const stream of [false, true]) {
      assert.deepEqual(await answer(on, body, stream), await answer(off, body, stream), JSON.stringify({ body, stream }));
    }
  }
  const metrics = await (await fetch(`${on.url}/metrics`)).text();
  const drafted = Number(/^dsv4_engine_draftedTokens (\d+)$/m.exec(metrics)?.[1]);
  assert.ok(drafted >= 50, `drafted ${drafted}`);
  const offMetrics = await (await fetch(`${off.url}/metrics`)).text();
  assert.match(offMetrics, /^dsv4_engine_draftedTokens 0$/m);
});
