// One transformer block (spec §3.2): attention and MoE sub-layers, each
// wrapped by hc_pre / RMSNorm / hc_post over the hc residual streams.
import type { Kernels } from '../tensor/kernels.js';
import { rmsNormWith } from '../tensor/norm.js';
import { hcPost, hcPre, type HcParams } from './hc.js';
import { attention, type AttentionConfig, type AttentionTrace, type AttentionWeights, type LayerSegment } from './attention.js';
import { moe, type ExpertStore, type MoeConfig, type MoeWeights, type Routing } from './moe.js';

export interface BlockWeights {
  id: number;
  hcAttn: HcParams;
  hcFfn: HcParams;
  attnNorm: Float32Array;
  ffnNorm: Float32Array;
  attn: AttentionWeights;
  attnCfg: AttentionConfig;
  ffn: MoeWeights;
}

export interface BlockConfig {
  dim: number;
  hcMult: number;
  sinkhornIters: number;
  normEps: number;
  hcEps: number;
  moe: MoeConfig;
}

export interface BlockTrace extends AttentionTrace {
  routing?: (r: Routing) => void;
}

/** X [rows, hc, dim] BF16 -> the block's output streams. */
export function blockForward(k: Kernels, w: BlockWeights, cfg: BlockConfig, experts: ExpertStore, X: Float32Array, rows: number,
  positions: Int32Array, ids: Int32Array, segs: LayerSegment[], trace?: BlockTrace): Float32Array {
  const { dim, hcMult: hc, sinkhornIters: it, normEps, hcEps } = cfg;
  let h = hcPre(X, rows, hc, dim, w.hcAttn, it, normEps, hcEps, k);
  let a = rmsNormWith(k, h.y, rows, dim, w.attnNorm, normEps);
  a = attention(k, w.attn, w.attnCfg, a, rows, positions, segs, trace);
  X = hcPost(a, X, rows, hc, dim, h, k);
  h = hcPre(X, rows, hc, dim, w.hcFfn, it, normEps, hcEps, k);
  a = rmsNormWith(k, h.y, rows, dim, w.ffnNorm, normEps);
  a = moe(k, w.ffn, cfg.moe, experts, a, rows, dim, ids, trace?.routing);
  return hcPost(a, X, rows, hc, dim, h, k);
}
