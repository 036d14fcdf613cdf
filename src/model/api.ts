// What the layers above the model (engine, CLI) rely on. The model folder
// implements it; nothing here depends on engine or server code.

/** Everything one sequence carries between forward calls (spec §4): window rings,
 *  compressor pending rows, compressed and indexer caches, MTP caches. */
export interface SequenceState {
  /** Tokens already consumed (the next forward starts at this position). */
  readonly position: number;
  /** Bytes held by this state (for admission control and metrics). */
  byteSize(): number;
  /** Forget everything: the state is then as new (spec §4.2 note). */
  reset(): void;
  /** Deep copy (for prefix-cache snapshots). */
  clone(): SequenceState;
  /** Self-contained binary form (prefix cache on disk); `ModelRunner.restoreState` reads it. */
  serialize(): Uint8Array;
}

/** One sequence's part of a batched forward call. */
export interface ForwardSegment {
  state: SequenceState;
  /** Tokens to consume at positions state.position .. state.position + tokens.length - 1. */
  tokens: Int32Array;
  /**
   * Trailing tokens that are drafts (speculative decoding, fewer than tokens.length): logits come back
   * for the last drafts + 1 rows, and `Speculator.rejectDrafts` can undo the draft rows. Default 0.
   */
  drafts?: number;
  /**
   * Keep this sequence's MTP block in step (models with one): 'run' also feeds it, in this call, every
   * (row, next token) pair already known and not a draft; 'defer' leaves the rows for `Speculator.draft`.
   * Unset: the MTP block falls out of step for this sequence.
   */
  mtp?: 'run' | 'defer';
}

/** Draft tokens from the model's MTP block and the state undo that verifying them needs. */
export interface Speculator {
  /** Whether the state's MTP block is in step, so `draft` can run for it. */
  canDraft(state: SequenceState): boolean;
  /**
   * Feeds each state's pending rows through the MTP block, the last one paired with `next` (the token
   * just sampled, not yet consumed), in one batched call; returns, per item, the MTP logits [vocab] for
   * the token after `next`.
   */
  draft(items: Array<{ state: SequenceState; next: number }>): Float32Array[];
  /** Keeps the last forward call's draft rows. */
  acceptDrafts(state: SequenceState): void;
  /** Undoes them: the state is then bit-identical to one that never consumed them. */
  rejectDrafts(state: SequenceState): void;
}

export interface ModelRunner {
  readonly vocabSize: number;
  readonly maxSeqLen: number;
  newState(): SequenceState;
  restoreState(bytes: Uint8Array): SequenceState;
  /**
   * Runs the segments as one batched step (weights read once for all rows);
   * advances each state; returns, per segment, the fp32 logits of its LAST token [vocab]
   * (with drafts: of its last drafts + 1 tokens, [drafts + 1, vocab]).
   * Results are bit-identical to running each segment alone.
   */
  forward(segments: ForwardSegment[]): Float32Array[];
  /** Present when the checkpoint has an MTP block. */
  readonly speculator?: Speculator;
}
