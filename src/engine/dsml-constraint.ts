// Strict tool arguments by constrained decoding: the `dsml_tools` constraint (SubmitOptions.constraint).
//
// A byte-level machine for one assistant turn in the DSML format of spec §6.2 (byte format as rendered by
// tokenizer/encoding.ts renderToolCalls, accepted by parseMessageFromCompletionText and StreamParser):
//   [thinking: reasoning … "</think>"] content … ["\n\n<｜DSML｜tool_calls>\n"
//     ( "<｜DSML｜invoke name=\"NAME\">\n"
//       ( "<｜DSML｜parameter name=\"KEY\" string=\"true|false\">" VALUE "</｜DSML｜parameter>\n" )*   (or "\n" when none)
//       "</｜DSML｜invoke>\n" )+
//     "</｜DSML｜tool_calls>"] EOS
// NAME is one of the tools; KEYs are the schema's properties, each at most once, all `required` ones
// before "</｜DSML｜invoke>"; string="true" only for plain string properties (VALUE: free text without the
// closing marker), string="false" VALUEs follow the property schema through the JSON machine. Free text
// (reasoning, content, raw values) never contains "｜" (it would spell BOS/EOS/DSML markers), nor
// "<think>", nor (in content) "</think>"; "\n\n<｜" in content commits to the tool-call block.
// `forced`: the turn is only the block (after "</think>" in thinking mode).
//
// Masks stay cheap the way JsonConstraint's do: a shared vocabulary trie walked with machine copies, and in
// free text (and inside JSON strings) a precomputed set of tokens that cannot touch any marker.

import { JsonMachine, TokenTrie, buildTrie, type ByteTrie } from './json-constraint.js';
import type { StepConstraint } from './scheduler.js';

export interface DsmlToolsSpec {
  kind: 'dsml_tools';
  tools: { name: string; parameters: unknown }[];
  thinking: boolean;
  forced?: boolean;
  /**
   * Text of this turn already in the prompt (prefix completion, spec §6.1): the machine consumes it first, so
   * generation continues from where it ends (e.g. inside a tool-call block). Throws if it leaves the grammar.
   */
  prefix?: string;
}

/** UTF-8 bytes of a JS string as a latin1 string (one char per byte). */
const bs = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');

const BAR = bs('｜');
const DSML = bs('｜DSML｜');
const THINK_START = bs('<think>');
const THINK_END = bs('</think>');
const BLOCK_OPEN = `\n\n<${DSML}tool_calls>\n`;
const BLOCK_CLOSE = `</${DSML}tool_calls>`;
const INVOKE_OPEN = `<${DSML}invoke name="`;
const INVOKE_CLOSE = `</${DSML}invoke>\n`;
const PARAM_OPEN = `<${DSML}parameter name="`;
const PARAM_CLOSE = `</${DSML}parameter>\n`;

type FreeMode = 'reasoning' | 'content' | 'raw';

/** Per free-text mode: the marker that leaves it, how many of its bytes commit to it, forbidden strings. */
const FREE: Record<FreeMode, { exit: string; commit: number; forbid: string[] }> = {
  reasoning: { exit: THINK_END, commit: THINK_END.length, forbid: [BAR, THINK_START] },
  content: { exit: BLOCK_OPEN, commit: 3 + BAR.length, forbid: [BAR, THINK_START, THINK_END] },
  raw: { exit: PARAM_CLOSE, commit: 2 + BAR.length, forbid: [BAR] },
};

const EXIT = -1;
const REJECT = -2;
const freeMemo = new Map<string, string | number>();

/**
 * One free-text byte: the new tail (longest suffix that may still grow into a marker), EXIT when the exit
 * marker completes, REJECT when a forbidden string appears or a committed marker breaks.
 */
function freeByte(mode: FreeMode, tail: string, b: number): string | number {
  const key = `${mode}\u0000${tail}\u0000${b}`;
  const hit = freeMemo.get(key);
  if (hit !== undefined) return hit;
  const { exit, commit, forbid } = FREE[mode];
  const s = tail + String.fromCharCode(b);
  let r: string | number = REJECT;
  if (tail.length >= commit && exit.startsWith(tail)) {
    if (exit.startsWith(s)) r = s === exit ? EXIT : s;
  } else {
    let longestExit = '';
    for (let i = 0; i < s.length; i++) {
      const suf = s.slice(i);
      if (exit.startsWith(suf)) {
        longestExit = suf;
        break;
      }
    }
    if (longestExit === exit) r = EXIT;
    else if (longestExit.length >= commit) r = longestExit;
    else if (!forbid.some((f) => s.endsWith(f))) {
      r = '';
      for (let i = 0; i < s.length; i++) {
        const suf = s.slice(i);
        if (exit.startsWith(suf) || forbid.some((f) => f.startsWith(suf))) {
          r = suf;
          break;
        }
      }
    }
  }
  freeMemo.set(key, r);
  return r;
}

interface ToolInfo {
  /** Properties by name (byte string): schema and whether string="true" is allowed. */
  props: Map<string, { schema: Record<string, unknown> | undefined; raw: boolean | string[] }>;
  required: string[];
}

interface Option {
  text: string;
  /** What completes it: next invoke (tool index), next parameter, end of the block. */
  to: { k: 'invoke'; tool: number } | { k: 'param'; key: string; raw: boolean } | { k: 'paramEnd' } | { k: 'end' } | { k: 'block' };
}

type Phase =
  | { k: 'free'; mode: FreeMode; tail: string }
  | { k: 'lit'; options: readonly Option[]; got: string }
  | { k: 'json'; m: JsonMachine; key: string; bar: string }
  | { k: 'end' };

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/**
 * What string="true" (raw text, as the encoder renders every str value) may carry for a property: any text
 * (true), only these strings (an enum/const of strings), or nothing (false: JSON values only).
 */
function rawString(schema: Record<string, unknown> | undefined): boolean | string[] {
  if (!schema) return true;
  if ('const' in schema || Array.isArray(schema['enum'])) {
    const values = 'const' in schema ? [schema['const']] : (schema['enum'] as unknown[]);
    const strings = values.filter((v): v is string => typeof v === 'string' && !v.includes('｜')).map(bs);
    return strings.length > 0 ? strings : false;
  }
  if ('pattern' in schema || 'anyOf' in schema || 'oneOf' in schema) return false;
  const t = schema['type'];
  return t === undefined || t === 'string' || (Array.isArray(t) && t.includes('string'));
}

/** The grammar's fixed data, shared by the machine and its copies. */
class DsmlGrammar {
  readonly tools: ToolInfo[];
  readonly invokeOptions: Option[];

  constructor(readonly spec: DsmlToolsSpec) {
    if (!Array.isArray(spec.tools) || spec.tools.length === 0) throw new Error('dsml_tools: at least one tool is required');
    this.tools = spec.tools.map((t) => {
      const p = isRecord(t.parameters) ? t.parameters : {};
      const props = new Map<string, { schema: Record<string, unknown> | undefined; raw: boolean | string[] }>();
      if (isRecord(p['properties'])) {
        for (const [k, v] of Object.entries(p['properties'])) {
          const schema = isRecord(v) ? v : undefined;
          props.set(bs(k), { schema, raw: rawString(schema) });
        }
      }
      const required = Array.isArray(p['required']) ? p['required'].filter((x): x is string => typeof x === 'string').map(bs) : [];
      for (const r of required) if (!props.has(r)) props.set(r, { schema: undefined, raw: true });
      return { props, required };
    });
    this.invokeOptions = spec.tools.map((t, i) => ({ text: `${INVOKE_OPEN}${bs(t.name)}">\n`, to: { k: 'invoke', tool: i } }));
  }

  /** What may follow an invoke head (first) or a parameter: parameters left, or the invoke's end. */
  paramOptions(tool: number, used: readonly string[], first: boolean): Option[] {
    const info = this.tools[tool]!;
    const out: Option[] = [];
    for (const [key, { raw }] of info.props) {
      if (used.includes(key)) continue;
      if (raw !== false) out.push({ text: `${PARAM_OPEN}${key}" string="true">`, to: { k: 'param', key, raw: true } });
      out.push({ text: `${PARAM_OPEN}${key}" string="false">`, to: { k: 'param', key, raw: false } });
    }
    if (info.required.every((r) => used.includes(r))) {
      const close = (first ? '\n' : '') + INVOKE_CLOSE;
      for (const o of this.invokeOptions) out.push({ text: close + o.text, to: o.to });
      out.push({ text: close + BLOCK_CLOSE, to: { k: 'end' } });
    }
    return out;
  }
}

/** The DSML turn machine; `push` mutates, `clone` before trying bytes that may be rejected. */
export class DsmlMachine {
  private constructor(
    private readonly g: DsmlGrammar,
    private phase: Phase,
    private tool: number,
    private used: readonly string[],
  ) {}

  static start(spec: DsmlToolsSpec): DsmlMachine {
    const g = new DsmlGrammar(spec);
    const forcedBlock: Phase = { k: 'lit', options: [{ text: BLOCK_OPEN, to: { k: 'block' } }], got: '' };
    const phase: Phase = spec.thinking ? { k: 'free', mode: 'reasoning', tail: '' } : spec.forced ? forcedBlock : { k: 'free', mode: 'content', tail: '' };
    const m = new DsmlMachine(g, phase, -1, []);
    for (const b of Buffer.from(spec.prefix ?? '', 'utf8')) {
      if (!m.push(b)) throw new Error('dsml_tools: the prefix does not follow the tool-call grammar');
    }
    return m;
  }

  clone(): DsmlMachine {
    const p = this.phase;
    return new DsmlMachine(this.g, p.k === 'json' ? { ...p, m: p.m.clone() } : { ...p }, this.tool, this.used);
  }

  /** EOS may come now: after the block, or in content (not inside a committed block start). */
  get eosAllowed(): boolean {
    const p = this.phase;
    return p.k === 'end' || (p.k === 'free' && p.mode === 'content' && p.tail.length < FREE.content.commit);
  }

  /** Free text with nothing pending: any token without marker bytes keeps it free text. */
  get freeAndIdle(): boolean {
    return this.phase.k === 'free' && this.phase.tail === '';
  }

  /** Inside a JSON string with nothing pending (no partial "｜"). */
  get jsonStringIdle(): boolean {
    const p = this.phase;
    return p.k === 'json' && p.bar === '' && p.m.stringState() === 0;
  }

  push(b: number): boolean {
    const p = this.phase;
    switch (p.k) {
      case 'end':
        return false;
      case 'free': {
        const r = freeByte(p.mode, p.tail, b);
        if (r === REJECT) return false;
        if (r !== EXIT) {
          p.tail = r as string;
          return true;
        }
        if (p.mode === 'reasoning') {
          this.phase = this.g.spec.forced ? { k: 'lit', options: [{ text: BLOCK_OPEN, to: { k: 'block' } }], got: '' } : { k: 'free', mode: 'content', tail: '' };
        } else if (p.mode === 'content') this.enter({ k: 'block' });
        else this.afterParam();
        return true;
      }
      case 'lit': {
        const got = p.got + String.fromCharCode(b);
        const options = p.options.filter((o) => o.text.startsWith(got));
        if (options.length === 0) return false;
        const done = options.find((o) => o.text === got);
        if (done) this.enter(done.to);
        else this.phase = { k: 'lit', options, got };
        return true;
      }
      case 'json': {
        if (b === 0x3c && p.m.canEnd()) {
          // "<" cannot continue a complete JSON value: it starts the parameter's closing marker
          this.phase = { k: 'lit', options: [{ text: PARAM_CLOSE, to: { k: 'paramEnd' } }], got: '<' };
          return true;
        }
        if (!p.m.push(b)) return false;
        // "｜" never appears in a value (it could spell the closing marker)
        const s = p.bar + String.fromCharCode(b);
        if (s === BAR) return false;
        p.bar = BAR.startsWith(s) ? s : BAR.startsWith(s.slice(-1)) ? s.slice(-1) : '';
        return true;
      }
    }
  }

  private enter(to: Option['to']): void {
    switch (to.k) {
      case 'block':
        this.phase = { k: 'lit', options: this.g.invokeOptions, got: '' };
        return;
      case 'invoke':
        this.tool = to.tool;
        this.used = [];
        this.phase = { k: 'lit', options: this.g.paramOptions(to.tool, [], true), got: '' };
        return;
      case 'end':
        this.phase = { k: 'end' };
        return;
      case 'paramEnd':
        return this.afterParam();
      case 'param':
        this.used = [...this.used, to.key];
        const raw = this.g.tools[this.tool]!.props.get(to.key)?.raw;
        if (to.raw && Array.isArray(raw)) this.phase = { k: 'lit', options: raw.map((v) => ({ text: v + PARAM_CLOSE, to: { k: 'paramEnd' } })), got: '' };
        else if (to.raw) this.phase = { k: 'free', mode: 'raw', tail: '' };
        else {
          const schema = this.g.tools[this.tool]!.props.get(to.key)?.schema;
          // JsonMachine defaults a missing root schema to an object; an untyped property takes any value
          this.phase = { k: 'json', m: new JsonMachine(schema ?? {}), key: to.key, bar: '' };
        }
        return;
    }
  }

  private afterParam(): void {
    this.phase = { k: 'lit', options: this.g.paramOptions(this.tool, this.used, false), got: '' };
  }
}

/** Whether a byte may start or continue a free-text marker ("<", "\n", 0xEF: the lead byte of "｜"). */
const markerByte = (b: number): boolean => b === 0x3c || b === 0x0a || b === 0xef;

/**
 * Subtrees of a trie as id ranges (ids listed in depth-first order), and which subtrees contain no marker
 * byte below their root: from idle free text, all of their tokens are allowed at once, without a walk.
 */
interface SubtreeIndex {
  ids: Int32Array;
  start: Int32Array;
  end: Int32Array;
  clean: Uint8Array;
}

function indexSubtrees(t: ByteTrie): SubtreeIndex {
  const n = t.children.length;
  const idx: SubtreeIndex = { ids: new Int32Array(t.tokens.reduce((a, x) => a + x.length, 0)), start: new Int32Array(n), end: new Int32Array(n), clean: new Uint8Array(n) };
  let k = 0;
  const visit = (node: number): boolean => {
    idx.start[node] = k;
    for (const id of t.tokens[node]!) idx.ids[k++] = id;
    let clean = true;
    for (const [b, child] of t.children[node]!) if (!visit(child) || markerByte(b)) clean = false;
    idx.end[node] = k;
    idx.clean[node] = clean ? 1 : 0;
    return clean;
  };
  visit(0);
  return idx;
}

/** The vocabulary indexed for DSML masks (built once per tokenizer, shared by all requests). */
export class DsmlTries {
  readonly all: ByteTrie;
  readonly allIndex: SubtreeIndex;
  /** Tokens that may touch a free-text marker ("<", "\n", 0xEF: the lead byte of "｜"). */
  readonly markerish: ByteTrie;
  /** Ids that, from an idle free-text state, stay free text. */
  readonly plain: Int32Array;
  /** Ids that stay inside a JSON string and contain no 0xEF byte; the rest of the string case walks `jsonSpecial`. */
  readonly jsonPlain: Int32Array;
  readonly jsonSpecial: ByteTrie;

  /** `tokenBytes[id]`: the token's bytes, or null for tokens never allowed (EOS, other control tokens). */
  constructor(readonly tokenBytes: ReadonlyArray<Uint8Array | null>) {
    const touches = (b: Uint8Array): boolean => b.some(markerByte);
    this.all = buildTrie(tokenBytes, () => true);
    this.allIndex = indexSubtrees(this.all);
    this.markerish = buildTrie(tokenBytes, touches);
    const plain: number[] = [];
    tokenBytes.forEach((b, id) => {
      if (b && b.length > 0 && !touches(b)) plain.push(id);
    });
    this.plain = Int32Array.from(plain);
    const json = new TokenTrie(tokenBytes);
    this.jsonPlain = json.plainInString.filter((id) => !tokenBytes[id]!.includes(0xef));
    this.jsonSpecial = buildTrie(tokenBytes, (b) => b.includes(0x22) || b.includes(0xef));
  }
}

/** Per-request `dsml_tools` constraint: allowed-token masks, advanced by each chosen token. */
export class DsmlToolsConstraint implements StepConstraint {
  private machine: DsmlMachine;

  constructor(
    private readonly tries: DsmlTries,
    private readonly eosId: number,
    spec: DsmlToolsSpec,
  ) {
    this.machine = DsmlMachine.start(spec);
  }

  allowedTokens(): Int32Array {
    const m = this.machine;
    const out: number[] = [];
    const sub = this.tries.allIndex;
    const walk = (t: ByteTrie, node: number, mm: DsmlMachine): void => {
      for (const [b, child] of t.children[node]!) {
        const next = mm.clone();
        if (!next.push(b)) continue;
        if (t === this.tries.all && sub.clean[child] && next.freeAndIdle) {
          // back in idle free text and nothing below can touch a marker: the whole subtree is allowed
          for (let i = sub.start[child]!; i < sub.end[child]!; i++) out.push(sub.ids[i]!);
          continue;
        }
        for (const id of t.tokens[child]!) out.push(id);
        walk(t, child, next);
      }
    };
    let base: Int32Array | null = null;
    if (m.freeAndIdle) {
      base = this.tries.plain;
      walk(this.tries.markerish, 0, m);
    } else if (m.jsonStringIdle) {
      base = this.tries.jsonPlain;
      walk(this.tries.jsonSpecial, 0, m);
    } else walk(this.tries.all, 0, m);
    if (m.eosAllowed) out.push(this.eosId);
    if (!base) return Int32Array.from(out);
    const all = new Int32Array(base.length + out.length);
    all.set(base);
    all.set(out, base.length);
    return all;
  }

  accept(tokenId: number): void {
    if (tokenId === this.eosId) return;
    const bytes = this.tries.tokenBytes[tokenId];
    if (!bytes) throw new Error(`token ${tokenId} is not allowed by the dsml_tools constraint`);
    for (const b of bytes) if (!this.machine.push(b)) throw new Error('output left the DSML tool-call grammar');
  }
}
