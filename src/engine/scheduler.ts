// The scheduler: runs many sequences at once with one batched `forward` per step.
//
// Each step: admit queued requests (FIFO, under the state byte budget and maxBatch), then build one
// batch with the next token of every decoding sequence plus prompt chunks of prefilling ones
// (chunked prefill: at most `prefillChunk` prompt tokens per step in total, so a long prompt never
// stalls the others for more than one chunk), run it, and sample. Prefix-cache snapshots are taken at
// the end of every prompt, at every `snapshotInterval` tokens inside a prompt, and at the end of every
// generation (research/peers.md §4). Runs on whatever thread owns it (the engine worker).
//
// Exactness across chunkings: the model's numbers for a token do not depend on how the prompt is cut
// into chunks, except inside the very first chunk, whose window list has min(S, W) slots instead of W
// (spec §4.2/§4.3; W = sliding window). The reference prefills the whole prompt at once, so:
// the first chunk always covers at least min(promptLength, W) tokens, and a snapshot is only stored
// (and only served for a longer prompt) when it is canonical, i.e. its first chunk had min(n, W) slots.
// Then outputs are identical with or without cache hits, for any chunk size, alone or batched.
//
// Speculative decoding (checkpoints with an MTP block, speculation.ts): after sampling a token, the
// MTP block drafts the one after it; the next step feeds both and gets logits for both rows. The
// first row's token is sampled as always; the draft is kept if it equals that token, and the second
// row's token is then sampled too, else the draft row is undone (model/undo.ts). Sampling draws the
// same random numbers in the same order, and exact numerics make a row's logits independent of the
// rows beside it, so the output is the same token for token as without drafting.

import type { ForwardSegment, ModelRunner, SequenceState } from '../model/api.js';
import type { EngineEvent, SamplingParams, SubmitOptions, TokenLogprob } from './api.js';
import { DsmlTries, DsmlToolsConstraint } from './dsml-constraint.js';
import { JsonConstraint, TokenTrie } from './json-constraint.js';
import type { PrefixCache } from './prefix-cache.js';
import { Rng, randomSeed, sampleToken } from './sampling.js';
import { OutputText } from './stop.js';
import { argmax, DraftPolicy } from './speculation.js';

/** What the scheduler needs from the tokenizer. */
export interface EngineVocab {
  eosId: number;
  /** The token's bytes as it appears in text (special tokens: their literal text). */
  tokenBytes(id: number): Uint8Array;
  /** Control tokens (never allowed inside constrained JSON). */
  isSpecial(id: number): boolean;
}

/**
 * The engine-side constrained-decoding hook: a per-step allowed-token mask, advanced by each sampled
 * token (the token-id form of api.ts TokenConstraint; JsonConstraint implements both).
 */
export interface StepConstraint {
  /** Allowed token ids for the next step (null = all). */
  allowedTokens(): Int32Array | null;
  /** The sampled token (always one of the allowed ones). */
  accept(tokenId: number): void;
}

export interface SchedulerOptions {
  maxBatch: number;
  /** Prompt tokens computed per step, in total over all prefilling sequences. */
  prefillChunk: number;
  /** Budget for live sequence state (bytes); the head of the queue waits while it is exceeded. */
  stateBudgetBytes: number;
  /** Snapshot spacing inside long prompts (tokens); a multiple of prefillChunk works best. */
  snapshotInterval: number;
  maxSeqLen: number;
  /** Draft with the model's MTP block (when it has one). Default false. */
  speculative?: boolean;
  /** Acceptance rate under which drafting pauses (speculation.ts). */
  minDraftAcceptance?: number;
}

/** How many recent prompts are compared for common prefixes. */
const RECENT_PROMPTS = 32;

export type EmitFn = (id: string, event: EngineEvent) => void;

interface Sequence {
  id: string;
  prompt: Int32Array;
  sampling: SamplingParams;
  useCache: boolean;
  /** Prefix-cache isolation scope (SubmitOptions.cacheScope). */
  scope: string | undefined;
  state: SequenceState | null;
  /** All tokens consumed or to be consumed: prompt then generated. */
  tokens: number[];
  generated: number[];
  /** Logits waiting to be sampled (prompt fully restored from the cache). */
  pending: Float32Array | null;
  /** Sampled token to feed next step. */
  next: number;
  /** MTP draft of the token after `next` (-1: none). */
  draft: number;
  /** The constraint's allowed tokens for the next sampling, when drafting already asked for them. */
  allowedNext: Int32Array | null | undefined;
  /** Whether this sequence keeps its MTP block in step (it can draft). */
  mtp: boolean;
  cachedTokens: number;
  /** Window slots of the first chunk's rows: min(first chunk length, W). */
  firstSlots: number;
  /** Extra snapshot point: the longest common prefix with a recent prompt (0 = none). */
  sharedPrefix: number;
  counts: Map<number, number>;
  rng: Rng;
  text: OutputText;
  constraint: StepConstraint | null;
  constraintSpec: SubmitOptions['constraint'];
}

export class Scheduler {
  private readonly queue: Sequence[] = [];
  private readonly active: Sequence[] = [];
  private readonly byId = new Map<string, Sequence>();
  private trie: TokenTrie | null = null;
  private trieBytes: Array<Uint8Array | null> | null = null;
  private dsmlTries: DsmlTries | null = null;
  private baseStateBytes = -1;
  /** Recent prompts, to detect common prefixes (newest last). */
  private readonly recent: Array<{ scope: string | undefined; tokens: Int32Array }> = [];
  /** The model's sliding window W (spec §4.1); 128 (Flash/Pro) when the runner does not say. */
  private readonly window: number;
  readonly counters = { steps: 0, decodeTokens: 0, prefillTokens: 0, completed: 0, cancelled: 0, errors: 0, snapshotFailures: 0 };
  /** Null when the model cannot draft or speculation is off. */
  private readonly drafts: DraftPolicy | null;

  constructor(
    private readonly model: ModelRunner,
    private readonly vocab: EngineVocab,
    private readonly cache: PrefixCache | null,
    private readonly opts: SchedulerOptions,
    private readonly emit: EmitFn,
  ) {
    const w = (model as { args?: { windowSize?: unknown } }).args?.windowSize;
    this.window = typeof w === 'number' && w > 0 ? w : 128;
    this.drafts = model.speculator && opts.speculative ? new DraftPolicy({ minAcceptance: opts.minDraftAcceptance }) : null;
  }

  get hasWork(): boolean {
    return this.queue.length > 0 || this.active.length > 0;
  }

  submit(id: string, prompt: Int32Array, sampling: SamplingParams, options: SubmitOptions = {}): void {
    const problem = this.validate(id, prompt, sampling);
    if (problem) {
      this.emit(id, { type: 'done', finishReason: 'error', error: problem, usage: { promptTokens: prompt.length, completionTokens: 0, cachedTokens: 0 } });
      return;
    }
    const seq: Sequence = {
      id,
      prompt,
      sampling,
      useCache: options.usePrefixCache !== false && this.cache !== null,
      scope: options.cacheScope,
      state: null,
      tokens: Array.from(prompt),
      generated: [],
      pending: null,
      next: -1,
      draft: -1,
      allowedNext: undefined,
      mtp: false,
      cachedTokens: 0,
      firstSlots: 0,
      sharedPrefix: 0,
      counts: new Map(),
      rng: new Rng(sampling.seed ?? randomSeed()),
      text: new OutputText(sampling.stop ?? []),
      constraint: null,
      constraintSpec: options.constraint ?? null,
    };
    this.byId.set(id, seq);
    this.queue.push(seq);
    this.emit(id, { type: 'queued', position: this.queue.length });
  }

  private validate(id: string, prompt: Int32Array, s: SamplingParams): string | null {
    if (this.byId.has(id)) return `duplicate request id ${id}`;
    if (prompt.length === 0) return 'the prompt is empty';
    if (prompt.length >= this.opts.maxSeqLen) return `the prompt (${prompt.length} tokens) does not fit the context (${this.opts.maxSeqLen})`;
    for (let i = 0; i < prompt.length; i++) {
      const t = prompt[i]!;
      if (!(t >= 0 && t < this.model.vocabSize)) return `token id ${t} at ${i} is outside the vocabulary (${this.model.vocabSize})`;
    }
    if (!(s.maxTokens >= 1)) return 'max_tokens must be at least 1';
    if (!(s.temperature >= 0)) return 'temperature must be >= 0';
    if ((s.topLogprobs ?? 0) < 0 || (s.topLogprobs ?? 0) > 20) return 'top_logprobs must be within 0..20';
    return null;
  }

  cancel(id: string): void {
    const seq = this.byId.get(id);
    if (!seq) return;
    const qi = this.queue.indexOf(seq);
    if (qi >= 0) {
      this.queue.splice(qi, 1);
      this.reportQueue(qi);
    }
    this.counters.cancelled++;
    this.finish(seq, 'cancelled');
  }

  /** Bytes held by live sequence states. */
  stateBytes(): number {
    let n = 0;
    for (const s of this.active) if (s.state) n += s.state.byteSize();
    return n;
  }

  stats(): Record<string, number> {
    const d = this.drafts?.counters ?? { drafted: 0, accepted: 0, pauses: 0 };
    return {
      active: this.active.length,
      queued: this.queue.length,
      stateBytes: this.stateBytes(),
      ...this.counters,
      draftedTokens: d.drafted,
      acceptedDrafts: d.accepted,
      draftPauses: d.pauses,
    };
  }

  /** One scheduling step: admission, one batched forward, sampling. */
  step(): void {
    this.admit();
    // Sequences whose whole prompt came from the cache sample straight from the stored logits.
    for (const seq of [...this.active]) {
      if (seq.pending) {
        const logits = seq.pending;
        seq.pending = null;
        try {
          this.afterLogits(seq, logits);
        } catch (err) {
          this.fail(seq, err);
        }
      }
    }
    const batch: Array<{ seq: Sequence; seg: ForwardSegment; prefill: boolean }> = [];
    let budget = this.opts.prefillChunk;
    for (const seq of this.active) {
      const state = seq.state!;
      if (seq.next >= 0) {
        const seg: ForwardSegment = seq.draft >= 0
          ? { state, tokens: Int32Array.of(seq.next, seq.draft), drafts: 1, mtp: 'defer' }
          : { state, tokens: Int32Array.of(seq.next), ...(seq.mtp ? { mtp: 'defer' as const } : {}) };
        batch.push({ seq, seg, prefill: false });
        continue;
      }
      const pos = state.position;
      if (pos >= seq.prompt.length || budget <= 0) continue;
      let end = Math.min(seq.prompt.length, pos + budget);
      if (seq.useCache) {
        const boundary = (Math.floor(pos / this.opts.snapshotInterval) + 1) * this.opts.snapshotInterval;
        end = Math.min(end, boundary);
        if (pos < seq.sharedPrefix) end = Math.min(end, seq.sharedPrefix);
      }
      if (pos === 0) {
        end = Math.max(end, Math.min(seq.prompt.length, this.window));
        seq.firstSlots = Math.min(end, this.window);
      }
      budget -= end - pos;
      batch.push({ seq, seg: { state, tokens: seq.prompt.subarray(pos, end), ...(seq.mtp ? { mtp: 'run' as const } : {}) }, prefill: true });
    }
    if (batch.length === 0) return;
    this.counters.steps++;
    let logits: Float32Array[];
    try {
      logits = this.model.forward(batch.map((b) => b.seg));
    } catch (err) {
      // States may be partly advanced: every sequence of the failed batch ends; queued ones go on.
      for (const { seq } of batch) this.fail(seq, err);
      return;
    }
    for (let i = 0; i < batch.length; i++) {
      const { seq, seg, prefill } = batch[i]!;
      if (!this.byId.has(seq.id)) continue;
      try {
        if (prefill) {
          this.counters.prefillTokens += seg.tokens.length;
          const pos = seq.state!.position;
          if (pos < seq.prompt.length) {
            if (pos % this.opts.snapshotInterval === 0 || pos === seq.sharedPrefix) this.snapshot(seq, seq.prompt.subarray(0, pos), logits[i]!);
            continue;
          }
          if (seq.cachedTokens < seq.prompt.length) this.snapshot(seq, seq.prompt, logits[i]!);
        } else {
          this.counters.decodeTokens++;
          seq.next = -1;
          const draft = seq.draft;
          seq.draft = -1;
          if (draft >= 0) {
            const V = this.model.vocabSize;
            if (this.afterLogits(seq, logits[i]!.subarray(0, V), draft)) {
              this.counters.decodeTokens++;
              this.afterLogits(seq, logits[i]!.subarray(V, 2 * V));
            }
            continue;
          }
        }
        this.afterLogits(seq, logits[i]!);
      } catch (err) {
        this.fail(seq, err);
      }
    }
    this.draftNext();
  }

  /** Drafts the token after `next` for every sequence whose MTP block is in step (one batched MTP call). */
  private draftNext(): void {
    const spec = this.model.speculator;
    if (!spec || !this.drafts) return;
    const on = this.drafts.active(this.counters.steps);
    const items: Sequence[] = [];
    for (const seq of this.active) {
      if (!seq.mtp || seq.next < 0) continue;
      // a verify step consumes two tokens and may yield two: only when both fit
      const room = seq.state!.position + 2 <= this.opts.maxSeqLen && seq.generated.length + 2 <= seq.sampling.maxTokens;
      if (!on || !spec.canDraft(seq.state!)) seq.mtp = false;
      else if (room) items.push(seq);
    }
    if (items.length === 0) return;
    try {
      const logits = spec.draft(items.map((q) => ({ state: q.state!, next: q.next })));
      items.forEach((q, i) => {
        // a constrained sequence drafts among the tokens its constraint allows next (kept for that sampling)
        if (q.constraint) q.allowedNext = q.constraint.allowedTokens();
        q.draft = argmax(logits[i]!, q.allowedNext ?? null);
      });
    } catch {
      for (const q of items) q.mtp = false; // drafting is optional: the requests go on without it
    }
  }

  private admit(): void {
    let admitted = 0;
    while (this.queue.length > 0 && this.active.length < this.opts.maxBatch) {
      const seq = this.queue[0]!;
      if (this.active.length > 0 && this.stateBytes() + this.estimateBytes(seq) > this.opts.stateBudgetBytes) break;
      this.queue.shift();
      admitted++;
      try {
        this.start(seq);
      } catch (err) {
        this.fail(seq, err);
      }
    }
    if (admitted > 0) this.reportQueue(0);
  }

  /** Expected state size of a sequence at its longest (base size plus the growth per token seen so far). */
  private estimateBytes(seq: Sequence): number {
    if (this.baseStateBytes < 0) this.baseStateBytes = this.model.newState().byteSize();
    let perToken = 0;
    for (const s of this.active) {
      const st = s.state;
      if (st && st.position > 0) perToken = Math.max(perToken, (st.byteSize() - this.baseStateBytes) / st.position);
    }
    const len = Math.min(this.opts.maxSeqLen, seq.prompt.length + seq.sampling.maxTokens);
    return this.baseStateBytes + perToken * len;
  }

  private start(seq: Sequence): void {
    // A partial hit must be canonical for any longer prompt (n >= W); shorter entries serve only exact repeats.
    const hit = seq.useCache ? this.cache!.lookup(seq.prompt, { minPartial: this.window, scope: seq.scope }) : null;
    if (hit) {
      seq.state = hit.state;
      seq.cachedTokens = hit.length;
      seq.firstSlots = Math.min(hit.length, this.window);
      if (hit.length === seq.prompt.length) seq.pending = hit.logits;
    } else {
      seq.state = this.model.newState();
    }
    if (seq.useCache) this.noteSharedPrefix(seq);
    if (seq.constraintSpec) seq.constraint = this.makeConstraint(seq.constraintSpec);
    // drafting needs the MTP block in step from the first token (or a cached state that kept it so)
    const st = seq.state;
    seq.mtp = this.drafts !== null && this.drafts.active(this.counters.steps) && (st.position === 0 || this.model.speculator!.canDraft(st));
    this.active.push(seq);
    this.emit(seq.id, { type: 'started', cachedTokens: seq.cachedTokens, promptTokens: seq.prompt.length });
  }

  /**
   * Detected common prefixes (as DeepSeek's cache and colibri do): when this prompt shares a longer prefix
   * with a recent prompt than the cache covers, a snapshot is taken there. Agent clients re-render earlier
   * turns (e.g. without their reasoning), so successive prompts share "everything up to the last user
   * turn" but neither prompt's end; this makes the next turn hit that point.
   */
  private noteSharedPrefix(seq: Sequence): void {
    const p = seq.prompt;
    let best = 0;
    for (const { scope, tokens: r } of this.recent) {
      if (scope !== seq.scope) continue; // prefixes shared across scopes are never snapshot for another scope
      const n = Math.min(r.length, p.length);
      let i = 0;
      while (i < n && r[i] === p[i]) i++;
      if (i > best) best = i;
    }
    if (best > seq.cachedTokens && best < p.length && best >= this.window) seq.sharedPrefix = best;
    this.recent.push({ scope: seq.scope, tokens: p });
    if (this.recent.length > RECENT_PROMPTS) this.recent.shift();
  }

  private makeConstraint(spec: NonNullable<SubmitOptions['constraint']>): StepConstraint {
    if (spec.kind === 'dsml_tools') {
      if (!this.dsmlTries) {
        // Text tokens plus the added tokens that spell DSML markup (spec §6.2); other control tokens never.
        const markup = new Set(['｜DSML｜', '</think>']);
        const bytes: Array<Uint8Array | null> = [];
        for (let id = 0; id < this.model.vocabSize; id++) {
          const b = id === this.vocab.eosId ? null : this.vocab.tokenBytes(id);
          bytes.push(b && (!this.vocab.isSpecial(id) || markup.has(Buffer.from(b).toString('utf8'))) ? b : null);
        }
        this.dsmlTries = new DsmlTries(bytes);
      }
      return new DsmlToolsConstraint(this.dsmlTries, this.vocab.eosId, spec);
    }
    if (!this.trie) {
      const bytes: Array<Uint8Array | null> = [];
      for (let id = 0; id < this.model.vocabSize; id++) {
        bytes.push(id === this.vocab.eosId || this.vocab.isSpecial(id) ? null : this.vocab.tokenBytes(id));
      }
      this.trieBytes = bytes;
      this.trie = new TokenTrie(bytes);
    }
    const schema = spec.kind === 'json_schema' ? spec.schema : null;
    return new JsonConstraint(this.trie, this.trieBytes!, this.vocab.eosId, schema);
  }

  /**
   * Samples the next token from `logits` and decides whether the sequence goes on. With `draft` (the
   * logits are a verify step's first row): keeps or undoes the draft row, and returns true when the
   * draft was the sampled token and the sequence goes on (the caller then samples the second row).
   */
  private afterLogits(seq: Sequence, logits: Float32Array, draft = -1): boolean {
    const s = seq.sampling;
    const allowed = seq.allowedNext !== undefined ? seq.allowedNext : seq.constraint ? seq.constraint.allowedTokens() : null;
    seq.allowedNext = undefined;
    const r = sampleToken(logits, s, seq.counts, allowed, seq.rng);
    const tok = r.tokenId;
    seq.constraint?.accept(tok);
    seq.generated.push(tok);
    seq.counts.set(tok, (seq.counts.get(tok) ?? 0) + 1);
    const eos = tok === this.vocab.eosId && s.stopAtEos !== false;
    let finish: 'stop' | 'length' | null = null;
    let text: string;
    if (eos) {
      text = seq.text.flush(); // the EOS text itself is never emitted
      finish = 'stop';
    } else {
      const st = seq.text.push(this.vocab.tokenBytes(tok));
      text = st.text;
      // the draft row, if any, is not consumed yet as far as the limit is concerned
      if (st.stopped) finish = 'stop';
      else if (seq.generated.length >= s.maxTokens || seq.state!.position - (draft >= 0 ? 1 : 0) >= this.opts.maxSeqLen) {
        finish = 'length';
        text += seq.text.flush();
      }
    }
    let accepted = false;
    if (draft >= 0) {
      // at the end of a sequence the draft row goes too: the state then holds all but the last token, as without drafts
      accepted = tok === draft && !finish;
      if (accepted) this.model.speculator!.acceptDrafts(seq.state!);
      else this.model.speculator!.rejectDrafts(seq.state!);
      this.drafts?.record(tok === draft, this.counters.steps);
    }
    const ev: EngineEvent & { type: 'token' } = { type: 'token', tokenId: tok, text };
    if (s.logprobs || (s.topLogprobs ?? 0) > 0) {
      ev.logprob = { ...this.tokenLogprob(tok, r.logprob), top: r.top.map(([id, lp]) => this.tokenLogprob(id, lp)) };
    }
    this.emit(seq.id, ev);
    if (finish) {
      // Snapshot at the end of the generation: the state has consumed prompt + all but the last token.
      if (seq.state!.position > seq.prompt.length) this.snapshot(seq, Int32Array.from(seq.tokens.slice(0, seq.state!.position)), logits);
      this.counters.completed++;
      this.finish(seq, finish);
      return false;
    }
    seq.tokens.push(tok);
    seq.next = tok;
    return accepted;
  }

  /** Stores a snapshot if it is canonical (see the file header): first-chunk slots = min(n, W). */
  private snapshot(seq: Sequence, tokens: Int32Array, logits: Float32Array): void {
    if (!seq.useCache || seq.firstSlots !== Math.min(tokens.length, this.window)) return;
    try {
      this.cache!.insert(tokens, seq.state!, logits, seq.scope);
    } catch {
      this.counters.snapshotFailures++; // the cache is an optimization: the request goes on
    }
  }

  private tokenLogprob(id: number, logprob: number): TokenLogprob {
    const bytes = this.vocab.tokenBytes(id);
    return { token: Buffer.from(bytes).toString('utf8'), logprob, bytes: Array.from(bytes) };
  }

  /** Ends every live and queued sequence with an error (last resort after an unexpected failure). */
  failAll(err: unknown): void {
    for (const seq of [...this.queue, ...this.active]) this.fail(seq, err);
    this.queue.length = 0;
  }

  private fail(seq: Sequence, err: unknown): void {
    this.counters.errors++;
    this.finish(seq, 'error', err instanceof Error ? err.message : String(err));
  }

  /** Ends a sequence and frees its state at once. */
  private finish(seq: Sequence, reason: 'stop' | 'length' | 'cancelled' | 'error', error?: string): void {
    if (!this.byId.delete(seq.id)) return;
    const ai = this.active.indexOf(seq);
    if (ai >= 0) this.active.splice(ai, 1);
    // Cancelled before any computation (still queued, or before its first step): nothing was used.
    const untouched = reason === 'cancelled' && seq.generated.length === 0 && (seq.state === null || seq.state.position === seq.cachedTokens);
    seq.state = null;
    seq.pending = null;
    seq.constraint = null;
    const ev: EngineEvent = {
      type: 'done',
      finishReason: reason,
      usage: untouched
        ? { promptTokens: 0, completionTokens: 0, cachedTokens: 0 }
        : { promptTokens: seq.prompt.length, completionTokens: seq.generated.length, cachedTokens: seq.cachedTokens },
    };
    if (error !== undefined) ev.error = error;
    if (reason === 'stop' && seq.text.matched !== null) ev.stopSequence = seq.text.matched;
    this.emit(seq.id, ev);
  }

  /** Tells queued requests from index `from` on their new position (1 = next). */
  private reportQueue(from: number): void {
    for (let i = from; i < this.queue.length; i++) this.emit(this.queue[i]!.id, { type: 'queued', position: i + 1 });
  }
}
