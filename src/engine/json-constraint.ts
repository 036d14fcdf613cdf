// Constrained decoding for JSON output (`response_format: json_object` / `json_schema`).
//
// An incremental byte-level JSON pushdown machine; each step, every candidate token's bytes are
// run through a copy of the machine (walking a byte trie of the vocabulary so shared prefixes are
// checked once) and only tokens that keep the output a prefix of a valid document are allowed.
// The document must be one JSON object (json_object) or one value matching the schema (json_schema);
// once it is complete only EOS is allowed. Supported schema keywords: type (string or list),
// properties, required, additionalProperties, items, minItems, maxItems, enum, const, anyOf/oneOf
// (chosen by the value's first byte). Object keys of a schema with `properties` are limited to the
// declared ones (as with strict mode); keys are emitted at most once.

import type { TokenConstraint } from './api.js';

type Schema = Record<string, unknown> | undefined;

const WS_MAX = 20; // consecutive whitespace bytes allowed (stops whitespace loops)
const NUM_MAX = 40; // bytes in one number literal

function isWs(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}
function isDigit(b: number): boolean {
  return b >= 0x30 && b <= 0x39;
}
function isHex(b: number): boolean {
  return isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
}

/** UTF-8 bytes of a JS string as a latin1 string (one char per byte), for prefix matching. */
function byteString(s: string): string {
  return Buffer.from(s, 'utf8').toString('latin1');
}

const enum O { Open, Key, Colon, After, Next }
const enum A { Open, After, Next }
const enum N { Sign, Zero, Int, Dot, Frac, E, ESign, Exp }

type Frame =
  | { k: 'value'; schema: Schema }
  | {
      k: 'object';
      schema: Schema;
      st: O;
      used: readonly string[];
      /** Allowed keys (byte strings, JSON-escaped body) or null = any key. */
      cands: readonly string[] | null;
      required: readonly string[];
      key: string;
    }
  | { k: 'array'; items: Schema; st: A; count: number; min: number; max: number }
  | { k: 'string'; esc: number; utf8: number }
  | { k: 'number'; st: N; integer: boolean; len: number }
  | { k: 'literal'; cands: readonly string[]; got: string };

type Verdict = 0 | 1 | 2 | 3; // 0 reject, 1 consumed, 2 pop and give the byte to the parent, 3 consumed and done (pop)

/** The JSON machine state. `push` mutates; `clone` before trying bytes that may be rejected. */
export class JsonMachine {
  private stack: Frame[];
  private wsRun = 0;

  constructor(rootSchema: Schema | null, stack?: Frame[], wsRun = 0) {
    this.stack = stack ?? [{ k: 'value', schema: rootSchema ?? { type: 'object' } }];
    this.wsRun = wsRun;
  }

  clone(): JsonMachine {
    return new JsonMachine(null, this.stack.map((f) => ({ ...f })), this.wsRun);
  }

  /** The document is complete (only EOS may follow). */
  get done(): boolean {
    return this.stack.length === 0;
  }

  /**
   * The value could end here: complete, or a top-level number/literal that the next (non-JSON) byte ends
   * (used when a JSON value is embedded in other text, e.g. a DSML parameter).
   */
  canEnd(): boolean {
    if (this.stack.length === 0) return true;
    if (this.stack.length !== 1) return false;
    const f = this.stack[0]!;
    if (f.k === 'number') return f.st === N.Zero || f.st === N.Int || f.st === N.Frac || f.st === N.Exp;
    return f.k === 'literal' && f.cands.includes(f.got);
  }

  /** The top frame's string sub-state packed as esc * 4 + utf8, or -1 when not inside a string value. */
  stringState(): number {
    const f = this.stack[this.stack.length - 1];
    return f !== undefined && f.k === 'string' ? f.esc * 4 + f.utf8 : -1;
  }

  /** A copy that has just closed the current string (the caller checked the bytes before the quote). */
  closeString(): JsonMachine {
    const m = this.clone();
    const f = m.stack[m.stack.length - 1] as Frame & { k: 'string' };
    f.esc = 0;
    f.utf8 = 0;
    m.wsRun = 0;
    m.stack.pop();
    return m;
  }

  push(b: number): boolean {
    const ws = isWs(b);
    if (ws && this.wsRun >= WS_MAX && !this.inString()) return false;
    for (;;) {
      const f = this.stack[this.stack.length - 1];
      if (!f) return false; // complete: nothing may follow
      const v = this.step(f, b);
      if (v === 0) return false;
      if (v === 1 || v === 3) {
        this.wsRun = ws && f.k !== 'string' ? this.wsRun + 1 : 0;
        if (v === 3) this.stack.pop();
        return true;
      }
      this.stack.pop();
    }
  }

  private inString(): boolean {
    const f = this.stack[this.stack.length - 1];
    return f !== undefined && (f.k === 'string' || (f.k === 'object' && f.st === O.Key));
  }

  private replaceTop(f: Frame): void {
    this.stack[this.stack.length - 1] = f;
  }

  private step(f: Frame, b: number): Verdict {
    switch (f.k) {
      case 'value':
        return this.stepValue(f, b);
      case 'object':
        return this.stepObject(f, b);
      case 'array':
        return this.stepArray(f, b);
      case 'string':
        return stepString(f, b);
      case 'number':
        return stepNumber(f, b);
      case 'literal': {
        const next = f.got + String.fromCharCode(b);
        if (f.cands.some((c) => c.startsWith(next))) {
          f.got = next;
          return 1;
        }
        return f.cands.includes(f.got) ? 2 : 0;
      }
    }
  }

  private stepValue(f: Frame & { k: 'value' }, b: number): Verdict {
    if (isWs(b)) return this.stack.length === 1 ? 0 : 1; // the document starts with its first byte
    const schema = pickAlternative(f.schema, b);
    if (schema === null) return 0;
    const s = schema ?? {};
    if ('const' in s || Array.isArray(s['enum'])) {
      const values = 'const' in s ? [s['const']] : (s['enum'] as unknown[]);
      this.replaceTop({ k: 'literal', cands: values.map((x) => byteString(JSON.stringify(x))), got: '' });
      return this.step(this.stack[this.stack.length - 1]!, b);
    }
    if (b === 0x7b) {
      const props = isRecord(s['properties']) ? s['properties'] : null;
      const extra = s['additionalProperties'];
      const required = Array.isArray(s['required']) ? (s['required'] as unknown[]).filter((x): x is string => typeof x === 'string') : [];
      let cands: string[] | null = null;
      if (props && extra !== true && !isRecord(extra)) {
        cands = [...new Set([...Object.keys(props), ...required])].map((k) => byteString(JSON.stringify(k).slice(1, -1)));
      } else if (extra === false) {
        cands = required.map((k) => byteString(JSON.stringify(k).slice(1, -1)));
      }
      this.replaceTop({
        k: 'object',
        schema: s,
        st: O.Open,
        used: [],
        cands,
        required: required.map((k) => byteString(JSON.stringify(k).slice(1, -1))),
        key: '',
      });
      return 1;
    }
    if (b === 0x5b) {
      const min = typeof s['minItems'] === 'number' ? s['minItems'] : 0;
      const max = typeof s['maxItems'] === 'number' ? s['maxItems'] : Infinity;
      this.replaceTop({ k: 'array', items: isRecord(s['items']) ? s['items'] : undefined, st: A.Open, count: 0, min, max });
      return 1;
    }
    if (b === 0x22) {
      this.replaceTop({ k: 'string', esc: 0, utf8: 0 });
      return 1;
    }
    if (b === 0x2d || isDigit(b)) {
      const integer = typesOf(s)?.includes('number') === false;
      this.replaceTop({ k: 'number', st: N.Sign, integer, len: 0 });
      return stepNumber(this.stack[this.stack.length - 1] as Frame & { k: 'number' }, b);
    }
    if (b === 0x74 || b === 0x66) {
      this.replaceTop({ k: 'literal', cands: ['true', 'false'], got: '' });
      return this.step(this.stack[this.stack.length - 1]!, b);
    }
    if (b === 0x6e) {
      this.replaceTop({ k: 'literal', cands: ['null'], got: '' });
      return this.step(this.stack[this.stack.length - 1]!, b);
    }
    return 0;
  }

  private stepObject(f: Frame & { k: 'object' }, b: number): Verdict {
    const remaining = (): string[] | null => (f.cands ? f.cands.filter((c) => !f.used.includes(c)) : null);
    const canClose = (): boolean => f.required.every((r) => f.used.includes(r));
    switch (f.st) {
      case O.Open:
      case O.Next:
        if (isWs(b)) return 1;
        if (b === 0x22) {
          const rem = remaining();
          if (rem && rem.length === 0) return 0;
          if (rem) {
            f.st = O.Key;
            f.key = '';
          } else {
            f.st = O.Colon;
            f.key = '';
            this.stack.push({ k: 'string', esc: 0, utf8: 0 });
          }
          return 1;
        }
        if (b === 0x7d && f.st === O.Open && canClose()) return 3;
        return 0;
      case O.Key: {
        const rem = remaining()!;
        if (b === 0x22 && rem.includes(f.key)) {
          f.used = [...f.used, f.key];
          f.st = O.Colon;
          return 1;
        }
        const next = f.key + String.fromCharCode(b);
        if (rem.some((c) => c.startsWith(next))) {
          f.key = next;
          return 1;
        }
        return 0;
      }
      case O.Colon:
        if (isWs(b)) return 1;
        if (b !== 0x3a) return 0;
        f.st = O.After;
        this.stack.push({ k: 'value', schema: propertySchema(f.schema, f.cands ? f.key : null) });
        return 1;
      case O.After:
        if (isWs(b)) return 1;
        if (b === 0x2c) {
          const rem = remaining();
          if (rem && rem.length === 0) return 0;
          f.st = O.Next;
          return 1;
        }
        if (b === 0x7d && canClose()) return 3;
        return 0;
    }
  }

  private stepArray(f: Frame & { k: 'array' }, b: number): Verdict {
    if (isWs(b)) return 1;
    if (f.st === A.After) {
      if (b === 0x2c && f.count < f.max) {
        f.st = A.Next;
        return 1;
      }
      if (b === 0x5d && f.count >= f.min) return 3;
      return 0;
    }
    if (b === 0x5d && f.st === A.Open && f.count >= f.min) return 3;
    if (f.count >= f.max) return 0;
    f.st = A.After;
    f.count++;
    const child: Frame = { k: 'value', schema: f.items };
    this.stack.push(child);
    const v = this.step(child, b);
    return v === 2 ? 0 : v;
  }
}

const REJECT = -1;
const CLOSE = -2;

/**
 * One byte inside a JSON string, as a pure function of the string sub-state (esc: 0 none, 1 after a
 * backslash, 5..2 hex digits of \uXXXX left + 1; utf8: continuation bytes still due).
 * Returns REJECT, CLOSE (the closing quote) or the next sub-state packed as esc * 4 + utf8.
 */
function stringByte(esc: number, utf8: number, b: number): number {
  if (utf8 > 0) return (b & 0xc0) === 0x80 ? utf8 - 1 : REJECT;
  if (esc === 1) {
    if (b === 0x75) return 5 * 4;
    return [0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74].includes(b) ? 0 : REJECT;
  }
  if (esc > 1) return isHex(b) ? (esc === 2 ? 0 : (esc - 1) * 4) : REJECT;
  if (b === 0x22) return CLOSE;
  if (b === 0x5c) return 4;
  if (b < 0x20) return REJECT;
  if (b < 0x80) return 0;
  if (b >= 0xc2 && b <= 0xdf) return 1;
  if (b >= 0xe0 && b <= 0xef) return 2;
  if (b >= 0xf0 && b <= 0xf4) return 3;
  return REJECT;
}

function stepString(f: Frame & { k: 'string' }, b: number): Verdict {
  const r = stringByte(f.esc, f.utf8, b);
  if (r === REJECT) return 0;
  if (r === CLOSE) return 3;
  f.esc = r >> 2;
  f.utf8 = r & 3;
  return 1;
}

function stepNumber(f: Frame & { k: 'number' }, b: number): Verdict {
  const terminal = f.st === N.Zero || f.st === N.Int || f.st === N.Frac || f.st === N.Exp;
  const take = (st: N): Verdict => {
    if (f.len >= NUM_MAX) return 0;
    f.st = st;
    f.len++;
    return 1;
  };
  switch (f.st) {
    case N.Sign:
      if (b === 0x2d && f.len === 0) return take(N.Sign);
      if (b === 0x30) return take(N.Zero);
      if (isDigit(b)) return take(N.Int);
      return 0;
    case N.Zero:
    case N.Int:
      if (f.st === N.Int && isDigit(b)) return take(N.Int);
      if (!f.integer && b === 0x2e) return take(N.Dot);
      if (!f.integer && (b === 0x65 || b === 0x45)) return take(N.E);
      break;
    case N.Dot:
      return isDigit(b) ? take(N.Frac) : 0;
    case N.Frac:
      if (isDigit(b)) return take(N.Frac);
      if (b === 0x65 || b === 0x45) return take(N.E);
      break;
    case N.E:
      if (b === 0x2b || b === 0x2d) return take(N.ESign);
      return isDigit(b) ? take(N.Exp) : 0;
    case N.ESign:
      return isDigit(b) ? take(N.Exp) : 0;
    case N.Exp:
      if (isDigit(b)) return take(N.Exp);
      break;
  }
  return terminal ? 2 : 0;
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function typesOf(s: Record<string, unknown>): string[] | null {
  const t = s['type'];
  if (typeof t === 'string') return [t];
  if (Array.isArray(t)) return t.filter((x): x is string => typeof x === 'string');
  if (isRecord(s['properties'])) return ['object'];
  if (isRecord(s['items'])) return ['array'];
  return null;
}

/** Which JSON kinds a first byte starts. */
function kindOfByte(b: number): string[] {
  if (b === 0x7b) return ['object'];
  if (b === 0x5b) return ['array'];
  if (b === 0x22) return ['string'];
  if (b === 0x2d || isDigit(b)) return ['number', 'integer'];
  if (b === 0x74 || b === 0x66) return ['boolean'];
  if (b === 0x6e) return ['null'];
  return [];
}

/**
 * The (sub)schema that governs a value starting with byte b: resolves anyOf/oneOf by first byte and
 * narrows `type` lists. Returns null if no alternative accepts b, undefined for "anything".
 */
function pickAlternative(schema: Schema, b: number): Schema | null {
  if (!schema) return undefined;
  const alts = (schema['anyOf'] ?? schema['oneOf']) as unknown;
  if (Array.isArray(alts)) {
    for (const a of alts) {
      const r = pickAlternative(isRecord(a) ? a : undefined, b);
      if (r !== null) return r;
    }
    return null;
  }
  if ('const' in schema || Array.isArray(schema['enum'])) {
    const values = 'const' in schema ? [schema['const']] : (schema['enum'] as unknown[]);
    return values.some((v) => byteString(JSON.stringify(v)).charCodeAt(0) === b) ? schema : null;
  }
  const types = typesOf(schema);
  if (!types) return schema;
  const kinds = kindOfByte(b);
  const hit = types.filter((t) => kinds.includes(t));
  if (hit.length === 0) return null;
  // A number-or-integer pair: allow fractions only when "number" is one of the types.
  return { ...schema, type: hit.includes('number') ? 'number' : hit[0] };
}

function propertySchema(schema: Schema, keyBytes: string | null): Schema {
  if (!schema) return undefined;
  const props = isRecord(schema['properties']) ? schema['properties'] : null;
  if (props && keyBytes !== null) {
    for (const [name, sub] of Object.entries(props)) {
      if (byteString(JSON.stringify(name).slice(1, -1)) === keyBytes) return isRecord(sub) ? sub : undefined;
    }
  }
  const extra = schema['additionalProperties'];
  return isRecord(extra) ? extra : undefined;
}

export interface ByteTrie {
  /** children[node] maps a byte to a child node. */
  children: Array<Map<number, number>>;
  /** tokens[node] = ids whose bytes end exactly at node. */
  tokens: number[][];
}

export function buildTrie(tokenBytes: ReadonlyArray<Uint8Array | null>, keep: (bytes: Uint8Array) => boolean): ByteTrie {
  const t: ByteTrie = { children: [new Map()], tokens: [[]] };
  for (let id = 0; id < tokenBytes.length; id++) {
    const bytes = tokenBytes[id];
    if (!bytes || bytes.length === 0 || !keep(bytes)) continue;
    let node = 0;
    for (const b of bytes) {
      let next = t.children[node]!.get(b);
      if (next === undefined) {
        next = t.children.length;
        t.children.push(new Map());
        t.tokens.push([]);
        t.children[node]!.set(b, next);
      }
      node = next;
    }
    t.tokens[node]!.push(id);
  }
  return t;
}

/**
 * The vocabulary indexed for constraint checks, built once per tokenizer and shared by all constraints.
 * Inside a string (the common case: most of the vocabulary is allowed there) the mask is the static set
 * of tokens that stay inside a string plus a walk over the few tokens that contain a quote.
 */
export class TokenTrie {
  readonly all: ByteTrie;
  readonly withQuote: ByteTrie;
  /** Ids whose bytes, from a fresh string position, stay inside the string (no closing quote). */
  readonly plainInString: Int32Array;

  /** `tokenBytes[id]` = the token's bytes, or null for tokens never allowed in JSON (special tokens). */
  constructor(tokenBytes: ReadonlyArray<Uint8Array | null>) {
    this.all = buildTrie(tokenBytes, () => true);
    this.withQuote = buildTrie(tokenBytes, (b) => b.includes(0x22));
    const plain: number[] = [];
    for (let id = 0; id < tokenBytes.length; id++) {
      const bytes = tokenBytes[id];
      if (!bytes || bytes.length === 0 || bytes.includes(0x22)) continue;
      let st = 0;
      for (const b of bytes) {
        st = stringByte(st >> 2, st & 3, b);
        if (st < 0) break;
      }
      if (st >= 0) plain.push(id);
    }
    this.plainInString = Int32Array.from(plain);
  }
}

/** Per-request JSON constraint: the allowed-token mask for the next step, advanced by each chosen token. */
export class JsonConstraint implements TokenConstraint {
  private machine: JsonMachine;
  private consumedText = 0;

  constructor(
    private readonly trie: TokenTrie,
    private readonly tokenBytes: ReadonlyArray<Uint8Array | null>,
    private readonly eosId: number,
    schema: unknown | null,
  ) {
    this.machine = new JsonMachine(isRecord(schema) ? schema : null);
  }

  get complete(): boolean {
    return this.machine.done;
  }

  /** Token ids that keep the output a valid prefix (EOS only once the document is complete). */
  allowedTokens(): Int32Array {
    const m = this.machine;
    if (m.done) return Int32Array.of(this.eosId);
    const out: number[] = [];
    const walk = (t: ByteTrie, node: number, mm: JsonMachine): void => {
      for (const [b, child] of t.children[node]!) {
        const next = mm.clone();
        if (!next.push(b)) continue;
        for (const id of t.tokens[child]!) out.push(id);
        const inString = next.stringState();
        if (inString >= 0) walkString(t, child, inString, next);
        else walk(t, child, next);
      }
    };
    // Inside a string: track only the string sub-state until a closing quote hands over to the machine.
    const walkString = (t: ByteTrie, node: number, st: number, base: JsonMachine): void => {
      for (const [b, child] of t.children[node]!) {
        const r = stringByte(st >> 2, st & 3, b);
        if (r === REJECT) continue;
        for (const id of t.tokens[child]!) out.push(id);
        if (r === CLOSE) walk(t, child, base.closeString());
        else walkString(t, child, r, base);
      }
    };
    const st = m.stringState();
    if (st === 0) {
      walkString(this.trie.withQuote, 0, 0, m);
      const all = new Int32Array(this.trie.plainInString.length + out.length);
      all.set(this.trie.plainInString);
      all.set(out, this.trie.plainInString.length);
      return all;
    }
    if (st > 0) walkString(this.trie.all, 0, st, m);
    else walk(this.trie.all, 0, m);
    return Int32Array.from(out);
  }

  /** Advances by the chosen token (the engine only picks allowed tokens; EOS is a no-op). */
  accept(tokenId: number): void {
    if (tokenId === this.eosId) return;
    const bytes = this.tokenBytes[tokenId];
    if (!bytes) throw new Error(`token ${tokenId} is not allowed by the JSON constraint`);
    this.advance(bytes);
  }

  private advance(bytes: Uint8Array): void {
    for (const b of bytes) if (!this.machine.push(b)) throw new Error('output left the JSON grammar');
  }

  /** TokenConstraint (text-based) form: feeds the text generated since the last call, then masks. */
  allowed(generatedText: string): Int32Array | null {
    const bytes = Buffer.from(generatedText, 'utf8');
    this.advance(bytes.subarray(this.consumedText));
    this.consumedText = bytes.length;
    return this.allowedTokens();
  }
}
