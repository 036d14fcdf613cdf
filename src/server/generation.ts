// One generation as the dialects see it: submit to the engine, parse the output text into reasoning /
// content / tool-call deltas, attribute logprobs, and finish with usage. Dialect code (openai.ts,
// anthropic.ts, fim.ts) only formats these events.
import type { Engine, EngineEvent, SamplingParams, SubmitOptions, TokenLogprob } from '../engine/api.js';
import type { ChatCodec, OutputParser } from './codec.js';
import { randomToolCallId } from './ids.js';

export interface StrictTools {
  tools: { name: string; parameters: unknown }[];
  /** The turn must be a tool-call block (tool_choice required or named). */
  forced: boolean;
}

export type Logprob = TokenLogprob & { top: TokenLogprob[] };

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'insufficient_system_resource';

export interface GenUsage {
  promptTokens: number;
  completionTokens: number;
  reasoningTokens: number;
  cacheHitTokens: number;
  cacheMissTokens: number;
}

export type GenEvent =
  | { type: 'queued'; position: number }
  | { type: 'started'; promptTokens: number; cacheHitTokens: number }
  | { type: 'reasoning'; text: string; logprobs: Logprob[] }
  | { type: 'content'; text: string; logprobs: Logprob[] }
  | { type: 'tool_start'; index: number; id: string; name: string }
  | { type: 'tool_args'; index: number; text: string }
  | { type: 'tools_void'; fromIndex: number }
  | { type: 'done'; finish: FinishReason; stopSequence: string | null; usage: GenUsage };

export interface GenerationSpec {
  prompt: Int32Array;
  sampling: SamplingParams;
  /** Prompt ends inside <think>: output starts with reasoning. */
  startInReasoning: boolean;
  /** Constrain the answer (after reasoning) to JSON (§4.7). */
  jsonAnswer: boolean;
  /** Strict tools (§6.2): the engine's `dsml_tools` constraint makes tool arguments match their schemas. */
  strictTools?: StrictTools;
  /**
   * This turn's text already at the end of the prompt, where generation resumes (a forced tool-call opener, or
   * a prefix completion under strict tools): parsed, never emitted as text; the strict constraint starts after it.
   */
  forcedAnswerPrefix?: string;
  /** Raw text mode (FIM): no parsing, every piece of text is content. */
  raw?: boolean;
  requestId?: string;
  cacheHitGranularity: number;
  /** Prefix-cache isolation scope: the dialects set `user_id` (§9.4), drive() narrows it to the tenant. */
  cacheScope?: string;
}

interface HeldText {
  kind: 'reasoning' | 'content';
  text: string;
}

/**
 * The free text a parser holds back at the end of `prefix` (e.g. a final "\n" that may start a tool-call
 * block): what a second parser releases when the prefix ends there. None when the prefix ends inside a block.
 */
function heldBack(codec: ChatCodec, startInReasoning: boolean, prefix: string): HeldText | null {
  const p = codec.parser(startInReasoning);
  p.push(prefix);
  const rest = p.end();
  if (rest.some((d) => d.type !== 'reasoning' && d.type !== 'content')) return null;
  const text = rest.map((d) => ('text' in d ? d.text : '')).join('');
  return text && rest[0] ? { kind: rest[0].type as HeldText['kind'], text } : null;
}

/** Thrown out of the iterator when the engine reports an internal failure before anything was sent. */
export class EngineFailure extends Error {}

class Attributor {
  // Logprobs of tokens that produced no visible text yet ride on the next delta of the same kind.
  pendingReasoning: Logprob[] = [];
  pendingContent: Logprob[] = [];
}

export async function* runGeneration(
  engine: Engine,
  codec: ChatCodec,
  spec: GenerationSpec,
  signal: AbortSignal,
): AsyncGenerator<GenEvent> {
  const parser: OutputParser | null = spec.raw ? null : codec.parser(spec.startInReasoning);
  const attr = new Attributor();
  let inReasoning = spec.startInReasoning && !spec.raw;
  let reasoningTokens = 0;
  let completionTokens = 0;
  let toolCount = 0;
  let promptTokens = spec.prompt.length;
  let cachedTokens = 0;
  let started = false;

  // The forced prefix's tail the parser held back (a possible marker start): released as text, it is cut.
  let echo: HeldText | null = null;
  const cutEcho = (type: HeldText['kind'], text: string): string => {
    if (!echo) return text;
    const n = Math.min(text.length, echo.text.length);
    if (type !== echo.kind || text.slice(0, n) !== echo.text.slice(0, n)) {
      echo = null; // it became markup
      return text;
    }
    echo = n < echo.text.length ? { kind: echo.kind, text: echo.text.slice(n) } : null;
    return text.slice(n);
  };

  const translate = function* (deltas: ReturnType<OutputParser['push']>, lp: Logprob | undefined): Generator<GenEvent> {
    let attached = false;
    for (const d of deltas) {
      if (d.type !== 'reasoning' && d.type !== 'content') echo = null;
      if (d.type !== 'reasoning' && attr.pendingReasoning.length) {
        // Reasoning is over: its last logprobs (e.g. the </think> token) go out before the answer starts.
        yield { type: 'reasoning', text: '', logprobs: attr.pendingReasoning.splice(0) };
      }
      if (d.type === 'reasoning' || d.type === 'content') {
        const pend = d.type === 'reasoning' ? attr.pendingReasoning : attr.pendingContent;
        const logprobs = pend.splice(0);
        if (lp && !attached && (d.type === 'reasoning') === inReasoningAtToken) {
          logprobs.push(lp);
          attached = true;
        }
        if (d.type === 'content') inReasoning = false;
        const text = cutEcho(d.type, d.text);
        if (text || logprobs.length) yield { type: d.type, text, logprobs };
      } else if (d.type === 'tool_start') {
        inReasoning = false;
        toolCount = Math.max(toolCount, d.index + 1);
        yield { type: 'tool_start', index: d.index, id: d.id ?? randomToolCallId(d.index), name: d.name };
      } else if (d.type === 'tools_void') {
        toolCount = Math.min(toolCount, d.fromIndex);
        yield d;
      } else {
        yield { type: 'tool_args', index: d.index, text: d.text };
      }
    }
    if (lp && !attached) (inReasoningAtToken ? attr.pendingReasoning : attr.pendingContent).push(lp);
  };
  let inReasoningAtToken = inReasoning;

  if (parser && spec.forcedAnswerPrefix) {
    // The forced text is part of the prompt; parse it so the parser's state is right, drop its text deltas.
    for (const ev of translate(parser.push(spec.forcedAnswerPrefix), undefined)) if (ev.type !== 'content' && ev.type !== 'reasoning') yield ev;
    echo = heldBack(codec, spec.startInReasoning, spec.forcedAnswerPrefix);
  }

  // Phase 1 (reasoning) and phase 2 (JSON answer) when JSON mode meets thinking: the JSON constraint must
  // start after </think>, so reasoning runs first, stopped at the marker, then the answer is constrained.
  const twoPhase = spec.jsonAnswer && inReasoning;
  let budget = spec.sampling.maxTokens;
  let prompt = spec.prompt;
  const generatedIds: number[] = [];
  let finish: FinishReason = 'stop';
  let stopSequence: string | null = null;

  for (let phase = twoPhase ? 1 : 2; phase <= 2; phase++) {
    const sampling: SamplingParams = { ...spec.sampling, maxTokens: budget };
    const options: SubmitOptions = { requestId: spec.requestId };
    if (spec.cacheScope !== undefined) options.cacheScope = spec.cacheScope;
    if (phase === 1) sampling.stop = [...sampling.stop, codec.thinkEnd];
    else if (spec.strictTools) {
      options.constraint = { kind: 'dsml_tools', tools: spec.strictTools.tools, thinking: inReasoning, forced: spec.strictTools.forced };
      if (spec.forcedAnswerPrefix) options.constraint.prefix = spec.forcedAnswerPrefix;
    } else if (spec.jsonAnswer) options.constraint = { kind: 'json_object' };
    const handle = engine.submit(prompt, sampling, options);
    const onAbort = () => handle.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    let done: Extract<EngineEvent, { type: 'done' }> | null = null;
    const phaseIds: number[] = [];
    let phaseText = '';
    try {
      for await (const ev of untilAborted(handle.events, signal)) {
        if (ev.type === 'queued') {
          if (!started) yield { type: 'queued', position: ev.position };
        } else if (ev.type === 'started') {
          if (!started) {
            started = true;
            promptTokens = ev.promptTokens;
            cachedTokens = ev.cachedTokens;
            yield { type: 'started', promptTokens, cacheHitTokens: roundDown(cachedTokens, spec.cacheHitGranularity) };
          }
        } else if (ev.type === 'token') {
          completionTokens++;
          generatedIds.push(ev.tokenId);
          phaseIds.push(ev.tokenId);
          phaseText += ev.text;
          // The EOS token ends the output; it is not part of the answer's logprobs.
          const lp = ev.tokenId === codec.eosId ? undefined : ev.logprob;
          inReasoningAtToken = inReasoning;
          if (inReasoning) reasoningTokens++;
          if (!parser) {
            if (ev.text || lp) yield { type: 'content', text: ev.text, logprobs: lp ? [lp] : [] };
          } else {
            yield* translate(parser.push(ev.text), lp);
          }
        } else {
          done = ev;
        }
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (!done) handle.cancel();
    }
    if (signal.aborted || !done) return;
    if (done.finishReason === 'error' || done.finishReason === 'cancelled') {
      if (!started) throw new EngineFailure(done.error ?? 'generation failed');
      finish = 'insufficient_system_resource';
      break;
    }
    if (done.finishReason === 'length') {
      finish = 'length';
      break;
    }
    if (phase === 1) {
      // Reasoning ended: feed the stripped marker, then continue constrained from prompt + output + marker.
      const marker = codec.tokenize(codec.thinkEnd);
      if (parser) yield* translate(parser.push(codec.thinkEnd), undefined);
      inReasoning = false;
      completionTokens += marker.length;
      reasoningTokens += marker.length;
      budget -= generatedIds.length + marker.length;
      if (budget <= 0) {
        finish = 'length';
        break;
      }
      prompt = concat(spec.prompt, generatedIds, marker);
      continue;
    }
    // The engine names the stop string it matched; the text-based guess serves engines that do not.
    stopSequence = done.stopSequence ?? matchedStop(codec, spec.sampling.stop, phaseIds, phaseText);
  }
  if (parser) yield* translate(parser.end(), undefined);
  for (const lp of attr.pendingContent.splice(0)) yield { type: 'content', text: '', logprobs: [lp] };
  for (const lp of attr.pendingReasoning.splice(0)) yield { type: 'reasoning', text: '', logprobs: [lp] };
  if (finish === 'stop' && toolCount > 0) finish = 'tool_calls';
  const hit = roundDown(cachedTokens, spec.cacheHitGranularity);
  yield {
    type: 'done',
    finish,
    stopSequence,
    usage: { promptTokens, completionTokens, reasoningTokens, cacheHitTokens: hit, cacheMissTokens: promptTokens - hit },
  };
}

/** Iterates until the signal aborts, without waiting for the engine to acknowledge the cancellation. */
async function* untilAborted<T>(events: AsyncIterable<T>, signal: AbortSignal): AsyncGenerator<T> {
  const it = events[Symbol.asyncIterator]();
  const aborted = new Promise<'aborted'>((resolve) => {
    if (signal.aborted) resolve('aborted');
    else signal.addEventListener('abort', () => resolve('aborted'), { once: true });
  });
  for (;;) {
    const r = await Promise.race([it.next(), aborted]);
    if (r === 'aborted' || r.done) return;
    yield r.value;
  }
}

/** Which stop sequence ended the output: the text the engine held back starts with it (never EOS). */
function matchedStop(codec: ChatCodec, stop: string[], ids: number[], visible: string): string | null {
  if (!stop.length || !ids.length || ids[ids.length - 1] === codec.eosId) return null;
  const rest = codec.decode(ids).slice(visible.length);
  return stop.find((s) => rest.startsWith(s)) ?? stop.find((s) => rest.includes(s)) ?? null;
}

function roundDown(n: number, unit: number): number {
  return unit > 1 ? Math.floor(n / unit) * unit : n;
}

function concat(a: Int32Array, b: number[], c: Int32Array): Int32Array {
  const out = new Int32Array(a.length + b.length + c.length);
  out.set(a, 0);
  out.set(b, a.length);
  out.set(c, a.length + b.length);
  return out;
}
