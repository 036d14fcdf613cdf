// HF config.json -> ModelArgs (spec §1.4), with the reference dataclass defaults
// (spec §1.1) wherever the HF config is silent. Also accepts the reference's own
// inference/config.json form (ModelArgs field names), which the goldens ship.
import { CheckpointError } from './errors.js';
import type { ModelArgs } from './types.js';

type Json = Record<string, unknown>;

/** Reference ModelArgs defaults (spec §1.1). */
export const MODEL_ARGS_DEFAULTS: Readonly<ModelArgs> = Object.freeze({
  vocabSize: 129280,
  dim: 4096,
  moeInterDim: 4096,
  nLayers: 7,
  nHashLayers: 0,
  nMtpLayers: 1,
  nHeads: 64,
  nRoutedExperts: 8,
  nSharedExperts: 1,
  nActivatedExperts: 2,
  scoreFunc: 'sqrtsoftplus',
  routeScale: 1.0,
  swigluLimit: 0.0,
  qLoraRank: 1024,
  headDim: 512,
  ropeHeadDim: 64,
  normEps: 1e-6,
  oGroups: 8,
  oLoraRank: 1024,
  windowSize: 128,
  compressRatios: [0, 0, 4, 128, 4, 128, 4, 0],
  compressRopeTheta: 40000,
  originalSeqLen: 0,
  ropeTheta: 10000,
  ropeFactor: 40,
  betaFast: 32,
  betaSlow: 1,
  indexNHeads: 64,
  indexHeadDim: 128,
  indexTopk: 512,
  hcMult: 4,
  hcSinkhornIters: 20,
  hcEps: 1e-6,
  dtype: 'fp8',
  expertDtype: null,
  scaleFmt: 'ue8m0',
  bosTokenId: 0,
  eosTokenId: 1,
  maxSeqLen: 4096,
} satisfies ModelArgs);

/** Numeric ModelArgs fields: [field, HF config key, reference inference/config.json key]. */
const NUMERIC_KEYS: readonly [keyof ModelArgs, string, string][] = [
  ['vocabSize', 'vocab_size', 'vocab_size'],
  ['dim', 'hidden_size', 'dim'],
  ['moeInterDim', 'moe_intermediate_size', 'moe_inter_dim'],
  ['nLayers', 'num_hidden_layers', 'n_layers'],
  ['nHashLayers', 'num_hash_layers', 'n_hash_layers'],
  ['nMtpLayers', 'num_nextn_predict_layers', 'n_mtp_layers'],
  ['nHeads', 'num_attention_heads', 'n_heads'],
  ['nRoutedExperts', 'n_routed_experts', 'n_routed_experts'],
  ['nSharedExperts', 'n_shared_experts', 'n_shared_experts'],
  ['nActivatedExperts', 'num_experts_per_tok', 'n_activated_experts'],
  ['routeScale', 'routed_scaling_factor', 'route_scale'],
  ['swigluLimit', 'swiglu_limit', 'swiglu_limit'],
  ['qLoraRank', 'q_lora_rank', 'q_lora_rank'],
  ['headDim', 'head_dim', 'head_dim'],
  ['ropeHeadDim', 'qk_rope_head_dim', 'rope_head_dim'],
  ['normEps', 'rms_norm_eps', 'norm_eps'],
  ['oGroups', 'o_groups', 'o_groups'],
  ['oLoraRank', 'o_lora_rank', 'o_lora_rank'],
  ['windowSize', 'sliding_window', 'window_size'],
  ['compressRopeTheta', 'compress_rope_theta', 'compress_rope_theta'],
  ['ropeTheta', 'rope_theta', 'rope_theta'],
  ['indexNHeads', 'index_n_heads', 'index_n_heads'],
  ['indexHeadDim', 'index_head_dim', 'index_head_dim'],
  ['indexTopk', 'index_topk', 'index_topk'],
  ['hcMult', 'hc_mult', 'hc_mult'],
  ['hcSinkhornIters', 'hc_sinkhorn_iters', 'hc_sinkhorn_iters'],
  ['hcEps', 'hc_eps', 'hc_eps'],
  ['bosTokenId', 'bos_token_id', 'bos_token_id'],
  ['eosTokenId', 'eos_token_id', 'eos_token_id'],
];

/** Fields that must be positive integers for any usable model. */
const POSITIVE_INTS: readonly (keyof ModelArgs)[] = [
  'vocabSize', 'dim', 'moeInterDim', 'nLayers', 'nHeads', 'nRoutedExperts', 'nActivatedExperts', 'qLoraRank',
  'headDim', 'oGroups', 'oLoraRank', 'windowSize', 'indexNHeads', 'indexHeadDim', 'indexTopk', 'hcMult',
  'hcSinkhornIters', 'maxSeqLen',
];

/** True when `cfg` is the reference inference/config.json form rather than an HF config. */
function isInferenceForm(cfg: Json): boolean {
  return !('hidden_size' in cfg) && 'dim' in cfg;
}

function num(cfg: Json, key: string, field: string, file: string): number | undefined {
  const v = cfg[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new CheckpointError(`${key} (${field}) must be a number, got ${JSON.stringify(v)}`, file);
  return v;
}

/**
 * Maps a config.json object to ModelArgs (spec §1.4). `overrides` win over both
 * the file and the defaults (e.g. `{ maxSeqLen: 65536 }`). Throws CheckpointError
 * naming `file` on a malformed or self-inconsistent config.
 */
export function modelArgsFromHfConfig(hf: Json, overrides: Partial<ModelArgs> = {}, file = 'config.json'): ModelArgs {
  const inf = isInferenceForm(hf);
  const a: ModelArgs = { ...MODEL_ARGS_DEFAULTS, compressRatios: [...MODEL_ARGS_DEFAULTS.compressRatios] };
  const w = a as unknown as Record<string, unknown>;
  for (const [field, hfKey, infKey] of NUMERIC_KEYS) {
    const v = num(hf, inf ? infKey : hfKey, field, file);
    if (v !== undefined) w[field] = v;
  }
  if (Array.isArray(hf.eos_token_id) && typeof hf.eos_token_id[0] === 'number') a.eosTokenId = hf.eos_token_id[0];

  const sf = hf[inf ? 'score_func' : 'scoring_func'];
  if (sf !== undefined) {
    if (sf !== 'softmax' && sf !== 'sigmoid' && sf !== 'sqrtsoftplus') throw new CheckpointError(`unsupported scoring_func ${JSON.stringify(sf)}`, file);
    a.scoreFunc = sf;
  }

  if (inf) {
    const r = hf;
    for (const [field, key] of [['originalSeqLen', 'original_seq_len'], ['ropeFactor', 'rope_factor'], ['betaFast', 'beta_fast'], ['betaSlow', 'beta_slow'], ['maxSeqLen', 'max_seq_len']] as const) {
      const v = num(r, key, field, file);
      if (v !== undefined) a[field] = v;
    }
  } else if (hf.rope_scaling !== undefined && hf.rope_scaling !== null) {
    // YaRN block (spec §1.4); a config without rope_scaling keeps original_seq_len 0 = YaRN off.
    const r = hf.rope_scaling as Json;
    if (typeof r !== 'object') throw new CheckpointError('rope_scaling must be an object', file);
    const t = r.type ?? r.rope_type;
    if (t !== undefined && t !== 'yarn') throw new CheckpointError(`unsupported rope_scaling type ${JSON.stringify(t)} (only yarn)`, file);
    for (const [field, key] of [['originalSeqLen', 'original_max_position_embeddings'], ['ropeFactor', 'factor'], ['betaFast', 'beta_fast'], ['betaSlow', 'beta_slow']] as const) {
      const v = num(r, key, field, file);
      if (v !== undefined) a[field] = v;
    }
  }

  // Weight formats. HF: quantization_config.quant_method fp8 => dtype fp8; no quantization_config => BF16 weights.
  if (inf) {
    if (hf.dtype !== undefined) a.dtype = parseEnum(hf.dtype, ['fp8', 'bf16'] as const, 'dtype', file);
    if (hf.scale_fmt !== undefined) a.scaleFmt = hf.scale_fmt === null ? null : parseEnum(hf.scale_fmt, ['ue8m0'] as const, 'scale_fmt', file);
  } else {
    const q = hf.quantization_config as Json | undefined | null;
    if (q === undefined || q === null) {
      a.dtype = 'bf16';
    } else {
      if (q.quant_method !== 'fp8') throw new CheckpointError(`unsupported quantization_config.quant_method ${JSON.stringify(q.quant_method)} (only fp8)`, file);
      a.dtype = 'fp8';
      if (q.scale_fmt !== undefined) a.scaleFmt = q.scale_fmt === null ? null : parseEnum(q.scale_fmt, ['ue8m0'] as const, 'quantization_config.scale_fmt', file);
      const bs = q.weight_block_size;
      if (bs !== undefined && !(Array.isArray(bs) && bs.length === 2 && bs[0] === 128 && bs[1] === 128)) {
        throw new CheckpointError(`unsupported weight_block_size ${JSON.stringify(bs)} (V4 uses [128, 128])`, file);
      }
    }
  }
  if (hf.expert_dtype !== undefined) a.expertDtype = hf.expert_dtype === null ? null : parseEnum(hf.expert_dtype, ['fp4', 'fp8'] as const, 'expert_dtype', file);

  if (hf.compress_ratios !== undefined) {
    const cr = hf.compress_ratios;
    if (!Array.isArray(cr) || !cr.every((x) => Number.isInteger(x) && x >= 0)) throw new CheckpointError('compress_ratios must be a list of non-negative integers', file);
    a.compressRatios = [...(cr as number[])];
  }

  Object.assign(a, overrides);
  checkModelArgs(a, file);
  return a;
}

function parseEnum<T extends string>(v: unknown, allowed: readonly T[], key: string, file: string): T {
  if (typeof v === 'string' && (allowed as readonly string[]).includes(v)) return v as T;
  throw new CheckpointError(`unsupported ${key} ${JSON.stringify(v)} (expected ${allowed.join(' or ')})`, file);
}

/** Structural checks the reference relies on (asserts in model.py, spec §1.1 / §3). */
export function checkModelArgs(a: ModelArgs, file = 'config.json'): void {
  const bad = (msg: string): never => {
    throw new CheckpointError(msg, file);
  };
  for (const f of POSITIVE_INTS) {
    const v = a[f] as number;
    if (!Number.isInteger(v) || v <= 0) bad(`${f} must be a positive integer, got ${v}`);
  }
  for (const f of ['nHashLayers', 'nMtpLayers', 'ropeHeadDim'] as const) {
    if (!Number.isInteger(a[f]) || a[f] < 0) bad(`${f} must be a non-negative integer, got ${a[f]}`);
  }
  if (a.nSharedExperts !== 1) bad(`n_shared_experts must be 1 (the reference asserts it), got ${a.nSharedExperts}`);
  if (a.nActivatedExperts > a.nRoutedExperts) bad(`num_experts_per_tok ${a.nActivatedExperts} exceeds n_routed_experts ${a.nRoutedExperts}`);
  if (a.nHashLayers > a.nLayers) bad(`num_hash_layers ${a.nHashLayers} exceeds num_hidden_layers ${a.nLayers}`);
  if (a.compressRatios.length !== a.nLayers + a.nMtpLayers) {
    bad(`compress_ratios has ${a.compressRatios.length} entries, expected num_hidden_layers + num_nextn_predict_layers = ${a.nLayers + a.nMtpLayers}`);
  }
  if (a.ropeHeadDim > a.headDim || a.ropeHeadDim % 2 !== 0) bad(`qk_rope_head_dim ${a.ropeHeadDim} must be even and at most head_dim ${a.headDim}`);
  if (a.nHeads % a.oGroups !== 0) bad(`num_attention_heads ${a.nHeads} must be divisible by o_groups ${a.oGroups}`);
  if (a.expertDtype === 'fp4' && a.dim % 32 !== 0) bad(`hidden_size ${a.dim} must be a multiple of 32 for FP4 experts`);
  if (a.expertDtype === 'fp4' && a.moeInterDim % 32 !== 0) bad(`moe_intermediate_size ${a.moeInterDim} must be a multiple of 32 for FP4 experts`);
  if (a.vocabSize <= Math.max(a.bosTokenId, a.eosTokenId)) bad(`vocab_size ${a.vocabSize} does not cover bos/eos ids`);
}
