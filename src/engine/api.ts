// The engine as seen by the server and the CLI. The engine runs model math off
// the HTTP event loop (worker thread or native threads) and streams events back.

export interface SamplingParams {
  /** 0 = greedy. */
  temperature: number;
  topP: number;
  /** 0 = disabled. */
  topK: number;
  frequencyPenalty: number;
  presencePenalty: number;
  seed?: number;
  maxTokens: number;
  /** Stop strings: matched on detokenized text across token boundaries, never emitted. */
  stop: string[];
  /** Stop at EOS (default true). */
  stopAtEos?: boolean;
  /** Number of top alternatives to report per token (0-20); undefined = no logprobs. */
  topLogprobs?: number;
  logprobs?: boolean;
}

/** Per-step allowed-token mask for constrained decoding (JSON mode, strict tools). */
export interface TokenConstraint {
  /** Called before sampling each token with the text generated so far; returns allowed token ids or null (= all). */
  allowed(generatedText: string): Int32Array | null;
}

export interface SubmitOptions {
  /** Stable id for logs / cancellation. */
  requestId?: string;
  /** Constraint spec, serializable (the engine builds the constraint in its thread). */
  constraint?:
    | { kind: 'json_object' }
    | { kind: 'json_schema'; schema: unknown }
    /**
     * Strict tool calls (spec §6.2 DSML): thinking = reasoning until </think> first; forced = the turn is a
     * tool-call block (right after </think> in thinking mode); tool arguments follow each JSON schema;
     * prefix = this turn's text already at the end of the prompt (prefix completion), consumed first.
     */
    | { kind: 'dsml_tools'; tools: { name: string; parameters: unknown }[]; thinking: boolean; forced?: boolean; prefix?: string }
    | null;
  /** Whether prefix-cache lookup and snapshot are allowed (default true). */
  usePrefixCache?: boolean;
  /**
   * Prefix-cache isolation: lookups and snapshots only match within the same scope (e.g. DeepSeek's
   * `user_id`); undefined = the shared default scope.
   */
  cacheScope?: string;
}

export interface TokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
}

export type EngineEvent =
  | { type: 'queued'; position: number }
  | { type: 'started'; cachedTokens: number; promptTokens: number }
  | {
      type: 'token';
      tokenId: number;
      text: string;
      logprob?: TokenLogprob & { top: TokenLogprob[] };
    }
  | {
      type: 'done';
      finishReason: 'stop' | 'length' | 'cancelled' | 'error';
      usage: { promptTokens: number; completionTokens: number; cachedTokens: number };
      error?: string;
      /** The stop string (from SamplingParams.stop) that ended the generation, when one did. */
      stopSequence?: string;
    };

export interface GenerationHandle {
  readonly id: string;
  events: AsyncIterable<EngineEvent>;
  cancel(): void;
}

export interface Engine {
  submit(promptTokens: Int32Array, sampling: SamplingParams, options?: SubmitOptions): GenerationHandle;
  stats(): Record<string, number>;
  /** The context the engine really has (tokens): min(options.maxSeqLen, the model's). */
  readonly maxSeqLen: number;
  close(): Promise<void>;
}
