// ChatCodec on the real tokenizer layer: encodeMessages renders (byte-exact with the reference encoder), the
// BPE tokenizer tokenizes, DsmlStreamParser parses the output stream.
import { encodeMessages, tokens, type Tokenizer } from '../tokenizer/index.js';
import type { ChatCodec, V4Message } from './codec.js';
import { DsmlStreamParser } from './output-parser.js';

export function tokenizerCodec(tokenizer: Tokenizer): ChatCodec {
  return {
    render(messages: V4Message[], thinking: boolean, effort: 'high' | 'max' | null): string {
      return encodeMessages(messages, { thinkingMode: thinking ? 'thinking' : 'chat', reasoningEffort: thinking ? effort : null });
    },
    // DeepSeek's FIM convention: <｜fim▁begin｜>prefix<｜fim▁hole｜>suffix<｜fim▁end｜>, after BOS.
    renderFim: (prefix, suffix) => `${tokens.BOS}${tokens.FIM_BEGIN}${prefix}${tokens.FIM_HOLE}${suffix}${tokens.FIM_END}`,
    tokenize: (text) => Int32Array.from(tokenizer.encode(text)),
    parser: (startInReasoning) => new DsmlStreamParser(startInReasoning),
    thinkEnd: tokens.THINK_END,
    toolCallsOpen: `\n\n${tokens.TOOL_CALLS_OPEN}\n`,
    invokeOpen: `<${tokens.DSML}invoke name="`,
  };
}
