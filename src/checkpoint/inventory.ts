// The official tensor inventory implied by a config (spec §5.1): every name,
// dtype and shape the HF checkpoint holds. Used to validate checkpoints, to
// write synthetic ones (`dsv4 init`) and to size real ones (`dsv4 info`).
import { DTYPE_BYTES, elementCount } from './safetensors.js';
import type { DType, ModelArgs } from './types.js';

/** What a tensor is for; decides residency (routed experts stream under a memory budget). */
export type TensorRole = 'embed' | 'head' | 'dense' | 'shared-expert' | 'routed-expert' | 'mtp';

export interface TensorSpec {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly role: TensorRole;
  /** Logical parameters (FP4 packs two per byte; scales are not parameters). */
  readonly params: number;
  /** Block index (layers.N / MTP n_layers + j), or -1 for globals. */
  readonly layer: number;
  /** Routed expert id, or -1. */
  readonly expert: number;
}

export const FP8_BLOCK = 128;
export const FP4_BLOCK = 32;

const ceilDiv = (a: number, b: number): number => Math.floor((a + b - 1) / b);

/** Format of a linear's weight: 'fp8' (E4M3 + 128x128 E8M0), 'fp4' (packed E2M1 + 1x32 E8M0), 'bf16'. */
export type LinearFormat = 'fp8' | 'fp4' | 'bf16';

interface Ctx {
  out: TensorSpec[];
  role: TensorRole;
  layer: number;
  expert: number;
}

function add(c: Ctx, name: string, dtype: DType, shape: number[], params = elementCount(shape)): void {
  c.out.push({ name, dtype, shape, role: c.role, params, layer: c.layer, expert: c.expert });
}

/** A linear y = x W^T with W [outF, inF] in the given format (spec §2.4, model.py Linear). */
function linear(c: Ctx, prefix: string, outF: number, inF: number, fmt: LinearFormat): void {
  if (fmt === 'fp8') {
    add(c, `${prefix}.weight`, 'F8_E4M3', [outF, inF]);
    add(c, `${prefix}.scale`, 'F8_E8M0', [ceilDiv(outF, FP8_BLOCK), ceilDiv(inF, FP8_BLOCK)], 0);
  } else if (fmt === 'fp4') {
    // Stored as I8 [out, in/2] (two E2M1 codes per byte), scales [out, in/32].
    add(c, `${prefix}.weight`, 'I8', [outF, inF / 2], outF * inF);
    add(c, `${prefix}.scale`, 'F8_E8M0', [outF, inF / FP4_BLOCK], 0);
  } else {
    add(c, `${prefix}.weight`, 'BF16', [outF, inF]);
  }
}

function compressor(c: Ctx, prefix: string, a: ModelArgs, ratio: number, headDim: number): void {
  const coff = ratio === 4 ? 2 : 1; // overlapping windows for CSA (spec §3.4)
  add(c, `${prefix}.ape`, 'F32', [ratio, coff * headDim]);
  add(c, `${prefix}.wkv.weight`, 'BF16', [coff * headDim, a.dim]);
  add(c, `${prefix}.wgate.weight`, 'BF16', [coff * headDim, a.dim]);
  add(c, `${prefix}.norm.weight`, 'BF16', [headDim]);
}

/** One block's tensors (decoder layer `layers.N` or MTP block `mtp.j`). */
function block(c: Ctx, prefix: string, a: ModelArgs, layerId: number, isMtp: boolean): void {
  const plain: LinearFormat = a.dtype;
  const expertFmt: LinearFormat = a.expertDtype ?? a.dtype;
  const hcDim = a.hcMult * a.dim;
  const mixHc = (2 + a.hcMult) * a.hcMult;
  const ratio = a.compressRatios[layerId];
  for (const s of ['attn', 'ffn']) {
    add(c, `${prefix}.hc_${s}_fn`, 'F32', [mixHc, hcDim]);
    add(c, `${prefix}.hc_${s}_base`, 'F32', [mixHc]);
    add(c, `${prefix}.hc_${s}_scale`, 'F32', [3]);
  }
  add(c, `${prefix}.attn_norm.weight`, 'BF16', [a.dim]);
  add(c, `${prefix}.ffn_norm.weight`, 'BF16', [a.dim]);
  const p = `${prefix}.attn`;
  add(c, `${p}.attn_sink`, 'F32', [a.nHeads]);
  linear(c, `${p}.wq_a`, a.qLoraRank, a.dim, plain);
  add(c, `${p}.q_norm.weight`, 'BF16', [a.qLoraRank]);
  linear(c, `${p}.wq_b`, a.nHeads * a.headDim, a.qLoraRank, plain);
  linear(c, `${p}.wkv`, a.headDim, a.dim, plain);
  add(c, `${p}.kv_norm.weight`, 'BF16', [a.headDim]);
  // wo_a is stored like every plain linear; the reference dequantizes it to BF16 at load (spec §5.2/§5.3).
  linear(c, `${p}.wo_a`, a.oGroups * a.oLoraRank, (a.nHeads * a.headDim) / a.oGroups, plain);
  linear(c, `${p}.wo_b`, a.dim, a.oGroups * a.oLoraRank, plain);
  if (ratio !== 0) {
    compressor(c, `${p}.compressor`, a, ratio, a.headDim);
    if (ratio === 4) {
      linear(c, `${p}.indexer.wq_b`, a.indexNHeads * a.indexHeadDim, a.qLoraRank, plain);
      add(c, `${p}.indexer.weights_proj.weight`, 'BF16', [a.indexNHeads, a.dim]);
      compressor(c, `${p}.indexer.compressor`, a, ratio, a.indexHeadDim);
    }
  }
  const f = `${prefix}.ffn`;
  add(c, `${f}.gate.weight`, 'BF16', [a.nRoutedExperts, a.dim]);
  if (layerId < a.nHashLayers) add(c, `${f}.gate.tid2eid`, 'I64', [a.vocabSize, a.nActivatedExperts]);
  else add(c, `${f}.gate.bias`, 'F32', [a.nRoutedExperts]);
  const saved = c.role;
  for (let e = 0; e < a.nRoutedExperts; e++) {
    c.role = 'routed-expert';
    c.expert = e;
    linear(c, `${f}.experts.${e}.w1`, a.moeInterDim, a.dim, expertFmt);
    linear(c, `${f}.experts.${e}.w2`, a.dim, a.moeInterDim, expertFmt);
    linear(c, `${f}.experts.${e}.w3`, a.moeInterDim, a.dim, expertFmt);
  }
  c.expert = -1;
  c.role = isMtp ? 'mtp' : 'shared-expert';
  linear(c, `${f}.shared_experts.w1`, a.moeInterDim, a.dim, plain);
  linear(c, `${f}.shared_experts.w2`, a.dim, a.moeInterDim, plain);
  linear(c, `${f}.shared_experts.w3`, a.moeInterDim, a.dim, plain);
  c.role = saved;
  if (isMtp) {
    linear(c, `${prefix}.e_proj`, a.dim, a.dim, plain);
    linear(c, `${prefix}.h_proj`, a.dim, a.dim, plain);
    add(c, `${prefix}.enorm.weight`, 'BF16', [a.dim]);
    add(c, `${prefix}.hnorm.weight`, 'BF16', [a.dim]);
    add(c, `${prefix}.norm.weight`, 'BF16', [a.dim]);
    add(c, `${prefix}.hc_head_fn`, 'F32', [a.hcMult, hcDim]);
    add(c, `${prefix}.hc_head_base`, 'F32', [a.hcMult]);
    add(c, `${prefix}.hc_head_scale`, 'F32', [1]);
  }
}

/** The full official tensor list for `a`, in a stable order: globals, then layers, then MTP blocks. */
export function tensorInventory(a: ModelArgs): TensorSpec[] {
  const c: Ctx = { out: [], role: 'embed', layer: -1, expert: -1 };
  add(c, 'embed.weight', 'BF16', [a.vocabSize, a.dim]);
  c.role = 'head';
  add(c, 'head.weight', 'BF16', [a.vocabSize, a.dim]);
  c.role = 'dense';
  add(c, 'norm.weight', 'BF16', [a.dim]);
  add(c, 'hc_head_fn', 'F32', [a.hcMult, a.hcMult * a.dim]);
  add(c, 'hc_head_base', 'F32', [a.hcMult]);
  add(c, 'hc_head_scale', 'F32', [1]);
  for (let l = 0; l < a.nLayers; l++) {
    c.layer = l;
    block(c, `layers.${l}`, a, l, false);
  }
  c.role = 'mtp';
  for (let j = 0; j < a.nMtpLayers; j++) {
    c.layer = a.nLayers + j;
    block(c, `mtp.${j}`, a, a.nLayers + j, true);
  }
  return c.out;
}

export function specBytes(t: { dtype: DType; shape: readonly number[] }): number {
  return elementCount(t.shape) * DTYPE_BYTES[t.dtype];
}

export interface InventorySummary {
  tensors: number;
  bytes: number;
  bytesByDtype: Partial<Record<DType, number>>;
  bytesByRole: Record<TensorRole, number>;
  paramsByRole: Record<TensorRole, number>;
  /** Parameters in total (including MTP). */
  params: number;
  /** Parameters of the MTP blocks (their routed experts included). */
  mtpParams: number;
  /** Parameters used per token by the main model: all but routed experts, plus top-k of them (excludes MTP). */
  activeParams: number;
  /** Bytes of one routed expert (w1+w2+w3 with scales). */
  expertBytes: number;
  /** Bytes of all routed experts (main layers and MTP). */
  routedExpertBytes: number;
}

export function summarizeInventory(a: ModelArgs, inv: readonly TensorSpec[] = tensorInventory(a)): InventorySummary {
  const roles: TensorRole[] = ['embed', 'head', 'dense', 'shared-expert', 'routed-expert', 'mtp'];
  const bytesByRole = Object.fromEntries(roles.map((r) => [r, 0])) as Record<TensorRole, number>;
  const paramsByRole = { ...bytesByRole };
  const bytesByDtype: Partial<Record<DType, number>> = {};
  let bytes = 0;
  let params = 0;
  let routedMainParams = 0;
  let mtpParams = 0;
  for (const t of inv) {
    const b = specBytes(t);
    bytes += b;
    params += t.params;
    bytesByDtype[t.dtype] = (bytesByDtype[t.dtype] ?? 0) + b;
    bytesByRole[t.role] += b;
    paramsByRole[t.role] += t.params;
    if (t.layer >= a.nLayers) mtpParams += t.params;
    else if (t.role === 'routed-expert') routedMainParams += t.params;
  }
  const expertBytes = bytesByRole['routed-expert'] / Math.max(1, a.nRoutedExperts * (a.nLayers + a.nMtpLayers));
  // The embedding is a lookup, but it is conventionally counted in "active" figures; the head is a full GEMM.
  const activeParams = params - mtpParams - routedMainParams + (routedMainParams * a.nActivatedExperts) / a.nRoutedExperts;
  return {
    tensors: inv.length,
    bytes,
    bytesByDtype,
    bytesByRole,
    paramsByRole,
    params,
    mtpParams,
    activeParams,
    expertBytes,
    routedExpertBytes: bytesByRole['routed-expert'],
  };
}

/** Parses `layers.N.ffn.experts.E.` / `mtp.J.ffn.experts.E.` names -> {layer, expert} (layer counts MTP after the main layers). */
export function parseExpertName(name: string, nLayers: number): { layer: number; expert: number } | null {
  const m = /^(layers|mtp)\.(\d+)\.ffn\.experts\.(\d+)\./.exec(name);
  if (!m) return null;
  return { layer: (m[1] === 'mtp' ? nLayers : 0) + Number(m[2]), expert: Number(m[3]) };
}
