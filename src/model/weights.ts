// Reading weights from an opened checkpoint, kept in their stored formats
// (spec §5.1): FP8 + UE8M0 block scales, packed FP4 + per-32 scales, BF16 as
// raw bits. Only small vectors (norm weights, hc params, ape, sinks) become f32.
import type { Checkpoint, TensorData } from '../checkpoint/types.js';
import type { Bf16Weight, F32Weight, Fp4Weight, Fp8Weight, Weight } from '../tensor/kernels.js';
import { bf16ToF32 } from '../tensor/formats.js';
import { WeightArena } from '../tensor/arena.js';

function fail(t: TensorData | string, msg: string): never {
  throw new Error(`${typeof t === 'string' ? t : t.name}: ${msg}`);
}

function u16(t: TensorData): Uint16Array {
  const b = t.bytes;
  if (b.byteOffset % 2 === 0) return new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2);
  return new Uint16Array(b.slice().buffer);
}

function f32(t: TensorData): Float32Array {
  const b = t.bytes;
  if (b.byteOffset % 4 === 0) return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  return new Float32Array(b.slice().buffer);
}

export class WeightReader {
  /** Weights are read into one arena (2 MiB huge-page chunks, 64-byte aligned tensors: tensor/arena.ts). */
  constructor(readonly ck: Checkpoint, readonly arena = new WeightArena()) {}

  has(name: string): boolean {
    return this.ck.has(name);
  }

  /** The tensor's bytes, in the arena when kept as they are (`kept`), else in a buffer of their own. */
  tensor(name: string, kept = true): TensorData {
    if (!this.ck.has(name)) throw new Error(`checkpoint ${this.ck.dir} lacks tensor ${name}`);
    return kept ? this.ck.tensor(name, (n) => this.arena.alloc(n)) : this.ck.tensor(name);
  }

  /** Any small tensor (BF16 / F32) as f32 values. */
  vector(name: string): Float32Array {
    const t = this.tensor(name, false); // converted: the raw bytes are dropped
    if (t.dtype === 'F32') return f32(t).slice();
    if (t.dtype === 'BF16') return bf16ToF32(u16(t));
    return fail(t, `expected F32 or BF16, found ${t.dtype}`);
  }

  /**
   * A linear weight `prefix.weight` (+ `prefix.scale` when quantized), in its stored format; `copied`: the
   * caller keeps a copy instead (fuseXProducts), so the bytes stay out of the arena, which frees nothing.
   */
  linear(prefix: string, copied = false): Weight {
    const t = this.tensor(`${prefix}.weight`, !copied);
    const [out, stored] = t.shape as [number, number];
    switch (t.dtype) {
      case 'F8_E4M3': {
        const s = this.tensor(`${prefix}.scale`, !copied);
        if (s.dtype !== 'F8_E8M0') fail(s, `expected F8_E8M0 scales, found ${s.dtype}`);
        const w: Fp8Weight = { kind: 'fp8', out, inF: stored, data: t.bytes, scale: s.bytes };
        return w;
      }
      case 'I8': {
        const s = this.tensor(`${prefix}.scale`, !copied);
        if (s.dtype !== 'F8_E8M0') fail(s, `expected F8_E8M0 scales, found ${s.dtype}`);
        const w: Fp4Weight = { kind: 'fp4', out, inF: stored * 2, data: t.bytes, scale: s.bytes };
        return w;
      }
      case 'BF16': {
        const w: Bf16Weight = { kind: 'bf16', out, inF: stored, data: u16(t) };
        return w;
      }
      case 'F32': {
        const w: F32Weight = { kind: 'f32', out, inF: stored, data: f32(t) };
        return w;
      }
      default:
        return fail(t, `unsupported weight dtype ${t.dtype}`);
    }
  }

  /** Integer table (tid2eid) as Int32Array. */
  ints(name: string): Int32Array {
    const t = this.tensor(name, false);
    const b = t.bytes;
    const n = t.shape.reduce((a, c) => a * c, 1);
    const out = new Int32Array(n);
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    if (t.dtype === 'I64') for (let i = 0; i < n; i++) out[i] = Number(dv.getBigInt64(i * 8, true));
    else if (t.dtype === 'I32') for (let i = 0; i < n; i++) out[i] = dv.getInt32(i * 4, true);
    else fail(t, `expected I64 or I32, found ${t.dtype}`);
    return out;
  }
}

