// What `dsv4 info` reports, as data: architecture, tensor/byte/parameter counts
// from the inventory (spec §5.1), sequence-state sizes (spec §4.1) and what a
// routed-expert memory budget implies.
import { readdirSync } from 'node:fs';
import { summarizeInventory, tensorInventory, type InventorySummary } from './inventory.js';
import { openCheckpoint, readCheckpointConfig } from './open.js';
import type { ModelArgs } from './types.js';

export interface LayerCensus {
  window: number;
  csa: number;
  hca: number;
  hash: number;
  mtp: number;
}

export function layerCensus(a: ModelArgs): LayerCensus {
  const r = a.compressRatios.slice(0, a.nLayers);
  return {
    window: r.filter((x) => x === 0).length,
    csa: r.filter((x) => x === 4).length,
    hca: r.filter((x) => x !== 0 && x !== 4).length,
    hash: a.nHashLayers,
    mtp: a.nMtpLayers,
  };
}

export interface SequenceStateSize {
  /** Growth per token: compressed KV entries and indexer keys (BF16, reference storage). */
  perToken: number;
  /** Fixed per sequence: sliding-window rings of every block (MTP included). */
  windows: number;
  /** Fixed per sequence: compressor pending state (fp32 kv_state + score_state). */
  compressorScratch: number;
  /** Total at the given context length. */
  atContext: number;
  context: number;
}

/** Reference sequence-state bytes (spec §4.1): BF16 caches, fp32 compressor state. */
export function sequenceStateSize(a: ModelArgs, context: number): SequenceStateSize {
  let perTokenNum = 0;
  let atContext = 0;
  let windows = 0;
  let scratch = 0;
  for (let l = 0; l < a.nLayers + a.nMtpLayers; l++) {
    const r = a.compressRatios[l]!;
    windows += a.windowSize * a.headDim * 2;
    if (r === 0) continue;
    const coff = r === 4 ? 2 : 1;
    perTokenNum += (a.headDim * 2) / r;
    atContext += Math.floor(context / r) * a.headDim * 2;
    scratch += 2 * coff * r * coff * a.headDim * 4;
    if (r === 4) {
      perTokenNum += (a.indexHeadDim * 2) / 4;
      atContext += Math.floor(context / 4) * a.indexHeadDim * 2;
      scratch += 2 * 2 * 4 * 2 * a.indexHeadDim * 4;
    }
  }
  return { perToken: perTokenNum, windows, compressorScratch: scratch, atContext: atContext + windows + scratch, context };
}

export interface BudgetPlan {
  budget: number;
  /** Bytes that stay resident whatever the budget: everything but routed experts. */
  residentBytes: number;
  expertBytes: number;
  totalExperts: number;
  /** Experts the budget holds at once (capped at the total). */
  cachedExperts: number;
  /** Fraction of all routed experts resident. */
  cachedFraction: number;
  /** Weights memory: resident + min(budget, all experts). */
  weightsMemory: number;
}

export function budgetPlan(a: ModelArgs, s: InventorySummary, budget: number): BudgetPlan {
  const totalExperts = a.nRoutedExperts * (a.nLayers + a.nMtpLayers);
  const cachedExperts = Math.min(totalExperts, Math.floor(budget / s.expertBytes));
  const residentBytes = s.bytes - s.routedExpertBytes;
  return {
    budget,
    residentBytes,
    expertBytes: s.expertBytes,
    totalExperts,
    cachedExperts,
    cachedFraction: cachedExperts / totalExperts,
    weightsMemory: residentBytes + Math.min(budget, s.routedExpertBytes),
  };
}

export interface CheckpointInfo {
  dir: string;
  args: ModelArgs;
  census: LayerCensus;
  inventory: InventorySummary;
  /** What is on disk: null when the directory holds only config.json. */
  files: { shards: number; tensors: number; bytes: number } | null;
  state: SequenceStateSize;
  budget: BudgetPlan | null;
}

/** Gathers everything `dsv4 info` shows. Weights, when present, are opened and validated (headers only). */
export function checkpointInfo(dir: string, opts: { context?: number; memoryBudget?: number; maxSeqLen?: number } = {}): CheckpointInfo {
  const overrides = opts.maxSeqLen !== undefined ? { maxSeqLen: opts.maxSeqLen } : undefined;
  // A directory with only config.json (and maybe the index) is sized from the inventory alone.
  let hasWeights = false;
  try {
    hasWeights = readdirSync(dir).some((f) => f.endsWith('.safetensors'));
  } catch {
    // readCheckpointConfig below reports the missing directory.
  }
  let args: ModelArgs;
  let files: CheckpointInfo['files'] = null;
  if (hasWeights) {
    const ck = openCheckpoint(dir, { overrides });
    try {
      args = ck.args;
      files = { shards: ck.shardFiles().length, tensors: ck.names().length, bytes: ck.totalBytes() };
    } finally {
      ck.close();
    }
  } else {
    args = readCheckpointConfig(dir, overrides).args;
  }
  const inventory = summarizeInventory(args, tensorInventory(args));
  return {
    dir,
    args,
    census: layerCensus(args),
    inventory,
    files,
    state: sequenceStateSize(args, opts.context ?? args.maxSeqLen),
    budget: opts.memoryBudget !== undefined ? budgetPlan(args, inventory, opts.memoryBudget) : null,
  };
}
