// Strict tools on /beta (spec §6.2) through the `openai` client: forced tool calls (tool_choice required or
// named) are decoded under the engine's dsml_tools constraint, so with the random-weight default model the
// returned arguments still always parse and validate against the schema. Each request is seeded: the random
// model may keep opening calls until max_tokens (finish_reason length, no calls to check), and a seed makes
// the case the same on every run and machine (exact numerics) instead of failing a few runs in a hundred.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import type { ServingModel } from '../../src/server/index.js';
import { TEST_KEY, startTestServer } from './harness.js';
import { schemaOf, strictTools, validates } from './strict-schemas.js';

let server: ServingModel;
let client: OpenAI;
before(async () => {
  server = await startTestServer();
  client = new OpenAI({ baseURL: `${server.url}/beta`, apiKey: TEST_KEY, maxRetries: 0 });
});
after(async () => server?.shutdown());

const tools = strictTools;
const SEEDS = [1, 2, 3];

describe('strict tools (/beta, openai client)', () => {
  for (const [i, choice] of (['required', { type: 'function', function: { name: 'get_time' } }, { type: 'function', function: { name: 'get_weather' } }] as const).entries()) {
    it(`forced call #${i} (${typeof choice === 'string' ? choice : choice.function.name}) returns schema-valid arguments`, async () => {
      const res = await client.chat.completions.create({
        model: 'deepseek-v4-flash',
        messages: [{ role: 'user', content: `Request ${i}: what is the weather and the time?` }],
        tools,
        tool_choice: choice as never,
        max_tokens: 400,
        temperature: 1,
        seed: SEEDS[i],
        thinking: { type: 'disabled' },
      } as never);
      const msg = (res as OpenAI.ChatCompletion).choices[0]!;
      assert.equal(msg.finish_reason, 'tool_calls', JSON.stringify(msg));
      const calls = msg.message.tool_calls ?? [];
      assert.ok(calls.length >= 1);
      for (const c of calls) {
        assert.equal(c.type, 'function');
        const fn = (c as OpenAI.ChatCompletionMessageFunctionToolCall).function;
        if (typeof choice !== 'string') assert.equal(fn.name, choice.function.name);
        const schema = schemaOf(fn.name);
        assert.ok(schema, `known tool name, got ${fn.name}`);
        assert.ok(validates(schema, JSON.parse(fn.arguments)), fn.arguments);
      }
    });
  }
});
