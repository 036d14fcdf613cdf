// Deterministic random weights for synthetic checkpoints (`dsv4 init`). Each tensor
// has its own PRNG stream seeded from (seed, name), so its bytes do not depend on
// sharding or write order, and every tensor is produced in bounded-size chunks.
// Magnitudes follow the goldens' tiny checkpoints: linears ~ N(0, 1/in) as stored
// values, norms ~ 1, mHC parameters small, so activations stay finite and the
// logits are non-degenerate (RMS ~ 3).
import { bf16Bits, E2M1_VALUES, E4M3_VALUES, e2m1Encode, e4m3Encode } from '../tensor/formats.js';
import { FP4_BLOCK, FP8_BLOCK, type TensorSpec } from './inventory.js';
import { elementCount, tensorByteLength } from './safetensors.js';
import type { ModelArgs } from './types.js';

/** xoshiro128** seeded by splitmix32 over an FNV-1a hash of (seed, name). State kept as int32 (no heap numbers). */
class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: number, name: string) {
    let h = (0x811c9dc5 ^ seed) | 0;
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
    const next = (): number => {
      h = (h + 0x9e3779b9) | 0;
      let z = h;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return z ^ (z >>> 16);
    };
    this.a = next() | 1;
    this.b = next();
    this.c = next();
    this.d = next();
  }
  /** Uniform uint32. */
  u32(): number {
    const b = this.b;
    const r = Math.imul(rotl(Math.imul(b, 5), 7), 9);
    const t = b << 9;
    this.c ^= this.a;
    this.d ^= b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return r >>> 0;
  }
  /** Fills `out` with the next out.length outputs (same sequence as u32(), in a tight loop). */
  fill(out: Uint32Array): void {
    let a = this.a, b = this.b, c = this.c, d = this.d;
    for (let i = 0; i < out.length; i++) {
      out[i] = Math.imul(rotl(Math.imul(b, 5), 7), 9);
      const t = b << 9;
      c ^= a;
      d ^= b;
      b ^= c;
      a ^= d;
      c ^= t;
      d = rotl(d, 11);
    }
    this.a = a;
    this.b = b;
    this.c = c;
    this.d = d;
  }
  /** Uniform in [0, 1). */
  uniform(): number {
    return this.u32() / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** Inverse standard-normal CDF (Acklam's rational approximation, |error| < 1.2e-9). */
function normalQuantile(p: number): number {
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628274631];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  if (p < lo) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  }
  if (p > 1 - lo) return -normalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
}

/** 65536 standard-normal quantiles: a 16-bit uniform sample indexes an (almost) Gaussian value. */
const GAUSS16: Float64Array = (() => {
  const t = new Float64Array(65536);
  for (let i = 0; i < 65536; i++) t[i] = normalQuantile((i + 0.5) / 65536);
  return t;
})();

/**
 * Code tables: a 16-bit uniform sample -> a stored code (FP8) or packed pair of
 * codes (FP4) of an (almost) Gaussian value. Eight tables per format whose RMS
 * values step by 2^(1/8), so that some table times a power-of-two block scale hits
 * any target std within 4.5% (power-of-two scales alone would be off by up to 41%).
 */
interface CodeFamily {
  readonly tables: readonly Uint8Array[];
  /** RMS of the decoded values of each table (per element). */
  readonly rms: readonly number[];
}

const STEPS = 8;

function fp8Family(): CodeFamily {
  const tables: Uint8Array[] = [];
  const rms: number[] = [];
  for (let k = 0; k < STEPS; k++) {
    const std = 48 * 2 ** (k / STEPS); // max |x| ~ 4.3 sigma < 448: no saturation
    const t = new Uint8Array(65536);
    let ss = 0;
    for (let i = 0; i < 65536; i++) {
      t[i] = e4m3Encode(GAUSS16[i]! * std);
      ss += E4M3_VALUES[t[i]!]! ** 2;
    }
    tables.push(t);
    rms.push(Math.sqrt(ss / 65536));
  }
  return { tables, rms };
}

function fp4Family(): CodeFamily {
  const tables: Uint8Array[] = [];
  const rms: number[] = [];
  for (let k = 0; k < STEPS; k++) {
    const std = 1.5 * 2 ** (k / STEPS); // tails saturate at ±6, as in real experts
    const nib = new Uint8Array(256);
    let ss = 0;
    for (let i = 0; i < 256; i++) {
      nib[i] = e2m1Encode(normalQuantile((i + 0.5) / 256) * std);
      ss += E2M1_VALUES[nib[i]!]! ** 2;
    }
    const t = new Uint8Array(65536); // packed byte, low nibble = even element
    for (let i = 0; i < 65536; i++) t[i] = nib[i & 255]! | (nib[i >> 8]! << 4);
    tables.push(t);
    rms.push(Math.sqrt(ss / 256));
  }
  return { tables, rms };
}

let FP8: CodeFamily | null = null;
let FP4: CodeFamily | null = null;
const family = (fp4: boolean): CodeFamily => (fp4 ? (FP4 ??= fp4Family()) : (FP8 ??= fp8Family()));

/** Block scales vary by 2^{-1,0,0,+1}; their mean square is 1.5625, compensated in the target. */
const SCALE_SPREAD_RMS = Math.sqrt((0.25 + 1 + 1 + 4) / 4);

/** Table index and E8M0 exponent such that rms[k] * 2^e ~ 1/sqrt(inF) / SCALE_SPREAD_RMS. */
function codePlan(inF: number, fp4: boolean): { k: number; e: number } {
  const f = family(fp4);
  const target = 1 / Math.sqrt(inF) / SCALE_SPREAD_RMS;
  let best = { k: 0, e: 0, err: Infinity };
  for (let k = 0; k < STEPS; k++) {
    const x = Math.log2(target / f.rms[k]!);
    const err = Math.abs(x - Math.round(x));
    if (err < best.err) best = { k, e: Math.round(x), err };
  }
  return best;
}

/** Largest chunk produced at once (keeps `init` streaming in bounded memory). */
export const CHUNK_BYTES = 8 << 20;

type Chunks = Generator<Uint8Array, void, undefined>;

/** Elements looked up in a 65536-entry table by 16-bit uniform samples (bytes or BF16 bits). */
function* lookup16(rng: Rng, total: number, table: Uint8Array | Uint16Array): Chunks {
  const per = CHUNK_BYTES / table.BYTES_PER_ELEMENT;
  const rnd = new Uint32Array(per / 2 + 1);
  const samples = new Uint16Array(rnd.buffer); // little-endian: low half of each u32 first
  for (let start = 0; start < total; start += per) {
    const n = Math.min(per, total - start);
    rng.fill(rnd.subarray(0, (n + 1) >> 1));
    if (table instanceof Uint8Array) {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = table[samples[i]!]!;
      yield out;
    } else {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = table[samples[i]!]!;
      yield new Uint8Array(out.buffer);
    }
  }
}

/** Per-element generator written as float32 / bf16 / int64. */
function* elements(total: number, kind: 'F32' | 'BF16', f: (i: number) => number): Chunks {
  const width = kind === 'F32' ? 4 : 2;
  const per = Math.floor(CHUNK_BYTES / width);
  for (let start = 0; start < total; start += per) {
    const n = Math.min(per, total - start);
    if (kind === 'F32') {
      const a = new Float32Array(n);
      for (let i = 0; i < n; i++) a[i] = f(start + i);
      yield new Uint8Array(a.buffer);
    } else {
      const a = new Uint16Array(n);
      for (let i = 0; i < n; i++) a[i] = bf16Bits(f(start + i));
      yield new Uint8Array(a.buffer);
    }
  }
}

/** BF16 N(0, std^2) via a per-tensor table of 65536 quantiles (one table lookup per element). */
function gaussBf16(rng: Rng, total: number, std: number): Chunks {
  const table = new Uint16Array(65536);
  for (let i = 0; i < 65536; i++) table[i] = bf16Bits(GAUSS16[i]! * std);
  return lookup16(rng, total, table);
}

function gauss(rng: Rng, std: number): () => number {
  return () => GAUSS16[rng.u32() & 0xffff]! * std;
}

/**
 * E8M0 scales. FP8 block scales vary by ±1 around the value that makes the weight
 * ~N(0, 1/in) so kernels that index the wrong block are caught; FP4 experts get
 * two rows per expert (rows 0-1 of w1/w3) scaled up 8x so both SwiGLU clamps fire
 * (as in the goldens).
 */
function* scaleBytes(spec: TensorSpec, rng: Rng, inF: number, fp4: boolean): Chunks {
  const [rows, cols] = spec.shape as [number, number];
  const e0 = codePlan(inF, fp4).e;
  const boost = fp4 && /\.w[13]\.scale$/.test(spec.name);
  const out = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = rng.u32() & 3; // -1, 0, 0, +1
      out[r * cols + c] = 127 + e0 + (v === 0 ? -1 : v === 3 ? 1 : 0) + (boost && r < 2 ? 3 : 0);
    }
  }
  yield out;
}

/** Deterministic contents of one tensor, streamed in chunks of at most CHUNK_BYTES. */
export function* synthTensor(spec: TensorSpec, a: ModelArgs, seed: number): Chunks {
  const rng = new Rng(seed, spec.name);
  const n = elementCount(spec.shape);
  const name = spec.name;
  const leaf = name.slice(name.lastIndexOf('.') + 1);
  switch (spec.dtype) {
    case 'F8_E4M3':
      return yield* lookup16(rng, n, family(false).tables[codePlan(spec.shape[1]!, false).k]!);
    case 'I8': // packed FP4 experts [out, in/2]
      return yield* lookup16(rng, n, family(true).tables[codePlan(spec.shape[1]! * 2, true).k]!);
    case 'F8_E8M0': {
      const fp4 = spec.role === 'routed-expert' && a.expertDtype === 'fp4';
      const cols = spec.shape[1]!;
      // The linear's in-width, recovered from the scale's shape (spec §5.1).
      const inF = fp4 ? cols * FP4_BLOCK : inWidthFp8(name, a, cols);
      return yield* scaleBytes(spec, rng, inF, fp4);
    }
    case 'I64': {
      // tid2eid [vocab, topk]: distinct expert ids per token (hash routing, spec §3.6).
      const [rows, k] = spec.shape as [number, number];
      const out = new BigInt64Array(rows * k);
      const pick = new Int32Array(a.nRoutedExperts);
      for (let r = 0; r < rows; r++) {
        for (let e = 0; e < pick.length; e++) pick[e] = e;
        for (let j = 0; j < k; j++) {
          const t = j + rng.int(pick.length - j);
          const tmp = pick[j]!;
          pick[j] = pick[t]!;
          pick[t] = tmp;
          out[r * k + j] = BigInt(pick[j]!);
        }
      }
      return yield new Uint8Array(out.buffer);
    }
    case 'F32':
    case 'BF16': {
      const kind = spec.dtype;
      if (name.endsWith('norm.weight')) return yield* elements(n, kind, () => 0.9 + 0.2 * rng.uniform());
      if (leaf === 'attn_sink') return yield* elements(n, kind, gauss(rng, 1));
      if (leaf === 'ape') return yield* elements(n, kind, gauss(rng, 0.5));
      if (leaf === 'bias') return yield* elements(n, kind, gauss(rng, 0.1));
      if (/hc_(attn|ffn|head)_fn$/.test(name)) return yield* elements(n, kind, gauss(rng, 1 / Math.sqrt(spec.shape[1]!)));
      if (/hc_(attn|ffn|head)_base$/.test(name)) return yield* elements(n, kind, gauss(rng, 0.6));
      if (/hc_(attn|ffn|head)_scale$/.test(name)) return yield* elements(n, kind, () => 0.9 + 0.6 * rng.uniform());
      // embed ~ N(0, 1); head ~ N(0, 9/dim) (logit RMS ~ 3); other matrices are linears [out, in]: N(0, 1/in).
      const std = name === 'embed.weight' ? 1 : (name === 'head.weight' ? 3 : 1) / Math.sqrt(spec.shape[1]!);
      if (kind === 'BF16') return yield* gaussBf16(rng, n, std);
      return yield* elements(n, kind, gauss(rng, std));
    }
    default:
      // F16, U8, I32 are not in the V4 inventory; zero-fill keeps the writer total.
      for (let done = 0, total = tensorByteLength(spec.dtype, spec.shape); done < total; done += CHUNK_BYTES) {
        yield new Uint8Array(Math.min(CHUNK_BYTES, total - done));
      }
  }
}

/** In-width of an FP8 linear from its scale's column count: exact unless the width is not a multiple of 128. */
function inWidthFp8(name: string, a: ModelArgs, cols: number): number {
  const base = name.slice(0, -'.scale'.length);
  const leaf = base.slice(base.lastIndexOf('.') + 1);
  const widths: Record<string, number> = {
    wq_a: a.dim, wkv: a.dim, e_proj: a.dim, h_proj: a.dim, w1: a.dim, w3: a.dim,
    wq_b: a.qLoraRank, wo_a: (a.nHeads * a.headDim) / a.oGroups, wo_b: a.oGroups * a.oLoraRank, w2: a.moeInterDim,
  };
  return widths[leaf] ?? cols * FP8_BLOCK;
}
