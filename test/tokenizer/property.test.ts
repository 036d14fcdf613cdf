// Property test (issue 3): random assistant messages -> render -> tokenize -> stream-parse under random
// chunkings (text chunks and token ids) -> the original message; the one-shot parser agrees.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  encodeMessages, loadTokenizer, parseMessageFromCompletionText, StreamParser, type ThinkingMode,
} from '../../src/tokenizer/index.js';
import { dumps, PyFloat } from '../../src/tokenizer/pyjson.js';

function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Pieces chosen to stress the tokenizer and the parser: partial markers, chat tokens that are legal in
// content, quotes/backslashes, CJK, emoji (4-byte UTF-8), combining marks, control characters.
const PIECES = [
  'a', 'Hello', ' world', '\n', '\n\n', '\t', ' ', '"', '\\', '{', '}', '[', ']', ':', ',', '<', '>', '</', '/', '=',
  '你好', '数学', 'é', 'ß', '😀', '🌍', '\u0301', 'Ω', '\u0000', '\u001f', '\r\n', '123', '4.5', 'true', 'null',
  '</thi', '<think', '<｜', '｜>', '<｜end▁of', '<｜DSML', 'DSML', '｜DSM', '\n\n<', '\n\n<｜', 'invoke', 'parameter',
  'string="true">', '<｜User｜>', '<｜Assistant｜>', '<dsml:', '<｜fim▁hole｜>', '<｜place▁holder▁no▁7｜>',
];
// What the reference format cannot carry (spec §6.2 parse: special tokens are rejected in content).
const FORBIDDEN = ['<｜begin▁of▁sentence｜>', '<｜end▁of▁sentence｜>', '<think>', '</think>', '｜DSML｜'];

function text(r: () => number, maxPieces: number): string {
  for (;;) {
    let s = '';
    const n = Math.floor(r() * (maxPieces + 1));
    for (let i = 0; i < n; i++) s += PIECES[Math.floor(r() * PIECES.length)];
    if (!FORBIDDEN.some((f) => s.includes(f))) return s;
  }
}

function jsonValue(r: () => number, depth: number): unknown {
  const k = Math.floor(r() * (depth > 2 ? 6 : 8));
  switch (k) {
    case 0: return text(r, 4);
    case 1: return Math.floor((r() - 0.5) * 1e6);
    case 2: return r() < 0.5 ? (r() - 0.5) * 10 ** Math.floor(r() * 40 - 20) : new PyFloat(Math.floor(r() * 100));
    case 3: return r() < 0.5;
    case 4: return null;
    case 5: return '';
    case 6: return Array.from({ length: Math.floor(r() * 4) }, () => jsonValue(r, depth + 1));
    default: return new Map(Array.from({ length: Math.floor(r() * 4) }, (_, i) => [`${text(r, 2).replace(/"/g, '')}${i}`, jsonValue(r, depth + 1)]));
  }
}

interface Case {
  mode: ThinkingMode;
  message: { role: 'assistant'; content: string | null; reasoning_content?: string; tool_calls?: unknown[] };
  expected: { role: 'assistant'; content: string; reasoning_content: string; tool_calls: { type: 'function'; function: { name: string; arguments: string } }[] };
}

function randomCase(r: () => number): Case {
  const mode: ThinkingMode = r() < 0.5 ? 'thinking' : 'chat';
  const reasoning = text(r, 6);
  const content = r() < 0.1 ? null : text(r, 8);
  const nCalls = r() < 0.4 ? 0 : Math.floor(r() * 4);
  const calls = Array.from({ length: nCalls }, (_, i) => {
    const args = new Map<string, unknown>();
    const nArgs = Math.floor(r() * 5);
    for (let j = 0; j < nArgs; j++) args.set(`${text(r, 2).replace(/"/g, '')}_${j}`, jsonValue(r, 0));
    return { name: `tool_${i}${text(r, 1).replace(/["<>｜]/g, '')}`, arguments: dumps(args) };
  });
  const message: Case['message'] = { role: 'assistant', content, reasoning_content: reasoning };
  if (calls.length) message.tool_calls = calls.map((c, i) => ({ id: `id${i}`, type: 'function', function: c }));
  return {
    mode,
    message,
    expected: {
      role: 'assistant',
      content: content ?? '',
      reasoning_content: mode === 'thinking' ? reasoning : '',
      tool_calls: calls.map((c) => ({ type: 'function', function: c })),
    },
  };
}

function randomChunks(s: string, r: () => number): string[] {
  const out: string[] = [];
  for (let i = 0; i < s.length; ) {
    const n = 1 + Math.floor(r() * 12);
    out.push(s.slice(i, i + n));
    i += n;
  }
  return out;
}

test('1,000 random assistant messages survive render -> tokenize -> stream parse', async () => {
  const tok = await loadTokenizer();
  const r = rng(20260601);
  let calls = 0;
  for (let n = 0; n < 1000; n++) {
    const c = randomCase(r);
    const user = { role: 'user', content: 'q' };
    const prompt = encodeMessages([user], { thinkingMode: c.mode });
    const full = encodeMessages([user, c.message], { thinkingMode: c.mode });
    assert.ok(full.startsWith(prompt), 'the prompt is a prefix of the rendered conversation');
    const completion = full.slice(prompt.length);
    const ctx = `case ${n}: ${JSON.stringify(completion)}`;

    assert.deepEqual(parseMessageFromCompletionText(completion, c.mode), c.expected, ctx);

    const ids = tok.encode(completion);
    assert.equal(tok.decode(ids), completion, ctx);

    // Token by token, ids decoded inside the parser.
    const p1 = new StreamParser(c.mode, { tokenizer: tok, toolCallId: (i) => `call_${i}` });
    for (const id of ids) p1.pushToken(id);
    p1.finish('eos');
    // Random text chunks.
    const p2 = new StreamParser(c.mode, { toolCallId: (i) => `call_${i}` });
    for (const ch of randomChunks(completion, r)) p2.push(ch);
    p2.finish('eos');
    // Engine-style: EOS token consumed by the engine, never shown to the parser.
    const p3 = new StreamParser(c.mode, { toolCallId: (i) => `call_${i}` });
    const dec = tok.decoder();
    for (const id of ids.slice(0, -1)) p3.push(dec.push(id));
    p3.finish('eos');

    for (const p of [p1, p2, p3]) {
      const m = p.message();
      assert.deepEqual(p.flags, [], ctx);
      assert.deepEqual({ ...m, tool_calls: m.tool_calls.map((t) => ({ type: t.type, function: t.function })) }, c.expected, ctx);
      assert.deepEqual(m.tool_calls.map((t) => t.id), c.expected.tool_calls.map((_, i) => `call_${i}`));
    }
    calls += c.expected.tool_calls.length;
  }
  assert.ok(calls > 500, `enough tool calls exercised (${calls})`);
});
