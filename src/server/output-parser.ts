// Incremental parser of V4 completion text (architecture spec §6; the streaming counterpart of
// parseMessageFromCompletionText): reasoning until </think>, content until the DSML tool-calls block or EOS,
// then tool calls whose arguments are streamed as the JSON text the one-shot parser would produce
// (`{"k": v, ...}`, string values JSON-escaped). A possible partial marker is held back, never leaked.
// Malformed DSML degrades to plain content.
import type { OutputDelta, OutputParser } from './codec.js';

const DSML = '｜DSML｜';
const THINK_END = '</think>';
const EOS = '<｜end▁of▁sentence｜>';
const TOOLS_OPEN = `\n\n<${DSML}tool_calls>`;
const INVOKE_OPEN = `<${DSML}invoke name="`;
const INVOKE_CLOSE = `</${DSML}invoke>`;
const PARAM_OPEN = `<${DSML}parameter name="`;
const PARAM_CLOSE = `</${DSML}parameter>`;
const TOOLS_CLOSE = `</${DSML}tool_calls>`;

/** Whether `b` may still grow into a complete parameter header. */
function partialParam(b: string): boolean {
  const s = b.startsWith('\n') ? b.slice(1) : b;
  if (PARAM_OPEN.startsWith(s)) return true;
  if (!s.startsWith(PARAM_OPEN)) return false;
  const rest = s.slice(PARAM_OPEN.length);
  const q = rest.indexOf('"');
  if (q < 0) return true;
  const tail = rest.slice(q + 1);
  return ' string="true">'.startsWith(tail) || ' string="false">'.startsWith(tail);
}

type State = 'reasoning' | 'content' | 'tools' | 'invoke' | 'string' | 'raw' | 'after' | 'broken';

/** Length of the longest suffix of `s` that is a proper prefix of one of `markers`. */
function partialTail(s: string, markers: string[]): number {
  let best = 0;
  for (const m of markers) {
    for (let k = Math.min(m.length - 1, s.length); k > best; k--) {
      if (s.endsWith(m.slice(0, k))) {
        best = k;
        break;
      }
    }
  }
  return best;
}

const jsonFragment = (s: string) => JSON.stringify(s).slice(1, -1);

export class DsmlStreamParser implements OutputParser {
  private buf = '';
  private state: State;
  private toolIndex = -1;
  private params = 0;
  /** Text consumed since the tool-calls block opened, replayed as content if the block turns out malformed. */
  private toolText = '';
  malformed = false;

  constructor(startInReasoning: boolean) {
    this.state = startInReasoning ? 'reasoning' : 'content';
  }

  push(text: string): OutputDelta[] {
    this.buf += text;
    const out: OutputDelta[] = [];
    while (this.step(out, false));
    return out;
  }

  end(): OutputDelta[] {
    const out: OutputDelta[] = [];
    while (this.step(out, true));
    if (this.state === 'reasoning' || this.state === 'content' || this.state === 'broken') {
      const rest = this.buf.replace(EOS, '');
      if (rest) out.push({ type: this.state === 'reasoning' ? 'reasoning' : 'content', text: rest });
    } else if (this.state !== 'after') {
      // Cut inside a tool-call block (length or stop): close what was opened so arguments stay a prefix.
      this.malformed = true;
    }
    this.buf = '';
    return out;
  }

  /** Makes one step of progress; returns false when more input is needed. */
  private step(out: OutputDelta[], final: boolean): boolean {
    const b = this.buf;
    switch (this.state) {
      case 'reasoning':
      case 'content':
      case 'broken': {
        const markers = this.state === 'reasoning' ? [THINK_END, EOS] : this.state === 'content' ? [TOOLS_OPEN, EOS] : [EOS];
        let at = -1;
        let hit = '';
        for (const m of markers) {
          const i = b.indexOf(m);
          if (i >= 0 && (at < 0 || i < at)) [at, hit] = [i, m];
        }
        const kind = this.state === 'reasoning' ? 'reasoning' : 'content';
        if (at < 0) {
          const keep = final ? 0 : partialTail(b, markers);
          const emit = b.slice(0, b.length - keep);
          if (emit) out.push({ type: kind, text: emit });
          this.buf = b.slice(emit.length);
          return false;
        }
        if (at > 0) out.push({ type: kind, text: b.slice(0, at) });
        this.buf = b.slice(at + hit.length);
        if (hit === EOS) this.state = 'after';
        else if (hit === THINK_END) this.state = 'content';
        else {
          this.state = 'tools';
          this.toolText = TOOLS_OPEN;
        }
        return true;
      }
      case 'tools': {
        // Between invokes: "\n<｜DSML｜invoke name=\"NAME\">\n" or "\n</｜DSML｜tool_calls>".
        const m = /^\n(?:<｜DSML｜invoke name="([^"\n]*)">\n|<\/｜DSML｜tool_calls>)/.exec(b);
        if (!m) return this.expect(out, final, ['\n' + INVOKE_OPEN, '\n' + TOOLS_CLOSE], /^\n<｜DSML｜invoke name="[^"\n]*"?>?$/);
        this.consume(m[0].length);
        if (m[1] === undefined) {
          this.state = 'after';
          return true;
        }
        this.toolIndex++;
        this.params = 0;
        out.push({ type: 'tool_start', index: this.toolIndex, name: m[1] });
        this.state = 'invoke';
        return true;
      }
      case 'invoke': {
        // A parameter opening, or the end of the invoke.
        // The reference separates parameters (and an empty argument list) with "\n".
        const m = /^\n?(?:<｜DSML｜parameter name="([^"]*)" string="(true|false)">|<\/｜DSML｜invoke>)/.exec(b);
        if (!m) return this.expect(out, final, [PARAM_OPEN, INVOKE_CLOSE, '\n' + PARAM_OPEN, '\n' + INVOKE_CLOSE], partialParam);
        this.consume(m[0].length);
        if (m[1] === undefined) {
          out.push({ type: 'tool_args', index: this.toolIndex, text: this.params ? '}' : '{}' });
          this.state = 'tools';
          return true;
        }
        const key = JSON.stringify(m[1]);
        out.push({ type: 'tool_args', index: this.toolIndex, text: `${this.params ? ', ' : '{'}${key}: ${m[2] === 'true' ? '"' : ''}` });
        this.params++;
        this.state = m[2] === 'true' ? 'string' : 'raw';
        return true;
      }
      case 'string':
      case 'raw': {
        const i = b.indexOf(PARAM_CLOSE);
        const value = i < 0 ? b.slice(0, b.length - partialTail(b, [PARAM_CLOSE])) : b.slice(0, i);
        const text = this.state === 'string' ? jsonFragment(value) : value;
        if (i < 0) {
          if (value) out.push({ type: 'tool_args', index: this.toolIndex, text });
          this.consume(value.length);
          return false;
        }
        const closeQuote = this.state === 'string' ? '"' : '';
        if (text || closeQuote) out.push({ type: 'tool_args', index: this.toolIndex, text: text + closeQuote });
        this.consume(i + PARAM_CLOSE.length);
        this.state = 'invoke';
        return true;
      }
      case 'after':
        this.buf = '';
        return false;
    }
  }

  private consume(n: number): void {
    this.toolText += this.buf.slice(0, n);
    this.buf = this.buf.slice(n);
  }

  /** Waits while `buf` may still become one of the expected forms; otherwise gives up on DSML. */
  private expect(out: OutputDelta[], final: boolean, prefixes: string[], partial: RegExp | ((b: string) => boolean)): boolean {
    const b = this.buf;
    const couldBe = prefixes.some((p) => p.startsWith(b)) || (typeof partial === 'function' ? partial(b) : partial.test(b));
    if (couldBe && !final) return false;
    this.malformed = true;
    if (this.toolIndex < 0) {
      // Nothing was announced yet: the whole block was plain content after all.
      this.buf = this.toolText + b;
      this.state = 'broken';
      return true;
    }
    this.state = 'broken';
    return true;
  }
}
