// Public surface of the tokenizer layer (spec §6): BPE tokenizer with the V4
// added tokens, byte-exact chat rendering, one-shot and streaming output parsing.
export { Tokenizer, IncrementalDecoder, type EncodeOptions as TokenizeOptions } from './bpe.js';
export { loadTokenizer, writeTokenizerFiles, V4_TOKENIZER_CONFIG } from './load.js';
export { v4AddedTokens, V4_VOCAB_SIZE, type AddedToken } from './added-tokens.js';
export { encodeMessages, mergeToolMessages, sortToolResultsByCallOrder, type EncodeOptions, type ThinkingMode, type ReasoningEffort } from './encoding.js';
export { parseMessageFromCompletionText, type ParsedMessage, type ToolCall } from './parse.js';
export { PyError, PyFloat, loads as pyJsonLoads, dumps as pyJsonDumps } from './pyjson.js';
export { StreamParser, type StreamEvent, type StreamParserOptions, type StreamToolCall, type FinishReason } from './stream.js';
export { renderFim, renderPrefixCompletion, type PrefixPrompt } from './completion.js';
export { benchmarkTokenizer, benchCorpus, type TokenizerBenchResult } from './bench.js';
export { runCase, type CaseResult } from './cases.js';
export * as tokens from './templates.js';
