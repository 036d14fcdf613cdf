// Runs a chat-encoding case file in the goldens' format (spec §6.2; golden
// README "Chat encoding cases"): `{"function": ..., "args": {...}}`, or one of
// the four official test inputs (a message list, or {tools, messages}).
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { encodeMessages, type EncodeOptions, type ThinkingMode } from './encoding.js';
import { parseMessageFromCompletionText } from './parse.js';
import { PyError, dentries, dget, dumpsIndented, isDict, loads, type PyDict } from './pyjson.js';

export type CaseResult = { kind: 'encode'; prompt: string } | { kind: 'parse'; message: unknown };

/** Official tests' conventions (test_encoding_dsv4.py): case 4 is chat mode, the others thinking. */
function officialMode(file: string): ThinkingMode {
  return /test_input_4\.json$/.test(basename(file)) ? 'chat' : 'thinking';
}

const ENCODE_ARGS: Record<string, keyof EncodeOptions | 'messages'> = {
  messages: 'messages',
  thinking_mode: 'thinkingMode',
  context: 'context',
  drop_thinking: 'dropThinking',
  add_default_bos_token: 'addDefaultBosToken',
  reasoning_effort: 'reasoningEffort',
};

function callEncode(args: PyDict): string {
  const opts: Record<string, unknown> = {};
  for (const [k, v] of dentries(args)) {
    const name = ENCODE_ARGS[k];
    if (!name) throw new PyError('TypeError', `encode_messages() got an unexpected keyword argument '${k}'`);
    opts[name] = v;
  }
  if (opts.messages === undefined || opts.thinkingMode === undefined) {
    throw new PyError('TypeError', 'encode_messages() missing a required argument');
  }
  return encodeMessages(opts.messages as unknown[], opts as unknown as EncodeOptions);
}

function callParse(args: PyDict): unknown {
  const text = dget(args, 'text');
  const mode = dget(args, 'thinking_mode');
  for (const [k] of dentries(args)) {
    if (k !== 'text' && k !== 'thinking_mode') {
      throw new PyError('TypeError', `parse_message_from_completion_text() got an unexpected keyword argument '${k}'`);
    }
  }
  if (typeof text !== 'string' || mode === undefined) throw new PyError('TypeError', 'parse_message_from_completion_text() needs text and thinking_mode');
  return parseMessageFromCompletionText(text, mode as string);
}

/** Runs the case; Python-kind errors are thrown as PyError. `mode` overrides the official-case thinking mode. */
export function runCase(jsonText: string, file: string, mode?: ThinkingMode): CaseResult {
  const doc = loads(jsonText);
  if (isDict(doc) && dget(doc, 'function') !== undefined) {
    const fn = dget(doc, 'function');
    const args = dget(doc, 'args') ?? new Map();
    if (!isDict(args)) throw new Error('case "args" must be an object');
    if (fn === 'encode_messages') return { kind: 'encode', prompt: callEncode(args) };
    if (fn === 'parse_message_from_completion_text') return { kind: 'parse', message: callParse(args) };
    throw new Error(`unknown case function ${JSON.stringify(fn)}`);
  }
  // Official format: test_input_1 carries top-level tools, attached to messages[0].
  let messages: unknown;
  if (Array.isArray(doc)) messages = doc;
  else if (isDict(doc) && Array.isArray(dget(doc, 'messages'))) {
    messages = dget(doc, 'messages');
    const tools = dget(doc, 'tools');
    const first = (messages as unknown[])[0];
    if (tools !== undefined && isDict(first)) {
      if (first instanceof Map) first.set('tools', tools);
      else first.tools = tools;
    }
  } else throw new Error('not a chat-encoding case: expected {"function", "args"}, a message list or {messages}');
  return { kind: 'encode', prompt: encodeMessages(messages as unknown[], { thinkingMode: mode ?? officialMode(file) }) };
}

/** What `dsv4 encode|parse <case>` prints: the prompt (raw) or the parsed message (indent-2 JSON); where the
 *  reference raises, {"error": "<PythonExceptionClass>"} on stdout, the message on stderr and exit code 1. */
export function caseCommandOutput(file: string, want: CaseResult['kind'], mode?: ThinkingMode): { stdout: string; stderr: string; code: number } {
  const text = readFileSync(file, 'utf8');
  try {
    const r = runCase(text, file, mode);
    if (r.kind !== want) throw new Error(`${file} is ${r.kind === 'encode' ? 'an encode' : 'a parse'} case; use \`dsv4 ${r.kind}\``);
    return { stdout: r.kind === 'encode' ? r.prompt : dumpsIndented(r.message) + '\n', stderr: '', code: 0 };
  } catch (err) {
    if (!(err instanceof PyError)) throw err;
    return { stdout: JSON.stringify({ error: err.kind }) + '\n', stderr: `dsv4: ${err.kind}: ${err.message}\n`, code: 1 };
  }
}
