// One-shot completion parser with the semantics of the reference
// `parse_message_from_completion_text` (spec §6.2): strict, raises on any
// format error (AssertionError / ValueError kinds as in Python).
import { PyError, dumpString } from './pyjson.js';
import {
  BOS, DSML, EOS, INVOKE_CLOSE, INVOKE_OPEN, PARAM_CLOSE, PARAM_OPEN, THINK_END, THINK_START, TOOL_CALLS_CLOSE,
  TOOL_CALLS_START,
} from './templates.js';

export interface ToolCall {
  type: 'function';
  function: { name: string; arguments: string };
}

export interface ParsedMessage {
  role: 'assistant';
  content: string;
  reasoning_content: string;
  tool_calls: ToolCall[];
}

function assert(cond: boolean, message: string): asserts cond {
  if (!cond) throw new PyError('AssertionError', message);
}

/** Reads from `index` to the earliest of `stops`; returns [next index, text before, matched stop | null]. */
export function readUntilStop(index: number, text: string, stops: string[]): [number, string, string | null] {
  let minPos = text.length;
  let matched: string | null = null;
  for (const s of stops) {
    const pos = text.indexOf(s, index);
    if (pos !== -1 && pos < minPos) {
      minPos = pos;
      matched = s;
    }
  }
  if (matched) return [minPos + matched.length, text.slice(index, minPos), matched];
  return [text.length, text.slice(index), null];
}

// Python's `\s` (str.isspace) and `$` (end, or before a final "\n") in JS terms.
const PY_WS = '[\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';
const PY_END = '(?=\\n?$)';
export const INVOKE_NAME_RE = new RegExp(`^${PY_WS}*name="([\\s\\S]*?)">\\n${PY_END}`);
export const PARAM_RE = new RegExp(`^ name="([\\s\\S]*?)" string="(true|false)">([\\s\\S]*?)<${PY_END}`);

/** The arguments JSON text the reference builds from DSML parameters. */
export function argumentsJson(params: [name: string, value: string, isString: boolean][]): string {
  return '{' + params.map(([k, v, s]) => `${dumpString(k)}: ${s ? dumpString(v) : v}`).join(', ') + '}';
}

function parseToolCalls(index: number, text: string): [number, string | null, ToolCall[]] {
  const calls: ToolCall[] = [];
  let stop: string | null = null;
  while (index < text.length) {
    let between: string;
    [index, between, stop] = readUntilStop(index, text, [INVOKE_OPEN, TOOL_CALLS_CLOSE]);
    if (between !== '>\n') throw new PyError('ValueError', `Tool call format error: expected '>\\n' but got '${between}'`);
    if (stop === TOOL_CALLS_CLOSE) break;
    if (stop === null) throw new PyError('ValueError', 'Missing special token in tool calls');
    let head: string;
    [index, head, stop] = readUntilStop(index, text, [PARAM_OPEN, INVOKE_CLOSE]);
    const nm = INVOKE_NAME_RE.exec(head);
    if (!nm) throw new PyError('ValueError', `Tool name format error: '${head}'`);
    const params: [string, string, boolean][] = [];
    const seen = new Set<string>();
    while (stop === PARAM_OPEN) {
      let body: string;
      [index, body, stop] = readUntilStop(index, text, [PARAM_CLOSE]);
      const pm = PARAM_RE.exec(body);
      if (!pm) throw new PyError('ValueError', `Parameter format error: '${body}'`);
      if (seen.has(pm[1])) throw new PyError('ValueError', `Duplicate parameter name: '${pm[1]}'`);
      seen.add(pm[1]);
      params.push([pm[1], pm[3], pm[2] === 'true']);
      let after: string;
      [index, after, stop] = readUntilStop(index, text, [PARAM_OPEN, INVOKE_CLOSE]);
      if (after !== '>\n') throw new PyError('ValueError', `Parameter format error: expected '>\\n' but got '${after}'`);
    }
    calls.push({ type: 'function', function: { name: nm[1], arguments: argumentsJson(params) } });
  }
  return [index, stop, calls];
}

/** `parse_message_from_completion_text`: text is one assistant turn, EOS included. */
export function parseMessageFromCompletionText(text: string, thinkingMode: string): ParsedMessage {
  let index = 0;
  let stop: string | null;
  let reasoning = '';
  let content: string;
  let calls: ToolCall[] = [];
  if (thinkingMode === 'thinking') {
    [index, reasoning, stop] = readUntilStop(index, text, [THINK_END, TOOL_CALLS_START]);
    assert(stop === THINK_END, 'Invalid thinking format: missing </think>');
  }
  [index, content, stop] = readUntilStop(index, text, [EOS, TOOL_CALLS_START]);
  if (stop === TOOL_CALLS_START) {
    [index, stop, calls] = parseToolCalls(index, text);
    let tail: string;
    [index, tail, stop] = readUntilStop(index, text, [EOS]);
    assert(!tail, 'Unexpected content after tool calls');
  } else assert(stop === EOS, 'Invalid format: missing EOS token');
  assert(index === text.length && (stop === EOS || stop === null), 'Unexpected content at end');
  for (const sp of [BOS, EOS, THINK_START, THINK_END, DSML]) {
    assert(!content.includes(sp) && !reasoning.includes(sp), `Unexpected special token '${sp}' in content`);
  }
  return { role: 'assistant', content, reasoning_content: reasoning, tool_calls: calls };
}
