// Synthetic long context for benchmarks: puts a fresh sequence state at position P
// with every cache holding entries in the formats the real path stores, without
// running P tokens through the model (a real prefill to 128K takes hours on a CPU).
//
// What is filled, per layer (spec §4.1, state.ts):
// - the window ring: W KV vectors, RMS ~1, nope dims FP8-simulated (act_quant 1x64), rope dims BF16;
// - compressed KV entries (floor(P/r)): RMS ~1, nope dims FP8-simulated, as compressor.ts finishEntry stores them;
// - indexer keys on CSA layers (floor(P/4)): RMS ~1, Hadamard-rotated, FP4-simulated (1x32) BF16;
// - compressor pending rows (fp32 kv, finite scores), as after P real tokens.
// Values are seeded Gaussian noise, not model outputs: the decode cost depends on the
// shapes and formats (and, for exact-sum fallbacks, on value ranges similar to the
// real ones), not on the numbers. The MTP caches are left empty (mtpPosition 0).
import { actQuantInPlace, fp4ActQuantInPlace } from '../tensor/quant.js';
import { hadamardBf16 } from '../tensor/hadamard.js';
import { roundBf16 } from '../tensor/formats.js';
import { storeBf16, type CompressorState, type EntryCache, type ModelState } from './state.js';

/** Seeded standard-normal source (xorshift32 + Box-Muller). */
function gaussian(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  const u = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) + 0.5) / 2 ** 32;
  };
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

/** One KV-format vector (attention keys/values): nope dims FP8-simulated, rope dims BF16. */
function kvVector(e: Float32Array, ropeDim: number, g: () => number): void {
  for (let i = 0; i < e.length; i++) e[i] = roundBf16(g());
  actQuantInPlace(e, 0, e.length - ropeDim, 64);
}

/** One indexer key: Hadamard-rotated, FP4-simulated. */
function indexerKey(e: Float32Array, g: () => number): void {
  for (let i = 0; i < e.length; i++) e[i] = roundBf16(g());
  hadamardBf16(e, 0, e.length);
  fp4ActQuantInPlace(e, 0, e.length, 32);
}

function fillCache(c: EntryCache, n: number, make: (e: Float32Array) => void): void {
  c.reset();
  c.reserve(n + 1024); // headroom: no reallocation inside a timed decode
  const e = new Float32Array(c.width);
  for (let i = 0; i < n; i++) {
    make(e);
    c.push(e);
  }
}

function fillPending(st: CompressorState, g: () => number): void {
  for (let i = 0; i < st.kv.length; i++) {
    st.kv[i] = Math.fround(g());
    st.score[i] = Math.fround(g());
  }
}

/**
 * Resets `state` and fills it as if `position` tokens had been processed (see the file comment).
 * `ropeDim`: the model's qk_rope_head_dim. Returns the state.
 */
export function fillSyntheticContext(state: ModelState, position: number, ropeDim: number, seed = 1): ModelState {
  state.reset();
  const g = gaussian(seed);
  for (const L of state.layers) {
    const { window: W, headDim, ratio } = L.shape;
    const e = new Float32Array(headDim);
    for (let t = Math.max(0, position - W); t < position; t++) {
      kvVector(e, ropeDim, g);
      storeBf16(e, 0, headDim, L.ring, (t % W) * headDim);
    }
    if (!ratio) continue;
    const n = Math.floor(position / ratio);
    fillCache(L.cache!, n, (v) => kvVector(v, ropeDim, g));
    if (position > 0) fillPending(L.comp!, g);
    if (L.idxCache) {
      fillCache(L.idxCache, n, (v) => indexerKey(v, g));
      if (position > 0) fillPending(L.idxComp!, g);
    }
  }
  state.position = position;
  return state;
}
