// Byte-level BPE tokenizer read from a Hugging Face `tokenizer.json` (spec §6.1):
// added tokens are split out first (leftmost-longest, as the HF tokenizer does
// for the whole rendered prompt), the rest goes through the regex
// pre-tokenizer sequence, the GPT-2 byte-to-unicode map and ranked merges.
import type { AddedToken } from './added-tokens.js';

export interface TokenizerJson {
  added_tokens?: { id: number; content: string; special?: boolean }[];
  pre_tokenizer?: unknown;
  model: { type?: string; vocab: Record<string, number>; merges: (string | [string, string])[] };
}

// GPT-2 byte <-> printable unicode char table.
const BYTE_TO_CHAR: string[] = [];
const CHAR_TO_BYTE = new Map<string, number>();
{
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const ch = String.fromCharCode(printable(b) ? b : 256 + extra++);
    BYTE_TO_CHAR[b] = ch;
    CHAR_TO_BYTE.set(ch, b);
  }
}

/** Oniguruma pattern -> JS (u flag): `\s`/`\S` mean Unicode White_Space there. */
function toJsRegex(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === '\\' && i + 1 < pattern.length) {
      const n = pattern[++i];
      out += n === 's' ? '\\p{White_Space}' : n === 'S' ? '\\P{White_Space}' : '\\' + n;
    } else out += pattern[i];
  }
  return new RegExp(out, 'gu');
}

type PreTokenize = (pieces: string[]) => string[];

/** Split(behavior "Isolated"): matches and the gaps between them become pieces. */
function isolatedSplit(re: RegExp): PreTokenize {
  return (pieces) => {
    const out: string[] = [];
    for (const p of pieces) {
      let last = 0;
      for (const m of p.matchAll(re)) {
        if (m[0].length === 0) continue;
        if (m.index! > last) out.push(p.slice(last, m.index));
        out.push(m[0]);
        last = m.index! + m[0].length;
      }
      if (last < p.length) out.push(p.slice(last));
    }
    return out;
  };
}

function buildPreTokenizer(spec: unknown): PreTokenize {
  const s = spec as { type?: string; pretokenizers?: unknown[]; pattern?: { Regex?: string; String?: string }; behavior?: string; use_regex?: boolean; add_prefix_space?: boolean } | null;
  if (!s) return (p) => p;
  switch (s.type) {
    case 'Sequence': {
      const steps = (s.pretokenizers ?? []).map(buildPreTokenizer);
      return (p) => steps.reduce((acc, f) => f(acc), p);
    }
    case 'Split': {
      if (s.behavior !== 'Isolated') throw new Error(`tokenizer.json: unsupported Split behavior ${s.behavior}`);
      const src = s.pattern?.Regex ?? s.pattern?.String?.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      if (src === undefined) throw new Error('tokenizer.json: Split without pattern');
      return isolatedSplit(toJsRegex(src));
    }
    case 'ByteLevel': {
      if (s.add_prefix_space) throw new Error('tokenizer.json: ByteLevel add_prefix_space is not supported');
      if (s.use_regex === false) return (p) => p;
      // GPT-2's own split pattern.
      return isolatedSplit(/'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu);
    }
    default:
      throw new Error(`tokenizer.json: unsupported pre_tokenizer ${String(s.type)}`);
  }
}

interface TrieNode {
  next: Map<string, TrieNode>;
  id: number;
}

const utf8 = new TextEncoder();

export interface EncodeOptions {
  /** Default true: added-token texts (e.g. `<｜User｜>`) in the text become their ids, as in the reference.
   *  false: the text is tokenized as ordinary bytes (for untrusted text that must not carry control tokens). */
  addedTokens?: boolean;
}

export class Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  private readonly vocab: Map<string, number>;
  private readonly ranks: Map<string, number>;
  private readonly idToToken: string[] = [];
  private readonly addedById = new Map<number, AddedToken>();
  private readonly trie: TrieNode = { next: new Map(), id: -1 };
  private readonly preTokenize: PreTokenize;
  private readonly cache = new Map<string, number[]>();
  private readonly bytesCache = new Map<number, Uint8Array>();

  constructor(json: TokenizerJson, added: AddedToken[]) {
    if (json.model.type && json.model.type !== 'BPE') throw new Error(`tokenizer.json: model ${json.model.type} is not BPE`);
    this.vocab = new Map(Object.entries(json.model.vocab));
    for (const [tok, id] of this.vocab) this.idToToken[id] = tok;
    this.ranks = new Map();
    json.model.merges.forEach((m, i) => this.ranks.set(Array.isArray(m) ? `${m[0]} ${m[1]}` : m, i));
    this.preTokenize = buildPreTokenizer(json.pre_tokenizer);
    let maxId = this.idToToken.length - 1;
    for (const t of added) {
      this.addedById.set(t.id, t);
      maxId = Math.max(maxId, t.id);
      let node = this.trie;
      for (const ch of t.content) {
        let n = node.next.get(ch);
        if (!n) node.next.set(ch, (n = { next: new Map(), id: -1 }));
        node = n;
      }
      node.id = t.id;
    }
    this.vocabSize = maxId + 1;
    this.bosId = this.idOf('<｜begin▁of▁sentence｜>') ?? 0;
    this.eosId = this.idOf('<｜end▁of▁sentence｜>') ?? 1;
  }

  /** Token id of an added-token text or a vocabulary entry (byte-level form), or undefined. */
  idOf(tokenText: string): number | undefined {
    let node: TrieNode | undefined = this.trie;
    for (const ch of tokenText) if (!(node = node.next.get(ch))) break;
    if (node && node.id >= 0) return node.id;
    return this.vocab.get(tokenText);
  }

  /** The text's ids; no BOS is added. */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (opts.addedTokens === false) {
      this.encodeOrdinary(text, out);
      return out;
    }
    let start = 0;
    let i = 0;
    while (i < text.length) {
      const [id, end] = this.matchAdded(text, i);
      if (id < 0) {
        i++;
        continue;
      }
      if (i > start) this.encodeOrdinary(text.slice(start, i), out);
      out.push(id);
      i = start = end;
    }
    if (start < text.length) this.encodeOrdinary(text.slice(start), out);
    return out;
  }

  /** Longest added token starting at i: [id, end] or [-1, i]. */
  private matchAdded(text: string, i: number): [number, number] {
    let node: TrieNode | undefined = this.trie;
    let best: [number, number] = [-1, i];
    let j = i;
    while (j < text.length) {
      const cp = text.codePointAt(j)!;
      const ch = String.fromCodePoint(cp);
      node = node.next.get(ch);
      if (!node) break;
      j += ch.length;
      if (node.id >= 0) best = [node.id, j];
    }
    return best;
  }

  private encodeOrdinary(text: string, out: number[]): void {
    for (const piece of this.preTokenize([text])) {
      let ids = this.cache.get(piece);
      if (!ids) {
        ids = this.bpe(piece);
        if (this.cache.size > 200_000) this.cache.clear();
        this.cache.set(piece, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  /** Ranked merges over one pre-token: lowest rank first, leftmost on ties (the HF order), via a
   *  doubly linked symbol list and a min-heap keyed rank * 2^32 + position, so long pieces stay O(n log n). */
  private bpe(piece: string): number[] {
    const bytes = utf8.encode(piece);
    const n = bytes.length;
    const sym: string[] = new Array(n);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      sym[i] = BYTE_TO_CHAR[bytes[i]];
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    if (n === 1) return [this.vocab.get(sym[0])!];
    const heap = new MinHeap();
    const pairRank = (i: number): number | undefined => (next[i] < 0 ? undefined : this.ranks.get(sym[i] + ' ' + sym[next[i]]));
    const push = (i: number) => {
      const r = pairRank(i);
      if (r !== undefined) heap.push(r * 4294967296 + i);
    };
    for (let i = 0; i + 1 < n; i++) push(i);
    while (heap.size > 0) {
      const key = heap.pop();
      const rank = Math.floor(key / 4294967296);
      const i = key - rank * 4294967296;
      if (sym[i] === '' || pairRank(i) !== rank) continue; // stale entry
      const j = next[i];
      sym[i] += sym[j];
      sym[j] = '';
      next[i] = next[j];
      if (next[j] >= 0) prev[next[j]] = i;
      if (prev[i] >= 0) push(prev[i]);
      push(i);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0 && i < n; i = next[i]) {
      const id = this.vocab.get(sym[i]);
      if (id === undefined) throw new Error(`tokenizer: no vocabulary entry for ${JSON.stringify(sym[i])}`);
      out.push(id);
    }
    return out;
  }

  /** The bytes a token stands for (added tokens: their UTF-8 text). */
  tokenToBytes(id: number): Uint8Array {
    let b = this.bytesCache.get(id);
    if (b) return b;
    const added = this.addedById.get(id);
    if (added) b = utf8.encode(added.content);
    else {
      const tok = this.idToToken[id];
      if (tok === undefined) throw new RangeError(`tokenizer: no token with id ${id}`);
      b = Uint8Array.from(tok, (ch) => CHAR_TO_BYTE.get(ch) ?? 0x3f);
    }
    this.bytesCache.set(id, b);
    return b;
  }

  /** The token's text form: added-token content or the vocabulary's byte-level string. */
  tokenText(id: number): string | undefined {
    return this.addedById.get(id)?.content ?? this.idToToken[id];
  }

  isSpecial(id: number): boolean {
    return this.addedById.get(id)?.special ?? false;
  }

  /** UTF-8 decode of the tokens' bytes (invalid sequences become U+FFFD). */
  decode(ids: ArrayLike<number>, opts: { skipSpecialTokens?: boolean } = {}): string {
    const dec = new IncrementalDecoder(this, opts.skipSpecialTokens);
    let s = '';
    for (let i = 0; i < ids.length; i++) s += dec.push(ids[i]);
    return s + dec.flush();
  }

  /** A streaming detokenizer (holds back incomplete UTF-8 sequences). */
  decoder(opts: { skipSpecialTokens?: boolean } = {}): IncrementalDecoder {
    return new IncrementalDecoder(this, opts.skipSpecialTokens);
  }

  /** Added tokens, for writing tokenizer.json. */
  addedTokens(): AddedToken[] {
    return [...this.addedById.values()].sort((a, b) => a.id - b.id);
  }
}

/** Binary min-heap of numbers. */
class MinHeap {
  private a: number[] = [];
  get size(): number {
    return this.a.length;
  }
  push(v: number): void {
    const a = this.a;
    let i = a.push(v) - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p] <= v) break;
      a[i] = a[p];
      i = p;
    }
    a[i] = v;
  }
  pop(): number {
    const a = this.a;
    const top = a[0];
    const last = a.pop()!;
    if (a.length) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const c = l + 1 < a.length && a[l + 1] < a[l] ? l + 1 : l;
        if (a[c] >= last) break;
        a[i] = a[c];
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}

/** Token-by-token text: never emits a partial UTF-8 character (it waits for the rest). */
export class IncrementalDecoder {
  private readonly td = new TextDecoder('utf-8', { fatal: false });
  constructor(private readonly tok: Tokenizer, private readonly skipSpecial = false) {}

  push(id: number): string {
    if (this.skipSpecial && this.tok.isSpecial(id)) return '';
    return this.td.decode(this.tok.tokenToBytes(id), { stream: true });
  }

  /** End of stream: a dangling partial character becomes U+FFFD. */
  flush(): string {
    return this.td.decode();
  }
}
