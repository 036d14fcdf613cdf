// Prefix cache: complete sequence-state snapshots keyed by the exact token ids consumed.
//
// V4 cannot resume from shared KV blocks alone: a position needs its whole state (window ring,
// compressor pending rows, compressed and indexer caches; research/peers.md §4), so each entry is an
// independent unit (as DeepSeek's own disk cache): a request hits an entry only if the entry's tokens
// are a prefix of its prompt, and the longest such entry wins. Each entry also keeps the logits of its
// last token, so an entry covering the whole prompt needs no forward at all.
//
// Memory: LRU under a byte budget. Disk (optional): every entry is also written to `dir` (temp file +
// rename, SHA-256 of the payload, model-identity header); entries evicted from memory stay reachable on
// disk. Files that are corrupt, truncated or from another model are ignored (and deleted), never served.

import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SequenceState } from '../model/api.js';

const MAGIC = 'DSV4PFX1';

export interface PrefixCacheOptions {
  /** Memory budget for snapshots (bytes). 0 disables the memory tier. */
  memoryBytes: number;
  /** Directory for persistent snapshots (created if missing). */
  dir?: string;
  /** Disk budget (bytes), default 8x memoryBytes (at least 1 GiB). */
  diskBytes?: number;
  /** Identity of the model (weights + config); files with another identity are never served. */
  modelId: string;
  /** Rebuilds a state from `SequenceState.serialize()` bytes. */
  restore(bytes: Uint8Array): SequenceState;
}

export interface PrefixHit {
  /** Number of prompt tokens covered (the state's position). */
  length: number;
  /** A private copy the caller may advance. */
  state: SequenceState;
  /** Logits of token length-1 (predicting token `length`). */
  logits: Float32Array;
  source: 'memory' | 'disk';
}

interface Entry {
  key: string;
  scope: string | undefined;
  tokens: Int32Array;
  mem: { state: SequenceState; logits: Float32Array; bytes: number } | null;
  file: string | null;
  fileBytes: number;
  lastUse: number;
}

interface FileHeader {
  modelId: string;
  /** Isolation scope (SubmitOptions.cacheScope); absent = the shared default scope. */
  scope?: string;
  nTokens: number;
  nLogits: number;
  stateBytes: number;
  sha256: string;
}

/** Rolling hash of token prefixes: two independent 32-bit lanes. */
class PrefixHasher {
  private a = 0x811c9dc5;
  private b = 0x9747b28c;
  n = 0;
  push(t: number): void {
    this.a = Math.imul(this.a ^ t, 0x01000193) >>> 0;
    let k = Math.imul(t ^ this.n, 0xcc9e2d51);
    k = Math.imul((k << 15) | (k >>> 17), 0x1b873593);
    this.b = (Math.imul(((this.b ^ k) << 13) | ((this.b ^ k) >>> 19), 5) + 0xe6546b64) >>> 0;
    this.n++;
  }
  key(): string {
    return `${this.n}-${this.a.toString(16).padStart(8, '0')}${this.b.toString(16).padStart(8, '0')}`;
  }
}

/** Key prefix of an isolation scope: entries of different scopes never share a key (nor a file). */
function scopeTag(scope: string | undefined): string {
  return scope === undefined ? '' : `s${createHash('sha256').update(scope).digest('hex').slice(0, 16)}-`;
}

export function prefixKey(tokens: ArrayLike<number>, scope?: string): string {
  const h = new PrefixHasher();
  for (let i = 0; i < tokens.length; i++) h.push(tokens[i]!);
  return scopeTag(scope) + h.key();
}

function sameTokens(a: Int32Array, b: Int32Array, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class PrefixCache {
  private readonly entries = new Map<string, Entry>();
  /** How many entries exist per prefix length (lookup only checks those lengths). */
  private readonly lengths = new Map<number, number>();
  private clock = 0;
  private memBytes = 0;
  private diskBytes = 0;
  private readonly diskBudget: number;
  /** File-name prefix: models sharing a directory never overwrite each other's files. */
  private readonly filePrefix: string;
  readonly counters = { hits: 0, misses: 0, hitTokens: 0, diskHits: 0, inserts: 0, rejectedFiles: 0, evictions: 0 };

  constructor(private readonly opts: PrefixCacheOptions) {
    this.diskBudget = opts.diskBytes ?? Math.max(8 * opts.memoryBytes, 1 << 30);
    this.filePrefix = createHash('sha256').update(opts.modelId).digest('hex').slice(0, 12) + '-';
    if (opts.dir) {
      mkdirSync(opts.dir, { recursive: true });
      this.scanDir(opts.dir);
    }
  }

  get memoryBytes(): number {
    return this.memBytes;
  }
  get storedDiskBytes(): number {
    return this.diskBytes;
  }
  get size(): number {
    return this.entries.size;
  }

  /**
   * Longest entry whose tokens are a prefix of `prompt`, as a private copy. `minPartial`: entries shorter
   * than the prompt must have at least this many tokens (whole-prompt entries always qualify).
   */
  lookup(prompt: Int32Array, opts: { minPartial?: number; scope?: string } = {}): PrefixHit | null {
    const found: Entry[] = [];
    const h = new PrefixHasher();
    const minPartial = opts.minPartial ?? 1;
    const tag = scopeTag(opts.scope);
    for (let i = 0; i < prompt.length; i++) {
      h.push(prompt[i]!);
      if (!this.lengths.has(h.n) || (h.n < minPartial && h.n < prompt.length)) continue;
      const e = this.entries.get(tag + h.key());
      if (e && sameTokens(e.tokens, prompt, h.n)) found.push(e);
    }
    for (let i = found.length - 1; i >= 0; i--) {
      const hit = this.materialize(found[i]!);
      if (hit) {
        this.counters.hits++;
        this.counters.hitTokens += hit.length;
        if (hit.source === 'disk') this.counters.diskHits++;
        return hit;
      }
    }
    this.counters.misses++;
    return null;
  }

  /** Whether an entry for exactly these tokens (in this scope) exists. */
  has(tokens: Int32Array, scope?: string): boolean {
    return this.entries.has(prefixKey(tokens, scope));
  }

  /**
   * Stores a snapshot of `state` (cloned; the caller keeps advancing its own) after `tokens`, visible only
   * to lookups with the same `scope`.
   */
  insert(tokens: Int32Array, state: SequenceState, logits: Float32Array, scope?: string): void {
    if (tokens.length === 0 || state.position !== tokens.length) return;
    const key = prefixKey(tokens, scope);
    const existing = this.entries.get(key);
    if (existing && sameTokens(existing.tokens, tokens, tokens.length)) {
      existing.lastUse = ++this.clock;
      if (existing.mem || !this.opts.memoryBytes) return;
    }
    this.counters.inserts++;
    const snap = state.clone();
    const logitsCopy = logits.slice();
    const entry: Entry = existing ?? { key, scope, tokens: tokens.slice(), mem: null, file: null, fileBytes: 0, lastUse: 0 };
    entry.lastUse = ++this.clock;
    if (!existing) this.addEntry(entry);
    if (this.opts.dir && !entry.file) this.writeFile(entry, snap, logitsCopy);
    this.keepInMemory(entry, snap, logitsCopy);
    this.evict();
  }

  private addEntry(e: Entry): void {
    this.entries.set(e.key, e);
    this.lengths.set(e.tokens.length, (this.lengths.get(e.tokens.length) ?? 0) + 1);
  }

  private removeEntry(e: Entry): void {
    if (this.entries.get(e.key) !== e) return;
    this.entries.delete(e.key);
    const n = this.lengths.get(e.tokens.length)! - 1;
    if (n > 0) this.lengths.set(e.tokens.length, n);
    else this.lengths.delete(e.tokens.length);
    if (e.mem) this.memBytes -= e.mem.bytes;
    e.mem = null;
    if (e.file) {
      this.diskBytes -= e.fileBytes;
      try {
        unlinkSync(e.file);
      } catch {
        /* already gone */
      }
      e.file = null;
    }
  }

  private keepInMemory(e: Entry, state: SequenceState, logits: Float32Array): void {
    const bytes = state.byteSize() + logits.byteLength + e.tokens.byteLength;
    if (bytes > this.opts.memoryBytes) return;
    if (e.mem) this.memBytes -= e.mem.bytes;
    e.mem = { state, logits, bytes };
    this.memBytes += bytes;
  }

  private evict(): void {
    if (this.memBytes > this.opts.memoryBytes) {
      const byAge = [...this.entries.values()].filter((e) => e.mem).sort((a, b) => a.lastUse - b.lastUse);
      for (const e of byAge) {
        if (this.memBytes <= this.opts.memoryBytes) break;
        this.memBytes -= e.mem!.bytes;
        e.mem = null;
        this.counters.evictions++;
        if (!e.file) this.removeEntry(e);
      }
    }
    if (this.diskBytes > this.diskBudget) {
      const byAge = [...this.entries.values()].filter((e) => e.file).sort((a, b) => a.lastUse - b.lastUse);
      for (const e of byAge) {
        if (this.diskBytes <= this.diskBudget) break;
        if (e.mem) {
          this.diskBytes -= e.fileBytes;
          try {
            unlinkSync(e.file!);
          } catch {
            /* already gone */
          }
          e.file = null;
        } else this.removeEntry(e);
      }
    }
  }

  private materialize(e: Entry): PrefixHit | null {
    e.lastUse = ++this.clock;
    if (e.mem) return { length: e.tokens.length, state: e.mem.state.clone(), logits: e.mem.logits, source: 'memory' };
    if (!e.file) return null;
    const loaded = this.readFile(e.file, e.tokens, e.scope);
    if (!loaded) {
      this.counters.rejectedFiles++;
      this.removeEntry(e);
      return null;
    }
    this.keepInMemory(e, loaded.state, loaded.logits);
    this.evict();
    const state = e.mem ? loaded.state.clone() : loaded.state;
    return { length: e.tokens.length, state, logits: loaded.logits, source: 'disk' };
  }

  // ---- disk format: MAGIC, u32 header length, header JSON, payload = tokens i32 | logits f32 | state bytes

  private writeFile(e: Entry, state: SequenceState, logits: Float32Array): void {
    const dir = this.opts.dir!;
    const stateBytes = state.serialize();
    const tokBytes = new Uint8Array(e.tokens.buffer, e.tokens.byteOffset, e.tokens.byteLength);
    const logBytes = new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength);
    const sha = createHash('sha256').update(tokBytes).update(logBytes).update(stateBytes).digest('hex');
    const header: FileHeader = {
      modelId: this.opts.modelId,
      ...(e.scope !== undefined ? { scope: e.scope } : {}),
      nTokens: e.tokens.length,
      nLogits: logits.length,
      stateBytes: stateBytes.length,
      sha256: sha,
    };
    const hj = Buffer.from(JSON.stringify(header), 'utf8');
    const pre = Buffer.alloc(12);
    pre.write(MAGIC, 0, 'latin1');
    pre.writeUInt32LE(hj.length, 8);
    const file = join(dir, `${this.filePrefix}${e.key}.snap`);
    const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
    try {
      writeFileSync(tmp, Buffer.concat([pre, hj, tokBytes, logBytes, stateBytes]));
      renameSync(tmp, file);
    } catch {
      try {
        unlinkSync(tmp);
      } catch {
        /* nothing written */
      }
      return; // the cache is an optimization: a failed write only loses persistence
    }
    e.file = file;
    e.fileBytes = 12 + hj.length + tokBytes.length + logBytes.length + stateBytes.length;
    this.diskBytes += e.fileBytes;
  }

  /** Reads header and tokens only (at startup). */
  private readIndex(file: string): { header: FileHeader; tokens: Int32Array; size: number } | null {
    let fd = -1;
    try {
      const size = statSync(file).size;
      fd = openSync(file, 'r');
      const pre = Buffer.alloc(12);
      if (readSync(fd, pre, 0, 12, 0) !== 12 || pre.toString('latin1', 0, 8) !== MAGIC) return null;
      const hl = pre.readUInt32LE(8);
      if (hl > 1 << 20 || 12 + hl > size) return null;
      const hj = Buffer.alloc(hl);
      if (readSync(fd, hj, 0, hl, 12) !== hl) return null;
      const header = JSON.parse(hj.toString('utf8')) as FileHeader;
      if (header.modelId !== this.opts.modelId) return null;
      const { nTokens, nLogits, stateBytes } = header;
      if (![nTokens, nLogits, stateBytes].every((x) => Number.isInteger(x) && x >= 0)) return null;
      if (12 + hl + 4 * nTokens + 4 * nLogits + stateBytes !== size || nTokens === 0) return null;
      const tokens = new Int32Array(nTokens);
      const tb = new Uint8Array(tokens.buffer);
      if (readSync(fd, tb, 0, tb.length, 12 + hl) !== tb.length) return null;
      return { header, tokens, size };
    } catch {
      return null;
    } finally {
      if (fd >= 0) closeSync(fd);
    }
  }

  private readFile(file: string, tokens: Int32Array, scope: string | undefined): { state: SequenceState; logits: Float32Array } | null {
    try {
      const buf = readFileSync(file);
      if (buf.toString('latin1', 0, 8) !== MAGIC) return null;
      const hl = buf.readUInt32LE(8);
      const header = JSON.parse(buf.toString('utf8', 12, 12 + hl)) as FileHeader;
      if (header.modelId !== this.opts.modelId || header.nTokens !== tokens.length || header.scope !== scope) return null;
      const p0 = 12 + hl;
      const p1 = p0 + 4 * header.nTokens;
      const p2 = p1 + 4 * header.nLogits;
      const p3 = p2 + header.stateBytes;
      if (p3 !== buf.length) return null;
      const sha = createHash('sha256').update(buf.subarray(p0, p3)).digest('hex');
      if (sha !== header.sha256) return null;
      const stored = new Int32Array(buf.buffer.slice(buf.byteOffset + p0, buf.byteOffset + p1));
      if (!sameTokens(stored, tokens, tokens.length)) return null;
      const logits = new Float32Array(buf.buffer.slice(buf.byteOffset + p1, buf.byteOffset + p2));
      const state = this.opts.restore(new Uint8Array(buf.buffer, buf.byteOffset + p2, header.stateBytes));
      if (state.position !== tokens.length) return null;
      return { state, logits };
    } catch {
      return null;
    }
  }

  private scanDir(dir: string): void {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    const found: Array<{ e: Entry; mtime: number }> = [];
    for (const name of names) {
      const file = join(dir, name);
      if (name.endsWith('.tmp') && name.startsWith(this.filePrefix)) {
        // a write that never completed (crash between write and rename)
        try {
          unlinkSync(file);
        } catch {
          /* ignore */
        }
        continue;
      }
      if (!name.endsWith('.snap') || !name.startsWith(this.filePrefix)) continue;
      const key = name.slice(this.filePrefix.length, -5);
      const idx = this.readIndex(file);
      const scope = typeof idx?.header.scope === 'string' ? idx.header.scope : undefined;
      if (!idx || prefixKey(idx.tokens, scope) !== key) {
        this.counters.rejectedFiles++;
        continue; // foreign or corrupt: never served (left alone; it may belong to another model)
      }
      let mtime = 0;
      try {
        mtime = statSync(file).mtimeMs;
      } catch {
        continue;
      }
      found.push({ e: { key, scope, tokens: idx.tokens, mem: null, file, fileBytes: idx.size, lastUse: 0 }, mtime });
    }
    found.sort((a, b) => a.mtime - b.mtime);
    for (const { e } of found) {
      e.lastUse = ++this.clock;
      this.addEntry(e);
      this.diskBytes += e.fileBytes;
    }
    this.evict();
  }
}
