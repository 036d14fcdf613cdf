// ChatCodec on the real tokenizer layer: encodeMessages renders (byte-exact with the reference encoder), the
// BPE tokenizer tokenizes, the tokenizer's StreamParser parses the output stream.
import { encodeMessages, renderFim, renderPrefixCompletion, StreamParser, tokens, type Tokenizer } from '../tokenizer/index.js';
import type { ChatCodec, OutputDelta, OutputParser, V4Message } from './codec.js';
import { randomToolCallId } from './ids.js';

type StreamEvent = ReturnType<StreamParser['push']>[number];

function toDeltas(events: StreamEvent[]): OutputDelta[] {
  const out: OutputDelta[] = [];
  for (const e of events) {
    switch (e.type) {
      case 'reasoning':
      case 'content':
        out.push({ type: e.type, text: e.text });
        break;
      case 'tool_call_start':
        out.push({ type: 'tool_start', index: e.index, name: e.name, id: e.id });
        break;
      case 'tool_call_arguments':
        out.push({ type: 'tool_args', index: e.index, text: e.text });
        break;
      case 'malformed':
        // Calls announced from firstIndex on are void; the block's text so far follows as the parser's own
        // content event (the malformed event's `text` only reports it).
        out.push({ type: 'tools_void', fromIndex: e.firstIndex });
        break;
    }
  }
  return out;
}

export function tokenizerCodec(tokenizer: Tokenizer): ChatCodec {
  return {
    render(messages: V4Message[], thinking: boolean, effort: 'high' | 'max' | null): string {
      return encodeMessages(messages, { thinkingMode: thinking ? 'thinking' : 'chat', reasoningEffort: thinking ? effort : null });
    },
    renderPrefix(messages: V4Message[], thinking: boolean, effort: 'high' | 'max' | null) {
      return renderPrefixCompletion(messages, { thinkingMode: thinking ? 'thinking' : 'chat', reasoningEffort: thinking ? effort : null });
    },
    renderFim: (prefix, suffix) => renderFim(prefix, suffix),
    tokenize: (text) => Int32Array.from(tokenizer.encode(text)),
    decode: (ids) => tokenizer.decode(ids),
    eosId: tokenizer.eosId,
    parser(startInReasoning: boolean): OutputParser {
      const p = new StreamParser(startInReasoning ? 'thinking' : 'chat', {
        startIn: startInReasoning ? 'reasoning' : 'content',
        toolCallId: randomToolCallId,
      });
      return { push: (text) => toDeltas(p.push(text)), end: () => toDeltas(p.finish()) };
    },
    thinkEnd: tokens.THINK_END,
    toolCallsOpen: `\n\n${tokens.TOOL_CALLS_OPEN}\n`,
    invokeOpen: `<${tokens.DSML}invoke name="`,
  };
}
