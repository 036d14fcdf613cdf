// Named model shapes for `dsv4 init` / `dsv4 info`, and ModelArgs -> HF config.json
// (the inverse of the §1.4 mapping). flash/pro are the published configs (spec §1.2, §1.3).
import { checkModelArgs, MODEL_ARGS_DEFAULTS } from './config.js';
import type { ModelArgs } from './types.js';

export const PRESET_NAMES = ['tiny', 'default', 'bench-2g', 'flash', 'pro'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

/**
 * Compress ratios of the released models: `first` for the `lead` leading layers (2 in Flash/Pro), then
 * alternating CSA (4) and HCA (`hca`), MTP window-only.
 */
export function v4CompressRatios(nLayers: number, nMtp: number, first: number, hca: number, lead = 2): number[] {
  const r: number[] = [];
  for (let l = 0; l < nLayers; l++) r.push(l < lead ? first : (l - lead) % 2 === 0 ? 4 : hca);
  for (let j = 0; j < nMtp; j++) r.push(0);
  return r;
}

/** Fields shared by the released V4 configs (spec §1.2). */
const V4_COMMON: ModelArgs = {
  ...MODEL_ARGS_DEFAULTS,
  vocabSize: 129280,
  nHashLayers: 3,
  nMtpLayers: 1,
  nActivatedExperts: 6,
  scoreFunc: 'sqrtsoftplus',
  swigluLimit: 10,
  headDim: 512,
  ropeHeadDim: 64,
  oLoraRank: 1024,
  windowSize: 128,
  originalSeqLen: 65536,
  ropeTheta: 10000,
  ropeFactor: 16,
  betaFast: 32,
  betaSlow: 1,
  indexNHeads: 64,
  indexHeadDim: 128,
  compressRopeTheta: 160000,
  dtype: 'fp8',
  expertDtype: 'fp4',
  scaleFmt: 'ue8m0',
};

export interface Preset {
  readonly args: ModelArgs;
  /** Leading-layer ratio (for `lead` layers) and HCA ratio, to rebuild compress_ratios when the layer count is overridden. */
  readonly ratios: { first: number; hca: number; lead: number };
  /** Largest shard written by `init` (the official shards are ~3.5 GB). */
  readonly maxShardBytes: number;
  readonly about: string;
}

function preset(args: Partial<ModelArgs> & { nLayers: number; nMtpLayers?: number }, first: number, hca: number, maxShardBytes: number, about: string): Preset {
  const a: ModelArgs = { ...V4_COMMON, ...args };
  a.compressRatios = v4CompressRatios(a.nLayers, a.nMtpLayers, first, hca);
  return { args: a, ratios: { first, hca, lead: 2 }, maxShardBytes, about };
}

const GB = 1 << 30;
const MB = 1 << 20;

export const PRESETS: Readonly<Record<PresetName, Preset>> = {
  // Fast tests: every layer kind (window, CSA, HCA), hash routing, MTP; two shards.
  tiny: {
    args: {
      ...V4_COMMON,
      vocabSize: 512, dim: 128, moeInterDim: 128, nLayers: 4, nHashLayers: 1, nHeads: 4, nRoutedExperts: 8,
      nActivatedExperts: 2, routeScale: 1.5, qLoraRank: 128, headDim: 128, oGroups: 2, oLoraRank: 64, windowSize: 16,
      indexNHeads: 2, indexTopk: 4, compressRatios: [0, 4, 16, 4, 0],
    },
    ratios: { first: 0, hca: 16, lead: 1 },
    maxShardBytes: 1 * MB,
    about: 'test model: 4 layers (window, CSA, HCA 16, CSA) + MTP, dim 128, 8 experts, vocab 512',
  },
  default: preset(
    { dim: 128, moeInterDim: 128, nLayers: 6, nHashLayers: 2, nHeads: 8, headDim: 128, nRoutedExperts: 16, nActivatedExperts: 4,
      routeScale: 1.5, qLoraRank: 128, oGroups: 4, oLoraRank: 64, indexNHeads: 4, indexTopk: 64 },
    0, 128, 32 * MB, 'embedded default: real vocab 129280, 6 layers + MTP, dim 128, 16 experts (top 4)'),
  'bench-2g': preset(
    { dim: 2048, moeInterDim: 1024, nLayers: 8, nHeads: 16, nRoutedExperts: 32, routeScale: 1.5, qLoraRank: 1024, oGroups: 8, indexTopk: 512 },
    0, 128, 1 * GB, 'benchmark model (> 2 GB): 8 layers + MTP, dim 2048, 32 experts (top 6), real vocab'),
  flash: preset(
    { dim: 4096, moeInterDim: 2048, nLayers: 43, nHeads: 64, nRoutedExperts: 256, routeScale: 1.5, qLoraRank: 1024, oGroups: 8, indexTopk: 512 },
    0, 128, 3.5 * GB, 'DeepSeek-V4-Flash (spec §1.2)'),
  pro: preset(
    { dim: 7168, moeInterDim: 3072, nLayers: 61, nHeads: 128, nRoutedExperts: 384, routeScale: 2.5, qLoraRank: 1536, oGroups: 16, indexTopk: 1024 },
    128, 128, 3.5 * GB, 'DeepSeek-V4-Pro (spec §1.3)'),
};

export function isPresetName(s: string): s is PresetName {
  return (PRESET_NAMES as readonly string[]).includes(s);
}

/** Size overrides accepted by `dsv4 init`. */
export interface ShapeOverrides {
  layers?: number;
  dim?: number;
  experts?: number;
  topK?: number;
  inter?: number;
  vocab?: number;
  heads?: number;
  hashLayers?: number;
  /** Plain linears: FP8 (released) or BF16 (reference dtype="bf16"). */
  dtype?: 'fp8' | 'bf16';
  /** Routed experts: FP4 (released) or FP8 (convert.py --expert-dtype fp8 layout); null = same as dtype. */
  expertDtype?: 'fp4' | 'fp8' | null;
}

/** The preset's ModelArgs with overrides applied; compress_ratios rebuilt when the layer count changes. */
export function presetArgs(name: PresetName, o: ShapeOverrides = {}): ModelArgs {
  const p = PRESETS[name];
  const a: ModelArgs = { ...p.args, compressRatios: [...p.args.compressRatios] };
  if (o.dim !== undefined) a.dim = o.dim;
  if (o.experts !== undefined) a.nRoutedExperts = o.experts;
  if (o.topK !== undefined) a.nActivatedExperts = o.topK;
  if (o.inter !== undefined) a.moeInterDim = o.inter;
  if (o.vocab !== undefined) a.vocabSize = o.vocab;
  if (o.heads !== undefined) a.nHeads = o.heads;
  if (o.hashLayers !== undefined) a.nHashLayers = o.hashLayers;
  if (o.dtype !== undefined) a.dtype = o.dtype;
  if (o.expertDtype !== undefined) a.expertDtype = o.expertDtype;
  if (o.layers !== undefined && o.layers !== a.nLayers) {
    a.nLayers = o.layers;
    a.compressRatios = v4CompressRatios(a.nLayers, a.nMtpLayers, p.ratios.first, p.ratios.hca, p.ratios.lead);
  }
  a.nActivatedExperts = Math.min(a.nActivatedExperts, a.nRoutedExperts);
  a.nHashLayers = Math.min(a.nHashLayers, a.nLayers);
  checkModelArgs(a, `preset ${name}`);
  return a;
}

/** HF config.json for `a`, in the official key order and spelling (spec §1.2, §1.4). */
export function hfConfigFromArgs(a: ModelArgs): Record<string, unknown> {
  const cfg: Record<string, unknown> = {
    architectures: ['DeepseekV4ForCausalLM'],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: a.bosTokenId,
    eos_token_id: a.eosTokenId,
    expert_dtype: a.expertDtype,
    hc_eps: a.hcEps,
    hc_mult: a.hcMult,
    hc_sinkhorn_iters: a.hcSinkhornIters,
    head_dim: a.headDim,
    hidden_act: 'silu',
    hidden_size: a.dim,
    index_head_dim: a.indexHeadDim,
    index_n_heads: a.indexNHeads,
    index_topk: a.indexTopk,
    initializer_range: 0.02,
    max_position_embeddings: 1048576,
    model_type: 'deepseek_v4',
    moe_intermediate_size: a.moeInterDim,
    n_routed_experts: a.nRoutedExperts,
    n_shared_experts: a.nSharedExperts,
    norm_topk_prob: true,
    num_attention_heads: a.nHeads,
    num_experts_per_tok: a.nActivatedExperts,
    num_hidden_layers: a.nLayers,
    num_hash_layers: a.nHashLayers,
    num_key_value_heads: 1,
    num_nextn_predict_layers: a.nMtpLayers,
    o_groups: a.oGroups,
    o_lora_rank: a.oLoraRank,
    q_lora_rank: a.qLoraRank,
    qk_rope_head_dim: a.ropeHeadDim,
  };
  if (a.dtype === 'fp8') {
    cfg.quantization_config = { activation_scheme: 'dynamic', fmt: 'e4m3', quant_method: 'fp8', scale_fmt: a.scaleFmt, weight_block_size: [128, 128] };
  }
  cfg.rms_norm_eps = a.normEps;
  if (a.originalSeqLen > 0) {
    cfg.rope_scaling = { beta_fast: a.betaFast, beta_slow: a.betaSlow, factor: a.ropeFactor, original_max_position_embeddings: a.originalSeqLen, type: 'yarn' };
  }
  Object.assign(cfg, {
    rope_theta: a.ropeTheta,
    routed_scaling_factor: a.routeScale,
    scoring_func: a.scoreFunc,
    sliding_window: a.windowSize,
    swiglu_limit: a.swigluLimit,
    tie_word_embeddings: false,
    topk_method: 'noaux_tc',
    torch_dtype: 'bfloat16',
    use_cache: true,
    vocab_size: a.vocabSize,
    compress_rope_theta: a.compressRopeTheta,
    compress_ratios: a.compressRatios,
  });
  return cfg;
}
