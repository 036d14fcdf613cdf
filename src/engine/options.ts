// Engine construction options and their defaults (shared by the main-thread handle and the worker).

export interface EngineOptions {
  /** Checkpoint directory (official HF layout). */
  modelDir: string;
  /** Context limit (tokens); default = the model's. */
  maxSeqLen?: number;
  /** Budget for live sequence state (bytes); requests beyond it wait in a FIFO queue. Default 4 GiB. */
  stateBudgetBytes?: number;
  /** Prefix-cache memory budget (bytes); 0 disables the cache. Default 1 GiB. */
  prefixCacheBytes?: number;
  /** Directory persisting prefix-cache snapshots across restarts. */
  cacheDir?: string;
  /** Disk budget for cacheDir (bytes). Default max(8 x prefixCacheBytes, 1 GiB). */
  cacheDiskBytes?: number;
  /** Sequences computed together per step. Default 16. */
  maxBatch?: number;
  /** Prompt tokens computed per step (all prefilling sequences together). Default 512. */
  prefillChunk?: number;
  /** Snapshot spacing inside long prompts (tokens). Default 2048. */
  snapshotInterval?: number;
  /** RAM for routed experts (bytes): they stream from the checkpoint through an LRU cache (loadModel). */
  memoryBudget?: number;
  /** Canonical rounding (default) or the named fast mode (tensor/fast-kernels.ts). */
  numerics?: 'exact' | 'fast';
  /** Speculative decoding with the checkpoint's MTP block (engine/speculation.ts). Default false. */
  speculative?: boolean;
  /** Draft acceptance under which drafting pauses. Default 0.7. */
  minDraftAcceptance?: number;
}

export const ENGINE_DEFAULTS = {
  stateBudgetBytes: 4 * 2 ** 30,
  prefixCacheBytes: 2 ** 30,
  maxBatch: 16,
  prefillChunk: 512,
  snapshotInterval: 2048,
};
