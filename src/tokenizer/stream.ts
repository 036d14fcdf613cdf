// Incremental completion parser (spec §6.2 "parse_message_from_completion_text",
// streamed). Fed decoded text (or token ids), it emits reasoning and content
// deltas, tool-call starts and OpenAI-style argument fragments whose
// concatenation equals the one-shot parser's `arguments` string. Text that might
// be the start of a marker (`</think>`, EOS, the DSML tool-call block) is held
// back until it is decided, so no partial marker ever reaches content. A
// malformed DSML block is not an error: it is flagged and degrades to content.
import type { Tokenizer, IncrementalDecoder } from './bpe.js';
import type { ParsedMessage } from './parse.js';
import { INVOKE_NAME_RE } from './parse.js';
import { dumpString } from './pyjson.js';
import {
  BOS, DSML, EOS, INVOKE_CLOSE, INVOKE_OPEN, PARAM_CLOSE, PARAM_OPEN, THINK_END, THINK_START, TOOL_CALLS_CLOSE, TOOL_CALLS_START,
} from './templates.js';

export type StreamEvent =
  | { type: 'reasoning'; text: string }
  | { type: 'content'; text: string }
  | { type: 'tool_call_start'; index: number; id: string; name: string }
  | { type: 'tool_call_arguments'; index: number; text: string }
  | { type: 'tool_call_end'; index: number }
  /** The DSML block was malformed: its tool calls (from `firstIndex` on) are void; `text` (the block up to the
   *  error) is emitted as content, and the rest of the output follows as plain content up to EOS. */
  | { type: 'malformed'; reason: string; firstIndex: number; text: string };

export type FinishReason = 'eos' | 'length' | 'stop';

export interface StreamToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface StreamParserOptions {
  /** Id of the index-th tool call (default `call_<index>_<random>`). */
  toolCallId?: (index: number) => string;
  /** Needed only for pushToken. */
  tokenizer?: Tokenizer;
  /** Where the completion starts (default: reasoning in thinking mode, whose prompt ends with <think>;
   *  content in chat mode). A prefix completion may resume in either (see renderPrefixCompletion). */
  startIn?: 'reasoning' | 'content';
}

type State =
  | 'reasoning' | 'content' | 'plain' // plain: content after a malformed block (only EOS ends it)
  | 'block_open' | 'invoke_head' | 'param_header' | 'param_value' | 'param_after' | 'after_invoke' | 'after_block'
  | 'done';

const PARAM_VALUE_ENDS = ['<' + PARAM_CLOSE, '<\n' + PARAM_CLOSE, PARAM_CLOSE];
const PARAM_HEADER_RE = /^ name="([\s\S]*?)" string="(true|false)">/;
const PARAM_HEADER_PREFIX = ' name="';

/** Start of a suffix of s[from..] that is a proper prefix of one of the markers (s.length if none). */
function holdBackFrom(s: string, from: number, markers: string[]): number {
  const maxLen = Math.max(...markers.map((m) => m.length));
  for (let p = Math.max(from, s.length - maxLen + 1); p < s.length; p++) {
    const tail = s.slice(p);
    if (markers.some((m) => m.length > tail.length && m.startsWith(tail))) return p;
  }
  return s.length;
}

/** Earliest marker occurrence at or after `from`: [position, marker] or null. */
function findFirst(s: string, from: number, markers: string[]): [number, string] | null {
  let best: [number, string] | null = null;
  for (const m of markers) {
    const p = s.indexOf(m, from);
    if (p !== -1 && (best === null || p < best[0])) best = [p, m];
  }
  return best;
}

export class StreamParser {
  private buf = '';
  private pos = 0;
  private state: State;
  private events: StreamEvent[] = [];
  private reasoning = '';
  private content = '';
  private calls: StreamToolCall[] = [];
  private blockStart = 0; // buffer index of "\n\n<｜DSML｜tool_calls"
  private blockFirstCall = 0;
  private current: StreamToolCall | null = null;
  private paramCount = 0;
  private paramNames = new Set<string>();
  private paramIsString = false;
  private decoder: IncrementalDecoder | null = null;
  /** Why the output deviated from the strict format (empty when the reference parser would accept it). */
  readonly flags: string[] = [];

  constructor(readonly thinkingMode: 'chat' | 'thinking', private readonly opts: StreamParserOptions = {}) {
    // Thinking mode: the prompt ended with <think>, so generation starts inside the reasoning.
    this.state = opts.startIn ?? (thinkingMode === 'thinking' ? 'reasoning' : 'content');
  }

  /** True once EOS was seen (or finish was called). */
  get done(): boolean {
    return this.state === 'done';
  }

  /** Feeds a chunk of decoded completion text. */
  push(text: string): StreamEvent[] {
    if (this.state !== 'done') {
      this.buf += text;
      this.run(false);
    } else if (text) this.flag('text after EOS ignored');
    return this.drain();
  }

  /** Feeds one generated token (needs opts.tokenizer); partial UTF-8 is held until complete. */
  pushToken(id: number): StreamEvent[] {
    if (!this.opts.tokenizer) throw new Error('StreamParser.pushToken needs a tokenizer');
    this.decoder ??= this.opts.tokenizer.decoder();
    return this.push(this.decoder.push(id));
  }

  /** End of generation (EOS consumed by the engine, max_tokens cut, or stop sequence): releases held-back text. */
  finish(_reason: FinishReason = 'eos'): StreamEvent[] {
    if (this.decoder) this.buf += this.decoder.flush();
    if (this.state !== 'done') {
      this.run(true);
      if (this.state === 'reasoning') {
        if (this.thinkingMode === 'thinking') this.flag('missing </think>');
      } else if (this.state !== 'content' && this.state !== 'plain' && (this.state as State) !== 'done') {
        this.malformed('tool-call block incomplete at end of generation');
        this.run(true);
      }
      this.state = 'done';
    }
    return this.drain();
  }

  /** The message so far, in the one-shot parser's shape (tool calls with ids). */
  message(): Omit<ParsedMessage, 'tool_calls'> & { tool_calls: StreamToolCall[] } {
    const calls = this.calls.filter((c) => c !== this.current);
    return { role: 'assistant', content: this.content, reasoning_content: this.reasoning, tool_calls: calls.map((c) => ({ ...c, function: { ...c.function } })) };
  }

  private drain(): StreamEvent[] {
    const e = this.events;
    this.events = [];
    return e;
  }

  private flag(reason: string): void {
    this.flags.push(reason);
  }

  /** Flags special-token text the reference rejects in reasoning/content (it is kept, not removed). */
  private checkSpecials(acc: string, text: string, forbidden: string[]): void {
    const window = acc.slice(Math.max(0, acc.length - text.length - 24));
    for (const sp of forbidden) {
      if (window.includes(sp) && !this.flags.includes(`special token ${sp} in output text`)) this.flag(`special token ${sp} in output text`);
    }
  }

  private emitReasoning(text: string): void {
    if (!text) return;
    this.reasoning += text;
    this.checkSpecials(this.reasoning, text, [BOS, THINK_START, DSML]);
    this.events.push({ type: 'reasoning', text });
  }

  private emitContent(text: string): void {
    if (!text) return;
    this.content += text;
    if (this.state !== 'plain') this.checkSpecials(this.content, text, [BOS, DSML]);
    this.events.push({ type: 'content', text });
  }

  private emitArgs(text: string): void {
    const c = this.current!;
    c.function.arguments += text;
    this.events.push({ type: 'tool_call_arguments', index: this.calls.length - 1, text });
  }

  /** Degrades the current DSML block (up to the parse position) to content; the rest is scanned as plain content. */
  private malformed(reason: string): void {
    const text = this.buf.slice(this.blockStart, this.pos);
    this.flag(`malformed DSML: ${reason}`);
    this.events.push({ type: 'malformed', reason, firstIndex: this.blockFirstCall, text });
    this.calls.length = this.blockFirstCall;
    this.current = null;
    this.state = 'plain'; // before emitting: the degraded block's markers are not flagged twice
    this.emitContent(text);
  }

  /** Runs the state machine over the buffer; `final` = no more text will come. */
  private run(final: boolean): void {
    for (;;) {
      const before = this.pos;
      const beforeState = this.state;
      this.step(final);
      if (this.state === 'done' || (this.pos === before && this.state === beforeState)) return;
    }
  }

  /** Text-mode states: emit up to the first terminator, holding back possible marker prefixes. */
  private textUntil(markers: string[], emit: (t: string) => void, final: boolean): string | null {
    const hit = findFirst(this.buf, this.pos, markers);
    if (hit) {
      emit(this.buf.slice(this.pos, hit[0]));
      this.pos = hit[0] + hit[1].length;
      return hit[1];
    }
    const end = final ? this.buf.length : holdBackFrom(this.buf, this.pos, markers);
    emit(this.buf.slice(this.pos, end));
    this.pos = end;
    return null;
  }

  /** Literal-grammar states: pending text must be one of `options` (or a prefix of one, while streaming). */
  private expect(options: string[], final: boolean): string | null | false {
    const pending = this.buf.slice(this.pos);
    for (const o of options) {
      if (pending.startsWith(o)) {
        this.pos += o.length;
        return o;
      }
    }
    if (!final && options.some((o) => o.startsWith(pending))) return null;
    return false;
  }

  private step(final: boolean): void {
    switch (this.state) {
      case 'reasoning': {
        const m = this.textUntil([THINK_END, EOS], (t) => this.emitReasoning(t), final);
        if (m === THINK_END) this.state = 'content';
        else if (m === EOS) this.end('missing </think>');
        return;
      }
      case 'content': {
        const m = this.textUntil([TOOL_CALLS_START, EOS, THINK_END, THINK_START], (t) => this.emitContent(t), final);
        if (m === TOOL_CALLS_START) {
          this.blockStart = this.pos - m.length;
          this.blockFirstCall = this.calls.length;
          this.state = 'block_open';
        } else if (m === EOS) this.end();
        else if (m) this.flag(`unexpected ${m} in content (dropped)`);
        return;
      }
      case 'plain': {
        if (this.textUntil([EOS], (t) => this.emitContent(t), final) === EOS) this.end();
        return;
      }
      case 'block_open':
      case 'after_invoke': {
        const m = this.expect(['>\n' + INVOKE_OPEN, '>\n' + TOOL_CALLS_CLOSE], final);
        // The reference accepts text that stops right here (its loop ends at the end of the text).
        if (m === false && final && this.pos === this.buf.length) this.end();
        else if (m === false) this.malformed(`expected '>\\n' and an invoke or the block end`);
        else if (m === '>\n' + INVOKE_OPEN) this.state = 'invoke_head';
        else if (m) this.state = 'after_block';
        return;
      }
      case 'invoke_head': {
        const hit = findFirst(this.buf, this.pos, [PARAM_OPEN, INVOKE_CLOSE]);
        if (!hit) {
          if (final) this.malformed('unterminated invoke');
          return;
        }
        const head = this.buf.slice(this.pos, hit[0]);
        const name = INVOKE_NAME_RE.exec(head);
        if (!name) return this.malformed(`tool name format error: '${head}'`);
        this.pos = hit[0] + hit[1].length;
        const index = this.calls.length;
        const id = this.opts.toolCallId?.(index) ?? `call_${index}_${Math.random().toString(36).slice(2, 10)}`;
        this.current = { id, type: 'function', function: { name: name[1], arguments: '' } };
        this.calls.push(this.current);
        this.paramCount = 0;
        this.paramNames.clear();
        this.events.push({ type: 'tool_call_start', index, id, name: name[1] });
        if (hit[1] === PARAM_OPEN) this.state = 'param_header';
        else this.closeInvoke();
        return;
      }
      case 'param_header': {
        // The reference matches the header inside the text up to the first `/｜DSML｜parameter` only.
        const pending = this.buf.slice(this.pos);
        const closeAt = pending.indexOf(PARAM_CLOSE);
        const m = PARAM_HEADER_RE.exec(closeAt >= 0 ? pending.slice(0, closeAt) : pending);
        if (!m) {
          const plausible = pending.length < PARAM_HEADER_PREFIX.length ? PARAM_HEADER_PREFIX.startsWith(pending) : pending.startsWith(PARAM_HEADER_PREFIX);
          if (final || !plausible || closeAt >= 0) this.malformed(`parameter format error: '${pending.slice(0, 200)}'`);
          return;
        }
        if (this.paramNames.has(m[1])) return this.malformed(`duplicate parameter name: '${m[1]}'`);
        this.paramNames.add(m[1]);
        this.paramIsString = m[2] === 'true';
        this.pos += m[0].length;
        this.emitArgs((this.paramCount++ === 0 ? '{' : ', ') + dumpString(m[1]) + ': ' + (this.paramIsString ? '"' : ''));
        this.state = 'param_value';
        return;
      }
      case 'param_value': {
        const emit = (t: string) => {
          if (t) this.emitArgs(this.paramIsString ? dumpString(t).slice(1, -1) : t);
        };
        // The value ends at the first `/｜DSML｜parameter`, which must follow a `<` (or `<\n`: Python's `$`).
        const end = this.textUntil(PARAM_VALUE_ENDS, emit, false);
        if (end === PARAM_CLOSE) this.malformed('parameter value not closed by </｜DSML｜parameter');
        else if (end) {
          if (this.paramIsString) this.emitArgs('"');
          this.state = 'param_after';
        } else if (final) this.malformed('unterminated parameter');
        return;
      }
      case 'param_after': {
        const m = this.expect(['>\n' + PARAM_OPEN, '>\n' + INVOKE_CLOSE], final);
        if (m === false) this.malformed(`parameter format error: expected '>\\n'`);
        else if (m === '>\n' + PARAM_OPEN) this.state = 'param_header';
        else if (m) this.closeInvoke();
        return;
      }
      case 'after_block': {
        const m = this.expect([EOS], final);
        if (m === EOS) this.end();
        else if (m === false) {
          if (final && this.pos === this.buf.length) this.end();
          else this.malformed('unexpected content after tool calls');
        }
        return;
      }
      case 'done':
        return;
    }
  }

  private closeInvoke(): void {
    this.emitArgs(this.paramCount === 0 ? '{}' : '}');
    this.events.push({ type: 'tool_call_end', index: this.calls.length - 1 });
    this.current = null;
    this.state = 'after_invoke';
  }

  private end(flag?: string): void {
    if (flag) this.flag(flag);
    const rest = this.buf.slice(this.pos);
    if (rest) this.flag('text after EOS ignored');
    this.pos = this.buf.length;
    this.state = 'done';
  }
}
