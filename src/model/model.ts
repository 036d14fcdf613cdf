// The DeepSeek-V4 model (spec §3): embedding, blocks, hc_head + norm + head,
// the MTP block, over per-sequence states. Batched: the rows of all segments
// go through every linear together; attention and compression run per sequence.
import type { Checkpoint, ModelArgs } from '../checkpoint/types.js';
import type { Kernels, Weight } from '../tensor/kernels.js';
import { referenceKernels } from '../tensor/reference-kernels.js';
import { bf16Value, roundBf16 } from '../tensor/formats.js';
import { rmsNormWith } from '../tensor/norm.js';
import { ropeTable, type RopeTable } from '../tensor/rope.js';
import type { ForwardSegment, ModelRunner, SequenceState, Speculator } from './api.js';
import { ModelState, type LayerShape } from './state.js';
import { WeightReader } from './weights.js';
import { denseLinear, linear } from './linear.js';
import { hcHead, type HcParams } from './hc.js';
import { blockForward, type BlockConfig, type BlockTrace, type BlockWeights } from './block.js';
import type { CompressorWeights } from './compressor.js';
import type { IndexerWeights } from './indexer.js';
import type { ExpertStore, ExpertWeights } from './moe.js';
import { fuseXProducts, type AttentionWeights, type LayerSegment } from './attention.js';
import type { Routing } from './moe.js';

/** Routed experts read from the checkpoint on first use and kept. */
export class LazyExpertStore implements ExpertStore {
  private readonly cache: (ExpertWeights | undefined)[][] = []; // [layer][expert]
  constructor(private readonly reader: WeightReader, private readonly nLayers: number) {}
  get(layer: number, expert: number): ExpertWeights {
    const row = (this.cache[layer] ??= []);
    let e = row[expert];
    if (!e) {
      const p = `${layerPrefix(layer, this.nLayers)}.ffn.experts.${expert}`;
      e = { w1: this.reader.linear(`${p}.w1`), w2: this.reader.linear(`${p}.w2`), w3: this.reader.linear(`${p}.w3`) };
      row[expert] = e;
    }
    return e;
  }
}

export function layerPrefix(layer: number, nLayers: number): string {
  return layer < nLayers ? `layers.${layer}` : `mtp.${layer - nLayers}`;
}

interface MtpWeights {
  block: BlockWeights;
  eProj: Weight;
  hProj: Weight;
  enorm: Float32Array;
  hnorm: Float32Array;
  norm: Float32Array;
  hcHead: HcParams;
}

/** Diagnostics a caller may collect during forward (verify --layers). */
export interface ForwardTrace {
  /** Output streams [rows, hc, dim] of main block `layer` (rows of all segments). */
  layer?: (layer: number, X: Float32Array) => void;
  /** hc_head output [rows, dim] for every row (computed only when requested). */
  final?: (y: Float32Array) => void;
  routing?: (layer: number, r: Routing) => void;
  /** Indexer selection of CSA layer `layer` for a segment row, as compressed entry numbers. */
  indexer?: (layer: number, segment: number, row: number, selected: number[]) => void;
}

export interface ForwardResult {
  /** fp32 logits of each segment's last token. */
  logits: Float32Array[];
  /** Each segment's last-block output streams [len, hc, dim] (the MTP block's input). */
  hidden: Float32Array[];
}

export interface MtpSegment {
  state: SequenceState;
  /** Main model's last-block output streams for these tokens [len, hc, dim]. */
  hidden: Float32Array;
  /** The tokens that follow them (token i+1 goes with hidden i). */
  tokens: Int32Array;
}

export interface LoadOptions {
  maxSeqLen?: number;
  kernels?: Kernels;
  experts?: ExpertStore;
}

export class Dsv4Model implements ModelRunner {
  readonly args: ModelArgs;
  readonly vocabSize: number;
  readonly maxSeqLen: number;
  kernels: Kernels;
  experts: ExpertStore;
  private readonly embed: Uint16Array;
  private readonly head: Weight;
  private readonly norm: Float32Array;
  private readonly hcHeadParams: HcParams;
  private readonly blocks: BlockWeights[];
  private readonly mtpBlocks: MtpWeights[];
  private readonly cfg: BlockConfig;
  private readonly shapes: LayerShape[];
  private readonly mtpShapes: LayerShape[];
  private readonly signature: string;

  constructor(ck: Checkpoint, opts: LoadOptions = {}) {
    const a = (this.args = { ...ck.args, maxSeqLen: opts.maxSeqLen ?? ck.args.maxSeqLen ?? 4096 });
    this.vocabSize = a.vocabSize;
    this.maxSeqLen = a.maxSeqLen;
    this.kernels = opts.kernels ?? referenceKernels;
    const rd = new WeightReader(ck);
    this.experts = opts.experts ?? new LazyExpertStore(rd, a.nLayers);
    const emb = rd.linear('embed');
    if (emb.kind !== 'bf16') throw new Error('embed.weight must be BF16');
    this.embed = emb.data;
    this.head = rd.linear('head');
    this.norm = rd.vector('norm.weight');
    this.hcHeadParams = { fn: rd.vector('hc_head_fn'), base: rd.vector('hc_head_base'), scale: rd.vector('hc_head_scale') };
    this.cfg = {
      dim: a.dim, hcMult: a.hcMult, sinkhornIters: a.hcSinkhornIters, normEps: a.normEps, hcEps: a.hcEps,
      moe: { nExperts: a.nRoutedExperts, topk: a.nActivatedExperts, scoreFunc: a.scoreFunc, routeScale: a.routeScale, swigluLimit: a.swigluLimit },
    };
    const tables = new Map<string, RopeTable>();
    const tableFor = (ratio: number): RopeTable => {
      const key = ratio ? 'compressed' : 'plain';
      let t = tables.get(key);
      if (!t) {
        t = ropeTable(ratio
          ? { dim: a.ropeHeadDim, base: a.compressRopeTheta, originalSeqLen: a.originalSeqLen, factor: a.ropeFactor, betaFast: a.betaFast, betaSlow: a.betaSlow }
          : { dim: a.ropeHeadDim, base: a.ropeTheta, originalSeqLen: 0, factor: a.ropeFactor, betaFast: a.betaFast, betaSlow: a.betaSlow }, this.maxSeqLen);
        tables.set(key, t);
      }
      return t;
    };
    const loadBlock = (id: number): BlockWeights => {
      const p = layerPrefix(id, a.nLayers);
      const ratio = a.compressRatios[id] ?? 0;
      const hcp = (n: string): HcParams => ({ fn: rd.vector(`${p}.hc_${n}_fn`), base: rd.vector(`${p}.hc_${n}_base`), scale: rd.vector(`${p}.hc_${n}_scale`) });
      const comp = (cp: string, width: number, rotate: boolean): CompressorWeights => ({
        ratio, width, rotate, wkv: rd.linear(`${cp}.wkv`, true), wgate: rd.linear(`${cp}.wgate`, true), ape: rd.vector(`${cp}.ape`), norm: rd.vector(`${cp}.norm.weight`),
      });
      const indexer: IndexerWeights | null = ratio === 4 ? {
        nHeads: a.indexNHeads, headDim: a.indexHeadDim, topk: a.indexTopk,
        wqB: rd.linear(`${p}.attn.indexer.wq_b`), weightsProj: rd.linear(`${p}.attn.indexer.weights_proj`, true),
        compressor: comp(`${p}.attn.indexer.compressor`, a.indexHeadDim, true),
      } : null;
      const isHash = id < a.nHashLayers;
      const attn: AttentionWeights = {
        wqA: rd.linear(`${p}.attn.wq_a`), qNorm: rd.vector(`${p}.attn.q_norm.weight`), wqB: rd.linear(`${p}.attn.wq_b`),
        wkv: rd.linear(`${p}.attn.wkv`), kvNorm: rd.vector(`${p}.attn.kv_norm.weight`),
        woA: rd.linear(`${p}.attn.wo_a`), woB: rd.linear(`${p}.attn.wo_b`), sink: rd.vector(`${p}.attn.attn_sink`),
        compressor: ratio ? comp(`${p}.attn.compressor`, a.headDim, false) : null,
        indexer,
      };
      fuseXProducts(attn, (n) => rd.arena.alloc(n)); // the copies read above (linear(.., true)) are dropped
      return {
        id,
        hcAttn: hcp('attn'),
        hcFfn: hcp('ffn'),
        attnNorm: rd.vector(`${p}.attn_norm.weight`),
        ffnNorm: rd.vector(`${p}.ffn_norm.weight`),
        attn,
        attnCfg: {
          nHeads: a.nHeads, headDim: a.headDim, ropeDim: a.ropeHeadDim, window: a.windowSize, ratio,
          oGroups: a.oGroups, oLora: a.oLoraRank, normEps: a.normEps, table: tableFor(ratio),
        },
        ffn: {
          layer: id,
          gate: rd.linear(`${p}.ffn.gate`),
          bias: isHash ? null : rd.vector(`${p}.ffn.gate.bias`),
          tid2eid: isHash ? rd.ints(`${p}.ffn.gate.tid2eid`) : null,
          shared: { w1: rd.linear(`${p}.ffn.shared_experts.w1`), w2: rd.linear(`${p}.ffn.shared_experts.w2`), w3: rd.linear(`${p}.ffn.shared_experts.w3`) },
        },
      };
    };
    const shape = (id: number): LayerShape => ({ window: a.windowSize, headDim: a.headDim, ratio: a.compressRatios[id] ?? 0, indexHeadDim: a.indexHeadDim });
    this.blocks = [];
    this.shapes = [];
    for (let l = 0; l < a.nLayers; l++) {
      this.blocks.push(loadBlock(l));
      this.shapes.push(shape(l));
    }
    this.mtpBlocks = [];
    this.mtpShapes = [];
    for (let j = 0; j < a.nMtpLayers; j++) {
      const id = a.nLayers + j;
      const p = layerPrefix(id, a.nLayers);
      if (!rd.has(`${p}.e_proj.weight`)) break;
      this.mtpBlocks.push({
        block: loadBlock(id), eProj: rd.linear(`${p}.e_proj`), hProj: rd.linear(`${p}.h_proj`),
        enorm: rd.vector(`${p}.enorm.weight`), hnorm: rd.vector(`${p}.hnorm.weight`), norm: rd.vector(`${p}.norm.weight`),
        hcHead: { fn: rd.vector(`${p}.hc_head_fn`), base: rd.vector(`${p}.hc_head_base`), scale: rd.vector(`${p}.hc_head_scale`) },
      });
      this.mtpShapes.push(shape(id));
    }
    this.signature = JSON.stringify([a.dim, a.nLayers, a.headDim, a.windowSize, a.compressRatios, a.indexHeadDim, this.mtpShapes.length]);
  }

  get hasMtp(): boolean {
    return this.mtpBlocks.length > 0;
  }

  /** MTP drafting for speculative decoding (engine/scheduler.ts), when the checkpoint has an MTP block. */
  get speculator(): Speculator | undefined {
    if (!this.hasMtp) return undefined;
    return (this.drafter ??= {
      canDraft: (s) => {
        const st = this.own(s);
        return st.mtpInStep && st.mtpRows > 0;
      },
      draft: (items) => this.draft(items),
      acceptDrafts: (s) => this.own(s).acceptDrafts(),
      rejectDrafts: (s) => this.own(s).rejectDrafts(),
    });
  }
  private drafter: Speculator | undefined;

  setKernels(k: Kernels): void {
    this.kernels = k;
  }

  /**
   * Kernels of the MTP block when it only drafts (Speculator.draft, ForwardSegment.mtp): drafts never
   * change the output, so the engine gives it the fast ones under exact numerics. Default: `kernels`.
   */
  draftKernels: Kernels | null = null;

  newState(): ModelState {
    return new ModelState(this, this.signature, this.shapes, this.mtpShapes, this.args.hcMult * this.args.dim);
  }

  restoreState(bytes: Uint8Array): ModelState {
    return this.newState().load(bytes);
  }

  private own(s: SequenceState): ModelState {
    if (!(s instanceof ModelState) || s.owner !== this) throw new Error('sequence state does not belong to this model');
    return s;
  }

  forward(segments: ForwardSegment[]): Float32Array[] {
    return this.forwardDetailed(segments).logits;
  }

  /** forward() that also returns the last block's streams (for MTP) and reports diagnostics. */
  forwardDetailed(segments: ForwardSegment[], trace?: ForwardTrace): ForwardResult {
    const a = this.args;
    const { dim, hcMult: hc } = a;
    const states = segments.map((s) => this.own(s.state));
    if (new Set(states).size !== states.length) throw new Error('a sequence state appears twice in one forward call');
    const { rows, ids, positions, offsets } = this.layout(segments.map((s, i) => ({ tokens: s.tokens, pos0: states[i]!.position })));
    const drafts = segments.map((s) => s.drafts ?? 0);
    segments.forEach((s, i) => {
      const st = states[i]!;
      st.acceptDrafts(); // an earlier call's drafts not rejected by now are kept
      const d = drafts[i]!;
      if (!(Number.isInteger(d) && d >= 0 && d < s.tokens.length)) throw new Error(`forward: ${d} drafts in a segment of ${s.tokens.length} tokens`);
      if (d > 0) st.beginDrafts(st.position + s.tokens.length - d, d);
    });
    let X: Float32Array = new Float32Array(rows * hc * dim);
    for (let r = 0; r < rows; r++) {
      const o = ids[r]! * dim;
      for (let d = 0; d < dim; d++) {
        const v = bf16Value(this.embed[o + d]!);
        for (let j = 0; j < hc; j++) X[(r * hc + j) * dim + d] = v;
      }
    }
    for (let l = 0; l < this.blocks.length; l++) {
      const segs: LayerSegment[] = states.map((s, i) => ({ layer: s.layers[l]!, row0: offsets[i]!, len: segments[i]!.tokens.length, pos0: s.position }));
      X = blockForward(this.kernels, this.blocks[l]!, this.cfg, this.experts, X, rows, positions, ids, segs, this.blockTrace(l, segs, trace));
      trace?.layer?.(l, X);
    }
    const logits = this.logitsOf(X, offsets, segments.map((s) => s.tokens.length), drafts.map((d) => d + 1), this.hcHeadParams, this.norm, trace);
    const hidden = segments.map((s, i) => X.subarray(offsets[i]! * hc * dim, (offsets[i]! + s.tokens.length) * hc * dim));
    const run: MtpSegment[] = [];
    segments.forEach((seg, i) => {
      const st = states[i]!;
      if (this.hasMtp && seg.mtp && st.mtpInStep) {
        // pending rows pair with the tokens after them (golden README); the first token pairs with an earlier row
        st.pushMtp(hidden[i]!, seg.tokens.length, st.mtpRows > 0 ? seg.tokens : seg.tokens.subarray(1));
        const certain = st.mtpRows - 1 - drafts[i]!;
        if (seg.mtp === 'run' && certain > 0) run.push({ state: st, hidden: st.mtpHidden.subarray(0, certain * hc * dim), tokens: Int32Array.from(st.mtpTokens.slice(0, certain)) });
      } else st.clearMtp();
      st.position += seg.tokens.length;
    });
    if (run.length > 0) {
      this.mtpBlock(run, null, this.draftKernels ?? this.kernels);
      for (const r of run) this.own(r.state).shiftMtp(r.tokens.length);
    }
    return { logits, hidden: hidden.map((h) => h.slice()) };
  }

  /** Speculator.draft: the pending MTP rows, the last paired with `next`, through the MTP block; its logits. */
  private draft(items: Array<{ state: SequenceState; next: number }>): Float32Array[] {
    const w = this.args.hcMult * this.args.dim;
    const segs = items.map(({ state, next }) => {
      const st = this.own(state);
      if (!st.mtpInStep || st.mtpRows === 0) throw new Error('draft: the MTP block is not in step with this sequence');
      return { state: st, hidden: st.mtpHidden.slice(0, st.mtpRows * w), tokens: Int32Array.from([...st.mtpTokens, next]) };
    });
    const logits = this.mtpBlock(segs, undefined, this.draftKernels ?? this.kernels);
    for (const s of segs) s.state.shiftMtp(s.tokens.length);
    return logits;
  }

  /**
   * The MTP block (spec §3.8): next-next-token logits of each segment's last row.
   * Convention (golden README): hidden row i (main model, before hc_head) goes with token i+1.
   */
  mtp(segments: MtpSegment[], trace?: ForwardTrace): Float32Array[] {
    return this.mtpBlock(segments, trace, this.kernels);
  }

  /** mtp() with kernels k; trace null: no logits (the block only keeps its caches in step). */
  private mtpBlock(segments: MtpSegment[], trace: ForwardTrace | null | undefined, k: Kernels): Float32Array[] {
    const m = this.mtpBlocks[0];
    if (!m) throw new Error('this checkpoint has no MTP block');
    const a = this.args;
    const { dim, hcMult: hc } = a;
    const states = segments.map((s) => this.own(s.state));
    const { rows, ids, positions, offsets } = this.layout(segments.map((s, i) => ({ tokens: s.tokens, pos0: states[i]!.mtpPosition })));
    const e = new Float32Array(rows * dim);
    for (let r = 0; r < rows; r++) for (let d = 0; d < dim; d++) e[r * dim + d] = bf16Value(this.embed[ids[r]! * dim + d]!);
    const hiddenAll = new Float32Array(rows * hc * dim);
    segments.forEach((s, i) => {
      if (s.hidden.length !== s.tokens.length * hc * dim) throw new Error('mtp: hidden rows do not match tokens');
      hiddenAll.set(s.hidden, offsets[i]! * hc * dim);
    });
    const ep = linear(k, rmsNormWith(k, e, rows, dim, m.enorm, a.normEps), rows, m.eProj);
    const hp = linear(k, rmsNormWith(k, hiddenAll, rows * hc, dim, m.hnorm, a.normEps), rows * hc, m.hProj);
    let X: Float32Array = new Float32Array(rows * hc * dim);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < hc; j++) {
        for (let d = 0; d < dim; d++) X[(r * hc + j) * dim + d] = roundBf16(ep[r * dim + d]! + hp[(r * hc + j) * dim + d]!);
      }
    }
    const segs: LayerSegment[] = states.map((s, i) => ({ layer: s.mtp[0]!, row0: offsets[i]!, len: segments[i]!.tokens.length, pos0: s.mtpPosition }));
    X = blockForward(k, m.block, this.cfg, this.experts, X, rows, positions, ids, segs, this.blockTrace(m.block.id, segs, trace ?? undefined));
    const logits = trace === null ? [] : this.logitsOf(X, offsets, segments.map((s) => s.tokens.length), segments.map(() => 1), m.hcHead, m.norm, trace, k);
    states.forEach((s, i) => (s.mtpPosition += segments[i]!.tokens.length));
    return logits;
  }

  private layout(segs: { tokens: Int32Array; pos0: number }[]) {
    let rows = 0;
    const offsets: number[] = [];
    for (const s of segs) {
      if (s.tokens.length === 0) throw new Error('forward: a segment has no tokens');
      if (s.pos0 + s.tokens.length > this.maxSeqLen) {
        throw new Error(`sequence of ${s.pos0 + s.tokens.length} tokens exceeds max_seq_len ${this.maxSeqLen}`);
      }
      offsets.push(rows);
      rows += s.tokens.length;
    }
    const ids = new Int32Array(rows);
    const positions = new Int32Array(rows);
    segs.forEach((s, i) => {
      for (let t = 0; t < s.tokens.length; t++) {
        const id = s.tokens[t]!;
        if (!(id >= 0 && id < this.vocabSize)) throw new Error(`token id ${id} outside the vocabulary (${this.vocabSize})`);
        ids[offsets[i]! + t] = id;
        positions[offsets[i]! + t] = s.pos0 + t;
      }
    });
    return { rows, ids, positions, offsets };
  }

  private blockTrace(layer: number, segs: LayerSegment[], trace?: ForwardTrace): BlockTrace | undefined {
    if (!trace) return undefined;
    return {
      routing: trace.routing && ((r) => trace.routing!(layer, r)),
      indexer: trace.indexer && ((row, seg, sel) => trace.indexer!(layer, segs.indexOf(seg), row, sel)),
    };
  }

  /** Logits of the last `tail[i]` rows of each segment i ([tail[i], vocab] each). */
  private logitsOf(X: Float32Array, offsets: number[], lens: number[], tail: number[], hcp: HcParams, norm: Float32Array, trace?: ForwardTrace,
    k: Kernels = this.kernels): Float32Array[] {
    const { dim, hcMult: hc, normEps, hcEps } = this.args;
    const flat = hc * dim;
    if (trace?.final) trace.final(hcHead(X, X.length / flat, hc, dim, hcp, normEps, hcEps, k));
    // every segment's last rows through one head product: a decode step of n sequences reads the head once
    // (canonical rounding makes each row's logits the same as alone)
    const n = tail.reduce((a, b) => a + b, 0);
    const last = new Float32Array(n * flat);
    let r = 0;
    offsets.forEach((o, i) => {
      last.set(X.subarray((o + lens[i]! - tail[i]!) * flat, (o + lens[i]!) * flat), r * flat);
      r += tail[i]!;
    });
    const y = hcHead(last, n, hc, dim, hcp, normEps, hcEps, k);
    const logits = denseLinear(k, rmsNormWith(k, y, n, dim, norm, normEps), n, this.head);
    const V = this.head.out;
    if (offsets.length === 1) return [logits];
    const out: Float32Array[] = [];
    r = 0;
    for (const t of tail) {
      out.push(logits.slice(r * V, (r + t) * V));
      r += t;
    }
    return out;
  }
}
