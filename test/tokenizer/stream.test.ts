// Streaming parser: marker hold-back, flushing at EOS / cut / stop, malformed DSML degrading to content,
// and agreement with the one-shot parser on every golden parse case under every split point.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamParser, parseMessageFromCompletionText, type StreamEvent } from '../../src/tokenizer/index.js';
import { goldenCases } from './fixtures.js';
import { loads } from '../../src/tokenizer/pyjson.js';

const EOS = '<｜end▁of▁sentence｜>';

function feed(p: StreamParser, chunks: string[]): StreamEvent[] {
  const ev: StreamEvent[] = [];
  for (const c of chunks) ev.push(...p.push(c));
  return ev;
}

function plain(m: ReturnType<StreamParser['message']>) {
  return { ...m, tool_calls: m.tool_calls.map((c) => ({ type: c.type, function: c.function })) };
}

test('holds back a partial </think> and switches to content', () => {
  const p = new StreamParser('thinking');
  assert.deepEqual(p.push('Hello</thi'), [{ type: 'reasoning', text: 'Hello' }]);
  assert.deepEqual(p.push('nk>World'), [{ type: 'content', text: 'World' }]);
  assert.deepEqual(p.push(EOS), []);
  assert.ok(p.done);
  assert.deepEqual(p.flags, []);
});

test('never leaks a partial DSML block start into content', () => {
  const p = new StreamParser('chat');
  const ev = feed(p, ['Let me check.\n', '\n<｜DS', 'ML｜tool_calls>\n<｜DSML｜invoke name="f">\n', '<｜DSML｜parameter name="q" string="true">a"b', '</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>', EOS]);
  const content = ev.filter((e) => e.type === 'content').map((e) => (e as { text: string }).text).join('');
  assert.equal(content, 'Let me check.');
  const args = ev.filter((e) => e.type === 'tool_call_arguments').map((e) => (e as { text: string }).text).join('');
  assert.equal(args, '{"q": "a\\"b"}');
  assert.deepEqual(ev.find((e) => e.type === 'tool_call_start'), { type: 'tool_call_start', index: 0, id: p.message().tool_calls[0].id, name: 'f' });
  assert.deepEqual(p.flags, []);
});

test('max_tokens cut releases held-back text; a cut inside a tool block degrades it to content', () => {
  const a = new StreamParser('chat');
  a.push('abc\n\n<｜DS');
  const ev = a.finish('length');
  assert.deepEqual(ev, [{ type: 'content', text: '\n\n<｜DS' }]);
  assert.equal(a.message().content, 'abc\n\n<｜DS');

  const b = new StreamParser('chat');
  b.push('x\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name="f">\n<｜DSML｜parameter name="k" string="false">[1, ');
  const ev2 = b.finish('length');
  assert.equal(ev2[0].type, 'malformed');
  assert.equal(b.message().content, 'x\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name="f">\n<｜DSML｜parameter name="k" string="false">[1, ');
  assert.deepEqual(b.message().tool_calls, []);
  assert.equal(b.flags.length, 1);
});

test('stop sequence: the engine cuts before it and calls finish("stop"); reasoning is flushed', () => {
  const p = new StreamParser('thinking');
  p.push('still thinking </th');
  const ev = p.finish('stop');
  assert.deepEqual(ev, [{ type: 'reasoning', text: '</th' }]);
  assert.equal(p.message().reasoning_content, 'still thinking </th');
  assert.deepEqual(p.flags, ['missing </think>']);
});

test('malformed DSML degrades to content and is flagged, then parsing continues to EOS', () => {
  const p = new StreamParser('chat');
  const bad = '\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke nam="f">\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>';
  const ev = feed(p, ['Hi', bad, ' tail', EOS]);
  assert.ok(ev.some((e) => e.type === 'malformed'));
  assert.equal(p.message().content, 'Hi' + bad + ' tail');
  assert.deepEqual(p.message().tool_calls, []);
  assert.ok(p.done);
  assert.throws(() => parseMessageFromCompletionText('Hi' + bad + EOS, 'chat'));
});

test('duplicate parameter and content after the block are malformed', () => {
  const dup = '\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name="f">\n<｜DSML｜parameter name="a" string="true">1</｜DSML｜parameter>\n<｜DSML｜parameter name="a" string="true">2</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>' + EOS;
  const p = new StreamParser('chat');
  p.push(dup);
  assert.equal(p.flags.length, 1);
  assert.deepEqual(p.message().tool_calls, []);
  const after = '\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name="f">\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>junk' + EOS;
  const q = new StreamParser('chat');
  q.push(after);
  assert.equal(q.flags.length, 1);
  assert.equal(q.message().content, after.slice(0, -EOS.length));
});

test('</think> inside content is dropped and flagged (never reaches content)', () => {
  const p = new StreamParser('chat');
  feed(p, ['a</th', 'ink>b', EOS]);
  assert.equal(p.message().content, 'ab');
  assert.equal(p.flags.length, 1);
});

test('golden parse cases: stream parser agrees with the one-shot parser at every split point', () => {
  let n = 0;
  for (const c of goldenCases()) {
    const doc = loads(c.input) as Map<string, unknown>;
    if (doc.get('function') !== 'parse_message_from_completion_text') continue;
    const args = doc.get('args') as Map<string, string>;
    const text = args.get('text')!;
    const mode = args.get('thinking_mode') as 'chat' | 'thinking';
    const expected = JSON.parse(c.expectedJson!);
    for (let cut = 0; cut <= text.length; cut++) {
      const p = new StreamParser(mode);
      p.push(text.slice(0, cut));
      p.push(text.slice(cut));
      p.finish('eos');
      // A missing EOS is no error when streaming: the engine may consume EOS and call finish('eos').
      if ('error' in expected && !c.name.includes('missing_eos')) assert.ok(p.flags.length > 0, `${c.name} should be flagged`);
      else if ('error' in expected) assert.equal(p.message().content + p.message().reasoning_content, text.replace('</think>', ''));
      else {
        assert.deepEqual(plain(p.message()), expected, `${c.name} split at ${cut}`);
        assert.deepEqual(p.flags, []);
      }
    }
    n++;
  }
  assert.equal(n, 8);
});
