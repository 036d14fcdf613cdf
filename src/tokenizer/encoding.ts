// Chat rendering with the exact semantics of the reference `encode_messages`
// (spec §6.2). Messages are Python-like dicts (plain objects or Maps, see
// pyjson.ts); every truthiness test, default and error follows the reference.
import { PyError, deepCopy, dget, dhas, dindex, dentries, dumps, isDict, pyStr, truthy, loads, type PyDict } from './pyjson.js';
import {
  ASSISTANT, BOS, DSML, EOS, LATEST_REMINDER, REASONING_EFFORT_MAX, RESPONSE_FORMAT_HEADER, TASK_TOKENS, THINK_END,
  THINK_START, TOOL_CALLS_BLOCK, USER, toolsBlock,
} from './templates.js';

export type ThinkingMode = 'chat' | 'thinking';
export type ReasoningEffort = 'max' | 'high' | null;

export interface EncodeOptions {
  thinkingMode: ThinkingMode;
  /** Messages already rendered earlier (an incremental prompt continues after them; no BOS). */
  context?: unknown[] | null;
  /** Default true: drop reasoning of turns before the last user message (thinking mode). */
  dropThinking?: boolean;
  /** Default true. */
  addDefaultBosToken?: boolean;
  reasoningEffort?: ReasoningEffort;
}

type Msg = PyDict;

function assert(cond: boolean, message: string): asserts cond {
  if (!cond) throw new PyError('AssertionError', message);
}

/** dict.get(key, default): the default applies only when the key is absent. */
function getOr(d: unknown, key: string, def: unknown): unknown {
  const v = dget(d, key);
  return v === undefined ? def : v;
}

function setKey(d: Msg, key: string, v: unknown): void {
  if (d instanceof Map) d.set(key, v);
  else d[key] = v;
}

function iterList(v: unknown): unknown[] {
  if (Array.isArray(v)) return v;
  if (typeof v === 'string') return [...v];
  if (v instanceof Map) return [...v.keys()];
  if (isDict(v)) return Object.keys(v);
  throw new PyError('TypeError', `'${typeof v}' object is not iterable`);
}

/** "\n\n".join(parts): every part must be a str. */
function joinStr(parts: unknown[], sep: string): string {
  for (const p of parts) if (typeof p !== 'string') throw new PyError('TypeError', 'sequence item: expected str instance');
  return parts.join(sep);
}

function concat(a: string, b: unknown): string {
  if (typeof b !== 'string') throw new PyError('TypeError', 'can only concatenate str (not "' + typeof b + '") to str');
  return a + b;
}

function lastUserIndex(messages: Msg[]): number {
  for (let i = messages.length - 1; i >= 0; i--) {
    const role = dget(messages[i], 'role');
    if (role === 'user' || role === 'developer') return i;
  }
  return -1;
}

function renderTools(functions: unknown[]): string {
  return toolsBlock(functions.map(dumps).join('\n'));
}

/** DSML parameters of one call; unparsable (or non-str) arguments become one `arguments` parameter. */
export function encodeArgumentsToDsml(args: unknown): string {
  let parsed: unknown;
  if (typeof args === 'string') {
    try {
      parsed = loads(args);
    } catch {
      parsed = new Map([['arguments', args]]);
    }
  } else parsed = new Map([['arguments', args]]);
  if (!isDict(parsed)) throw new PyError('AttributeError', `'${Array.isArray(parsed) ? 'list' : typeof parsed}' object has no attribute 'items'`);
  return dentries(parsed)
    .map(([k, v]) => {
      const isStr = typeof v === 'string';
      return `<${DSML}parameter name="${k}" string="${isStr ? 'true' : 'false'}">${isStr ? v : dumps(v)}</${DSML}parameter>`;
    })
    .join('\n');
}

/** The "\n\n<｜DSML｜tool_calls>…" block of an assistant message (OpenAI-format calls). */
export function renderToolCalls(toolCalls: unknown[]): string {
  const invokes = toolCalls.map((tc) => {
    const fn = dindex(tc, 'function');
    const name = dindex(fn, 'name');
    const args = dindex(fn, 'arguments');
    return `<${DSML}invoke name="${pyStr(name)}">\n${encodeArgumentsToDsml(args)}\n</${DSML}invoke>`;
  });
  return `\n\n<${DSML}${TOOL_CALLS_BLOCK}>\n${invokes.join('\n')}\n</${DSML}${TOOL_CALLS_BLOCK}>`;
}

function renderUserBlocks(blocks: unknown[]): string {
  const parts: unknown[] = [];
  for (const block of blocks) {
    const type = dget(block, 'type');
    if (type === 'text') parts.push(getOr(block, 'text', ''));
    else if (type === 'tool_result') {
      let content = getOr(block, 'content', '');
      if (Array.isArray(content)) {
        content = joinStr(
          content.map((b) => (dget(b, 'type') === 'text' ? getOr(b, 'text', '') : `[Unsupported ${pyStr(dget(b, 'type') ?? null)}]`)),
          '\n\n',
        );
      }
      parts.push(`<tool_result>${pyStr(content)}</tool_result>`);
    } else parts.push(`[Unsupported ${pyStr(type ?? null)}]`);
  }
  return joinStr(parts, '\n\n');
}

function extrasBlocks(functions: unknown[] | null, responseFormat: unknown): string {
  let s = '';
  if (functions && functions.length) s += '\n\n' + renderTools(functions);
  if (truthy(responseFormat)) s += '\n\n' + RESPONSE_FORMAT_HEADER + dumps(responseFormat);
  return s;
}

function renderMessage(index: number, messages: Msg[], mode: string, dropThinking: boolean, effort: unknown): string {
  assert(mode === 'chat' || mode === 'thinking', `Invalid thinking_mode \`${mode}\``);
  const msg = messages[index];
  const lastUser = lastUserIndex(messages);
  const role = dget(msg, 'role');
  const content = dget(msg, 'content');
  const rawTools = dget(msg, 'tools');
  const responseFormat = dget(msg, 'response_format');
  const rawCalls = dget(msg, 'tool_calls');
  const reasoning = dget(msg, 'reasoning_content');
  const woEos = getOr(msg, 'wo_eos', false);

  const functions = truthy(rawTools) ? iterList(rawTools).map((t) => dindex(t, 'function')) : null;
  const toolCalls = truthy(rawCalls) ? iterList(rawCalls) : null;
  // The reference converts calls to {name, arguments} first (KeyError on a missing field).
  if (toolCalls) for (const tc of toolCalls) (dindex(dindex(tc, 'function'), 'name'), dindex(dindex(tc, 'function'), 'arguments'));

  assert(effort === 'max' || effort === null || effort === undefined || effort === 'high', `Invalid reasoning effort: ${pyStr(effort)}`);
  let prompt = '';
  if (index === 0 && mode === 'thinking' && effort === 'max') prompt += REASONING_EFFORT_MAX;

  if (role === 'system') {
    prompt += pyStr(truthy(content) ? content : '') + extrasBlocks(functions, responseFormat);
  } else if (role === 'developer') {
    assert(truthy(content), `Invalid message for role \`${role}\``);
    prompt += concat(USER, content) + extrasBlocks(functions, responseFormat);
  } else if (role === 'user') {
    const blocks = dget(msg, 'content_blocks');
    prompt += USER + (truthy(blocks) ? renderUserBlocks(iterList(blocks)) : truthy(content) ? concat('', content) : '');
  } else if (role === 'latest_reminder') {
    prompt += LATEST_REMINDER + pyStr(content ?? null);
  } else if (role === 'tool') {
    throw new PyError('NotImplementedError', 'deepseek_v4 merges tool messages into user; please preprocess with merge_tool_messages()');
  } else if (role === 'assistant') {
    const tc = toolCalls ? renderToolCalls(toolCalls) : '';
    const prevHasTask = index - 1 >= 0 && (dget(messages[index - 1], 'task') ?? null) !== null;
    let thinking = '';
    if (mode === 'thinking' && !prevHasTask && (!dropThinking || index > lastUser)) {
      thinking = pyStr(truthy(reasoning) ? reasoning : '') + THINK_END;
    }
    prompt += thinking + pyStr(truthy(content) ? content : '') + tc + (truthy(woEos) ? '' : EOS);
  } else {
    throw new PyError('NotImplementedError', `Unknown role: ${pyStr(role ?? null)}`);
  }

  // Transition to the next turn (only when the next message is absent, an assistant or a reminder).
  if (index + 1 < messages.length) {
    const next = dget(messages[index + 1], 'role');
    if (next !== 'assistant' && next !== 'latest_reminder') return prompt;
  }
  const task = dget(msg, 'task') ?? null;
  if (task !== null) {
    assert(typeof task === 'string' && Object.hasOwn(TASK_TOKENS, task), `Invalid task: '${pyStr(task)}'`);
    const tok = TASK_TOKENS[task as string];
    if (task !== 'action') prompt += tok;
    else prompt += ASSISTANT + (mode !== 'thinking' ? THINK_END : THINK_START) + tok;
  } else if (role === 'user' || role === 'developer') {
    prompt += ASSISTANT;
    if (mode === 'thinking' && (!dropThinking || index >= lastUser)) prompt += THINK_START;
    else prompt += THINK_END;
  }
  return prompt;
}

/** Tool messages become tool_result blocks of a user message; consecutive user messages merge. */
export function mergeToolMessages(messages: unknown[]): Msg[] {
  const merged: Msg[] = [];
  for (const original of messages) {
    const msg = deepCopy(original) as Msg;
    const role = dget(msg, 'role');
    const last = merged.length ? merged[merged.length - 1] : null;
    const lastIsBlockUser = last !== null && dget(last, 'role') === 'user' && dhas(last, 'content_blocks');
    if (role === 'tool') {
      const block = new Map<string, unknown>([
        ['type', 'tool_result'],
        ['tool_use_id', getOr(msg, 'tool_call_id', '')],
        ['content', getOr(msg, 'content', '')],
      ]);
      if (lastIsBlockUser) (dget(last, 'content_blocks') as unknown[]).push(block);
      else merged.push(new Map<string, unknown>([['role', 'user'], ['content_blocks', [block]]]));
    } else if (role === 'user') {
      const text = getOr(msg, 'content', '');
      const block = new Map<string, unknown>([['type', 'text'], ['text', text]]);
      if (lastIsBlockUser && (dget(last, 'task') ?? null) === null) (dget(last, 'content_blocks') as unknown[]).push(block);
      else {
        const m = new Map<string, unknown>([['role', 'user'], ['content', text], ['content_blocks', [block]]]);
        for (const key of ['task', 'wo_eos', 'mask']) if (dhas(msg, key)) m.set(key, dget(msg, key));
        merged.push(m);
      }
    } else merged.push(msg);
  }
  return merged;
}

/** Reorders tool_result blocks of each user message by the preceding assistant's call order (in place). */
export function sortToolResultsByCallOrder(messages: Msg[]): Msg[] {
  let order = new Map<unknown, number>();
  for (const msg of messages) {
    const role = dget(msg, 'role');
    if (role === 'assistant' && truthy(dget(msg, 'tool_calls'))) {
      order = new Map();
      iterList(dget(msg, 'tool_calls')).forEach((tc, idx) => {
        let id = dget(tc, 'id');
        if (!truthy(id)) id = getOr(getOr(tc, 'function', new Map()), 'id', '');
        if (truthy(id)) order.set(id, idx);
      });
    } else if (role === 'user' && truthy(dget(msg, 'content_blocks'))) {
      const blocks = iterList(dget(msg, 'content_blocks'));
      const toolBlocks = blocks.filter((b) => dget(b, 'type') === 'tool_result');
      if (toolBlocks.length > 1 && order.size > 0) {
        const sorted = [...toolBlocks].sort((a, b) => (order.get(getOr(a, 'tool_use_id', '')) ?? 0) - (order.get(getOr(b, 'tool_use_id', '')) ?? 0));
        let k = 0;
        setKey(msg, 'content_blocks', blocks.map((b) => (dget(b, 'type') === 'tool_result' ? sorted[k++] : b)));
      }
    }
  }
  return messages;
}

/** Before the last user/developer message: assistants lose reasoning, developers (and unknown roles) go. */
function dropThinkingMessages(messages: Msg[]): Msg[] {
  const lastUser = lastUserIndex(messages);
  const keep = new Set(['user', 'system', 'tool', 'latest_reminder', 'direct_search_results']);
  const out: Msg[] = [];
  messages.forEach((msg, idx) => {
    const role = dget(msg, 'role');
    if ((typeof role === 'string' && keep.has(role)) || idx >= lastUser) out.push(msg);
    else if (role === 'assistant') {
      const copy: Msg = msg instanceof Map ? new Map(msg) : { ...msg };
      if (copy instanceof Map) copy.delete('reasoning_content');
      else delete copy.reasoning_content;
      out.push(copy);
    }
  });
  return out;
}

/** `encode_messages`: the prompt string (BOS and special tokens as text). */
export function encodeMessages(messages: unknown[], opts: EncodeOptions): string {
  const mode: string = opts.thinkingMode;
  // Defaults apply only to absent options: an explicit null is Python None (falsy), as in a case file.
  const dropThinking = opts.dropThinking === undefined ? true : opts.dropThinking;
  const addBos = opts.addDefaultBosToken === undefined ? true : opts.addDefaultBosToken;
  const effort = opts.reasoningEffort ?? null;
  let context: Msg[] = truthy(opts.context) ? deepCopy(opts.context as Msg[]) : [];

  let msgs = mergeToolMessages(messages);
  msgs = sortToolResultsByCallOrder([...context, ...msgs]).slice(context.length);
  if (context.length) context = sortToolResultsByCallOrder(mergeToolMessages(context));
  let full = [...context, ...msgs];

  let prompt = truthy(addBos) && context.length === 0 ? BOS : '';
  const effectiveDrop = truthy(dropThinking) && !full.some((m) => truthy(dget(m, 'tools')));

  let count = msgs.length;
  let contextLen = context.length;
  if (mode === 'thinking' && effectiveDrop) {
    full = dropThinkingMessages(full);
    count = full.length - dropThinkingMessages(context).length;
    contextLen = full.length - count;
  }
  for (let i = 0; i < count; i++) prompt += renderMessage(i + contextLen, full, mode, effectiveDrop, effort);
  return prompt;
}

