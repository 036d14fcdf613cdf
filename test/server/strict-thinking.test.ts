// Strict tools in thinking mode with tool_choice "auto" (spec §5.6: the only choice thinking mode allows; §6.2:
// strict arguments always match their schema), through a real server, the real engine and the `openai` client.
//
// The default test model has random weights: in thinking mode it never writes </think> (let alone a tool-call
// block) on its own, so plain requests only show that whatever it emits comes back well-formed. To exercise the
// tool-call path deterministically without a mock, the tests use chat prefix completion (§6.1, /beta): the last
// assistant message carries the reasoning and, as `content`, the tool-call block opener. Generation then
// resumes inside the block, in the same auto-mode constraint (the engine's dsml_tools machine consumes the
// prefix first), and the random model can only complete calls of the given tools with schema-valid arguments.
// Which calls it makes, and how many, is up to sampling (temperature 1 in thinking mode): a turn cut by
// max_tokens inside the block is still a well-formed response, so a few attempts are allowed to see a call.
//
// The last part drives the same server code with a scripted engine (fixed completion texts) to pin down how a
// strict prefix completion is parsed: the prefix is never echoed, a block it opens is returned whole.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { startServer, tokenizerCodec, type RunningServer, type ServingModel } from '../../src/server/index.js';
import { loadTokenizer, type Tokenizer } from '../../src/tokenizer/index.js';
import { TEST_KEY, startTestServer } from './harness.js';
import { scriptedEngine, type Submitted } from './scripted-engine.js';
import { schemaOf, strictTools, validates } from './strict-schemas.js';

const D = '｜DSML｜';
const OPENER = `\n\n<${D}tool_calls>\n`;
const MODEL = 'deepseek-v4-flash';

interface Turn {
  finish: string | null;
  content: string;
  reasoning: string;
  calls: { id: string; name: string; arguments: string }[];
}

/** A well-formed turn: a known finish reason, tool calls exactly when it is tool_calls, each schema-valid. */
function checkTurn(t: Turn): void {
  assert.ok(t.finish === 'stop' || t.finish === 'length' || t.finish === 'tool_calls', `finish_reason ${t.finish}`);
  assert.equal(typeof t.content, 'string');
  assert.equal(typeof t.reasoning, 'string');
  if (t.finish !== 'tool_calls') return assert.equal(t.calls.length, 0, JSON.stringify(t));
  assert.ok(t.calls.length >= 1);
  t.calls.forEach((c, i) => {
    assert.match(c.id, new RegExp(`^call_${String(i).padStart(2, '0')}_[A-Za-z0-9]{24}$`));
    const schema = schemaOf(c.name);
    assert.ok(schema, `unknown tool ${c.name}`);
    assert.ok(validates(schema, JSON.parse(c.arguments)), `${c.name}(${c.arguments})`);
  });
}

type Request = Record<string, unknown>;

async function turn(client: OpenAI, body: Request, stream: boolean): Promise<Turn> {
  if (!stream) {
    const res = (await client.chat.completions.create(body as never)) as OpenAI.ChatCompletion;
    const c = res.choices[0]!;
    const m = c.message as OpenAI.ChatCompletionMessage & { reasoning_content?: string };
    return {
      finish: c.finish_reason,
      content: m.content ?? '',
      reasoning: m.reasoning_content ?? '',
      calls: (m.tool_calls ?? []).map((x) => {
        const f = (x as OpenAI.ChatCompletionMessageFunctionToolCall).function;
        return { id: x.id, name: f.name, arguments: f.arguments };
      }),
    };
  }
  const chunks = (await client.chat.completions.create({ ...body, stream: true } as never)) as unknown as AsyncIterable<OpenAI.ChatCompletionChunk>;
  const t: Turn = { finish: null, content: '', reasoning: '', calls: [] };
  for await (const chunk of chunks) {
    const c = chunk.choices[0];
    if (!c) continue;
    const d = c.delta as OpenAI.ChatCompletionChunk.Choice.Delta & { reasoning_content?: string | null };
    t.content += d.content ?? '';
    t.reasoning += d.reasoning_content ?? '';
    for (const tc of d.tool_calls ?? []) {
      const call = (t.calls[tc.index] ??= { id: '', name: '', arguments: '' });
      call.id += tc.id ?? '';
      call.name += tc.function?.name ?? '';
      call.arguments += tc.function?.arguments ?? '';
    }
    if (c.finish_reason) t.finish = c.finish_reason;
  }
  return t;
}

describe('strict tools, thinking mode, tool_choice auto (real engine, openai client on /beta)', () => {
  let server: ServingModel;
  let client: OpenAI;
  before(async () => {
    server = await startTestServer();
    client = new OpenAI({ baseURL: `${server.url}/beta`, apiKey: TEST_KEY, maxRetries: 0 });
  });
  after(async () => server?.shutdown());

  const base = { model: MODEL, tools: strictTools, tool_choice: 'auto', thinking: { type: 'enabled' } };

  for (const stream of [false, true]) {
    it(`plain request (${stream ? 'streamed' : 'non-streamed'}): whatever the model emits is well-formed`, async () => {
      const t = await turn(client, { ...base, max_tokens: 32, seed: 5, messages: [{ role: 'user', content: 'What is the weather in Paris?' }] }, stream);
      checkTurn(t);
      assert.ok(t.reasoning.length > 0, 'thinking mode starts with reasoning');
    });

    it(`prefix completion opening the tool-call block (${stream ? 'streamed' : 'non-streamed'}): schema-valid calls`, async () => {
      const reasoning = 'The user asks for the weather and the time, so I call the tools.';
      const seen: Turn[] = [];
      for (let attempt = 0; attempt < 4 && !seen.some((t) => t.finish === 'tool_calls'); attempt++) {
        const messages = [
          { role: 'user', content: `Attempt ${attempt}: what are the weather and the time in Paris?` },
          { role: 'assistant', reasoning_content: reasoning, content: OPENER, prefix: true },
        ];
        const t = await turn(client, { ...base, max_tokens: 600, seed: 40 + attempt, messages }, stream);
        checkTurn(t);
        seen.push(t);
      }
      const done = seen.find((t) => t.finish === 'tool_calls');
      assert.ok(done, `no turn completed its tool calls: ${JSON.stringify(seen.map((t) => t.finish))}`);
      // Continuation only: neither the given reasoning nor the opener comes back as text.
      assert.equal(done.content, '');
      assert.equal(done.reasoning, '');
    });
  }

  it('a prefix that breaks the strict tool-call format is a 400', async () => {
    const messages = [
      { role: 'user', content: 'Weather?' },
      { role: 'assistant', reasoning_content: 'Call it.', content: `<${D}invoke name="get_weather">\n`, prefix: true },
    ];
    await assert.rejects(client.chat.completions.create({ ...base, max_tokens: 8, messages } as never), (e: unknown) => {
      assert.equal((e as { status?: number }).status, 400);
      assert.match(String((e as Error).message), /prefix does not follow the strict tool-call format/);
      return true;
    });
  });
});

describe('strict prefix completion, scripted engine: what the server makes of the continuation', () => {
  let tokenizer: Tokenizer;
  let server: RunningServer;
  let client: OpenAI;
  let script = '';
  const submitted: Submitted[] = [];
  const constraint = () => submitted[submitted.length - 1]!.options?.constraint;

  before(async () => {
    tokenizer = await loadTokenizer();
    server = await startServer({ engine: scriptedEngine(tokenizer, () => script, submitted), codec: tokenizerCodec(tokenizer), config: { port: 0 } });
    client = new OpenAI({ baseURL: `${server.url}/beta`, apiKey: 'k', maxRetries: 0 });
  });
  after(async () => server?.close());

  const ask = (prefix: { content: string; reasoning_content?: string }) => ({
    model: MODEL,
    tools: strictTools,
    tool_choice: 'auto',
    thinking: { type: 'enabled' },
    messages: [{ role: 'user', content: 'Time?' }, { role: 'assistant', reasoning_content: 'Check the clock.', ...prefix, prefix: true }],
  });
  const timeCall = `<${D}invoke name="get_time">\n<${D}parameter name="zone" string="true">UTC</${D}parameter>\n</${D}invoke>\n</${D}tool_calls>`;

  for (const stream of [false, true]) {
    const mode = stream ? 'streamed' : 'non-streamed';
    it(`${mode}: a final newline of the prefix is not sent again with the continuation`, async () => {
      script = 'More text.';
      const t = await turn(client, ask({ content: 'Let me check.\n' }), stream);
      assert.deepEqual(t, { finish: 'stop', content: 'More text.', reasoning: '', calls: [] });
      assert.deepEqual(constraint(), { kind: 'dsml_tools', tools: strictTools.map((x) => ({ name: x.function.name, parameters: x.function.parameters })), thinking: false, forced: false, prefix: 'Let me check.\n' });
    });

    it(`${mode}: that newline may start the tool-call block with the continuation`, async () => {
      script = `\n<${D}tool_calls>\n${timeCall}`;
      const t = await turn(client, ask({ content: 'Let me check.\n' }), stream);
      assert.equal(t.finish, 'tool_calls');
      assert.equal(t.content, '');
      assert.deepEqual(t.calls.map((c) => [c.name, c.arguments]), [['get_time', '{"zone": "UTC"}']]);
    });

    it(`${mode}: a block opened in the prefix comes back as whole calls`, async () => {
      script = `<${D}parameter name="zone" string="true">CET</${D}parameter>\n</${D}invoke>\n</${D}tool_calls>`;
      const t = await turn(client, ask({ content: `${OPENER}<${D}invoke name="get_time">\n` }), stream);
      assert.equal(t.finish, 'tool_calls');
      assert.equal(t.content, '');
      assert.deepEqual(t.calls.map((c) => [c.name, c.arguments]), [['get_time', '{"zone": "CET"}']]);
    });

    it(`${mode}: a reasoning prefix continues the reasoning, which is not echoed`, async () => {
      script = ' Now answer.</think>It is noon.';
      const t = await turn(client, ask({ content: '', reasoning_content: 'Check the clock.' }), stream);
      assert.deepEqual(t, { finish: 'stop', content: 'It is noon.', reasoning: ' Now answer.', calls: [] });
      assert.equal((constraint() as { thinking?: boolean; prefix?: string }).thinking, true);
      assert.equal((constraint() as { prefix?: string }).prefix, 'Check the clock.');
    });
  }
});
