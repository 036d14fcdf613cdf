// The native kernels (N-API addon built from native/ at `npm install`) behind
// the Kernels interface, and the choice between them and the TypeScript
// reference. Both produce the same bits (kernels.ts); the native path falls
// back to the reference for inputs it does not cover (K not a multiple of
// 128, NaN codes), so it is a drop-in replacement.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { dotF32, sumF32 } from './exact.js';
import { weightRowValues } from './dense.js';
import { roundBf16 } from './formats.js';
import type { Bf16Weight, Fp4Weight, Fp8Weight, GemmJob, Kernels, QuantizedActivations } from './kernels.js';
import type { Fp4Rows } from './fp4-rows.js';
import { referenceKernels } from './reference-kernels.js';
import { nativeDecodeOps } from './ops.js';
import { nativeRowOps } from './ops2.js';
import { parseNumerics, withFastProducts, type Numerics } from './fast-kernels.js';
import { referenceFastProducts } from './fast-products.js';
import { nativeFastProducts } from './fast-native.js';

/** The addon's raw functions (native/addon.cc). */
export interface NativeAddon {
  /** ops_addon.cc: settles flagged BF16 dense outputs as exact.ts dotF32 does; returns the entries left flagged. */
  opsExactDotsBf16?(x: Float32Array, rows: number, K: number, w: Uint16Array, r0: number, n: number, amb: Uint8Array, ambOff: number, y: Float32Array): number;
  gemm(
    fp4: boolean,
    xq: Uint8Array,
    xs: Float32Array,
    rows: number,
    K: number,
    w: Uint8Array,
    ws: Uint8Array,
    out: number,
    y: Float32Array,
  ): boolean;
  /**
   * y[rows, n] = RN32(exact x . W[r0 .. r0+n)ᵀ), W BF16 bits (fp8 false) or e4m3 codes with ue8m0 128x128
   * scales ws (fp8 true, values code x scale); bounds from denseBounds (empty: portable kernel only).
   * Elements it cannot settle are flagged in amb (returns their count).
   */
  denseGemm(
    fp8: boolean, x: Float32Array, rows: number, K: number, w: Uint16Array | Uint8Array, ws: Uint8Array, r0: number, n: number,
    bounds: Float32Array, y: Float32Array, amb: Uint8Array,
  ): number;
  /**
   * Per weight row, ceil(K/128) + 1 floats: bounds >= sum of |W[r, k]| over each 128-column block (NaN:
   * not finite), then the min lsb exponent of the row's values, for all `out` rows.
   */
  denseBounds(fp8: boolean, w: Uint16Array | Uint8Array, ws: Uint8Array, K: number, out: number, bounds: Float32Array): void;
  /** Since load: elements computed, recomputed with the tight bound (level 2), flagged to TypeScript. */
  denseStats(): { elements: number; tight: number; flagged: number };
  /** Indexer scores of one query row; entries it cannot settle are flagged in amb (returns their count). */
  indexerScores(q: Float32Array, hw: Float32Array, keys: Float32Array, H: number, d: number, visible: number, scores: Float32Array, amb: Uint8Array): number;
  /** Indexer scores against compact FP4 keys; returns the flagged count, -1 when q is not fake-FP4. */
  indexerScoresFp4(q: Float32Array, hw: Float32Array, codes: Uint8Array, units: Float32Array, exact: Uint8Array, H: number, d: number, visible: number,
    scores: Float32Array, amb: Uint8Array): number;
  /**
   * Several gemm products in one call (native/batch.cc). acts: per activation matrix [xq, xs, rows, K, fp4];
   * jobs: per product [act index, w, ws, out, y]. False when an activation holds a NaN code (nothing settled).
   * Absent in addons built before it.
   */
  gemmBatch?(acts: unknown[], jobs: unknown[]): boolean;
  /**
   * Several denseGemm products over one weight in one call: jobs per product [x, rows, r0, n, y]; amb holds
   * the jobs' [rows, n] flags one after another (returns their count). Absent in addons built before it.
   */
  denseBatch?(fp8: boolean, K: number, w: Uint16Array | Uint8Array, ws: Uint8Array, bounds: Float32Array, jobs: unknown[], amb: Uint8Array): number;
  /**
   * Fast-numerics products (native/fast_addon.cc, semantics in fast-products.ts). acts: per activation matrix
   * [x (Uint8Array e4m3 codes | Float32Array), xs (1x128 scales), rows, K]; jobs: per product
   * [act index, kind (0 fp8, 1 fp4, 2 bf16, 3 fp8 as bf16), w, ws, r0, n, y]. Absent in addons built before it.
   */
  fastBatch?(acts: unknown[], jobs: unknown[]): void;
  /** fastBatch's arguments for FP8 kinds without NaN codes or BF16 (K % 32 == 0), at most 15 activation rows (native/fastgemv_*.cc). */
  fastGemv?(acts: unknown[], jobs: unknown[]): void;
  /** fastGemv that also takes FP4 jobs (the int8 semantics, fast-products.ts 4), all in one pool dispatch. Absent in addons built before it. */
  fastDecode?(acts: unknown[], jobs: unknown[]): void;
  hasNanE4m3(data: Uint8Array): boolean;
  info(): { isa: string; threads: number };
  /** Streaming read of `bytes` fresh bytes (or of the given buffer, from its first 64-byte boundary) on `threads` threads, `reps` times: GB/s. */
  readBandwidth(bytes: number | Uint8Array, threads: number, reps: number): number;
  /** fp32 FMA rate of `threads` threads running `iters` x 10 independent 8-wide chains: GFLOP/s. */
  fmaPeak(threads: number, iters: number): number;
  /** madvise(MADV_HUGEPAGE) on the buffer's 2 MiB-aligned interior (native/mem.cc): bytes advised. Absent in older addons. */
  adviseHuge?(bytes: Uint8Array): number;
  /** Bytes from bytes[0] to the next multiple of `align` (a power of two) in memory (native/mem.cc). Absent in addons built before it. */
  alignOffset?(bytes: Uint8Array, align: number): number;
}

const ADDON_PATHS = [
  '../../../native/build/Release/dsv4_native.node', // from dist/src/tensor
  '../../native/build/Release/dsv4_native.node', // from src/tensor
];

let loaded: { addon: NativeAddon | null; reason: string } | undefined;

/** Loads the addon once; null with a reason when it is missing or broken. */
export function loadNative(): { addon: NativeAddon | null; reason: string } {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  const path = ADDON_PATHS.map((p) => fileURLToPath(new URL(p, import.meta.url))).find((p) => existsSync(p));
  if (!path) {
    loaded = { addon: null, reason: 'addon not built (run `npm install` or `node scripts/build-native.mjs`)' };
    return loaded;
  }
  try {
    loaded = { addon: require(path) as NativeAddon, reason: '' };
  } catch (e) {
    loaded = { addon: null, reason: `addon failed to load: ${(e as Error).message.split('\n')[0]}` };
  }
  return loaded;
}

// A decode token streams ~1 GB of weights: 2 MiB pages spare the TLB misses and page walks of
// 4 KiB ones (THP is commonly "madvise" only). Advice before the bytes are read in, so the pages
// are huge from their first fault. Advice only; DSV4_HUGE_PAGES=0 turns it off.
const HUGE_MIN = 4 << 20;

/** Asks for transparent huge pages on a large, freshly allocated buffer; bytes advised (0: none). */
export function adviseHugePages(bytes: Uint8Array): number {
  if (bytes.length < HUGE_MIN || process.env.DSV4_HUGE_PAGES === '0') return 0;
  return loadNative().addon?.adviseHuge?.(bytes) ?? 0;
}

// Weights are scanned once for E4M3 NaN codes (0x7f/0xff), which the fast
// kernel does not propagate; such weights go to the reference.
const fp8NanFree = new WeakMap<Uint8Array, boolean>();

export function fp8Usable(addon: NativeAddon, w: Fp8Weight): boolean {
  let ok = fp8NanFree.get(w.data);
  if (ok === undefined) {
    ok = !addon.hasNanE4m3(w.data);
    fp8NanFree.set(w.data, ok);
  }
  return ok;
}

function checkShapes(op: string, x: QuantizedActivations, w: { out: number; inF: number }, y: Float32Array): void {
  if (x.cols !== w.inF) throw new RangeError(`${op}: activation width ${x.cols} != weight in ${w.inF}`);
  if (y.length < x.rows * w.out) throw new RangeError(`${op}: output holds ${y.length} < ${x.rows * w.out} values`);
}

// Per-weight block bounds of sum |w| (denseBounds), computed on first use and kept with
// the weight's buffer (and, for FP8, checked against its scale array): weights must not
// change after their first product.
interface BoundsEntry {
  bounds: Float32Array;
  scale: Uint8Array | undefined;
}
const denseBoundsCache = new WeakMap<ArrayBufferLike, Map<string, BoundsEntry>>();
const boundsByView = new WeakMap<Uint16Array | Uint8Array, BoundsEntry>(); // fast path: the weight's own array
const NO_SCALES = new Uint8Array(0);

function weightBounds(addon: NativeAddon, w: Bf16Weight | Fp8Weight): Float32Array {
  const scale = w.kind === 'fp8' ? w.scale : undefined;
  const hit = boundsByView.get(w.data);
  if (hit && hit.scale === scale) return hit.bounds;
  let m = denseBoundsCache.get(w.data.buffer);
  if (!m) denseBoundsCache.set(w.data.buffer, (m = new Map()));
  const key = `${w.kind}:${w.data.byteOffset}:${w.data.length}:${w.inF}`;
  let e = m.get(key);
  if (!e || e.scale !== scale) {
    e = { bounds: new Float32Array(w.out * (Math.ceil(w.inF / 128) + 1)), scale };
    addon.denseBounds(w.kind === 'fp8', w.data, scale ?? NO_SCALES, w.inF, w.out, e.bounds);
    m.set(key, e);
  }
  boundsByView.set(w.data, e);
  return e.bounds;
}

/**
 * The native exact product over weight rows [r0, r0+n) of a BF16 weight or an FP8 one used as BF16
 * values; the rare elements it cannot settle are summed exactly here.
 */
function denseProduct(addon: NativeAddon, x: Float32Array, rows: number, w: Bf16Weight | Fp8Weight, r0: number, n: number, y: Float32Array): void {
  const K = w.inF;
  if (x.length < rows * K) throw new RangeError(`dense product: activations hold ${x.length} < ${rows * K} values`);
  if (y.length < rows * n) throw new RangeError(`dense product: output holds ${y.length} < ${rows * n} values`);
  if (r0 < 0 || r0 + n > w.out) throw new RangeError(`dense product: rows [${r0}, ${r0 + n}) outside [0, ${w.out})`);
  if (rows === 0 || n === 0) return;
  const amb = ambScratch(rows * n);
  const fp8 = w.kind === 'fp8';
  if (addon.denseGemm(fp8, x, rows, K, w.data, fp8 ? w.scale : NO_SCALES, r0, n, weightBounds(addon, w), y, amb) === 0) return;
  if (!fp8 && addon.opsExactDotsBf16?.(x, rows, K, w.data as Uint16Array, r0, n, amb, 0, y) === 0) return;
  settleFlagged(x, rows, w, r0, n, y, amb, 0);
}

// flags of dense products (the addon writes every entry), reused across calls
let ambBuf = new Uint8Array(0);
function ambScratch(n: number): Uint8Array {
  if (ambBuf.length < n) ambBuf = new Uint8Array(Math.max(n, 2 * ambBuf.length));
  return ambBuf;
}

/** The exact TypeScript sums of the elements flagged in amb[ambOff + m*n + j] of y[rows, n] = x . W[r0 .. r0+n)ᵀ. */
function settleFlagged(x: Float32Array, rows: number, w: Bf16Weight | Fp8Weight, r0: number, n: number, y: Float32Array, amb: Uint8Array, ambOff: number): void {
  const K = w.inF;
  const row = new Float32Array(K);
  const bits = new Uint32Array(row.buffer);
  // the flags are 0 / 1: indexOf finds the few set ones (a 129280-entry head product has one now and then)
  for (let p = amb.indexOf(1, ambOff), end = ambOff + rows * n; p >= 0 && p < end; p = amb.indexOf(1, p + 1)) {
    const m = Math.floor((p - ambOff) / n);
    const j = p - ambOff - m * n;
    y[m * n + j] = dotF32(x, m * K, weightRowValues(w, r0 + j, row, bits), 0, K);
  }
}

/** fp8AsBf16Gemm for each group g: ys[g] = xs[g] . W[g*n .. (g+1)*n)ᵀ, in one addon call. */
function denseGroups(addon: NativeAddon, xs: readonly Float32Array[], rows: number, w: Fp8Weight, n: number, ys: readonly Float32Array[]): void {
  const K = w.inF;
  const G = xs.length;
  if (ys.length !== G) throw new RangeError(`dense groups: ${G} inputs but ${ys.length} outputs`);
  if (G * n > w.out) throw new RangeError(`dense groups: ${G} groups of ${n} rows exceed ${w.out} weight rows`);
  if (rows === 0 || n === 0 || G === 0) return;
  const jobs: unknown[] = [];
  for (let g = 0; g < G; g++) {
    if (xs[g]!.length < rows * K || ys[g]!.length < rows * n) throw new RangeError(`dense groups: group ${g} activations or output too short`);
    jobs.push(xs[g], rows, g * n, n, ys[g]);
  }
  const amb = ambScratch(G * rows * n);
  if (addon.denseBatch!(true, K, w.data, w.scale, weightBounds(addon, w), jobs, amb) === 0) return;
  for (let g = 0; g < G; g++) settleFlagged(xs[g]!, rows, w, g * n, n, ys[g]!, amb, g * rows * n);
}

/**
 * The jobs' products in one addon call where the native kernels cover them; the rest (K not a multiple of
 * 128, NaN weight codes, or all of them when an activation holds a NaN code) one by one through `one`.
 */
function gemmBatch(addon: NativeAddon, jobs: readonly GemmJob[], one: (j: GemmJob) => void): void {
  const acts: unknown[] = [];
  const flat: unknown[] = [];
  const batched: GemmJob[] = [];
  const actIndex = [new Map<QuantizedActivations, number>(), new Map<QuantizedActivations, number>()]; // fp8, fp4
  for (const j of jobs) {
    const { x, w, y } = j;
    checkShapes(w.kind === 'fp4' ? 'fp4Gemm' : 'fp8Gemm', x, w, y);
    if (x.rows === 0 || w.out === 0) continue;
    if (w.inF % 128 !== 0 || (w.kind === 'fp8' && !fp8Usable(addon, w))) {
      one(j);
      continue;
    }
    const fp4 = w.kind === 'fp4';
    const m = actIndex[fp4 ? 1 : 0]!;
    let a = m.get(x);
    if (a === undefined) {
      m.set(x, (a = acts.length / 5));
      acts.push(x.q, x.scale, x.rows, x.cols, fp4);
    }
    flat.push(a, w.data, w.scale, w.out, y);
    batched.push(j);
  }
  if (batched.length > 0 && !addon.gemmBatch!(acts, flat)) for (const j of batched) one(j);
}

/** One indexer score exactly as model/indexer.ts computes it (the fallback for flagged entries). */
export function indexerScoreTs(q: Float32Array, qOff: number, hw: Float32Array, hwOff: number, H: number, d: number, keys: Float32Array, t: number): number {
  const terms = new Float64Array(H);
  for (let h = 0; h < H; h++) {
    const s = roundBf16(dotF32(q, qOff + h * d, keys, t * d, d));
    terms[h] = roundBf16((s > 0 ? s : 0) * hw[hwOff + h]!);
  }
  return roundBf16(sumF32(terms, H));
}

let idxScratch = { scores: new Float32Array(0), amb: new Uint8Array(0) };

function indexerScores(
  addon: NativeAddon, q: Float32Array, qOff: number, hw: Float32Array, hwOff: number, H: number, d: number, keys: Float32Array, visible: number, scores: Float64Array,
): void {
  if (visible <= 0) return;
  if (keys.length < visible * d || scores.length < visible) throw new RangeError('indexerScores: keys or scores too short');
  if (idxScratch.scores.length < visible) idxScratch = { scores: new Float32Array(visible * 2), amb: new Uint8Array(visible * 2) };
  const { scores: s32, amb } = idxScratch;
  const flagged = addon.indexerScores(q.subarray(qOff, qOff + H * d), hw.subarray(hwOff, hwOff + H), keys, H, d, visible, s32, amb);
  for (let t = 0; t < visible; t++) scores[t] = s32[t]!;
  if (flagged === 0) return;
  for (let t = 0; t < visible; t++) if (amb[t]) scores[t] = indexerScoreTs(q, qOff, hw, hwOff, H, d, keys, t);
}

function indexerScoresFp4(
  addon: NativeAddon, q: Float32Array, qOff: number, hw: Float32Array, hwOff: number, H: number, d: number, keys: Fp4Rows, visible: number,
  scores: Float32Array, flagged: Uint8Array,
): number {
  if (visible <= 0) return 0;
  if (d % 32 !== 0) return -1; // no compact form
  if (scores.length < visible || flagged.length < visible) throw new RangeError('indexerScoresFp4: scores or flags too short');
  return addon.indexerScoresFp4(q.subarray(qOff, qOff + H * d), hw.subarray(hwOff, hwOff + H), keys.codes, keys.units, keys.exact, H, d, visible, scores, flagged);
}

/** The Kernels implementation on top of a loaded addon. */
export function makeNativeKernels(addon: NativeAddon): Kernels {
  const { isa, threads } = addon.info();
  const k: Kernels = {
    name: `native-${isa}-${threads}t`,
    ...nativeDecodeOps(addon),
    ...nativeRowOps(addon),
    fp8Gemm(x: QuantizedActivations, w: Fp8Weight, y: Float32Array): void {
      checkShapes('fp8Gemm', x, w, y);
      if (x.rows === 0 || w.out === 0) return;
      if (w.inF % 128 === 0 && fp8Usable(addon, w)) {
        if (addon.gemm(false, x.q, x.scale, x.rows, w.inF, w.data, w.scale, w.out, y)) return;
      }
      referenceKernels.fp8Gemm(x, w, y);
    },
    fp4Gemm(x: QuantizedActivations, w: Fp4Weight, y: Float32Array): void {
      checkShapes('fp4Gemm', x, w, y);
      if (x.rows === 0 || w.out === 0) return;
      if (w.inF % 128 === 0) {
        if (addon.gemm(true, x.q, x.scale, x.rows, w.inF, w.data, w.scale, w.out, y)) return;
      }
      referenceKernels.fp4Gemm(x, w, y);
    },
    bf16Gemm(x: Float32Array, rows: number, w: Bf16Weight, y: Float32Array): void {
      denseProduct(addon, x, rows, w, 0, w.out, y);
    },
    fp8AsBf16Gemm(x: Float32Array, rows: number, w: Fp8Weight, r0: number, n: number, y: Float32Array): void {
      denseProduct(addon, x, rows, w, r0, n, y);
    },
    indexerScores(q, qOff, hw, hwOff, nHeads, headDim, keys, visible, scores): void {
      indexerScores(addon, q, qOff, hw, hwOff, nHeads, headDim, keys, visible, scores);
    },
    indexerScoresFp4(q, qOff, hw, hwOff, nHeads, headDim, keys, visible, scores, flagged): number {
      return indexerScoresFp4(addon, q, qOff, hw, hwOff, nHeads, headDim, keys, visible, scores, flagged);
    },
  };
  const one = (j: GemmJob): void => (j.w.kind === 'fp4' ? k.fp4Gemm(j.x, j.w, j.y) : k.fp8Gemm(j.x, j.w, j.y));
  if (addon.gemmBatch) k.gemmBatch = (jobs) => gemmBatch(addon, jobs, one);
  if (addon.denseBatch) k.fp8AsBf16GemmGroups = (xs, rows, w, n, ys) => denseGroups(addon, xs, rows, w, n, ys);
  return k;
}

let chosenExact: Kernels | undefined;
let chosenFast: Kernels | undefined;

/**
 * The kernels to use: native when the addon loads, else the TypeScript
 * reference with one line on stderr. DSV4_KERNELS=ts|native forces a choice
 * (native then throws if the addon is unavailable). DSV4_THREADS sets the
 * native thread count (default: all cores). `numerics` (default: DSV4_NUMERICS,
 * else exact) picks canonical rounding or the named fast mode (fast-kernels.ts).
 */
export function getKernels(numerics: Numerics = parseNumerics(process.env.DSV4_NUMERICS)): Kernels {
  const exact = (chosenExact ??= exactKernels());
  if (numerics === 'exact') return exact;
  // the native fast products where the exact kernels are native, else their TypeScript reference
  const addon = exact === referenceKernels ? null : loadNative().addon;
  return (chosenFast ??= withFastProducts(exact, (addon && nativeFastProducts(addon)) ?? referenceFastProducts));
}

function exactKernels(): Kernels {
  const force = (process.env.DSV4_KERNELS ?? '').toLowerCase();
  if (force === 'ts' || force === 'reference') return referenceKernels;
  if (force !== '' && force !== 'native') throw new Error(`DSV4_KERNELS must be "ts" or "native", not "${force}"`);
  const { addon, reason } = loadNative();
  if (addon) return makeNativeKernels(addon);
  if (force === 'native') throw new Error(`DSV4_KERNELS=native but the native kernels are unavailable: ${reason}`);
  process.stderr.write(`dsv4: native kernels unavailable (${reason}); using the TypeScript kernels\n`);
  return referenceKernels;
}
