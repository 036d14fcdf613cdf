// encode_messages / parse_message_from_completion_text ports against every golden case, byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { goldenCases, officialCases, ROOT } from './fixtures.js';
import { runCase } from '../../src/tokenizer/cases.js';
import { PyError } from '../../src/tokenizer/pyjson.js';
import { encodeMessages, parseMessageFromCompletionText } from '../../src/tokenizer/index.js';

const cases = goldenCases();

test('golden cases are all present (42)', () => {
  assert.equal(cases.length, 42);
});

for (const c of cases) {
  test(`golden ${c.name}`, () => {
    if (c.expectedText !== undefined) {
      const r = runCase(c.input, c.inputPath);
      assert.equal(r.kind, 'encode');
      assert.equal(r.kind === 'encode' && r.prompt, c.expectedText);
      return;
    }
    const expected = JSON.parse(c.expectedJson!);
    if ('error' in expected) {
      assert.throws(() => runCase(c.input, c.inputPath), (e: unknown) => e instanceof PyError && e.kind === expected.error);
      return;
    }
    const r = runCase(c.input, c.inputPath);
    assert.equal(r.kind, 'parse');
    assert.deepEqual(r.kind === 'parse' && r.message, expected);
  });
}

for (const c of officialCases()) {
  test(`official test_input_${c.n}`, () => {
    const r = runCase(c.input, c.inputPath);
    assert.equal(r.kind === 'encode' && r.prompt, c.expected);
  });
}

test('official case 1: the reference test parses its own rendered turns back', () => {
  const c = officialCases()[0];
  const r = runCase(c.input, c.inputPath);
  const prompt = r.kind === 'encode' ? r.prompt : '';
  const marker = '<｜Assistant｜><think>';
  const start = prompt.indexOf(marker) + marker.length;
  const first = parseMessageFromCompletionText(prompt.slice(start, prompt.indexOf('<｜User｜>', start)), 'thinking');
  assert.equal(first.tool_calls[0].function.name, 'get_weather');
  assert.deepEqual(JSON.parse(first.tool_calls[0].function.arguments), { location: 'Beijing', unit: 'celsius' });
  const last = parseMessageFromCompletionText(prompt.slice(prompt.lastIndexOf(marker) + marker.length), 'thinking');
  assert.ok(last.content.includes('22°C'));
});

test('reference quirks: Python str() of None content, int-like keys keep their order, 1e3 -> 1000.0', () => {
  const p = encodeMessages(
    [
      { role: 'latest_reminder', content: null },
      { role: 'user', content: 'x' },
      { role: 'assistant', content: '', tool_calls: [{ type: 'function', function: { name: 'f', arguments: '{"1": 1e3, "0": [1.0, -0, 1e16, 1e-5]}' } }] },
    ],
    { thinkingMode: 'chat' },
  );
  assert.ok(p.startsWith('<｜begin▁of▁sentence｜><｜latest_reminder｜>None<｜User｜>'));
  assert.ok(p.includes('<｜DSML｜parameter name="1" string="false">1000.0</｜DSML｜parameter>\n<｜DSML｜parameter name="0" string="false">[1.0, 0, 1e+16, 1e-05]</｜DSML｜parameter>'));
});

test('reference errors: tool role left unmerged is impossible, non-dict JSON arguments raise AttributeError', () => {
  assert.throws(
    () => encodeMessages([{ role: 'assistant', tool_calls: [{ function: { name: 'f', arguments: '[1]' } }] }], { thinkingMode: 'chat' }),
    (e: unknown) => e instanceof PyError && e.kind === 'AttributeError',
  );
  assert.throws(() => encodeMessages([{ role: 'developer', content: '' }], { thinkingMode: 'chat' }), (e: unknown) => e instanceof PyError && e.kind === 'AssertionError');
  assert.throws(() => encodeMessages([{ role: 'robot', content: 'x' }], { thinkingMode: 'chat' }), (e: unknown) => e instanceof PyError && e.kind === 'NotImplementedError');
  // No messages: the mode is never checked (the reference asserts inside render_message only).
  assert.equal(encodeMessages([], { thinkingMode: 'bogus' as 'chat' }), '<｜begin▁of▁sentence｜>');
});

test('CLI: dsv4 encode prints the prompt byte-exact, dsv4 parse prints JSON, errors exit 1', () => {
  const bin = join(ROOT, 'bin/dsv4.js');
  const enc = cases.find((c) => c.name.startsWith('030'))!;
  const r1 = spawnSync(process.execPath, [bin, 'encode', enc.inputPath], { encoding: 'utf8' });
  assert.equal(r1.status, 0, r1.stderr);
  assert.equal(r1.stdout, enc.expectedText);
  const par = cases.find((c) => c.name.startsWith('035'))!;
  const r2 = spawnSync(process.execPath, [bin, 'parse', par.inputPath], { encoding: 'utf8' });
  assert.equal(r2.status, 0, r2.stderr);
  assert.equal(r2.stdout, par.expectedJson);
  const err = cases.find((c) => c.name.startsWith('040'))!;
  const r3 = spawnSync(process.execPath, [bin, 'encode', err.inputPath], { encoding: 'utf8' });
  assert.equal(r3.status, 1);
  assert.deepEqual(JSON.parse(r3.stdout), { error: 'AssertionError' });
  const off = officialCases()[3];
  const r4 = spawnSync(process.execPath, [bin, 'encode', off.inputPath], { encoding: 'utf8' });
  assert.equal(r4.stdout, off.expected);
});

test('reference quirks: non-string user text is a TypeError, object arguments become one "arguments" parameter', () => {
  assert.throws(() => encodeMessages([{ role: 'user', content: null }], { thinkingMode: 'chat' }), (e: unknown) => e instanceof PyError && e.kind === 'TypeError');
  const p = encodeMessages(
    [{ role: 'user', content: 'x' }, { role: 'assistant', content: null, tool_calls: [{ type: 'function', function: { name: null, arguments: { a: 1.5 } } }] }],
    { thinkingMode: 'chat' },
  );
  assert.ok(p.endsWith('<｜DSML｜invoke name="None">\n<｜DSML｜parameter name="arguments" string="false">{"a": 1.5}</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls><｜end▁of▁sentence｜>'));
  assert.throws(
    () => encodeMessages([{ role: 'assistant', tool_calls: [{ type: 'function' }] }], { thinkingMode: 'chat' }),
    (e: unknown) => e instanceof PyError && e.kind === 'KeyError',
  );
  assert.equal(
    encodeMessages([{ role: 'system', content: ['a', 1, true] }], { thinkingMode: 'chat' }),
    "<｜begin▁of▁sentence｜>['a', 1, True]",
  );
});

test('explicit null options are Python None (falsy), absent ones take the defaults', () => {
  const doc = (extra: string) =>
    `{"function": "encode_messages", "args": {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "reasoning_content": "r"}, {"role": "user", "content": "c"}], "thinking_mode": "thinking"${extra}}}`;
  const run = (extra: string) => {
    const r = runCase(doc(extra), 'x.json');
    return r.kind === 'encode' ? r.prompt : '';
  };
  assert.ok(run('').startsWith('<｜begin▁of▁sentence｜>'));
  assert.ok(!run(', "add_default_bos_token": null').startsWith('<｜begin▁of▁sentence｜>'));
  assert.ok(!run('').includes('r</think>'));
  assert.ok(run(', "drop_thinking": null').includes('r</think>'));
});
