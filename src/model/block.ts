// One transformer block (spec §3.2): attention and MoE sub-layers, each
// wrapped by hc_pre / RMSNorm / hc_post over the hc residual streams.
import type { Kernels } from '../tensor/kernels.js';
import { hcChain, hcPost, type HcParams } from './hc.js';
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
  // each sub-layer boundary (hc_post, the next hc_pre, its RMSNorm) is one kernels call in decode (hcChain)
  const pre = hcChain(k, null, X, null, rows, hc, dim, w.hcAttn, w.attnNorm, it, normEps, hcEps);
  const o = attention(k, w.attn, w.attnCfg, pre.a, rows, positions, segs, trace);
  const mid = hcChain(k, o, pre.X, pre.h, rows, hc, dim, w.hcFfn, w.ffnNorm, it, normEps, hcEps);
  const f = moe(k, w.ffn, cfg.moe, experts, mid.a, rows, dim, ids, trace?.routing);
  return hcPost(f, mid.X, rows, hc, dim, mid.h, k);
}
