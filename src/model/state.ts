// Per-sequence inference state (spec §4.1): per layer a sliding-window ring of
// KV vectors, compressor pending rows, the compressed KV cache and, on CSA
// layers, the indexer's compressor and key cache. KV vectors are stored as BF16
// bits (their values are BF16, so this is lossless); the compressor state is
// fp32 as in the reference. The MTP block has its own.
import type { SequenceState } from './api.js';
import { bf16Bits } from '../tensor/formats.js';
import { codeIndex, encodeFp4Row, FP4_BLOCK, FP4_GROUP, type Fp4Rows } from '../tensor/fp4-rows.js';
import { LayerUndo } from './undo.js';

/** BF16 bits -> f32 values, rows [r0, r1) of width w. */
export function decodeRows(bits: Uint16Array, w: number, r0: number, r1: number, out: Float32Array = new Float32Array((r1 - r0) * w)): Float32Array {
  const u = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = r0 * w, j = 0; i < r1 * w; i++, j++) u[j] = bits[i]! << 16;
  return out;
}

/** Stores BF16 values src[so .. so+n) as bits at dst[do ..]. */
export function storeBf16(src: Float32Array, so: number, n: number, dst: Uint16Array, d0: number): void {
  for (let i = 0; i < n; i++) dst[d0 + i] = bf16Bits(src[so + i]!);
}

/** Pending rows of one compressor: kv and score [k*r, k*c]; scores start at -inf. */
export class CompressorState {
  readonly kv: Float32Array;
  readonly score: Float32Array;
  constructor(readonly rows: number, width: number) {
    this.kv = new Float32Array(rows * width);
    this.score = new Float32Array(rows * width).fill(-Infinity);
  }
  reset(): void {
    this.kv.fill(0);
    this.score.fill(-Infinity);
  }
}

/** Growable list of compressed entries [count, width], BF16 bits. */
export class EntryCache {
  data: Uint16Array;
  count = 0;
  constructor(readonly width: number, capacity = 16) {
    this.data = new Uint16Array(capacity * width);
  }
  push(src: Float32Array, so = 0): void {
    if ((this.count + 1) * this.width > this.data.length) this.reserve(Math.max(2 * this.data.length / this.width, this.count + 1));
    storeBf16(src, so, this.width, this.data, this.count * this.width);
    this.count++;
  }
  /** Makes room for `entries` entries without reallocating. */
  reserve(entries: number): void {
    if (entries * this.width <= this.data.length) return;
    const d = new Uint16Array(entries * this.width);
    d.set(this.data.subarray(0, this.count * this.width));
    this.data = d;
  }
  /** All entries as f32 values [count, width]. */
  values(): Float32Array {
    return decodeRows(this.data, this.width, 0, this.count);
  }
  /** Entries idx[0..n) as f32 values [n, width]. */
  rows(idx: ArrayLike<number>, n = idx.length, out = new Float32Array(n * this.width)): Float32Array {
    const w = this.width;
    const u = new Uint32Array(out.buffer, out.byteOffset, n * w);
    for (let i = 0; i < n; i++) {
      for (let j = 0, s = idx[i]! * w, d = i * w; j < w; j++) u[d + j] = this.data[s + j]! << 16;
    }
    return out;
  }
  reset(): void {
    this.count = 0;
  }
  /** Keeps the first n entries (draft rows rejected). */
  truncate(n: number): void {
    if (n < this.count) this.count = n;
  }
  /** Takes a copy of o's entries. */
  copyFrom(o: EntryCache): void {
    this.data = o.data.slice(0, Math.max(o.count, 1) * o.width);
    this.count = o.count;
  }
  /** Entries were written into `data` directly (deserialization): rebuild derived forms. */
  loaded(): void {}
  byteSize(): number {
    return this.data.byteLength;
  }
}

/** Entries rounded up to whole groups of FP4_GROUP. */
const groups = (n: number) => Math.ceil(n / FP4_GROUP) * FP4_GROUP;
let rowCodeBuf = new Uint8Array(0);
function rowCodes(w: number): Uint8Array {
  if (rowCodeBuf.length < w) rowCodeBuf = new Uint8Array(w);
  return rowCodeBuf;
}

/**
 * The indexer's key cache: BF16 entries (the canonical state) plus their compact FP4 form
 * (tensor/fp4-rows.ts) for the integer scoring kernel, kept in step on every push.
 */
export class IndexerKeyCache extends EntryCache implements Fp4Rows {
  codes: Uint8Array;
  units: Float32Array;
  exact: Uint8Array;
  private f32: Float32Array | null = null; // decoded values for the float path, grown lazily
  private f32Count = 0;
  constructor(width: number, capacity = 16) {
    super(width, capacity);
    this.codes = new Uint8Array(groups(capacity) * width);
    this.units = new Float32Array(Math.ceil((capacity * width) / FP4_BLOCK));
    this.exact = new Uint8Array(capacity);
  }
  override push(src: Float32Array, so = 0): void {
    super.push(src, so);
    this.encode(this.count - 1, src, so);
  }
  override reserve(entries: number): void {
    super.reserve(entries);
    if (entries <= this.exact.length) return;
    const w = this.width;
    const codes = new Uint8Array(groups(entries) * w);
    codes.set(this.codes);
    const units = new Float32Array(Math.ceil((entries * w) / FP4_BLOCK));
    units.set(this.units);
    const exact = new Uint8Array(entries);
    exact.set(this.exact);
    this.codes = codes;
    this.units = units;
    this.exact = exact;
  }
  private encode(t: number, src: ArrayLike<number>, so: number): void {
    const w = this.width;
    if (this.exact.length <= t) this.reserve(Math.max(2 * this.exact.length, t + 1));
    // widths off the 32-block grid have no compact form (every row inexact)
    if (w % FP4_BLOCK !== 0 || !encodeFp4Row(src, so, w, rowCodes(w), 0, this.units, (t * w) / FP4_BLOCK)) {
      this.exact[t] = 0;
      return;
    }
    const rc = rowCodes(w);
    for (let i = 0; i < w; i += 4) {
      const o = codeIndex(t, i, w);
      for (let j = 0; j < 4; j++) this.codes[o + j] = rc[i + j]!;
    }
    this.exact[t] = 1;
  }
  /** All entries as f32 values [count, width] (decoded incrementally; do not modify). */
  override values(): Float32Array {
    const w = this.width;
    if (!this.f32 || this.f32.length < this.count * w) {
      const f = new Float32Array(Math.max(this.count, 2 * this.f32Count, 16) * w);
      if (this.f32) f.set(this.f32.subarray(0, this.f32Count * w));
      this.f32 = f;
    }
    if (this.f32Count > this.count) this.f32Count = 0; // reset since the last call
    decodeRows(this.data, w, this.f32Count, this.count, this.f32.subarray(this.f32Count * w, this.count * w));
    this.f32Count = this.count;
    return this.f32.subarray(0, this.count * w);
  }
  override reset(): void {
    super.reset();
    this.f32Count = 0;
  }
  override truncate(n: number): void {
    super.truncate(n);
    this.f32Count = Math.min(this.f32Count, this.count);
  }
  override copyFrom(o: EntryCache): void {
    super.copyFrom(o);
    this.f32 = null;
    this.f32Count = 0;
    if (o instanceof IndexerKeyCache) {
      const n = o.count;
      this.codes = o.codes.slice(0, groups(Math.max(n, 1)) * this.width);
      this.units = o.units.slice(0, Math.ceil((Math.max(n, 1) * this.width) / FP4_BLOCK));
      this.exact = o.exact.slice(0, Math.max(n, 1));
    } else this.loaded();
  }
  override loaded(): void {
    this.f32 = null;
    this.f32Count = 0;
    const row = new Float32Array(this.width);
    for (let t = 0; t < this.count; t++) this.encode(t, decodeRows(this.data, this.width, t, t + 1, row), 0);
  }
  override byteSize(): number {
    return super.byteSize() + this.codes.byteLength + this.units.byteLength + this.exact.byteLength + (this.f32?.byteLength ?? 0);
  }
}

export interface LayerShape {
  window: number;
  headDim: number;
  ratio: number;
  indexHeadDim: number;
}

export class LayerState {
  readonly ring: Uint16Array; // [window, headDim] BF16 bits, position p at slot p mod window
  readonly comp: CompressorState | null;
  readonly cache: EntryCache | null;
  readonly idxComp: CompressorState | null;
  readonly idxCache: IndexerKeyCache | null;
  /** Set while a forward call's draft rows may still be rejected (undo.ts). */
  undo: LayerUndo | null = null;
  constructor(readonly shape: LayerShape) {
    const { window, headDim, ratio, indexHeadDim } = shape;
    this.ring = new Uint16Array(window * headDim);
    const k = ratio === 4 ? 2 : 1;
    this.comp = ratio ? new CompressorState(k * ratio, k * headDim) : null;
    this.cache = ratio ? new EntryCache(headDim) : null;
    this.idxComp = ratio === 4 ? new CompressorState(2 * ratio, 2 * indexHeadDim) : null;
    this.idxCache = ratio === 4 ? new IndexerKeyCache(indexHeadDim) : null;
  }
  /** Records what positions from .. from+n-1 (draft rows) overwrite; the ring slots now, the compressors as they run. */
  armUndo(from: number, n: number): void {
    const { window: W, headDim: hd } = this.shape;
    const u = (this.undo ??= new LayerUndo());
    if (u.ring.length < n * hd) u.ring = new Uint16Array(n * hd);
    for (let i = 0; i < n; i++) u.ring.set(this.ring.subarray(((from + i) % W) * hd, ((from + i) % W + 1) * hd), i * hd);
    u.from = from;
    u.n = n;
    u.comp.arm(from);
    u.idx.arm(from);
  }
  /** Puts back what the draft rows overwrote (armUndo). */
  rejectUndo(): void {
    const u = this.undo;
    if (!u || u.from < 0) return;
    const { window: W, headDim: hd } = this.shape;
    for (let i = 0; i < u.n; i++) this.ring.set(u.ring.subarray(i * hd, (i + 1) * hd), ((u.from + i) % W) * hd);
    if (this.comp) u.comp.restore(this.comp, this.cache!, this.comp.kv.length / this.comp.rows);
    if (this.idxComp) u.idx.restore(this.idxComp, this.idxCache!, this.idxComp.kv.length / this.idxComp.rows);
    u.from = -1;
  }
  dropUndo(): void {
    if (this.undo) {
      this.undo.from = -1;
      this.undo.comp.from = -1;
      this.undo.idx.from = -1;
    }
  }
  reset(): void {
    this.dropUndo();
    this.ring.fill(0);
    this.comp?.reset();
    this.cache?.reset();
    this.idxComp?.reset();
    this.idxCache?.reset();
  }
  /** The arrays that make up this state, in a fixed order (clone/serialize). */
  arrays(): (Float32Array | Uint16Array)[] {
    const a: (Float32Array | Uint16Array)[] = [this.ring];
    if (this.comp) a.push(this.comp.kv, this.comp.score);
    if (this.cache) a.push(this.cache.data.subarray(0, this.cache.count * this.cache.width));
    if (this.idxComp) a.push(this.idxComp.kv, this.idxComp.score);
    if (this.idxCache) a.push(this.idxCache.data.subarray(0, this.idxCache.count * this.idxCache.width));
    return a;
  }
  caches(): EntryCache[] {
    return [this.cache, this.idxCache].filter((c): c is EntryCache => c !== null);
  }
  byteSize(): number {
    let n = this.ring.byteLength;
    if (this.comp) n += this.comp.kv.byteLength + this.comp.score.byteLength;
    if (this.idxComp) n += this.idxComp.kv.byteLength + this.idxComp.score.byteLength;
    for (const c of this.caches()) n += c.byteSize();
    return n;
  }
  copyFrom(o: LayerState): void {
    this.ring.set(o.ring);
    if (this.comp && o.comp) {
      this.comp.kv.set(o.comp.kv);
      this.comp.score.set(o.comp.score);
    }
    if (this.idxComp && o.idxComp) {
      this.idxComp.kv.set(o.idxComp.kv);
      this.idxComp.score.set(o.idxComp.score);
    }
    const mine = this.caches();
    const theirs = o.caches();
    for (let i = 0; i < mine.length; i++) mine[i]!.copyFrom(theirs[i]!);
  }
}

const MAGIC = 0x34565344; // "DSV4"

export class ModelState implements SequenceState {
  position = 0;
  /** Tokens consumed by the MTP block (its own caches, golden README convention). */
  mtpPosition = 0;
  readonly layers: LayerState[];
  readonly mtp: LayerState[];
  /**
   * Main-model output streams the MTP block has not consumed yet (speculative decoding): rows for
   * positions mtpPosition .. mtpPosition + mtpRows - 1, each [hiddenWidth], and the tokens they pair with
   * that are already known (x[mtpPosition + 1 ..], one fewer than the rows: the last row waits for the
   * next sampled token). The MTP block is in step when mtpPosition + mtpRows === position.
   */
  mtpRows = 0;
  mtpHidden = new Float32Array(0);
  mtpTokens: number[] = [];
  /** Draft rows of the last forward call that may still be rejected: first position and count. */
  private draftFrom = -1;
  private draftCount = 0;
  constructor(readonly owner: object, readonly signature: string, shapes: LayerShape[], mtpShapes: LayerShape[], readonly hiddenWidth = 0) {
    this.layers = shapes.map((s) => new LayerState(s));
    this.mtp = mtpShapes.map((s) => new LayerState(s));
  }
  /** The MTP block has consumed every pair up to the pending rows (it can draft from here). */
  get mtpInStep(): boolean {
    return this.mtp.length > 0 && this.mtpPosition + this.mtpRows === this.position;
  }
  /** Appends pending MTP rows [n, hiddenWidth] and the tokens they pair with. */
  pushMtp(hidden: Float32Array, n: number, tokens: ArrayLike<number>): void {
    const w = this.hiddenWidth;
    if ((this.mtpRows + n) * w > this.mtpHidden.length) {
      const h = new Float32Array(Math.max(2 * this.mtpHidden.length, (this.mtpRows + n) * w));
      h.set(this.mtpHidden.subarray(0, this.mtpRows * w));
      this.mtpHidden = h;
    }
    this.mtpHidden.set(hidden.subarray(0, n * w), this.mtpRows * w);
    this.mtpRows += n;
    for (let i = 0; i < tokens.length; i++) this.mtpTokens.push(tokens[i]!);
  }
  /** Drops the first n pending MTP rows and the tokens paired with them (Dsv4Model.mtp consumed them and moved mtpPosition). */
  shiftMtp(n: number): void {
    const w = this.hiddenWidth;
    this.mtpHidden.copyWithin(0, n * w, this.mtpRows * w);
    this.mtpRows -= n;
    this.mtpTokens.splice(0, n);
  }
  /** Forgets the pending MTP rows (the MTP block falls out of step for good). */
  clearMtp(): void {
    this.mtpRows = 0;
    this.mtpTokens.length = 0;
  }
  /** The next forward call's rows from position `from` on (n of them) are drafts: record what they overwrite. */
  beginDrafts(from: number, n: number): void {
    const W = Math.min(...this.layers.map((l) => l.shape.window));
    if (n > W) throw new Error(`${n} draft rows exceed the window (${W})`);
    for (const l of this.layers) l.armUndo(from, n);
    this.draftFrom = from;
    this.draftCount = n;
  }
  /** The draft rows are kept (or there were none). */
  acceptDrafts(): void {
    if (this.draftFrom < 0) return;
    for (const l of this.layers) l.dropUndo();
    this.draftFrom = -1;
  }
  /** The draft rows are undone: the state is bit-identical to never having consumed them. */
  rejectDrafts(): void {
    if (this.draftFrom < 0) return;
    for (const l of this.layers) l.rejectUndo();
    const n = this.position - this.draftFrom;
    if (n !== this.draftCount) throw new Error('rejectDrafts: the state moved since its drafts');
    this.position = this.draftFrom;
    if (this.mtpRows >= n) {
      this.mtpRows -= n;
      this.mtpTokens.length = Math.max(0, this.mtpTokens.length - n);
    }
    this.draftFrom = -1;
  }
  private all(): LayerState[] {
    return [...this.layers, ...this.mtp];
  }
  byteSize(): number {
    return this.all().reduce((n, l) => n + l.byteSize(), this.mtpHidden.byteLength);
  }
  reset(): void {
    this.position = 0;
    this.mtpPosition = 0;
    this.clearMtp();
    this.draftFrom = -1;
    for (const l of this.all()) l.reset();
  }
  clone(): ModelState {
    const c = new ModelState(this.owner, this.signature, this.layers.map((l) => l.shape), this.mtp.map((l) => l.shape), this.hiddenWidth);
    c.position = this.position;
    c.mtpPosition = this.mtpPosition;
    c.pushMtp(this.mtpHidden, this.mtpRows, this.mtpTokens);
    const src = this.all();
    c.all().forEach((l, i) => l.copyFrom(src[i]!));
    return c;
  }
  serialize(): Uint8Array {
    const layers = this.all();
    const header = JSON.stringify({
      signature: this.signature,
      position: this.position,
      mtpPosition: this.mtpPosition,
      counts: layers.map((l) => l.caches().map((c) => c.count)),
      mtpRows: this.mtpRows,
      mtpTokens: this.mtpTokens,
    });
    const hb = new TextEncoder().encode(header);
    const arrays = [...layers.flatMap((l) => l.arrays()), this.mtpHidden.subarray(0, this.mtpRows * this.hiddenWidth)];
    const dataBytes = arrays.reduce((n, a) => n + a.byteLength, 0);
    const pad = (4 - ((8 + hb.length) % 4)) % 4;
    const out = new Uint8Array(8 + hb.length + pad + dataBytes);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, MAGIC, true);
    dv.setUint32(4, hb.length, true);
    out.set(hb, 8);
    let o = 8 + hb.length + pad;
    for (const a of arrays) {
      out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), o);
      o += a.byteLength;
    }
    return out;
  }
  /** Rebuilds the state written by serialize() into this (fresh) state. */
  load(bytes: Uint8Array): this {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (bytes.length < 8 || dv.getUint32(0, true) !== MAGIC) throw new Error('not a serialized dsv4 sequence state');
    const hlen = dv.getUint32(4, true);
    const h = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + hlen))) as {
      signature: string; position: number; mtpPosition: number; counts: number[][]; mtpRows?: number; mtpTokens?: number[];
    };
    if (h.signature !== this.signature) throw new Error('serialized state belongs to a different model');
    this.position = h.position;
    this.mtpPosition = h.mtpPosition;
    this.clearMtp();
    this.pushMtp(new Float32Array((h.mtpRows ?? 0) * this.hiddenWidth), h.mtpRows ?? 0, h.mtpTokens ?? []);
    const layers = this.all();
    layers.forEach((l, i) => l.caches().forEach((c, j) => {
      const n = h.counts[i]![j]!;
      c.data = new Uint16Array(Math.max(n, 1) * c.width);
      c.count = n;
    }));
    let o = 8 + hlen + ((4 - ((8 + hlen) % 4)) % 4);
    for (const a of [...layers.flatMap((l) => l.arrays()), this.mtpHidden.subarray(0, this.mtpRows * this.hiddenWidth)]) {
      if (o + a.byteLength > bytes.length) throw new Error('serialized state is truncated');
      new Uint8Array(a.buffer, a.byteOffset, a.byteLength).set(bytes.subarray(o, o + a.byteLength));
      o += a.byteLength;
    }
    if (o !== bytes.length) throw new Error('serialized state has the wrong size');
    for (const l of layers) for (const c of l.caches()) c.loaded();
    return this;
  }
}
