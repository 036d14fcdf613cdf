// A scripted engine for server tests that need exact model output: each submit "generates" the current script
// token by token (real ids and text from the real tokenizer), then finishes with "stop" (or "cancelled").
import type { Engine, EngineEvent, SamplingParams, SubmitOptions } from '../../src/engine/api.js';
import type { Tokenizer } from '../../src/tokenizer/index.js';

export interface Submitted {
  prompt: string;
  sampling: SamplingParams;
  options: SubmitOptions | undefined;
}

/** `script()` gives the completion text of each request; every submit is recorded in `log`. */
export function scriptedEngine(tokenizer: Tokenizer, script: () => string, log: Submitted[] = []): Engine {
  return {
    submit(prompt: Int32Array, sampling: SamplingParams, options?: SubmitOptions) {
      log.push({ prompt: tokenizer.decode(prompt), sampling, options });
      const ids = tokenizer.encode(script());
      let cancelled = false;
      async function* events(): AsyncGenerator<EngineEvent> {
        yield { type: 'started', cachedTokens: 0, promptTokens: prompt.length };
        let n = 0;
        for (const id of ids) {
          if (cancelled) break;
          n++;
          yield { type: 'token', tokenId: id, text: tokenizer.decode([id]) };
        }
        yield { type: 'done', finishReason: cancelled ? 'cancelled' : 'stop', usage: { promptTokens: prompt.length, completionTokens: n, cachedTokens: 0 } };
      }
      return { id: 'scripted', events: events(), cancel: () => void (cancelled = true) };
    },
    stats: () => ({ active: 0, queued: 0 }),
    maxSeqLen: 1 << 20,
    close: async () => {},
  } as Engine;
}
