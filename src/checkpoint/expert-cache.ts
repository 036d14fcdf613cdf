// A RAM-budgeted LRU of routed experts (issue 4, deliverable 3): dense weights
// stay resident elsewhere; each routed expert (w1, w2, w3 with their scales,
// spec §5.1) is read from its shard on first use into one slab, and the least
// recently used experts are dropped once the budget is exceeded. Slabs of evicted
// experts are reused for the next load, so memory stays bounded by the budget
// without waiting for the garbage collector. Structurally an `ExpertStore` of
// src/model (get(layer, expert) -> {w1, w2, w3}), with layer = n_layers + j for
// MTP block j. With `prefetch`, a worker thread reads the experts a layer has just
// routed to while the main thread computes the earlier ones (overlap of disk reads
// and compute); get() then waits only for reads that are not finished.
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { Weight } from '../tensor/kernels.js';
import { alignedBytes, ARENA_ALIGN, HUGE_PAGE } from '../tensor/arena.js';
import { adviseHugePages } from '../tensor/native.js';
import { CheckpointError } from './errors.js';
import type { LocalCheckpoint, TensorLocation } from './open.js';

export interface ExpertWeightSet {
  w1: Weight;
  w2: Weight;
  w3: Weight;
}

interface Part {
  loc: TensorLocation;
  /** Offset of this tensor in the expert's slab (8-aligned). */
  at: number;
}

interface Entry {
  key: number;
  slab: Uint8Array;
  parts: Part[];
  weights: ExpertWeightSet;
  /** Set while a prefetch read is in flight: [0] = 0 pending, 1 done, 2 failed. */
  pending: Int32Array | null;
}

export interface ExpertCacheStats {
  hits: number;
  /** Loads (synchronous or prefetched). */
  misses: number;
  /** Of the misses, those a prefetch had started before get() asked. */
  prefetched: number;
  /** hits / (hits + misses), 0 before any access. */
  hitRate: number;
  evictions: number;
  bytesRead: number;
  /** Time get() spent waiting for expert bytes (synchronous reads and unfinished prefetches). */
  stallMs: number;
  /** Experts held now, and the bytes they occupy. */
  resident: number;
  residentBytes: number;
  /** Most bytes ever held at once. */
  peakBytes: number;
  budgetBytes: number;
}

export interface ExpertCacheOptions {
  /** Bytes of routed experts kept in RAM; at least one expert is always held. Default: unlimited. */
  budgetBytes?: number;
  /** Read routed experts ahead in a worker thread when the model announces them (prefetch()). */
  prefetch?: boolean;
}

const PROJ = ['w1', 'w2', 'w3'] as const;

/** A linear's Weight over its stored bytes (spec §2.2 formats; kernels.ts conventions). */
export function weightFromStored(
  w: { dtype: string; shape: readonly number[]; bytes: Uint8Array },
  scale: Uint8Array | null,
  name: string,
): Weight {
  const [out, stored] = w.shape as [number, number];
  switch (w.dtype) {
    case 'F8_E4M3':
      return { kind: 'fp8', out, inF: stored, data: w.bytes, scale: scale! };
    case 'I8':
      return { kind: 'fp4', out, inF: stored * 2, data: w.bytes, scale: scale! };
    case 'BF16':
      return { kind: 'bf16', out, inF: stored, data: new Uint16Array(w.bytes.buffer, w.bytes.byteOffset, w.bytes.length / 2) };
    default:
      throw new CheckpointError(`unsupported expert weight dtype ${w.dtype}`, undefined, name);
  }
}

export class ExpertCache {
  readonly budgetBytes: number;
  private readonly lru = new Map<number, Entry>(); // insertion order = recency (oldest first)
  private readonly free: Uint8Array[] = [];
  private readonly nExperts: number;
  private readonly nLayers: number;
  private worker: Worker | null = null;
  private residentBytes = 0;
  private s = { hits: 0, misses: 0, prefetched: 0, evictions: 0, bytesRead: 0, stallMs: 0, peakBytes: 0 };

  constructor(private readonly ckpt: LocalCheckpoint, opts: ExpertCacheOptions = {}) {
    this.budgetBytes = opts.budgetBytes ?? Infinity;
    this.nExperts = ckpt.args.nRoutedExperts;
    this.nLayers = ckpt.args.nLayers;
    if (opts.prefetch) {
      this.worker = new Worker(new URL('./expert-reader.js', import.meta.url));
      this.worker.unref(); // never keeps the process alive
    }
  }

  private prefix(layer: number, expert: number): string {
    const p = layer < this.nLayers ? `layers.${layer}` : `mtp.${layer - this.nLayers}`;
    return `${p}.ffn.experts.${expert}`;
  }

  /** The expert's tensors and their places in a slab. */
  private layout(layer: number, expert: number): { parts: Part[]; bytes: number } {
    const p = this.prefix(layer, expert);
    const parts: Part[] = [];
    let at = 0;
    for (const w of PROJ) {
      for (const leaf of ['weight', 'scale']) {
        const name = `${p}.${w}.${leaf}`;
        if (!this.ckpt.has(name)) {
          if (leaf === 'scale') continue; // BF16 experts have no scales
          throw new CheckpointError('routed expert tensor missing', this.ckpt.dir, name);
        }
        const loc = this.ckpt.info(name);
        parts.push({ loc, at });
        at += Math.ceil(loc.byteLength / ARENA_ALIGN) * ARENA_ALIGN; // each tensor on a cache line
      }
    }
    return { parts, bytes: at };
  }

  /** Experts whose weights are valid together: under a finite budget a load may recycle an evicted expert's slab. */
  get batchLimit(): number {
    return Number.isFinite(this.budgetBytes) ? 1 : Infinity;
  }

  /** Returns the expert's weights, loading it (and evicting others) if needed. Valid until it is evicted. */
  get(layer: number, expert: number): ExpertWeightSet {
    const key = layer * this.nExperts + expert;
    const e = this.lru.get(key);
    if (e && !e.pending) {
      this.s.hits++;
      this.touch(e);
      return e.weights;
    }
    this.s.misses++;
    const t0 = performance.now();
    if (e) {
      this.s.prefetched++;
      this.touch(e);
      this.await(e);
    } else {
      this.readSync(this.allocate(layer, expert, key, null)!);
    }
    this.s.stallMs += performance.now() - t0;
    return this.lru.get(key)!.weights;
  }

  /**
   * Starts reading the given experts of `layer` (the ones its routing just chose) in the
   * background, as far as the budget allows without evicting any of them. No-op without `prefetch`.
   */
  prefetch(layer: number, experts: readonly number[]): void {
    if (!this.worker) return;
    const keys = new Set(experts.map((x) => layer * this.nExperts + x));
    for (const k of keys) {
      const e = this.lru.get(k);
      if (e) this.touch(e); // keep the cached ones of this set from being evicted below
    }
    for (const x of experts) {
      const key = layer * this.nExperts + x;
      if (this.lru.has(key)) continue;
      const e = this.allocate(layer, x, key, keys);
      if (!e) return; // the budget is full of this layer's experts: the rest load on demand
      e.pending = new Int32Array(new SharedArrayBuffer(4));
      this.worker.postMessage({
        slab: e.slab.buffer,
        flag: e.pending,
        reads: e.parts.map(({ loc, at }) => ({ path: join(this.ckpt.dir, loc.file), offset: loc.offset, length: loc.byteLength, at: e.slab.byteOffset + at })),
      });
    }
  }

  private touch(e: Entry): void {
    this.lru.delete(e.key);
    this.lru.set(e.key, e);
  }

  /** Waits for a prefetch read; on failure re-reads synchronously so the error is reported properly. */
  private await(e: Entry): void {
    const flag = e.pending!;
    while (Atomics.load(flag, 0) === 0) Atomics.wait(flag, 0, 0);
    const failed = Atomics.load(flag, 0) === 2;
    e.pending = null;
    if (failed) this.readSync(e);
  }

  private readSync(e: Entry): void {
    for (const { loc, at } of e.parts) this.ckpt.readInto(loc.name, e.slab.subarray(at, at + loc.byteLength));
  }

  /**
   * Makes room (evicting least-recently-used experts outside `protect`, never ones being read) and
   * inserts an entry whose weights are views over its slab; returns null if `protect` blocks it.
   */
  private allocate(layer: number, expert: number, key: number, protect: Set<number> | null): Entry | null {
    const { parts, bytes } = this.layout(layer, expert);
    while (this.residentBytes + bytes > this.budgetBytes) {
      if (!this.evictOne(protect)) {
        if (protect) return null;
        break; // everything left is being read: exceed the budget by this one expert
      }
    }
    const slab = this.takeSlab(bytes);
    const p = this.prefix(layer, expert);
    const view = new Map(parts.map(({ loc, at }) => [loc.name, slab.subarray(at, at + loc.byteLength)]));
    const mk = (w: string): Weight => {
      const wl = this.ckpt.info(`${p}.${w}.weight`);
      return weightFromStored({ dtype: wl.dtype, shape: wl.shape, bytes: view.get(wl.name)! }, view.get(`${p}.${w}.scale`) ?? null, wl.name);
    };
    const e: Entry = { key, slab, parts, weights: { w1: mk('w1'), w2: mk('w2'), w3: mk('w3') }, pending: null };
    this.lru.set(key, e);
    this.residentBytes += slab.length;
    this.s.peakBytes = Math.max(this.s.peakBytes, this.residentBytes);
    this.s.bytesRead += bytes;
    return e;
  }

  private evictOne(protect: Set<number> | null): boolean {
    for (const [key, e] of this.lru) {
      if (e.pending || protect?.has(key)) continue;
      this.lru.delete(key);
      this.residentBytes -= e.slab.length;
      this.free.push(e.slab);
      this.s.evictions++;
      return true;
    }
    return false;
  }

  /** A slab of exactly `bytes`, reusing an evicted one (experts of one model all have the same size). */
  private takeSlab(bytes: number): Uint8Array {
    const i = this.free.findIndex((b) => b.length === bytes);
    const slab = i >= 0 ? this.free.splice(i, 1)[0]! : alignedBytes(bytes, HUGE_PAGE, this.worker !== null);
    if (i < 0) adviseHugePages(slab); // before the first read touches it (tensor/arena.ts: why)
    this.free.length = 0; // slabs beyond what the budget allows are not kept
    return slab;
  }

  stats(): ExpertCacheStats {
    const total = this.s.hits + this.s.misses;
    return {
      ...this.s,
      hitRate: total === 0 ? 0 : this.s.hits / total,
      resident: this.lru.size,
      residentBytes: this.residentBytes,
      budgetBytes: this.budgetBytes,
    };
  }

  resetStats(): void {
    this.s = { hits: 0, misses: 0, prefetched: 0, evictions: 0, bytesRead: 0, stallMs: 0, peakBytes: this.residentBytes };
  }

  /** Waits for reads in flight, then drops every cached expert. */
  clear(): void {
    for (const e of this.lru.values()) if (e.pending) this.await(e);
    this.lru.clear();
    this.free.length = 0;
    this.residentBytes = 0;
  }

  /** Stops the reader thread (the cache keeps working synchronously). */
  close(): void {
    this.clear();
    void this.worker?.terminate();
    this.worker = null;
  }
}
