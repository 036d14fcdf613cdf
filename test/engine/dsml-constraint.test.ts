// The dsml_tools constraint: the DSML byte machine (spec §6.2) on rendered turns, and strict forced calls
// sampled from the real tiny model (random weights) that always parse into schema-valid arguments.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DsmlMachine, type DsmlToolsSpec } from '../../src/engine/dsml-constraint.js';
import type { EngineEvent } from '../../src/engine/api.js';
import { loadModel } from '../../src/model/index.js';
import { loadTokenizer } from '../../src/tokenizer/load.js';
import { parseMessageFromCompletionText } from '../../src/tokenizer/parse.js';
import { StreamParser } from '../../src/tokenizer/stream.js';
import { renderToolCalls } from '../../src/tokenizer/encoding.js';
import { engineVocab, greedy, inThread, tinyModel, tokensOf } from './fixture.js';

const weather = {
  name: 'get_weather',
  parameters: {
    type: 'object',
    properties: {
      city: { type: 'string' },
      days: { type: 'integer' },
      unit: { enum: ['c', 'f'] },
      alerts: { type: 'boolean' },
      ratio: { type: 'number' },
    },
    required: ['city', 'days'],
  },
};
const ping = { name: 'ping', parameters: { type: 'object', properties: {} } };

function accepts(spec: DsmlToolsSpec, text: string): { ok: boolean; eos: boolean } {
  const m = DsmlMachine.start(spec);
  for (const b of Buffer.from(text, 'utf8')) if (!m.push(b)) return { ok: false, eos: false };
  return { ok: true, eos: m.eosAllowed };
}
const call = (name: string, args: Record<string, unknown>) => ({ type: 'function', function: { name, arguments: JSON.stringify(args) } });

test('dsml machine: accepts rendered turns, rejects what the strict grammar forbids', () => {
  const free: DsmlToolsSpec = { kind: 'dsml_tools', tools: [weather, ping], thinking: false };
  const block = renderToolCalls([call('get_weather', { city: 'Paris </b> ü', days: 3, unit: 'c', ratio: -1.5e2 }), call('ping', {})]);
  assert.deepEqual(accepts(free, 'Sure.' + block), { ok: true, eos: true });
  assert.deepEqual(accepts(free, 'just text\n\nno tools <b>'), { ok: true, eos: true });
  assert.deepEqual(accepts({ ...free, thinking: true }, 'hmm, weather</think>' + block), { ok: true, eos: true });
  assert.deepEqual(accepts({ ...free, thinking: true }, 'still thinking'), { ok: true, eos: false });
  assert.deepEqual(accepts({ ...free, forced: true }, block), { ok: true, eos: true });
  assert.deepEqual(accepts({ ...free, forced: true, thinking: true }, 'r</think>' + block), { ok: true, eos: true });
  const bad = [
    ['forced, content first', { ...free, forced: true }, 'x' + block],
    ['forced thinking, content after </think>', { ...free, forced: true, thinking: true }, 'r</think>x'],
    ['unknown tool', free, renderToolCalls([call('other', {})])],
    ['unknown parameter', free, renderToolCalls([call('get_weather', { city: 'a', days: 1, zzz: 1 })])],
    ['missing required', free, renderToolCalls([call('get_weather', { city: 'a' })])],
    ['wrong type', free, renderToolCalls([call('get_weather', { city: 'a', days: 1.5 })])],
    ['enum', free, renderToolCalls([call('get_weather', { city: 'a', days: 1, unit: 'k' })])],
    ['string="true" for an integer', free, renderToolCalls([call('get_weather', { city: 'a', days: '1' })])],
    ['marker char in a value', free, renderToolCalls([call('get_weather', { city: 'a｜b', days: 1 })])],
    ['special text in content', free, 'a<｜end▁of▁sentence｜>'],
    ['</think> in content', free, 'a</think>'],
    ['text after the block', free, block + 'x'],
  ] as const;
  for (const [what, spec, text] of bad) assert.equal(accepts(spec, text).ok && accepts(spec, text).eos, false, what);
  // duplicate parameter
  const dup = block.replace('<｜DSML｜parameter name="days"', '<｜DSML｜parameter name="city" string="true">x</｜DSML｜parameter>\n<｜DSML｜parameter name="days"');
  assert.equal(accepts(free, dup).ok, false);
});

/** The subset of JSON schema the test tools use. */
function validates(schema: Record<string, unknown>, v: unknown): boolean {
  if (Array.isArray(schema['enum'])) return schema['enum'].includes(v);
  switch (schema['type']) {
    case 'string': return typeof v === 'string';
    case 'integer': return Number.isInteger(v);
    case 'number': return typeof v === 'number';
    case 'boolean': return typeof v === 'boolean';
    case 'object': {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
      const props = (schema['properties'] ?? {}) as Record<string, Record<string, unknown>>;
      const o = v as Record<string, unknown>;
      return ((schema['required'] ?? []) as string[]).every((k) => k in o) && Object.entries(o).every(([k, x]) => k in props && validates(props[k]!, x));
    }
  }
  return true;
}

test('dsml_tools on the real tiny model: forced strict calls always parse into schema-valid arguments', async () => {
  const tiny = await tinyModel();
  const model = await loadModel(tiny.dir);
  const tokenizer = await loadTokenizer();
  const { s, events, run, text: textOf } = inThread(model, engineVocab(tokenizer), null, { maxBatch: 8, prefillChunk: 64, stateBudgetBytes: 1 << 30, snapshotInterval: 4096, maxSeqLen: 4096 });
  // bounded values only (random weights would ramble inside free text forever)
  const tool = {
    name: 'set_alarm',
    parameters: { type: 'object', properties: { hour: { type: 'integer' }, repeat: { type: 'boolean' }, tone: { enum: ['soft', 'loud'] }, snooze: { type: 'number' } }, required: ['hour', 'tone'] },
  };
  const spec: DsmlToolsSpec = { kind: 'dsml_tools', tools: [tool, ping], thinking: false, forced: true };
  const seeds = [1, 2, 3, 4, 5, 6];
  for (const seed of seeds) {
    s.submit(`r${seed}`, Int32Array.from([0, ...tokensOf(7, seed, tiny.vocab)]), { ...greedy, temperature: 1, seed, maxTokens: 2000, stopAtEos: true }, { constraint: spec });
  }
  run(5000);
  let calls = 0;
  for (const seed of seeds) {
    const evs = events.get(`r${seed}`)!;
    const done = evs.at(-1) as Extract<EngineEvent, { type: 'done' }>;
    const text = textOf(`r${seed}`);
    assert.equal(done.finishReason, 'stop', `seed ${seed}: ${JSON.stringify(done)} ${JSON.stringify(text)}`);
    const msg = parseMessageFromCompletionText(text + '<｜end▁of▁sentence｜>', 'chat');
    assert.equal(msg.content, '');
    assert.ok(msg.tool_calls.length >= 1, text);
    const sp = new StreamParser('chat');
    sp.push(text);
    sp.finish('eos');
    const streamed = sp.message();
    assert.equal(streamed.tool_calls.length, msg.tool_calls.length, text);
    for (let i = 0; i < msg.tool_calls.length; i++) {
      const c = msg.tool_calls[i]!.function;
      assert.equal(streamed.tool_calls[i]!.function.arguments, c.arguments);
      const t = [tool, ping].find((x) => x.name === c.name);
      assert.ok(t, c.name);
      assert.ok(validates(t.parameters, JSON.parse(c.arguments)), `${c.name} ${c.arguments}`);
      calls++;
    }
  }
  assert.ok(calls >= seeds.length);
});

test('dsml masks (fast paths included) equal a brute-force check of every token, full vocabulary', async () => {
  const { DsmlTries, DsmlToolsConstraint } = await import('../../src/engine/dsml-constraint.js');
  const tokenizer = await loadTokenizer();
  const added = new Set(tokenizer.addedTokens().map((t) => t.id));
  const markup = new Set(['｜DSML｜', '</think>']);
  const bytes: Array<Uint8Array | null> = [];
  for (let id = 0; id < 129280; id++) {
    const b = id === tokenizer.eosId ? null : tokenizer.tokenToBytes(id);
    bytes.push(b && (!(added.has(id) || tokenizer.isSpecial(id)) || markup.has(Buffer.from(b).toString('utf8'))) ? b : null);
  }
  const tries = new DsmlTries(bytes);
  const prefixes: Array<[boolean, string]> = [
    [false, ''],
    [false, 'Hi\n'],
    [false, 'Hi\n\n<'],
    [false, 'a'],
    [true, 'think <'],
    [false, '\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name="get_weather">\n<｜DSML｜parameter name="city" string="true">Pa<'],
    [false, '\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name="get_weather">\n<｜DSML｜parameter name="city" string="false">"Pa'],
    [false, '\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name="get_weather">\n<｜DSML｜parameter name="days" string="false">1'],
  ];
  for (const [thinking, prefix] of prefixes) {
    const spec: DsmlToolsSpec = { kind: 'dsml_tools', tools: [weather, ping], thinking };
    const c = new DsmlToolsConstraint(tries, tokenizer.eosId, spec);
    const m = DsmlMachine.start(spec);
    for (const b of Buffer.from(prefix, 'utf8')) assert.ok(m.push(b), prefix);
    for (const id of tokenizer.encode(prefix)) c.accept(id);
    const got = new Set(c.allowedTokens());
    const want = new Set<number>();
    bytes.forEach((b, id) => {
      if (!b) return;
      const mm = m.clone();
      if (b.every((x) => mm.push(x))) want.add(id);
    });
    if (m.eosAllowed) want.add(tokenizer.eosId);
    assert.equal(got.size, want.size, JSON.stringify(prefix));
    for (const id of want) assert.ok(got.has(id), `${JSON.stringify(prefix)}: ${id}`);
  }
});
