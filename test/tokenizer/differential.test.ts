// 500 random calls answered by the official reference (test/fixtures/encoding/differential, made by its
// generate.py): encoder and one-shot parser must agree exactly (result or exception class), and the stream
// parser must agree on every accepted completion and flag every rejected one that has an EOS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ENCODING_DIR } from './fixtures.js';
import { runCase } from '../../src/tokenizer/cases.js';
import { PyError, loads } from '../../src/tokenizer/pyjson.js';
import { StreamParser } from '../../src/tokenizer/stream.js';

interface Row {
  input: string;
  result: unknown;
  error: string | null;
}

const rows: Row[] = readFileSync(join(ENCODING_DIR, 'differential/differential.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l));

test('differential: encoder and parser agree with the reference on 500 random calls', () => {
  assert.equal(rows.length, 500);
  rows.forEach((row, i) => {
    let got: unknown;
    let err: string | null = null;
    try {
      const r = runCase(row.input, 'differential.json');
      got = r.kind === 'encode' ? r.prompt : r.message;
    } catch (e) {
      if (!(e instanceof PyError)) throw e;
      err = e.kind;
    }
    assert.equal(err, row.error, `row ${i}: ${row.input.slice(0, 300)}`);
    if (err === null) assert.deepEqual(got, row.result, `row ${i}`);
  });
});

test('differential: stream parser agrees (split anywhere) or flags what the reference rejects', () => {
  let parses = 0;
  for (const row of rows) {
    const doc = loads(row.input) as Map<string, unknown>;
    if (doc.get('function') !== 'parse_message_from_completion_text') continue;
    const args = doc.get('args') as Map<string, string>;
    const text = args.get('text')!;
    const mode = args.get('thinking_mode') as 'chat' | 'thinking';
    for (const cut of [0, 1, Math.floor(text.length / 2), text.length - 1]) {
      const p = new StreamParser(mode);
      p.push(text.slice(0, Math.max(0, cut)));
      p.push(text.slice(Math.max(0, cut)));
      p.finish('eos');
      const m = p.message();
      if (row.error === null) {
        assert.deepEqual({ ...m, tool_calls: m.tool_calls.map((c) => ({ type: c.type, function: c.function })) }, row.result, JSON.stringify(text));
        assert.deepEqual(p.flags, []);
      } else if (text.includes('<｜end▁of▁sentence｜>')) {
        assert.ok(p.flags.length > 0, `should flag: ${JSON.stringify(text)}`);
      }
    }
    parses++;
  }
  assert.ok(parses > 50);
});
