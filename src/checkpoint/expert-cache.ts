// A RAM-budgeted LRU of routed experts (issue 4, deliverable 3): dense weights
// stay resident elsewhere; each routed expert (w1, w2, w3 with their scales,
// spec §5.1) is read from its shard on first use into one slab, and the least
// recently used experts are dropped once the budget is exceeded. Slabs of evicted
// experts are reused for the next load, so memory stays bounded by the budget
// without waiting for the garbage collector. Structurally an `ExpertStore` of
// src/model (get(layer, expert) -> {w1, w2, w3}), with layer = n_layers + j for
// MTP block j.
import { performance } from 'node:perf_hooks';
import type { Weight } from '../tensor/kernels.js';
import { CheckpointError } from './errors.js';
import type { LocalCheckpoint, TensorLocation } from './open.js';

export interface ExpertWeightSet {
  w1: Weight;
  w2: Weight;
  w3: Weight;
}

export interface ExpertCacheStats {
  hits: number;
  misses: number;
  /** hits / (hits + misses), 0 before any access. */
  hitRate: number;
  evictions: number;
  bytesRead: number;
  /** Time spent waiting for expert reads inside get(). */
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
}

interface Part {
  loc: TensorLocation;
  /** Offset of this tensor in the expert's slab (8-aligned). */
  at: number;
}

interface Entry {
  key: number;
  slab: Uint8Array;
  weights: ExpertWeightSet;
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
  private residentBytes = 0;
  private s = { hits: 0, misses: 0, evictions: 0, bytesRead: 0, stallMs: 0, peakBytes: 0 };

  constructor(private readonly ckpt: LocalCheckpoint, opts: ExpertCacheOptions = {}) {
    this.budgetBytes = opts.budgetBytes ?? Infinity;
    this.nExperts = ckpt.args.nRoutedExperts;
    this.nLayers = ckpt.args.nLayers;
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
        at += Math.ceil(loc.byteLength / 8) * 8;
      }
    }
    return { parts, bytes: at };
  }

  /** Returns the expert's weights, loading it (and evicting others) if needed. Valid until it is evicted. */
  get(layer: number, expert: number): ExpertWeightSet {
    const key = layer * this.nExperts + expert;
    const hit = this.lru.get(key);
    if (hit) {
      this.s.hits++;
      this.lru.delete(key);
      this.lru.set(key, hit);
      return hit.weights;
    }
    this.s.misses++;
    const t0 = performance.now();
    const { parts, bytes } = this.layout(layer, expert);
    // Make room first, so the evicted slab can be reused for this load.
    while (this.lru.size > 0 && this.residentBytes + bytes > this.budgetBytes) this.evictOldest();
    const slab = this.takeSlab(bytes);
    const views = new Map<string, Uint8Array>();
    for (const { loc, at } of parts) {
      const dst = slab.subarray(at, at + loc.byteLength);
      this.ckpt.readInto(loc.name, dst);
      views.set(loc.name, dst);
    }
    const p = this.prefix(layer, expert);
    const mk = (w: string): Weight => {
      const wl = this.ckpt.info(`${p}.${w}.weight`);
      return weightFromStored({ dtype: wl.dtype, shape: wl.shape, bytes: views.get(wl.name)! }, views.get(`${p}.${w}.scale`) ?? null, wl.name);
    };
    const entry: Entry = { key, slab, weights: { w1: mk('w1'), w2: mk('w2'), w3: mk('w3') } };
    this.lru.set(key, entry);
    this.residentBytes += slab.length;
    this.s.peakBytes = Math.max(this.s.peakBytes, this.residentBytes);
    this.s.bytesRead += bytes;
    this.s.stallMs += performance.now() - t0;
    return entry.weights;
  }

  private evictOldest(): void {
    const [key, e] = this.lru.entries().next().value as [number, Entry];
    this.lru.delete(key);
    this.residentBytes -= e.slab.length;
    this.free.push(e.slab);
    this.s.evictions++;
  }

  /** A slab of exactly `bytes` (experts of one model all have the same size, so reuse is the norm). */
  private takeSlab(bytes: number): Uint8Array {
    const i = this.free.findIndex((b) => b.length === bytes);
    const slab = i >= 0 ? this.free.splice(i, 1)[0]! : new Uint8Array(bytes);
    // Slabs beyond what the budget allows are not kept for later.
    this.free.length = 0;
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
    this.s = { hits: 0, misses: 0, evictions: 0, bytesRead: 0, stallMs: 0, peakBytes: this.residentBytes };
  }

  /** Drops every cached expert. */
  clear(): void {
    this.lru.clear();
    this.free.length = 0;
    this.residentBytes = 0;
  }
}
