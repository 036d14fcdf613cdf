// Terminal rendering of one streamed assistant turn: thinking dim and foldable, the answer plain,
// tool calls as one line each, then a usage line. Without a TTY (scripts, tests) it prints plain
// text with `[thinking]` ... `[/thinking]` markers and never moves the cursor.
import { startSpinner, type Spinner } from '../progress.js';
import type { ChatResult, ToolCall, Usage } from './client.js';

export interface TerminalOut {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
  rows?: number;
}

const DIM = '\x1b[2m';
const BOLD = '\x1b[1m';
const CYAN = '\x1b[36m';
const RESET = '\x1b[0m';

export class TurnRenderer {
  private phase: 'start' | 'thinking' | 'answer' = 'start';
  private thinking = '';
  private thinkingDeltas = 0;
  private readonly started: number;
  private thinkingMs = 0;
  private readonly tty: boolean;
  /** Shown until the first token: covers queueing and prefill of a long conversation. */
  private readonly waiting: Spinner;

  constructor(
    private readonly out: TerminalOut,
    private readonly opts: { fold: boolean; now?: () => number },
  ) {
    this.tty = Boolean(out.isTTY);
    this.started = this.now();
    this.waiting = startSpinner('reading the prompt', { stream: out as NodeJS.WritableStream, enabled: this.tty });
  }

  reasoning(delta: string): void {
    this.waiting.stop();
    if (this.phase === 'answer') return; // reasoning always precedes the answer (api spec §4.6)
    if (this.phase === 'start') {
      this.phase = 'thinking';
      this.out.write(this.tty ? `${DIM}thinking…\n` : '[thinking]\n');
    }
    this.thinking += delta;
    this.thinkingDeltas++;
    this.out.write(delta);
  }

  content(delta: string): void {
    this.enterAnswer();
    this.out.write(delta);
  }

  /** Tool calls are printed once complete, at the end of the turn. */
  toolCall(_index: number, _call: ToolCall): void {
    this.enterAnswer();
  }

  /** Closes the turn: tool calls, finish reason when unusual, usage. */
  end(result: ChatResult): void {
    // A turn that is all thinking (cut or stopped early) stays unfolded: it is all there is to see.
    const answered = (result.message.content ?? '') !== '' || Boolean(result.message.tool_calls?.length);
    this.enterAnswer(answered);
    const lines: string[] = [];
    for (const call of result.message.tool_calls ?? []) lines.push(this.paint(CYAN, `⚙ ${call.function.name}(${call.function.arguments})`));
    if (result.finishReason === 'cancelled') lines.push(this.paint(DIM, '[stopped]'));
    else if (result.finishReason === 'length') lines.push(this.paint(DIM, '[cut at max tokens]'));
    const usage = usageLine(result.usage, this.now() - this.started);
    if (usage) lines.push(this.paint(DIM, usage));
    const needsNewline = (result.message.content ?? '') !== '';
    this.out.write((needsNewline ? '\n' : '') + lines.map((l) => l + '\n').join(''));
  }

  /** Ends the thinking block (folding it on a TTY when asked) before answer text. */
  private enterAnswer(fold = true): void {
    this.waiting.stop();
    if (this.phase === 'answer') return;
    if (this.phase === 'thinking') {
      this.thinkingMs = this.now() - this.started;
      if (!this.tty) this.out.write('\n[/thinking]\n');
      else if (fold && this.opts.fold && this.foldThinking()) {
        // folded: the summary line replaced the block
      } else this.out.write(`${RESET}\n`);
    }
    this.phase = 'answer';
  }

  /** Erases the streamed thinking block and prints a one-line summary; false if it scrolled off screen. */
  private foldThinking(): boolean {
    const cols = this.out.columns ?? 80;
    const rows = terminalRows('thinking…\n' + this.thinking, cols);
    if (rows >= (this.out.rows ?? 24)) return false;
    const up = rows - 1;
    this.out.write(`${RESET}\r${up > 0 ? `\x1b[${up}A` : ''}\x1b[J`);
    this.out.write(`${DIM}▸ thought for ${(this.thinkingMs / 1000).toFixed(1)}s, ${this.thinkingDeltas} tokens (/thoughts to expand)${RESET}\n`);
    return true;
  }

  private paint(code: string, s: string): string {
    return this.tty ? `${code}${s}${RESET}` : s;
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }
}

/** `12 prompt (8 cached) · 30 completion (20 thinking) · 2.1s`, or '' without usage. */
export function usageLine(usage: Usage | undefined, elapsedMs: number): string {
  if (!usage) return '';
  const cached = usage.prompt_cache_hit_tokens ?? 0;
  const reasoning = usage.completion_tokens_details?.reasoning_tokens ?? 0;
  const rate = elapsedMs > 0 ? ` · ${((usage.completion_tokens * 1000) / elapsedMs).toFixed(1)} tok/s` : '';
  return (
    `${usage.prompt_tokens} prompt${cached ? ` (${cached} cached)` : ''} · ` +
    `${usage.completion_tokens} completion${reasoning ? ` (${reasoning} thinking)` : ''}${rate}`
  );
}

/** Rows a text occupies on a terminal `cols` wide (wide CJK characters count double). */
export function terminalRows(text: string, cols: number): number {
  let rows = 0;
  for (const line of text.split('\n')) rows += Math.max(1, Math.ceil(displayWidth(line) / cols));
  return rows;
}

export function displayWidth(s: string): number {
  let w = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    w += (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) || (cp >= 0xac00 && cp <= 0xd7a3) ||
      (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
      (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1faff) || (cp >= 0x20000 && cp <= 0x3fffd)
      ? 2
      : 1;
  }
  return w;
}

export const style = { DIM, BOLD, RESET };
