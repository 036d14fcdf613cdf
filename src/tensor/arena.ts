// Memory for the model's resident weight tensors. A decode token of bench-2g reads 18 routed-expert
// tensors of ~1 MB per layer; read one by one into buffers of their own they sat on 4 KiB pages
// (below adviseHugePages' 4 MiB minimum: a TLB miss and page walk per 4 KiB) and 16 bytes off the
// 64-byte grid (malloc's header), so half the kernels' 32-byte loads split cache lines. Here tensors
// are carved from 2 MiB-aligned chunks advised for transparent huge pages, each tensor 64-byte
// aligned. Without the native addon (which tells the addresses) the views are just unaligned slices.
import { adviseHugePages, loadNative } from './native.js';

/** A transparent huge page. */
export const HUGE_PAGE = 2 << 20;
/** Bytes per chunk (a multiple of 2 MiB). */
export const ARENA_CHUNK = 64 << 20;
/** Tensors above this get a 2 MiB-aligned block of their own instead of a chunk's tail. */
const OWN_BLOCK = ARENA_CHUNK / 4;
/** Every tensor starts on a multiple of this (a cache line; the kernels' widest load is 32 bytes). */
export const ARENA_ALIGN = 64;

/**
 * `bytes` bytes of fresh memory starting at an address that is a multiple of `align` (when the addon can
 * tell), uninitialized, or zeroed in a SharedArrayBuffer when `shared`.
 */
export function alignedBytes(bytes: number, align: number, shared = false): Uint8Array {
  const raw = new Uint8Array(shared ? new SharedArrayBuffer(bytes + align) : Buffer.allocUnsafeSlow(bytes + align).buffer);
  const off = loadNative().addon?.alignOffset?.(raw, align) ?? 0;
  return raw.subarray(off, off + bytes);
}

/** A bump allocator of weight memory that lives as long as the model (nothing is freed one by one). */
export class WeightArena {
  private chunk: Uint8Array | null = null;
  private used = 0;
  /** Bytes handed out and bytes reserved (chunks and own blocks). */
  allocated = 0;
  reserved = 0;

  /** A view of `bytes` fresh (uninitialized) bytes, starting on a multiple of ARENA_ALIGN. */
  alloc(bytes: number): Uint8Array {
    if (!Number.isInteger(bytes) || bytes < 0) throw new RangeError(`arena: bad size ${bytes}`);
    this.allocated += bytes;
    if (bytes > OWN_BLOCK) return this.block(bytes);
    let at = Math.ceil(this.used / ARENA_ALIGN) * ARENA_ALIGN;
    if (!this.chunk || at + bytes > this.chunk.length) {
      this.chunk = this.block(ARENA_CHUNK); // the old chunk's tail (< OWN_BLOCK) stays unused
      at = 0;
    }
    this.used = at + bytes;
    return this.chunk.subarray(at, at + bytes);
  }

  /** A 2 MiB-aligned block, advised for huge pages before anything touches it. */
  private block(bytes: number): Uint8Array {
    const b = alignedBytes(bytes, HUGE_PAGE);
    this.reserved += bytes;
    adviseHugePages(b);
    return b;
  }
}
