// What the server needs from the tokenizer/encoding layer, as one small interface: render a conversation
// (encodeMessages), tokenize, and parse the model's output incrementally into reasoning / content / tool-call
// deltas. `tokenizer-codec.ts` implements it on src/tokenizer.

/** A message in the reference encoder's input format (OpenAI-shaped, §6 of the architecture spec). */
export interface V4Message {
  role: 'system' | 'user' | 'assistant' | 'tool' | 'latest_reminder';
  content?: string | null;
  reasoning_content?: string | null;
  tool_calls?: { id?: string; type: 'function'; function: { name: string; arguments: string } }[];
  tool_call_id?: string;
  /** Only on a system message: OpenAI-format tool list rendered into the prompt. */
  tools?: { type: 'function'; function: Record<string, unknown> }[];
  response_format?: Record<string, unknown>;
  /** Beta chat-prefix completion: only on the last (assistant) message. */
  prefix?: boolean;
}

export type OutputDelta =
  | { type: 'reasoning'; text: string }
  | { type: 'content'; text: string }
  | { type: 'tool_start'; index: number; name: string; id?: string }
  | { type: 'tool_args'; index: number; text: string }
  /** The DSML block turned out malformed: tool calls from `fromIndex` on are void (their text follows as content). */
  | { type: 'tools_void'; fromIndex: number };

export interface OutputParser {
  push(text: string): OutputDelta[];
  /** End of output (EOS, length cut or stop sequence): flush whatever is held back. */
  end(): OutputDelta[];
}

export interface ChatCodec {
  /** The prompt text for a conversation that ends with the assistant's turn about to start. */
  render(messages: V4Message[], thinking: boolean, effort: 'high' | 'max' | null): string;
  /** Chat-prefix completion (§6.1): `messages` ends with the assistant prefix message; says where generation resumes. */
  renderPrefix(
    messages: V4Message[],
    thinking: boolean,
    effort: 'high' | 'max' | null,
  ): { prompt: string; continues: 'reasoning' | 'content' };
  renderFim(prefix: string, suffix: string): string;
  tokenize(text: string): Int32Array;
  /** Text of generated ids (used to tell which stop sequence ended a generation). */
  decode(ids: number[]): string;
  readonly eosId: number;
  /** startInReasoning: the prompt ends inside <think>. */
  parser(startInReasoning: boolean): OutputParser;
  /** Closing marker of the reasoning block ("</think>"). */
  readonly thinkEnd: string;
  /** Opening of a DSML tool-calls block as the model writes it after content ("\n\n<｜DSML｜tool_calls>\n"). */
  readonly toolCallsOpen: string;
  /** Opening of one invoke up to the name's first quote ("<｜DSML｜invoke name=\""). */
  readonly invokeOpen: string;
}
