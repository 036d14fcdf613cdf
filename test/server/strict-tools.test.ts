// Strict tools on /beta (spec §6.2) through the `openai` client: forced tool calls (tool_choice required or
// named) are decoded under the engine's dsml_tools constraint, so with the random-weight default model the
// returned arguments still always parse and validate against the schema.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import type { ServingModel } from '../../src/server/index.js';
import { TEST_KEY, startTestServer } from './harness.js';

let server: ServingModel;
let client: OpenAI;
before(async () => {
  server = await startTestServer();
  client = new OpenAI({ baseURL: `${server.url}/beta`, apiKey: TEST_KEY, maxRetries: 0 });
});
after(async () => server?.shutdown());

const weather = {
  type: 'object',
  properties: {
    unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
    days: { type: 'integer', enum: [1, 3, 7] },
  },
  required: ['unit', 'days'],
  additionalProperties: false,
};
const time = { type: 'object', properties: { zone: { type: 'string', enum: ['UTC', 'CET'] } }, required: ['zone'], additionalProperties: false };
const tools = [
  { type: 'function' as const, function: { name: 'get_weather', strict: true, parameters: weather } },
  { type: 'function' as const, function: { name: 'get_time', strict: true, parameters: time } },
];

/** The test schemas' subset of JSON Schema: object with required enum / integer / boolean properties. */
function validates(schema: typeof weather | typeof time, value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const o = value as Record<string, unknown>;
  if (Object.keys(o).some((k) => !(k in schema.properties))) return false;
  return schema.required.every((k) => {
    const p = (schema.properties as Record<string, { type: string; enum?: unknown[] }>)[k]!;
    const v = o[k];
    if (p.enum) return (p.enum as unknown[]).includes(v);
    if (p.type === 'integer') return Number.isInteger(v);
    return typeof v === p.type;
  });
}

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
        const schema = fn.name === 'get_weather' ? weather : fn.name === 'get_time' ? time : null;
        assert.ok(schema, `known tool name, got ${fn.name}`);
        assert.ok(validates(schema, JSON.parse(fn.arguments)), fn.arguments);
      }
    });
  }
});
