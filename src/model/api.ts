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
}

export interface ModelRunner {
  readonly vocabSize: number;
  readonly maxSeqLen: number;
  newState(): SequenceState;
  restoreState(bytes: Uint8Array): SequenceState;
  /**
   * Runs the segments as one batched step (weights read once for all rows);
   * advances each state; returns, per segment, the fp32 logits of its LAST token [vocab].
   * Results are bit-identical to running each segment alone.
   */
  forward(segments: ForwardSegment[]): Float32Array[];
}
