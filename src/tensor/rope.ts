// RoPE with per-layer YaRN tables (spec §2.6, model.py precompute_freqs_cis)
// and its interleaved-pair application. Table math follows the fp32 torch ops;
// cos/sin and pow are evaluated in float64 and rounded once.
import { roundBf16 } from './formats.js';
import { sum2F32 } from './exact.js';

const fr = Math.fround;

export interface RopeParams {
  dim: number; // rope_head_dim
  base: number;
  /** YaRN original context; 0 disables YaRN. */
  originalSeqLen: number;
  factor: number;
  betaFast: number;
  betaSlow: number;
}

/**
 * cos/sin table [positions, dim/2] (fp32), filled on demand up to `length`
 * (a 1M-position table would otherwise cost 256 MB up front).
 */
export class RopeTable {
  cos = new Float32Array(0);
  sin = new Float32Array(0);
  private filled = 0;
  constructor(readonly dim: number, readonly freqs: Float32Array, readonly length: number) {}
  /** Makes rows 0..pos available. */
  ensure(pos: number): void {
    if (pos < this.filled) return;
    if (pos >= this.length) throw new RangeError(`position ${pos} beyond the RoPE table (${this.length})`);
    const half = this.dim / 2;
    const upTo = Math.min(this.length, Math.max(pos + 1, this.filled * 2, 1024));
    const cos = new Float32Array(upTo * half);
    const sin = new Float32Array(upTo * half);
    cos.set(this.cos);
    sin.set(this.sin);
    for (let t = this.filled; t < upTo; t++) {
      for (let i = 0; i < half; i++) {
        const a = fr(t * this.freqs[i]!); // torch.outer(t, freqs) in fp32
        cos[t * half + i] = fr(Math.cos(a));
        sin[t * half + i] = fr(Math.sin(a));
      }
    }
    this.cos = cos;
    this.sin = sin;
    this.filled = upTo;
  }
}

export function ropeFrequencies(p: RopeParams): Float32Array {
  const half = p.dim / 2;
  const freqs = new Float32Array(half);
  for (let i = 0; i < half; i++) freqs[i] = fr(1 / fr(Math.pow(fr(p.base), fr((2 * i) / p.dim))));
  if (p.originalSeqLen > 0) {
    const corr = (rot: number) => (p.dim * Math.log(p.originalSeqLen / (rot * 2 * Math.PI))) / (2 * Math.log(p.base));
    const low = Math.max(Math.floor(corr(p.betaFast)), 0);
    let high = Math.min(Math.ceil(corr(p.betaSlow)), p.dim - 1);
    if (low === high) high += 0.001;
    const span = fr(high - low);
    const factor = fr(p.factor);
    for (let i = 0; i < half; i++) {
      let ramp = fr(fr(i - low) / span);
      ramp = Math.min(1, Math.max(0, ramp));
      const smooth = fr(1 - ramp);
      const f = freqs[i]!;
      freqs[i] = fr(fr(fr(f / factor) * fr(1 - smooth)) + fr(f * smooth));
    }
  }
  return freqs;
}

export function ropeTable(p: RopeParams, seqLen: number): RopeTable {
  return new RopeTable(p.dim, ropeFrequencies(p), seqLen);
}

/**
 * Rotates the interleaved pairs x[o+2i], x[o+2i+1] (i < dim/2) by position `pos`
 * (conjugate when inverse), each component rounded once to fp32, then to BF16.
 */
export function applyRope(x: Float32Array, o: number, table: RopeTable, pos: number, inverse = false): void {
  const half = table.dim / 2;
  table.ensure(pos);
  const base = pos * half;
  for (let i = 0; i < half; i++) {
    const a = x[o + 2 * i]!;
    const b = x[o + 2 * i + 1]!;
    const c = table.cos[base + i]!;
    const d = inverse ? -table.sin[base + i]! : table.sin[base + i]!;
    x[o + 2 * i] = roundBf16(sum2F32(a * c, -(b * d)));
    x[o + 2 * i + 1] = roundBf16(sum2F32(a * d, b * c));
  }
}
