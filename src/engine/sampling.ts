// Token sampling (pure functions; no model, no tokenizer).
//
// Pipeline per step, in this order:
//   1. constraint mask: disallowed ids get -Infinity (JSON mode, strict tools);
//   2. penalties (OpenAI semantics): logit[id] -= count(id) * frequencyPenalty + (count(id) > 0) * presencePenalty,
//      counting only generated tokens;
//   3. temperature: logits / T (T = 0 means greedy argmax, ties -> lowest id, and logprobs use T = 1);
//   4. top_k, then top_p (nucleus, smallest set of most likely tokens whose probability sum reaches p);
//   5. draw from the kept set with the request's PRNG.
// Reported logprobs are the log-softmax of the logits after steps 1-3 (the distribution actually sampled from,
// before the top_k/top_p truncation), so they are comparable across requests with different truncation.

import type { SamplingParams } from './api.js';

/** Deterministic PRNG (xoshiro128**, seeded through splitmix32): same seed, same stream. */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    // Split the (up to 53-bit) seed into two 32-bit words so that large seeds differ too.
    const lo = seed >>> 0;
    const hi = Math.floor(Math.abs(seed) / 4294967296) >>> 0;
    let x = (lo ^ Math.imul(hi, 0x9e3779b9)) >>> 0;
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next() ^ hi;
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  private nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  next(): number {
    const a = this.nextU32() >>> 5;
    const b = this.nextU32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** A fresh seed for requests without one. */
export function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 32);
}

/** Applies the constraint mask and penalties (steps 1-2) into a fresh Float64Array. */
export function processLogits(
  logits: Float32Array,
  params: Pick<SamplingParams, 'frequencyPenalty' | 'presencePenalty'>,
  counts: ReadonlyMap<number, number>,
  allowed: Int32Array | null,
): Float64Array {
  const v = logits.length;
  const out = new Float64Array(v);
  if (allowed) {
    out.fill(-Infinity);
    for (let i = 0; i < allowed.length; i++) {
      const id = allowed[i]!;
      if (id >= 0 && id < v) out[id] = logits[id]!;
    }
  } else {
    for (let i = 0; i < v; i++) out[i] = logits[i]!;
  }
  const fp = params.frequencyPenalty || 0;
  const pp = params.presencePenalty || 0;
  if (fp !== 0 || pp !== 0) {
    for (const [id, c] of counts) {
      if (id >= 0 && id < v && c > 0) out[id] = out[id]! - c * fp - pp;
    }
  }
  return out;
}

/** Index of the largest value; ties resolve to the lowest index. -1 if all are -Infinity/NaN. */
export function argmax(x: ArrayLike<number>): number {
  let best = -1;
  let bv = -Infinity;
  for (let i = 0; i < x.length; i++) {
    const t = x[i]!;
    if (t > bv) {
      bv = t;
      best = i;
    }
  }
  return best;
}

/** log-softmax in place (float64). */
export function logSoftmaxInPlace(x: Float64Array): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i]! > m) m = x[i]!;
  if (m === -Infinity) return x;
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.exp(x[i]! - m);
  const lse = m + Math.log(s);
  for (let i = 0; i < x.length; i++) x[i] = x[i]! - lse;
  return x;
}

/** The n largest entries as ids, sorted by value descending then id ascending (skips -Infinity). */
export function topIds(x: ArrayLike<number>, n: number): number[] {
  const ids: number[] = [];
  if (n <= 0) return ids;
  for (let i = 0; i < x.length; i++) {
    const t = x[i]!;
    if (!(t > -Infinity)) continue;
    if (ids.length === n && t <= x[ids[n - 1]!]!) continue;
    // insertion keeps (value desc, id asc): an equal value goes after existing ones (their ids are lower).
    let j = ids.length < n ? ids.length : n - 1;
    if (ids.length < n) ids.push(i);
    while (j > 0 && x[ids[j - 1]!]! < t) {
      ids[j] = ids[j - 1]!;
      j--;
    }
    ids[j] = i;
  }
  return ids;
}

export interface SampleResult {
  tokenId: number;
  /** log-softmax of the sampled-from distribution (see file header), for the chosen token. */
  logprob: number;
  /** Top alternatives [id, logprob], when requested. */
  top: Array<[number, number]>;
}

/**
 * Samples one token. `logits` are the model's raw fp32 logits; `counts` the generated-token counts;
 * `allowed` the constraint mask (null = all). Throws if no token is allowed.
 */
export function sampleToken(
  logits: Float32Array,
  params: SamplingParams,
  counts: ReadonlyMap<number, number>,
  allowed: Int32Array | null,
  rng: Rng,
): SampleResult {
  const x = processLogits(logits, params, counts, allowed);
  const greedy = !(params.temperature > 0);
  if (!greedy && params.temperature !== 1) {
    const inv = 1 / params.temperature;
    for (let i = 0; i < x.length; i++) x[i] = x[i]! * inv;
  }
  let tokenId: number;
  if (greedy) {
    tokenId = argmax(x);
  } else {
    tokenId = drawTruncated(x, params.topK, params.topP, rng);
  }
  if (tokenId < 0) throw new Error('no token is allowed at this step (constraint mask is empty)');
  const wantLogprobs = params.logprobs === true || (params.topLogprobs ?? 0) > 0;
  if (!wantLogprobs) return { tokenId, logprob: 0, top: [] };
  logSoftmaxInPlace(x);
  const n = Math.min(20, Math.max(0, params.topLogprobs ?? 0));
  const top = topIds(x, n).map((id) => [id, x[id]!] as [number, number]);
  return { tokenId, logprob: x[tokenId]!, top };
}

/** Draws from softmax(x) restricted by top_k / top_p. Deterministic given the rng state. */
function drawTruncated(x: Float64Array, topK: number, topP: number, rng: Rng): number {
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i]! > m) m = x[i]!;
  if (m === -Infinity) return -1;
  const p = x.length > 0 && topP > 0 && topP < 1 ? topP : 1;
  const k = topK > 0 ? Math.min(topK, x.length) : 0;
  // Candidate ids in (prob desc, id asc) order; only as many as needed.
  let cand: number[] | null = null;
  if (k > 0) cand = topIds(x, k);
  const probOf = (id: number): number => Math.exp(x[id]! - m);
  if (p < 1) {
    // top_p applies to the distribution renormalized over the top_k survivors (or the whole vocabulary).
    let total = 0;
    if (cand) {
      for (const id of cand) total += probOf(id);
    } else {
      for (let i = 0; i < x.length; i++) total += Math.exp(x[i]! - m);
      cand = nucleusCandidates(x, m, p * total);
    }
    // keep the smallest prefix whose renormalized mass reaches p
    let acc = 0;
    let keep = cand.length;
    for (let i = 0; i < cand.length; i++) {
      acc += probOf(cand[i]!);
      if (acc >= p * total) {
        keep = i + 1;
        break;
      }
    }
    cand = cand.slice(0, keep);
  }
  if (cand) {
    let total = 0;
    for (const id of cand) total += probOf(id);
    let r = rng.next() * total;
    for (const id of cand) {
      r -= probOf(id);
      if (r < 0) return id;
    }
    return cand[cand.length - 1]!;
  }
  let total = 0;
  for (let i = 0; i < x.length; i++) total += Math.exp(x[i]! - m);
  let r = rng.next() * total;
  let last = -1;
  for (let i = 0; i < x.length; i++) {
    if (x[i] === -Infinity) continue;
    last = i;
    r -= Math.exp(x[i]! - m);
    if (r < 0) return i;
  }
  return last;
}

/**
 * Ids sorted by (prob desc, id asc), enough of them to cover unnormalized mass `need` (exp(x - max) units).
 * Filters by a probability threshold first so the full vocabulary is rarely sorted.
 */
function nucleusCandidates(x: Float64Array, m: number, need: number): number[] {
  for (let thr = 1e-3; ; thr /= 16) {
    const ids: number[] = [];
    let mass = 0;
    for (let i = 0; i < x.length; i++) {
      const e = Math.exp(x[i]! - m);
      if (e >= thr && x[i] !== -Infinity) {
        ids.push(i);
        mass += e;
      }
    }
    if (mass >= need || thr < 1e-30 || ids.length === x.length) {
      ids.sort((a, b) => x[b]! - x[a]! || a - b);
      return ids;
    }
  }
}
