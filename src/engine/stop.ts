// Output text of one sequence: UTF-8-safe incremental detokenization plus stop strings
// matched across token boundaries. Stop text is never emitted, and text that could be the
// start of a stop string is held back until it is known not to be one (spec: deepseek-api.md `stop`).

export interface TextStep {
  /** Text safe to emit now. */
  text: string;
  /** A stop string matched: `text` ends just before it, and generation must end. */
  stopped: boolean;
}

export class OutputText {
  private readonly decoder = new TextDecoder('utf-8', { fatal: false });
  private readonly stops: string[];
  /** Decoded text not yet emitted (a possible partial stop match). */
  private held = '';
  /** Everything emitted so far (what constraints and callers see). */
  emitted = '';
  /** The stop string that matched (ending the generation), if one did. */
  matched: string | null = null;

  constructor(stop: readonly string[]) {
    this.stops = stop.filter((s) => s.length > 0);
  }

  /** Feeds one token's bytes. Incomplete UTF-8 sequences wait for the next token. */
  push(bytes: Uint8Array): TextStep {
    return this.feed(this.decoder.decode(bytes, { stream: true }));
  }

  /** End of generation: releases held text (and a dangling partial UTF-8 sequence as U+FFFD). */
  flush(): string {
    const tail = this.feed(this.decoder.decode());
    if (tail.stopped) return tail.text;
    const out = tail.text + this.held;
    this.held = '';
    this.emitted += out;
    return out;
  }

  private feed(piece: string): TextStep {
    if (this.stops.length === 0) {
      this.emitted += piece;
      return { text: piece, stopped: false };
    }
    const buf = this.held + piece;
    let first = -1;
    for (const s of this.stops) {
      const at = buf.indexOf(s);
      if (at >= 0 && (first < 0 || at < first)) {
        first = at;
        this.matched = s;
      }
    }
    if (first >= 0) {
      const text = buf.slice(0, first);
      this.held = '';
      this.emitted += text;
      return { text, stopped: true };
    }
    const keep = this.partialMatchLength(buf);
    const text = buf.slice(0, buf.length - keep);
    this.held = buf.slice(buf.length - keep);
    this.emitted += text;
    return { text, stopped: false };
  }

  /** Length of the longest suffix of buf that is a proper prefix of some stop string. */
  private partialMatchLength(buf: string): number {
    let best = 0;
    for (const s of this.stops) {
      const max = Math.min(s.length - 1, buf.length);
      for (let n = max; n > best; n--) {
        if (buf.endsWith(s.slice(0, n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
}
