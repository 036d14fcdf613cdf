// Shapes shared by the checkpoint layer and its users.

/** safetensors dtypes that V4 checkpoints use (spec §5.1). */
export type DType = 'F32' | 'BF16' | 'F8_E4M3' | 'F8_E8M0' | 'I8' | 'I32' | 'I64' | 'U8' | 'F16';

/** One tensor as stored: raw little-endian bytes, never converted. */
export interface TensorData {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** The stored bytes (a view; copy before mutating). */
  readonly bytes: Uint8Array;
}

/** The model arguments of the reference `ModelArgs` (spec §1.1), mapped from HF config.json (§1.4). */
export interface ModelArgs {
  vocabSize: number;
  dim: number;
  moeInterDim: number;
  nLayers: number;
  nHashLayers: number;
  nMtpLayers: number;
  nHeads: number;
  nRoutedExperts: number;
  nSharedExperts: number;
  nActivatedExperts: number;
  scoreFunc: 'softmax' | 'sigmoid' | 'sqrtsoftplus';
  routeScale: number;
  swigluLimit: number;
  qLoraRank: number;
  headDim: number;
  ropeHeadDim: number;
  normEps: number;
  oGroups: number;
  oLoraRank: number;
  windowSize: number;
  /** One entry per layer, then one per MTP block. 0 = window only, 4 = CSA, other = HCA. */
  compressRatios: number[];
  compressRopeTheta: number;
  originalSeqLen: number;
  ropeTheta: number;
  ropeFactor: number;
  betaFast: number;
  betaSlow: number;
  indexNHeads: number;
  indexHeadDim: number;
  indexTopk: number;
  hcMult: number;
  hcSinkhornIters: number;
  hcEps: number;
  /** 'fp8' or 'bf16' for plain linears. */
  dtype: 'fp8' | 'bf16';
  /** 'fp4' routed experts, or null (= dtype). */
  expertDtype: 'fp4' | 'fp8' | null;
  scaleFmt: 'ue8m0' | null;
  bosTokenId: number;
  eosTokenId: number;
  /** Max positions per sequence (buffer length; reference default 4096). */
  maxSeqLen: number;
}

/** An opened checkpoint directory (sharded via model.safetensors.index.json, or one file). */
export interface Checkpoint {
  readonly dir: string;
  readonly args: ModelArgs;
  /** Raw HF config.json. */
  readonly hfConfig: Record<string, unknown>;
  has(name: string): boolean;
  names(): string[];
  /**
   * Reads one tensor (lazily, only its byte range). Throws an error naming file and tensor on failure.
   * `alloc` gives the memory to read into (e.g. a weight arena's); default: a fresh buffer of its own.
   */
  tensor(name: string, alloc?: (byteLength: number) => Uint8Array): TensorData;
  close(): void;
}
