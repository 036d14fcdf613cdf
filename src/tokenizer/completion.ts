// Prompts for the /beta features (spec deepseek-api §6.1, §6.3): chat-prefix
// completion and fill-in-the-middle. The reference encoder has neither helper;
// both map onto plain prompts (golden README).
import { encodeMessages, type EncodeOptions } from './encoding.js';
import { PyError, dget, truthy, type PyDict } from './pyjson.js';
import { BOS, FIM_BEGIN, FIM_END, FIM_HOLE, THINK_END } from './templates.js';

/** DeepSeek's FIM order: BOS <｜fim▁begin｜>prefix<｜fim▁hole｜>suffix<｜fim▁end｜> (the model writes the middle). */
export function renderFim(prefix: string, suffix: string | null = null, opts: { addBos?: boolean } = {}): string {
  return (opts.addBos === false ? '' : BOS) + FIM_BEGIN + prefix + FIM_HOLE + (suffix ?? '') + FIM_END;
}

export interface PrefixPrompt {
  prompt: string;
  /** Where generation resumes: inside the reasoning (thinking mode, reasoning prefix and no content) or the content. */
  continues: 'reasoning' | 'content';
}

/**
 * Chat-prefix completion: the last message is `{role: "assistant", prefix: true, content, reasoning_content?}`;
 * it is rendered without EOS (the reference's `wo_eos`). In thinking mode a reasoning prefix with no content
 * leaves `</think>` off so the model continues its reasoning.
 */
export function renderPrefixCompletion(messages: unknown[], opts: EncodeOptions): PrefixPrompt {
  const last = messages[messages.length - 1] as PyDict | undefined;
  if (!last || dget(last, 'role') !== 'assistant' || dget(last, 'prefix') !== true) {
    throw new PyError('ValueError', 'prefix completion needs a last assistant message with prefix: true');
  }
  const entries = last instanceof Map ? [...last.entries()] : Object.entries(last);
  const forced = new Map<string, unknown>(entries.filter(([k]) => k !== 'prefix'));
  forced.set('wo_eos', true);
  let prompt = encodeMessages([...messages.slice(0, -1), forced], opts);
  const reasoningOnly = opts.thinkingMode === 'thinking' && truthy(dget(last, 'reasoning_content')) && !truthy(dget(last, 'content'));
  if (reasoningOnly && !truthy(dget(last, 'tool_calls')) && prompt.endsWith(THINK_END)) {
    prompt = prompt.slice(0, -THINK_END.length);
    return { prompt, continues: 'reasoning' };
  }
  return { prompt, continues: 'content' };
}
