// Tokenizer throughput for the benchmark (issue 3: "measure encode throughput").
// Cold = first pass (empty piece cache), warm = repeated passes over the same text.
import type { Tokenizer } from './bpe.js';
import { encodeMessages } from './encoding.js';

export interface TokenizerBenchResult {
  chars: number;
  tokens: number;
  coldEncodeTokensPerSecond: number;
  warmEncodeTokensPerSecond: number;
  decodeTokensPerSecond: number;
  /** Streaming detokenization (one token at a time through the incremental decoder). */
  streamDecodeTokensPerSecond: number;
}

/** A deterministic multilingual chat prompt (prose, code, CJK, numbers, DSML, tools block) of about `targetChars`. */
export function benchCorpus(targetChars = 200_000): string {
  const sentences = [
    'The quick brown fox jumps over the lazy dog while 1234567 numbers are summed.',
    '深度求索公司发布了新的模型，它在数学、代码和推理任务上表现出色。',
    'def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n',
    'Ça va? Καλημέρα κόσμε — 🌍😀 emoji and accents déjà vu.',
    '{"location": "Beijing", "unit": "celsius", "days": [1, 2, 3], "ok": true}',
    'まずは日本語のテキストも少し含めておきます。カタカナもあります。',
  ];
  const messages: unknown[] = [
    {
      role: 'system',
      content: 'You are a helpful assistant.',
      tools: [{ type: 'function', function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { location: { type: 'string' } } } } }],
    },
  ];
  let size = 0;
  for (let i = 0; size < targetChars; i++) {
    const text = Array.from({ length: 6 }, (_, k) => sentences[(i * 5 + k * 7) % sentences.length] + ` (${i}.${k})`).join(' ');
    size += text.length;
    messages.push({ role: i % 2 ? 'assistant' : 'user', content: text });
  }
  return encodeMessages(messages, { thinkingMode: 'chat' });
}

function rate(tokens: number, ms: number): number {
  return Math.round(tokens / (ms / 1000));
}

export function benchmarkTokenizer(tok: Tokenizer, text = benchCorpus(), warmRepeats = 3): TokenizerBenchResult {
  let t = performance.now();
  const ids = tok.encode(text);
  const cold = performance.now() - t;
  t = performance.now();
  for (let i = 0; i < warmRepeats; i++) tok.encode(text);
  const warm = (performance.now() - t) / warmRepeats;
  t = performance.now();
  tok.decode(ids);
  const dec = performance.now() - t;
  t = performance.now();
  const d = tok.decoder();
  for (const id of ids) d.push(id);
  d.flush();
  const stream = performance.now() - t;
  return {
    chars: text.length,
    tokens: ids.length,
    coldEncodeTokensPerSecond: rate(ids.length, cold),
    warmEncodeTokensPerSecond: rate(ids.length, warm),
    decodeTokensPerSecond: rate(ids.length, dec),
    streamDecodeTokensPerSecond: rate(ids.length, stream),
  };
}
