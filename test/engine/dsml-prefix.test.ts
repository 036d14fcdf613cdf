// The dsml_tools constraint's `prefix` (prefix completion under strict tools, spec §6.1 + §6.2): the machine
// consumes the turn's text already in the prompt, then continues exactly as if it had generated it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DsmlMachine, type DsmlToolsSpec } from '../../src/engine/dsml-constraint.js';
import { renderToolCalls } from '../../src/tokenizer/encoding.js';

const time = { name: 'get_time', parameters: { type: 'object', properties: { zone: { enum: ['UTC', 'CET'] }, hours: { type: 'integer' } }, required: ['zone'] } };
const spec: DsmlToolsSpec = { kind: 'dsml_tools', tools: [time], thinking: false };
const block = renderToolCalls([{ type: 'function', function: { name: 'get_time', arguments: JSON.stringify({ zone: 'CET', hours: 2 }) } }]);

/** Byte by byte: accepted so far, and whether EOS may follow. */
function run(s: DsmlToolsSpec, text: string): { ok: boolean; eos: boolean } {
  const m = DsmlMachine.start(s);
  for (const b of Buffer.from(text, 'utf8')) if (!m.push(b)) return { ok: false, eos: false };
  return { ok: true, eos: m.eosAllowed };
}

test('dsml prefix: start(prefix) then text == start() then prefix + text, at every split point', () => {
  const turns: Array<[DsmlToolsSpec, string]> = [
    [spec, 'Let me check.\n' + block],
    [spec, 'Sure.' + block.slice(0, -5) + 'oops'],
    [{ ...spec, thinking: true }, 'Think about it.</think>' + block],
    [{ ...spec, forced: true }, block],
    [spec, 'plain answer <b>\n\n'],
  ];
  for (const [s, text] of turns) {
    const whole = run(s, text);
    for (let i = 0; i <= text.length; i++) {
      if (!run(s, text.slice(0, i)).ok) break;
      assert.deepEqual(run({ ...s, prefix: text.slice(0, i) }, text.slice(i)), whole, `${JSON.stringify(text)} split at ${i}`);
    }
  }
});

test('dsml prefix: a prefix outside the grammar throws', () => {
  for (const [s, prefix] of [
    [spec, '<｜DSML｜invoke name="get_time">\n'],
    [{ ...spec, forced: true }, 'Sure.'],
    [spec, '\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name="other">'],
    [{ ...spec, thinking: true }, 'a<think>'],
  ] as const) {
    assert.throws(() => DsmlMachine.start({ ...s, prefix }), /prefix does not follow the tool-call grammar/, prefix);
  }
});
