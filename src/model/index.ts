// Public surface of the model layer: loadModel and the types the engine and CLI use.
import { openCheckpoint } from '../checkpoint/open.js';
import { ExpertCache } from '../checkpoint/expert-cache.js';
import type { Kernels } from '../tensor/kernels.js';
import type { Numerics } from '../tensor/fast-kernels.js';
import { getKernels } from '../tensor/native.js';
import { Dsv4Model, type LoadOptions } from './model.js';

export * from './api.js';
export { Dsv4Model, LazyExpertStore, type ForwardTrace, type ForwardResult, type MtpSegment, type LoadOptions } from './model.js';
export type { ExpertStore, ExpertWeights, Routing } from './moe.js';
export { ModelState } from './state.js';

/**
 * Opens a checkpoint directory (official HF layout) and builds the model on it.
 * Kernels default to getKernels(numerics) (native when the addon loads, else the TypeScript reference;
 * numerics: canonical rounding, or the named fast mode, default DSV4_NUMERICS).
 *
 * Semantics of forward() (see model.ts): a call at position 0 is the reference's prefill of
 * those tokens; every row of a call at position > 0 is the reference's decode step. So decoding
 * one by one, or in chunks, equals a one-shot prefill bit for bit as long as the first call has
 * at least window_size tokens (or is the whole prompt): for shorter prefills the reference itself
 * lays out its attention slots differently from decode (fewer window slots), which changes
 * rounding on CSA layers.
 */
export async function loadModel(
  dir: string,
  options: { maxSeqLen?: number; kernels?: Kernels; numerics?: Numerics; memoryBudget?: number; prefetchExperts?: boolean } & LoadOptions = {},
): Promise<Dsv4Model> {
  const ck = openCheckpoint(dir, options.maxSeqLen ? { overrides: { maxSeqLen: options.maxSeqLen } } : {});
  // --memory-budget: routed experts stream through a RAM-bounded LRU, read ahead by default (issue 4).
  const budget = options.memoryBudget;
  const experts = options.experts ?? (budget !== undefined ? new ExpertCache(ck, { budgetBytes: budget, prefetch: options.prefetchExperts ?? true }) : undefined);
  return new Dsv4Model(ck, { ...options, experts, kernels: options.kernels ?? getKernels(options.numerics) });
}
